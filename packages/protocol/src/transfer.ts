/**
 * Moving a large buffer (a checkpoint image, migration pages) from one NATS connection to another over
 * core NATS. Core NATS is not lossless: the server cuts off a subscriber that falls behind and its
 * messages are gone, and one message carries at most max_payload (1 MiB by default). So the buffer goes
 * as chunks sent as requests, each chunk's reply being its acknowledgement; up to `window` chunks are in
 * flight, and a chunk whose ack does not come within `ackTimeoutMs` is sent again. The object store is
 * reliable too but moved 31–51 MiB/s here against 150–330 MB/s for core NATS with a window of acks
 * (STACK.md): it stays for what must persist.
 *
 * Division of labor:
 *   sendBytes: cuts the buffer into chunks, keeps the window full, retransmits, fails on an error reply
 *   receiveBytes: checks each chunk at the edge (bus.ts's `serve`: bad ones get an error reply and are
 *     counted), copies it into the buffer at its offset, acks it, acks duplicates again
 *   plainPublishRate: the ceiling both are measured against, plain publishing without acks
 *
 * A chunk is known by its seq: the receiver counts a seq once, so a sender must never send two different
 * chunks with one seq. Chunk data goes out as a Buffer view: msgpackr (with the codec's moreTypes) packs
 * a plain Uint8Array as a typed-array extension that it copies on decoding, and a Buffer as msgpack bin,
 * which decodes as a view into the message; the receiver's copy into its buffer is then the only one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errors as natsErrors, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { Type, type Static } from '@sinclair/typebox';
import { newCounters, serve, type BusCounters } from './bus.js';
import { decode, encode } from './codec.js';
import { ProtocolError, SlicelabError, errorMessage, type ErrorCode } from './errors.js';
import { validate, validator, type Validator } from './messages.js';

const Count = Type.Integer({ minimum: 0 });
export const TransferChunk = Type.Object({ seq: Count, offset: Count, total: Count, data: Type.Uint8Array() });
export type TransferChunk = Static<typeof TransferChunk>;
const TransferAck = Type.Object({ seq: Count });
const checkChunk = validator('TransferChunk', TransferChunk);
const checkAck = validator('TransferAck', TransferAck);

/** room for the chunk's msgpack map around its data, kept free below the server's max_payload */
const chunkEnvelopeBytes = 64;
export const defaultChunkBytes = 256 * 1024;
/** the largest buffer a receiver takes unless told otherwise */
export const defaultMaxTransferBytes = 1024 ** 3;

export interface SendOptions {
  /** bytes of data per chunk, 256 KiB unless given; must fit the server's max_payload */
  chunkBytes?: number;
  /** chunks in flight at once, 8 unless given */
  window?: number;
  /** how long to wait for a chunk's ack before sending it again, 2000 ms unless given */
  ackTimeoutMs?: number;
  /** how often one chunk is sent again before the transfer fails, 3 unless given */
  retries?: number;
  /** called on every ack with the bytes acknowledged so far */
  onProgress?: (sentBytes: number, totalBytes: number) => void;
}

export interface TransferStats {
  bytes: number;
  chunks: number;
  /** from the first send to the last ack (plainPublishRate: to the last message received) */
  ms: number;
  retransmits: number;
  bytesPerSecond: number;
}

/**
 * Sends `bytes` to the receiver on `subject` and resolves when every chunk is acknowledged. Fails with
 * the receiver's error for an error reply, ETIMEDOUT when a chunk stays unacknowledged after `retries`
 * resends, EUNAVAILABLE when nobody receives on the subject.
 */
