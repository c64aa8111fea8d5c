import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '@slicelab/launcher';
import {
  SlicelabError,
  decode,
  encode,
  plainPublishRate,
  receiveBytes,
  sendBytes,
  type ReceiveOptions,
  type TransferStats,
} from '@slicelab/protocol';

const dir = mkdtempSync(join(tmpdir(), 'slicelab-transfer-'));
let server: NatsServer | undefined;
/** the two ends of every transfer, as two processes would have them */
let sender: NatsConnection;
let receiver: NatsConnection;
/** a third party on the bus: garbage, relays, silent subscribers */
let other: NatsConnection;
let subjects = 0;

test.before(async () => {
  server = await startNatsServer({ dir });
  [sender, receiver, other] = await Promise.all([1, 2, 3].map(() => connect({ servers: server!.url })));
});

test.after.always(async () => {
  await Promise.all([sender, receiver, other].filter(Boolean).map((nc) => nc.close()));
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function nextSubject(): string {
  subjects += 1;
  return `test.transfer.${subjects}`;
}

/** A receiver whose subscription the server already has. */
async function listening(subject: string, options?: ReceiveOptions) {
  const receiving = receiveBytes(receiver, subject, options);
  await receiver.flush();
  return receiving;
}

function rate(stats: TransferStats): string {
  return `${(stats.bytesPerSecond / 1e6).toFixed(0)} MB/s (${(stats.bytes / 2 ** 20).toFixed(1)} MiB in ${stats.ms.toFixed(0)} ms, ${stats.chunks} chunks, ${stats.retransmits} retransmits)`;
}

test.serial('8 MiB of random bytes arrive equal', async (t) => {
  const subject = nextSubject();
  const bytes = randomBytes(8 * 2 ** 20);
  const receiving = await listening(subject);
  const stats = await sendBytes(sender, subject, bytes);
  const arrived = await receiving.done;
  t.true(Buffer.from(arrived).equals(bytes));
  t.is(receiving.received(), bytes.length);
  t.like(stats, { bytes: bytes.length, chunks: 32, retransmits: 0 });
  t.is(receiving.counters.dropped, 0);
});

test.serial('an empty buffer goes as one empty chunk', async (t) => {
  const subject = nextSubject();
  const receiving = await listening(subject);
  const stats = await sendBytes(sender, subject, new Uint8Array());
  t.is((await receiving.done).length, 0);
  t.like(stats, { bytes: 0, chunks: 1, retransmits: 0 });
});

test.serial('a size that is not a multiple of the chunk arrives equal, with progress up to the total', async (t) => {
  const subject = nextSubject();
  const bytes = randomBytes(2 ** 20 + 12_345);
  const receiving = await listening(subject);
  const progress: number[] = [];
  const stats = await sendBytes(sender, subject, bytes, { chunkBytes: 64 * 1024, window: 3, onProgress: (sent) => progress.push(sent) });
  t.true(Buffer.from(await receiving.done).equals(bytes));
  t.is(stats.chunks, 17);
  t.is(progress.length, 17);
  t.true(progress.every((sent, i) => i === 0 || sent > progress[i - 1]!));
  t.is(progress.at(-1), bytes.length);
});

test.serial('chunks whose first delivery is lost are sent again and the data still arrives equal', async (t) => {
  const subject = nextSubject();
  const relayed = `${subject}.relayed`;
  const bytes = randomBytes(2 ** 20);
  // between sender and receiver, a relay that loses the first delivery of three chunks, as a slow
  // consumer would; the receiver answers the sender directly
  const lose = new Set([0, 5, 15]);
  const lost: number[] = [];
  const relay = other.subscribe(subject, {
    callback: (_, msg) => {
      const { seq } = decode(msg.data) as { seq: number };
      if (lose.delete(seq)) lost.push(seq);
      else other.publish(relayed, msg.data, { reply: msg.reply });
    },
  });
  await other.flush();
  const receiving = await listening(relayed);
  const stats = await sendBytes(sender, subject, bytes, { chunkBytes: 64 * 1024, ackTimeoutMs: 300 });
  relay.unsubscribe();
  t.true(Buffer.from(await receiving.done).equals(bytes));
  t.deepEqual(lost.sort((a, b) => a - b), [0, 5, 15]);
  t.true(stats.retransmits >= 3, `${stats.retransmits} retransmits`);
  t.is(stats.chunks, 16);
});

test.serial('a total above the receiver limit fails both sides with one clear message', async (t) => {
  const subject = nextSubject();
  const receiving = await listening(subject, { maxBytes: 2 ** 20 });
  const message = `a transfer of ${2 * 2 ** 20} bytes on ${subject} is above the receiver's limit of ${2 ** 20} bytes`;
  await t.throwsAsync(sendBytes(sender, subject, randomBytes(2 * 2 ** 20)), { instanceOf: SlicelabError, message });
  const error = await t.throwsAsync(receiving.done, { instanceOf: SlicelabError, message });
  t.is(error?.code, 'ERANGE');
});

test.serial('garbage on the subject gets an error reply and is counted; the transfer goes on', async (t) => {
  const subject = nextSubject();
  const receiving = await listening(subject);
  const answers = await Promise.all([
    other.request(subject, Buffer.from('not msgpack at all \xc1')),
    other.request(subject, encode({ seq: 0, offset: 0, total: 10 })),
    other.request(subject, encode({ seq: 0, offset: 8, total: 10, data: Buffer.alloc(4) })),
  ]);
  for (const answer of answers) t.like(decode(answer.data), { ok: false, error: { code: 'EPROTO' } });
  t.regex((decode(answers[1]!.data) as { error: { message: string } }).error.message, /\/data/);
  t.regex((decode(answers[2]!.data) as { error: { message: string } }).error.message, /bytes 8\.\.12 run past the total of 10/);
  t.is(receiving.counters.dropped, 3);
  t.is(receiving.received(), 0);

  const bytes = randomBytes(2 ** 20 + 1);
  await sendBytes(sender, subject, bytes);
  t.true(Buffer.from(await receiving.done).equals(bytes));
  t.is(receiving.counters.dropped, 3);
});

test.serial('a chunk that nobody acknowledges fails the sender with ETIMEDOUT naming the subject', async (t) => {
  const subject = nextSubject();
  const silent = other.subscribe(subject, { callback: () => undefined });
  await other.flush();
  const started = performance.now();
  const error = await t.throwsAsync(sendBytes(sender, subject, randomBytes(100_000), { ackTimeoutMs: 150, retries: 2 }), { instanceOf: SlicelabError });
  silent.unsubscribe();
  t.is(error?.code, 'ETIMEDOUT');
  t.is(error?.message, `no ack on ${subject} for chunk 0 after 3 tries of 150 ms`);
  t.log(`failed after ${(performance.now() - started).toFixed(0)} ms`);
});

test.serial('with nobody on the subject the sender fails with EUNAVAILABLE', async (t) => {
  const subject = nextSubject();
  const error = await t.throwsAsync(sendBytes(sender, subject, randomBytes(10), { ackTimeoutMs: 50, retries: 1 }), { instanceOf: SlicelabError });
  t.is(error?.code, 'EUNAVAILABLE');
  t.is(error?.message, `nobody receives on ${subject} (chunk 0, 2 tries)`);
});

test.serial('a cancelled receiver rejects and leaves the subject', async (t) => {
  const subject = nextSubject();
  const receiving = await listening(subject);
  receiving.cancel('migration aborted');
  await t.throwsAsync(receiving.done, { instanceOf: SlicelabError, message: `transfer on ${subject} cancelled: migration aborted` });
  await receiver.flush();
  await t.throwsAsync(sendBytes(sender, subject, randomBytes(10), { ackTimeoutMs: 50, retries: 0 }), { message: /nobody receives/ });
});

test.serial('a receiver that hears nothing fails with ETIMEDOUT', async (t) => {
  const subject = nextSubject();
  const receiving = await listening(subject, { idleTimeoutMs: 100 });
  await t.throwsAsync(receiving.done, { instanceOf: SlicelabError, message: `no chunk on ${subject} for 100 ms (0 bytes arrived)` });
});

test.serial('64 MiB with the defaults, against plain publishing of the same chunks', async (t) => {
  const subject = nextSubject();
  const bytes = randomBytes(64 * 2 ** 20);
  const receiving = await listening(subject);
  const transfer = await sendBytes(sender, subject, bytes);
  t.true(Buffer.from(await receiving.done).equals(bytes));
  const plainTwo = await plainPublishRate(sender, nextSubject(), bytes.length, 256 * 1024, receiver);
  const plainOne = await plainPublishRate(sender, nextSubject(), bytes.length, 256 * 1024);
  t.log(`sendBytes (256 KiB chunks, window 8):        ${rate(transfer)}`);
  t.log(`plainPublishRate, two connections:           ${rate(plainTwo)}`);
  t.log(`plainPublishRate, one connection both ways:  ${rate(plainOne)}`);
  t.is(transfer.bytes, bytes.length);
  t.true(plainTwo.chunks > 0 && plainOne.chunks > 0);
});
