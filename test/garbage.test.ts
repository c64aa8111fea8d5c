/**
 * Garbage sent to every subject of a running cluster that a credential may send on: requests get an error
 * reply naming the problem, fire-and-forget messages are dropped and counted, and no process crashes.
 * An admin sends to the hosts and the registry; a second connection with h1's own credential (a host
 * gone wrong) sends what only h1 may say.
 */
import { join } from 'node:path';
import test from 'ava';
import type { NatsConnection } from '@nats-io/transport-node';
import { clusterSubjects, connectBus, decode, encode, validate } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { Harness, hostConfig, isAlive } from './harness.js';

const h = new Harness();
let nc: NatsConnection;
let asH1: NatsConnection;
test.before(async () => {
  await h.up(h.writeConfig('junk', hostConfig('junk', ['h1', 'h2'])));
  const run = h.runFile('junk')!;
  nc = await connectBus(run.access!, { name: 'garbage admin' });
  const creds = join(h.home, 'h1.creds');
  const exported = await h.cli(['creds', 'export', '--role', 'host', '--host', 'h1', '--out', creds]);
  if (exported.code !== 0) throw new Error(exported.stderr);
  asH1 = await connectBus({ servers: run.access!.servers, creds }, { name: 'garbage h1' });
});
test.after.always(async () => {
  await nc?.close();
  await asH1?.close();
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
const requestSubjects: Array<[string, () => NatsConnection]> = [[s.hostStatus('h1'), () => nc], [s.hostPing('h2'), () => nc], [s.list, () => nc], [s.hostRegister('h1'), () => asH1]];
const fireAndForget = [s.hostHeartbeat('h1'), s.hostLeft('h1')];

test.serial('every request subject answers garbage with an error reply naming the problem', async (t) => {
  for (const [subject, sender] of requestSubjects) {
    for (const [what, bytes] of garbage) {
      if (subject === s.list || subject === s.hostStatus('h1')) {
        // these take an empty object; anything but an object is wrong, an object with extra fields is fine
        if (what === 'a wrong shape') continue;
      }
      const reply = validate.reply(decode((await sender().request(subject, bytes, { timeout: 5000 })).data));
      t.false(reply.ok, `${subject} accepted ${what}`);
      if (!reply.ok) t.is(reply.error.code, 'EPROTO', `${subject} ${what}: ${reply.error.message}`);
    }
  }
});

test.serial('fire-and-forget garbage is dropped and counted; nothing crashed', async (t) => {
  const { servers, ...access } = h.runFile('junk')!.access!;
  const client = await ClusterClient.connect({ nats: servers.join(','), access });
  t.teardown(() => client.close());
  const before = await client.registry();
  for (const subject of fireAndForget) for (const [, bytes] of garbage) asH1.publish(subject, bytes);
  await asH1.flush();
  let after = await client.registry();
  for (let i = 0; i < 50 && after.dropped < before.dropped + 2 * garbage.length; i++) after = await client.registry();
  // the heartbeat and goodbye subjects reach the registry; each bad message counts once
  t.is(after.dropped - before.dropped, 2 * garbage.length);
  t.deepEqual(after.hosts.map((x) => [x.name, x.state]), [['h1', 'up'], ['h2', 'up']]);
  const run = h.runFile('junk')!;
  for (const pid of [run.launcherPid, run.nats!.pid, ...run.hosts.map((x) => x.pid)]) t.true(isAlive(pid));
  const status = await client.hostStatus('h1');
  t.true(status.dropped > 0, 'the host counted the bad requests it refused');
  t.true((await client.ping('h2')) > 0);
});
