/**
 * Request/reply and fire-and-forget on NATS with the codec and validation applied at the edge, so that
 * no handler ever sees an unchecked message. A request that fails validation gets an error reply naming
 * the problem; a fire-and-forget message that fails is dropped and counted. Nothing thrown by a message
 * escapes into the process.
 */
import { errors as natsErrors, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { decode, encode } from './codec.js';
import { SlicelabError, errorMessage, type ErrorCode } from './errors.js';
import { validate, type Validator } from './messages.js';

export interface BusCounters {
  /** Messages that failed decoding or validation, on any subject. */
  dropped: number;
  lastProblem?: string;
}

export function newCounters(): BusCounters {
  return { dropped: 0 };
}

/** Answers requests on `subject`; the handler's result becomes `{ok: true, body}`, its SlicelabError an error reply. */
export function serve<Q, R>(
  nc: NatsConnection,
  subject: string,
  check: Validator<Q>,
  handler: (request: Q, msg: Msg) => R | Promise<R>,
  counters: BusCounters,
  options: { queue?: string } = {},
): Subscription {
  return nc.subscribe(subject, {
    queue: options.queue,
    callback: (error, msg) => {
      if (error) return;
      void answer(msg, check, handler, counters);
    },
  });
}

async function answer<Q, R>(msg: Msg, check: Validator<Q>, handler: (request: Q, msg: Msg) => R | Promise<R>, counters: BusCounters) {
  let request: Q;
  try {
    request = check(decode(msg.data));
  } catch (error) {
    counters.dropped += 1;
    counters.lastProblem = `${msg.subject}: ${errorMessage(error)}`;
    respond(msg, failure(error));
    return;
  }
  try {
    respond(msg, { ok: true, body: await handler(request, msg) });
  } catch (error) {
    respond(msg, failure(error));
  }
}

function failure(error: unknown) {
  const code: ErrorCode = error instanceof SlicelabError ? error.code : 'EINTERNAL';
  return { ok: false, error: { code, message: errorMessage(error).slice(0, 4096) } };
}

function respond(msg: Msg, reply: unknown) {
  if (!msg.reply) return;
  try {
    msg.respond(encode(reply));
  } catch {
    // the connection closed under us: the requester will time out, which is the truth
  }
}

/** Receives fire-and-forget messages on `subject`; bad ones are dropped and counted. */
export function listen<T>(
  nc: NatsConnection,
  subject: string,
  check: Validator<T>,
  handler: (message: T, msg: Msg) => void,
  counters: BusCounters,
): Subscription {
  return nc.subscribe(subject, {
    callback: (error, msg) => {
      if (error) return;
      let message: T;
      try {
        message = check(decode(msg.data));
      } catch (problem) {
        counters.dropped += 1;
        counters.lastProblem = `${msg.subject}: ${errorMessage(problem)}`;
        return;
      }
      handler(message, msg);
    },
  });
}

export function publish(nc: NatsConnection, subject: string, message: unknown): void {
  nc.publish(subject, encode(message));
}

/** Sends a request and returns the validated body of the reply, or throws the remote error as a SlicelabError. */
export async function request<R>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  check: Validator<R>,
  timeoutMs = 2000,
): Promise<R> {
  let msg: Msg;
  try {
    msg = await nc.request(subject, encode(body), { timeout: timeoutMs });
  } catch (error) {
    throw requestFailure(subject, timeoutMs, error);
  }
  const reply = validate.reply(decode(msg.data));
  if (!reply.ok) throw new SlicelabError(reply.error.code as ErrorCode, reply.error.message);
  return check(reply.body);
}

function requestFailure(subject: string, timeoutMs: number, error: unknown): SlicelabError {
  if (error instanceof natsErrors.RequestError && error.isNoResponders()) {
    return new SlicelabError('EUNAVAILABLE', `nobody answers on ${subject}`, { cause: error });
  }
  if (error instanceof natsErrors.TimeoutError || (error instanceof Error && error.cause instanceof natsErrors.TimeoutError)) {
    return new SlicelabError('ETIMEDOUT', `no reply on ${subject} within ${timeoutMs} ms`, { cause: error });
  }
  return new SlicelabError('EUNAVAILABLE', `request on ${subject} failed: ${errorMessage(error)}`, { cause: error });
}
