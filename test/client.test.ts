/** The client library as a user scripts with it: connect by run file, list hosts, status, ping, events. */
import test from 'ava';
import { SlicelabError, type HostEvent } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { Harness, hostConfig, pollUntil } from './harness.js';

const h = new Harness();
test.before(async () => {
  process.env['SLICELAB_HOME'] = h.home;
  await h.up(h.writeConfig('api', hostConfig('api', ['h1', 'h2'])));
});
test.after.always(async () => {
  await h.cli(['down']);
  await h.cleanup();
});

test.serial('connect by run file; hosts, status and ping', async (t) => {
  const cluster = await ClusterClient.connect();
  t.teardown(() => cluster.close());
  t.is(cluster.cluster, 'api');
  t.deepEqual((await cluster.hosts()).map((x) => x.name), ['h1', 'h2']);
  const status = await cluster.hostStatus('h2');
  t.is(status.name, 'h2');
  t.is(status.pid, h.runFile('api')!.hosts[1]!.pid);
  t.true(status.uptime > 0);
  const rtt = await cluster.ping('h1');
  t.true(rtt > 0 && rtt < 2000, `${rtt} ms`);
  const missing = await t.throwsAsync(cluster.hostStatus('h7'), { instanceOf: SlicelabError });
  t.is(missing!.code, 'ENOENT');
});

test.serial('host events: a host joining, leaving and being lost', async (t) => {
  const cluster = await ClusterClient.connect({ cluster: 'api' });
  t.teardown(() => cluster.close());
  const events: HostEvent[] = [];
  const stop = cluster.onHostEvent((event) => events.push(event));
  const beats: string[] = [];
  const stopBeats = cluster.onHeartbeat((beat) => beats.push(beat.name));
  const lone = h.start(['host', '--nats', cluster.url, '--creds', await h.hostCreds('api', 'h3')]);
  const seen = () => JSON.stringify(events.map((e) => `${e.kind} ${e.host}`));
  t.true(await pollUntil(() => events.some((e) => e.kind === 'joined' && e.host === 'h3'), 20_000), `events: ${seen()}; host output: ${lone.output()}`);
  lone.child.kill('SIGTERM');
  t.true(await pollUntil(() => events.some((e) => e.kind === 'left' && e.host === 'h3'), 15_000), `events: ${seen()}; host output: ${lone.output()}`);
  process.kill(h.runFile('api')!.hosts[0]!.pid, 'SIGKILL');
  t.true(await pollUntil(() => events.some((e) => e.kind === 'lost' && e.host === 'h1'), 15_000), `events: ${seen()}`);
  // heartbeats come once a second; the events above can all arrive within one
  t.true(await pollUntil(() => beats.includes('h2'), 5_000), `beats from: ${beats.join(', ')}`);
  stop();
  stopBeats();
});