export async function sendBytes(nc: NatsConnection, subject: string, bytes: Uint8Array, options: SendOptions = {}): Promise<TransferStats> {
  const chunkBytes = positiveInteger('chunkBytes', options.chunkBytes ?? defaultChunkBytes);
  const window = positiveInteger('window', options.window ?? 8);
  const ackTimeoutMs = positiveInteger('ackTimeoutMs', options.ackTimeoutMs ?? 2000);
  const retries = options.retries ?? 3;
  if (!Number.isInteger(retries) || retries < 0) throw new SlicelabError('EINVAL', `retries must be a whole number of at least 0, not ${retries}`);
  const maxPayload = nc.info?.max_payload;
  if (maxPayload !== undefined && chunkBytes + chunkEnvelopeBytes > maxPayload) {
    throw new SlicelabError('EINVAL', `chunks of ${chunkBytes} bytes do not fit the server's max_payload of ${maxPayload} bytes`);
  }

  const total = bytes.length;
  const chunks = Math.max(1, Math.ceil(total / chunkBytes));
  const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let next = 0;
  let acked = 0;
  let retransmits = 0;
  let failure: unknown;
  let fail!: (error: unknown) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));

  const sendChunk = async (seq: number) => {
    const offset = seq * chunkBytes;
    const data = source.subarray(offset, Math.min(total, offset + chunkBytes));
    const message = encode({ seq, offset, total, data });
    for (let attempt = 0; ; attempt += 1) {
      if (failure !== undefined) return;
      if (attempt > 0) retransmits += 1;
      let reply: Msg;
      try {
        reply = await nc.request(subject, message, { timeout: ackTimeoutMs });
      } catch (error) {
        const noResponders = error instanceof natsErrors.RequestError && error.isNoResponders();
        if (!noResponders && !isTimeout(error)) {
          throw new SlicelabError('EUNAVAILABLE', `sending on ${subject} failed: ${errorMessage(error)}`, { cause: error });
        }
        if (attempt === retries) {
          const tries = `${retries + 1} ${retries === 0 ? 'try' : 'tries'}`;
          throw noResponders
            ? new SlicelabError('EUNAVAILABLE', `nobody receives on ${subject} (chunk ${seq}, ${tries})`, { cause: error })
            : new SlicelabError('ETIMEDOUT', `no ack on ${subject} for chunk ${seq} after ${tries} of ${ackTimeoutMs} ms`, { cause: error });
        }
        // no responders comes back at once: wait as long as a lost ack would, for a receiver about to subscribe
        if (noResponders) await sleep(ackTimeoutMs);
        continue;
      }
      const answer = validate.reply(decode(reply.data));
      if (!answer.ok) throw new SlicelabError(answer.error.code as ErrorCode, answer.error.message);
      const ack = checkAck(answer.body);
      if (ack.seq !== seq) throw new ProtocolError(`ack for chunk ${ack.seq} on ${subject} answers chunk ${seq}`);
      acked += data.length;
      options.onProgress?.(acked, total);
      return;
    }
  };

  const worker = async () => {
    try {
      while (failure === undefined && next < chunks) {
        const seq = next;
        next += 1;
        await sendChunk(seq);
      }
    } catch (error) {
      // the first failure ends the transfer at once; the other workers stop after their request in flight
      if (failure === undefined) {
        failure = error;
        fail(error);
      }
    }
  };

  const started = performance.now();
  await Promise.race([Promise.all(Array.from({ length: Math.min(window, chunks) }, worker)), failed]);
  return stats(total, chunks, performance.now() - started, retransmits);
}

export interface ReceiveOptions {
  /** the largest total accepted; a sender offering more gets an error reply and the transfer fails */
  maxBytes?: number;
  /** the transfer fails with ETIMEDOUT when no chunk arrives for this long, 30000 ms unless given */
  idleTimeoutMs?: number;
  /** where bad chunks are counted; the receiver's own counters unless given */
  counters?: BusCounters;
}

export interface Receiver {
  subject: string;
  /** the whole buffer once every byte has arrived */
  done: Promise<Uint8Array>;
  /** bytes arrived so far */
  received(): number;
  /** chunks that failed decoding or validation */
  counters: BusCounters;
  /** unsubscribes and rejects `done` */
  cancel(reason?: string): void;
}

/**
 * Receives one buffer on `subject`. The subscription reaches the server with the connection's next
 * flush: flush (or answer the sender on the same connection) before the sender starts. The receiver
 * unsubscribes when it is done, has failed or is cancelled.
 */
