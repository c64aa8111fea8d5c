/**
 * The multi-machine path: hosts that join a bus on their own (`slicelab host`), and two nats-servers
 * joined as one NATS cluster with hosts on different servers, all visible to one `status`. These buses
 * are someone else's: no slicelab credentials (the security tests cover the embedded, authenticated one).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { Harness, hostConfig, isAlive, pollUntil } from './harness.js';

const h = new Harness();
test.after.always(() => h.cleanup());

type StatusJson = { cluster: string; hosts: Array<{ name: string; state: string; managed: boolean; pid: number }> };

test.serial('two nats-servers as one bus: launched hosts on one, a lone host on the other, one status sees all', async (t) => {
  // without JetStream: hosts run with their names unclaimed, and the registry keeps the first instance
  const a = await h.nats({ cluster: { name: 'lab-bus', routes: [] }, jetstream: false });
  const b = await h.nats({ cluster: { name: 'lab-bus', routes: [a.routeUrl!] }, jetstream: false });
  t.truthy(a.routeUrl);
  const config = h.writeConfig('spread', hostConfig('spread', ['h1', 'h2'], { nats: { servers: [a.url] } }));
  const up = await h.cli(['up', '--config', config, '--detach']);
  t.is(up.code, 0, up.stderr);
  t.is(h.runFile('spread')!.nats, undefined, 'no embedded server when the config names one');

  const lone = h.start(['host', '--nats', b.url, '--cluster', 'spread', '--name', 'h9', '--cores', '4', '--memory', '2GiB', '--uplink', '100mbit']);
  t.true(await pollUntil(() => /joined cluster spread/.test(lone.output()), 15_000), lone.output());

  let status: StatusJson | undefined;
  for (let i = 0; i < 40 && status?.hosts.length !== 3; i++) status = await h.cliJson<StatusJson>(['status', '--nats', b.url, '--cluster', 'spread']);
  t.deepEqual(status!.hosts.map((x) => [x.name, x.state, x.managed]), [['h1', 'up', true], ['h2', 'up', true], ['h9', 'up', false]]);
  const viaRunFile = await h.cliJson<StatusJson & { hosts: Array<{ cores: number; memory: number; uplink: { bandwidth: number } }> }>(['status']);
  const h9 = viaRunFile.hosts.find((x) => x.name === 'h9')!;
  t.deepEqual([h9.cores, h9.memory, h9.uplink.bandwidth], [4, 2 * 1024 ** 3, 1e8]);
  // launched or lone, every host process runs with the host's node flags: each core collects its own garbage
  for (const host of viaRunFile.hosts) t.true(readFileSync(`/proc/${host.pid}/cmdline`, 'utf8').split('\0').includes('--single-threaded-gc'), host.name);

  lone.child.kill('SIGTERM');
  t.is(await lone.exited, 0);
  t.regex(lone.output(), /host h9 left cluster spread/);
  const after = await h.cliJson<StatusJson>(['status']);
  t.is(after.hosts.find((x) => x.name === 'h9')?.state, 'left');
  t.is((await h.cli(['down'])).code, 0);
});

test.serial('lone hosts on a bus without a launcher answer discovery', async (t) => {
  const bus = await h.nats();
  const hosts = ['x1', 'x2'].map((name) => h.start(['host', '--nats', bus.url, '--cluster', 'loose', '--name', name]));
  t.true(await pollUntil(() => hosts.every((x) => /is on the bus/.test(x.output())), 15_000));
  const status = await h.cliJson<StatusJson>(['status', '--nats', bus.url, '--cluster', 'loose']);
  t.is(status.code, 0, status.stderr);
  t.deepEqual(status.hosts.map((x) => [x.name, x.state]), [['x1', 'up'], ['x2', 'up']]);
  for (const x of hosts) x.child.kill('SIGTERM');
  t.deepEqual(await Promise.all(hosts.map((x) => x.exited)), [0, 0]);
});

test.serial('a lone host stops when its command is killed', async (t) => {
  const bus = await h.nats();
  const lone = h.start(['host', '--nats', bus.url, '--cluster', 'orphan', '--name', 'h1']);
  t.true(await pollUntil(() => /is on the bus/.test(lone.output()), 15_000), lone.output());
  const status = await h.cliJson<StatusJson>(['status', '--nats', bus.url, '--cluster', 'orphan']);
  const pid = status.hosts[0]!.pid;
  t.true(isAlive(pid));
  lone.child.kill('SIGKILL');
  t.true(await pollUntil(() => !isAlive(pid), 10_000), `host pid ${pid} outlived its command`);
});

test.serial('a host stops by itself when the bus is gone for good', async (t) => {
  const bus = await h.nats();
  const lone = h.start(['host', '--nats', bus.url, '--name', 'h1']);
  t.true(await pollUntil(() => /is on the bus/.test(lone.output()), 15_000));
  await bus.stop();
  const code = await Promise.race([lone.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000))]);
  t.is(code, 3);
  t.regex(lone.output(), /the bus is gone; host stopped/);
  t.false(isAlive(lone.child.pid!));
});

test.serial('a host that cannot reach the bus says so in one line', async (t) => {
  const result = await h.cli(['host', '--nats', 'nats://127.0.0.1:1', '--name', 'h1']);
  t.is(result.code, 1);
  t.is(result.stderr, 'slicelab: cannot reach the bus at nats://127.0.0.1:1 (connection refused)\n');
});

test.serial('a bus of its own users: the config gives user and password, and a wrong one is refused in one line', async (t) => {
  const conf = join(h.home, 'users.conf');
  writeFileSync(conf, 'authorization { user: lab, password: s3cret }\n');
  const bus = await h.nats({ config: conf });
  const wrong = h.writeConfig('owned', hostConfig('owned', ['h1'], { nats: { servers: [bus.url], user: 'lab', password: 'nope' } }));
  const refused = await h.cli(['up', '--config', wrong, '--detach']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^slicelab: the bus at nats:\/\/127\.0\.0\.1:\d+ refused user "lab" \(authorization violation\)\n$/);
  t.is(h.runFile('owned'), undefined, 'nothing half-made is left');
  const right = h.writeConfig('owned', hostConfig('owned', ['h1'], { nats: { servers: [bus.url], user: 'lab', password: 's3cret' } }));
  const up = await h.cli(['up', '--config', right, '--detach']);
  t.is(up.code, 0, up.stderr);
  const status = await h.cliJson<StatusJson>(['status']);
  t.deepEqual(status.hosts.map((x) => [x.name, x.state]), [['h1', 'up']], 'launcher, host and CLI all authenticated');
  const ps = await h.cli(['container', 'run', '--host', 'h1', '--name', 'c1', '--program', 'sleeper']);
  t.is(ps.code, 0, ps.stderr);
  t.is((await h.cli(['down'])).code, 0);
});
