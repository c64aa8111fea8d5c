/**
 * Garbage sent to every subject of a running cluster: requests get an error reply naming the problem,
 * fire-and-forget messages are dropped and counted, and no process crashes.
 */
import test from 'ava';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { clusterSubjects, decode, encode, validate } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { Harness, hostConfig, isAlive } from './harness.js';

const h = new Harness();
let nc: NatsConnection;
test.before(async () => {
  const up = await h.cli(['up', '--config', h.writeConfig('junk', hostConfig('junk', ['h1', 'h2'])), '--detach']);
  if (up.code !== 0) throw new Error(up.stderr);
  nc = await connect({ servers: h.runFile('junk')!.natsUrl! });
});
test.after.always(async () => {
  await nc?.close();
  await h.cli(['down']);
  await h.cleanup();
});

const s = clusterSubjects('junk');
const nested = new Uint8Array(500_000).fill(0x91);
const garbage: Array<[string, Uint8Array]> = [
  ['empty', new Uint8Array()],
  ['random bytes', Uint8Array.from({ length: 512 }, (_, i) => (i * 7919 + 13) % 256)],
  ['JSON text', new TextEncoder().encode('{"name":"h1"}')],
  ['reserved byte', new Uint8Array([0xc1])],
  ['truncated array', new Uint8Array([0x93, 0x01])],
  ['a string', encode('hello')],
  ['a wrong shape', encode({ name: 42, cores: 'many', sentAt: -1 })],
  ['deep nesting', nested],
  ['a huge string', encode('x'.repeat(900_000))],
];
const requestSubjects = [s.hostStatus('h1'), s.hostPing('h2'), s.register, s.list];
const fireAndForget = [s.hostHeartbeat('h1'), s.hostHeartbeat('nobody'), s.hostEvents];

test.serial('every request subject answers garbage with an error reply naming the problem', async (t) => {
  for (const subject of requestSubjects) {
    for (const [what, bytes] of garbage) {
      if (subject === s.list || subject === s.hostStatus('h1')) {
        // these take an empty object; anything but an object is wrong, an object with extra fields is fine
        if (what === 'a wrong shape') continue;
      }
      const reply = validate.reply(decode((await nc.request(subject, bytes, { timeout: 5000 })).data));
      t.false(reply.ok, `${subject} accepted ${what}`);
      if (!reply.ok) t.is(reply.error.code, 'EPROTO', `${subject} ${what}: ${reply.error.message}`);
    }
  }
});

test.serial('fire-and-forget garbage is dropped and counted; nothing crashed', async (t) => {
  const client = await ClusterClient.connect({ nats: h.runFile('junk')!.natsUrl!, cluster: 'junk' });
  t.teardown(() => client.close());
  const before = await client.registry();
  for (const subject of fireAndForget) for (const [, bytes] of garbage) nc.publish(subject, bytes);
  await nc.flush();
  let after = await client.registry();
  for (let i = 0; i < 50 && after.dropped < before.dropped + 2 * garbage.length; i++) after = await client.registry();
  // the heartbeat and event subjects reach the registry; each bad message counts once
  t.is(after.dropped - before.dropped, 3 * garbage.length);
  t.deepEqual(after.hosts.map((x) => [x.name, x.state]), [['h1', 'up'], ['h2', 'up']]);
  const run = h.runFile('junk')!;
  for (const pid of [run.launcherPid, run.nats!.pid, ...run.hosts.map((x) => x.pid)]) t.true(isAlive(pid));
  const status = await client.hostStatus('h1');
  t.true(status.dropped > 0, 'the host counted the bad requests it refused');
  t.true((await client.ping('h2')) > 0);
});