export function receiveBytes(nc: NatsConnection, subject: string, options: ReceiveOptions = {}): Receiver {
  const maxBytes = options.maxBytes ?? defaultMaxTransferBytes;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const counters = options.counters ?? newCounters();
  let buffer: Uint8Array | undefined;
  const seen = new Set<number>();
  let received = 0;
  let failure: SlicelabError | undefined;
  let settled = false;
  let resolveDone!: (bytes: Uint8Array) => void;
  let rejectDone!: (error: SlicelabError) => void;
  const done = new Promise<Uint8Array>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  // a caller that cancels need not also await the rejection it asked for; awaiting `done` still sees it
  done.catch(() => undefined);

  const finish = (error?: SlicelabError) => {
    if (settled) return;
    settled = true;
    clearTimeout(idle);
    subscription.unsubscribe();
    if (error) {
      failure = error;
      rejectDone(error);
    } else {
      resolveDone(buffer!);
    }
  };

  const check: Validator<TransferChunk> = (value) => {
    const chunk = checkChunk(value);
    const end = chunk.offset + chunk.data.length;
    if (end > chunk.total) throw new ProtocolError(`bad TransferChunk: bytes ${chunk.offset}..${end} run past the total of ${chunk.total}`);
    if (buffer && chunk.total !== buffer.length) throw new ProtocolError(`bad TransferChunk: total ${chunk.total} is not this transfer's ${buffer.length}`);
    return chunk;
  };

  const idle = setTimeout(() => {
    const of = buffer ? ` of ${buffer.length}` : '';
    finish(new SlicelabError('ETIMEDOUT', `no chunk on ${subject} for ${idleTimeoutMs} ms (${received}${of} bytes arrived)`));
  }, idleTimeoutMs);

  const subscription = serve(nc, subject, check, (chunk) => {
    if (failure) throw failure;
    if (!buffer) {
      if (chunk.total > maxBytes) {
        const tooLarge = new SlicelabError('ERANGE', `a transfer of ${chunk.total} bytes on ${subject} is above the receiver's limit of ${maxBytes} bytes`);
        finish(tooLarge);
        throw tooLarge;
      }
      buffer = new Uint8Array(chunk.total);
    }
    idle.refresh();
    if (!seen.has(chunk.seq)) {
      seen.add(chunk.seq);
      // chunk.data is a view into the message: this copy is the one copy
      buffer.set(chunk.data, chunk.offset);
      received += chunk.data.length;
      if (received === buffer.length) finish();
    }
    return { seq: chunk.seq };
  }, counters);

  return {
    subject,
    done,
    counters,
    received: () => received,
    // ECANCELED would be the right code; the ErrorCode union has none yet
    cancel: (reason) => finish(new SlicelabError('ECANCELED', `transfer on ${subject} cancelled${reason ? `: ${reason}` : ''}`)),
  };
}

/**
 * The ceiling for `sendBytes`: publishes `bytes` in messages of `chunkBytes` with a flush every
 * `flushBytes`, to a plain subscriber, without acks, and measures until the subscriber has all messages
 * or has heard nothing for a second. The subscriber is on `receiver`, which is `nc` itself unless a
 * second connection is given (two connections compare with a transfer between two processes; one
 * connection carries every byte both ways). Messages lost to a slow subscriber are missing from the
 * stats' bytes and chunks, not hidden.
 */
export async function plainPublishRate(
  nc: NatsConnection,
  subject: string,
  bytes: number,
  chunkBytes: number,
  receiver: NatsConnection = nc,
): Promise<TransferStats> {
  const quietMs = 1000;
  const flushBytes = 8 * 1024 * 1024;
  const messages = Math.max(1, Math.ceil(bytes / chunkBytes));
  const payload = Buffer.alloc(Math.min(bytes, chunkBytes), 0x5a);
  let arrivedBytes = 0;
  let arrivedMessages = 0;
  let lastArrival = 0;
  let allArrived!: () => void;
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  const subscription = receiver.subscribe(subject, {
    callback: (error, msg) => {
      if (error) return;
      arrivedBytes += msg.data.length;
      arrivedMessages += 1;
      lastArrival = performance.now();
      if (arrivedMessages === messages) allArrived();
    },
  });
  await receiver.flush();

  const started = performance.now();
  let unflushed = 0;
  for (let i = 0; i < messages; i += 1) {
    const length = Math.min(chunkBytes, bytes - i * chunkBytes);
    nc.publish(subject, payload.subarray(0, length));
    unflushed += length;
    if (unflushed >= flushBytes) {
      await nc.flush();
      unflushed = 0;
    }
  }
  await nc.flush();
  const published = performance.now();
  let complete = false;
  const quiet = async () => {
    while (!complete && performance.now() - Math.max(lastArrival, published) < quietMs) await sleep(50);
  };
  await Promise.race([arrived, quiet()]);
  complete = true;
  subscription.unsubscribe();
  return stats(arrivedBytes, arrivedMessages, (arrivedMessages > 0 ? lastArrival : published) - started, 0);
}

function stats(bytes: number, chunks: number, ms: number, retransmits: number): TransferStats {
  return { bytes, chunks, ms, retransmits, bytesPerSecond: ms > 0 ? bytes / (ms / 1000) : 0 };
}

function isTimeout(error: unknown): boolean {
  return error instanceof natsErrors.TimeoutError || (error instanceof Error && error.cause instanceof natsErrors.TimeoutError);
}

function positiveInteger(what: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new SlicelabError('EINVAL', `${what} must be a whole number of at least 1, not ${value}`);
  return value;
}
