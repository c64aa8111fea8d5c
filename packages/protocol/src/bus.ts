/**
 * Request/reply and fire-and-forget on NATS with the codec and validation applied at the edge, so that
 * no handler ever sees an unchecked message. A request that fails validation gets an error reply naming
 * the problem; a fire-and-forget message that fails is dropped and counted. Nothing thrown by a message
 * escapes into the process.
 *
 * A request that changes something carries an id (header `Slicelab-Request`): when its reply is late the
 * requester asks again with the same id, and the server answers the retry with the first attempt's
 * outcome (`Outcomes`), waiting for it if it is still under way. So a slow `container run` that finished
 * after the first timeout is reported as done, not done twice or reported failed.
 */
import { errors as natsErrors, headers, nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
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

export const requestIdHeader = 'Slicelab-Request';

/** Replies by request id, kept `keepMs` (at most `max` of them): a retry gets the first attempt's reply. */
export class Outcomes {
  private readonly replies = new Map<string, { reply: Promise<Uint8Array>; at: number }>();

  constructor(private readonly keepMs = 10 * 60_000, private readonly max = 10_000) {}

  once(key: string, make: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const known = this.replies.get(key);
    if (known) return known.reply;
    const now = Date.now();
    for (const [old, { at }] of this.replies) {
      if (now - at < this.keepMs && this.replies.size < this.max) break;
      this.replies.delete(old);
    }
    const reply = make();
    this.replies.set(key, { reply, at: now });
    return reply;
  }
}

/**
 * Answers requests on `subject`; the handler's result becomes `{ok: true, body}`, its SlicelabError an
 * error reply. With `outcomes`, a request that carries an id is carried out once, whatever its retries.
 * `onDenied` hears it when the server refuses the subscription (a credential without the permission).
 */
export function serve<Q, R>(
  nc: NatsConnection,
  subject: string,
  check: Validator<Q>,
  handler: (request: Q, msg: Msg) => R | Promise<R>,
  counters: BusCounters,
  options: { queue?: string; outcomes?: Outcomes; onDenied?: (problem: string) => void } = {},
): Subscription {
  return nc.subscribe(subject, {
    queue: options.queue,
    callback: (error, msg) => {
      if (error) return options.onDenied?.(errorMessage(error));
      const id = msg.headers?.get(requestIdHeader);
      const reply = id && options.outcomes ? options.outcomes.once(`${msg.subject} ${id}`, () => answer(msg, check, handler, counters)) : answer(msg, check, handler, counters);
      void reply.then((bytes) => respond(msg, bytes));
    },
  });
}

async function answer<Q, R>(msg: Msg, check: Validator<Q>, handler: (request: Q, msg: Msg) => R | Promise<R>, counters: BusCounters): Promise<Uint8Array> {
  let request: Q;
  try {
    request = check(decode(msg.data));
  } catch (error) {
    counters.dropped += 1;
    counters.lastProblem = `${msg.subject}: ${errorMessage(error)}`;
    return encode(failure(error));
  }
  try {
    return encode({ ok: true, body: await handler(request, msg) });
  } catch (error) {
    return encode(failure(error));
  }
}

function failure(error: unknown) {
  const code: ErrorCode = error instanceof SlicelabError ? error.code : 'EINTERNAL';
  return { ok: false, error: { code, message: errorMessage(error).slice(0, 4096) } };
}

function respond(msg: Msg, reply: Uint8Array) {
  if (!msg.reply) return;
  try {
    msg.respond(reply);
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
  options: { onDenied?: (problem: string) => void } = {},
): Subscription {
  return nc.subscribe(subject, {
    callback: (error, msg) => {
      if (error) return options.onDenied?.(errorMessage(error));
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

/**
 * Sends a request and returns the validated body of the reply, or throws the remote error as a
 * SlicelabError. With `retries`, the request carries an id and is sent again (same id) each time its
 * reply is `timeoutMs` late: the server answers a retry with the first attempt's outcome.
 */
export async function request<R>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  check: Validator<R>,
  timeoutMs = 2000,
  options: { retries?: number } = {},
): Promise<R> {
  const retries = options.retries ?? 0;
  const id = headers();
  if (retries > 0) id.set(requestIdHeader, nuid.next());
  const data = encode(body);
  let msg: Msg | undefined;
  for (let attempt = 0; !msg; attempt++) {
    try {
      msg = await nc.request(subject, data, { timeout: timeoutMs, headers: retries > 0 ? id : undefined });
    } catch (error) {
      const failed = requestFailure(subject, timeoutMs, error);
      if (failed.code !== 'ETIMEDOUT' || attempt >= retries) {
        if (attempt > 0) failed.message = `${failed.message} (${attempt + 1} attempts)`;
        throw failed;
      }
    }
  }
  const reply = validate.reply(decode(msg.data));
  if (!reply.ok) throw new SlicelabError(reply.error.code as ErrorCode, reply.error.message);
  return check(reply.body);
}

function requestFailure(subject: string, timeoutMs: number, error: unknown): SlicelabError {
  if (error instanceof natsErrors.RequestError && error.isNoResponders()) {
    return new SlicelabError('EUNAVAILABLE', `nobody answers on ${subject}`, { cause: error });
  }
  if (error instanceof natsErrors.PermissionViolationError || /permissions violation/i.test(errorMessage(error))) {
    return new SlicelabError('EACCES', `this credential may not send on ${subject}`, { cause: error });
  }
  if (error instanceof natsErrors.TimeoutError || (error instanceof Error && error.cause instanceof natsErrors.TimeoutError)) {
    return new SlicelabError('ETIMEDOUT', `no reply on ${subject} within ${timeoutMs} ms`, { cause: error });
  }
  return new SlicelabError('EUNAVAILABLE', `request on ${subject} failed: ${errorMessage(error)}`, { cause: error });
}
