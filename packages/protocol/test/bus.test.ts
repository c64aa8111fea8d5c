/**
 * Requests with ids on a real nats-server: a reply that comes late is not a second act when the request
 * is sent again, and the retry reports what the first attempt did.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '@slicelab/launcher';
import { Outcomes, SlicelabError, newCounters, request, serve, validate } from '@slicelab/protocol';

const dir = mkdtempSync(join(tmpdir(), 'slicelab-bus-'));
let server: NatsServer | undefined;
let client: NatsConnection;
let host: NatsConnection;
let subjects = 0;

test.before(async () => {
  server = await startNatsServer({ dir });
  [client, host] = await Promise.all([1, 2].map(() => connect({ servers: server!.url })));
});
test.after.always(async () => {
  await Promise.all([client, host].map((nc) => nc?.close()));
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A slow operation that counts how often it was carried out. */
async function slowService(options: { outcomes?: Outcomes; takesMs: number }) {
  const subject = `bus.${subjects++}`;
  const done: number[] = [];
  serve(host, subject, validate.noBody, async () => {
    await sleep(options.takesMs);
    done.push(Date.now());
    return { made: done.length };
  }, newCounters(), { outcomes: options.outcomes });
  await host.flush();
  return { subject, done };
}

const made = (value: unknown) => value as { made: number };

test.serial('a retried request is carried out once and answered with the first outcome', async (t) => {
  const { subject, done } = await slowService({ outcomes: new Outcomes(), takesMs: 700 });
  const reply = await request(client, subject, {}, made, 300, { retries: 3 });
  t.deepEqual(reply, { made: 1 });
  await sleep(800);
  t.is(done.length, 1, 'three retries, one act');
});

test.serial('the control: the same service without Outcomes does it again at every retry', async (t) => {
  const { subject, done } = await slowService({ takesMs: 700 });
  await t.throwsAsync(request(client, subject, {}, made, 300, { retries: 3 }), { message: /4 attempts/ });
  await sleep(1000);
  t.is(done.length, 4, 'every attempt was an act of its own, and none was answered in time');
});

test.serial('a request still late after its retries fails with one line counting the attempts', async (t) => {
  const { subject } = await slowService({ outcomes: new Outcomes(), takesMs: 2000 });
  const error = await t.throwsAsync(request(client, subject, {}, made, 200, { retries: 2 }), { instanceOf: SlicelabError });
  t.is(error!.code, 'ETIMEDOUT');
  t.regex(error!.message, /^no reply on bus\.\d+ within 200 ms \(3 attempts\)$/);
});

test.serial('outcomes are kept per request id: a new request is a new act', async (t) => {
  const { subject, done } = await slowService({ outcomes: new Outcomes(), takesMs: 10 });
  t.deepEqual(await request(client, subject, {}, made, 2000, { retries: 1 }), { made: 1 });
  t.deepEqual(await request(client, subject, {}, made, 2000, { retries: 1 }), { made: 2 });
  t.is(done.length, 2);
});
