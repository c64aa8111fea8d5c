/**
 * up / status / down / clean through the CLI, as a user runs them, on one detached cluster of real
 * processes shared by the whole file (tests run in order).
 */
import test from 'ava';
import { Harness, hostConfig, isAlive, pollUntil } from './harness.js';

const h = new Harness();
test.after.always(() => h.cleanup());

const config = h.writeConfig('lab', hostConfig('lab', ['h1', 'h2', 'h3']));
type StatusJson = { cluster: string; bus: string; hosts: Array<{ name: string; state: string; pid: number; cores: number; memory: number; heartbeatAgeMs: number; managed: boolean }> };

test.serial('down with nothing running says so and exits 0', async (t) => {
  const result = await h.cli(['down']);
  t.is(result.code, 0);
  t.regex(result.stdout, /no cluster is running.*nothing to stop/);
});

test.serial('status with nothing running: one line, non-zero exit', async (t) => {
  const result = await h.cli(['status']);
  t.is(result.code, 1);
  t.regex(result.stderr, /^slicelab: no cluster is running/);
  t.is(result.stderr.trim().split('\n').length, 1);
});

test.serial('up --detach starts the bus and one process per host, then returns', async (t) => {
  const up = await h.cliJson<{ cluster: string; bus: string; hosts: Array<{ name: string; state: string }> }>(['up', '--config', config, '--detach']);
  t.is(up.code, 0, up.stderr);
  t.is(up.cluster, 'lab');
  t.regex(up.bus, /^nats:\/\/127\.0\.0\.1:\d+$/);
  t.deepEqual(up.hosts.map((x) => [x.name, x.state]), [['h1', 'up'], ['h2', 'up'], ['h3', 'up']]);
  const run = h.runFile('lab')!;
  t.is(run.state, 'running');
  t.true(isAlive(run.launcherPid));
  t.true(isAlive(run.nats!.pid));
  for (const host of run.hosts) t.true(isAlive(host.pid), `host ${host.name} runs`);
  t.not(new Set(run.hosts.map((x) => x.pid)).size, 1, 'each host is its own OS process');
});

test.serial('status shows every host with its pid, resources, state and heartbeat age', async (t) => {
  const status = await h.cliJson<StatusJson>(['status']);
  t.is(status.code, 0);
  t.is(status.cluster, 'lab');
  t.is(status.bus, h.runFile('lab')!.natsUrl);
  t.is(status.hosts.length, 3);
  for (const host of status.hosts) {
    t.is(host.state, 'up');
    t.is(host.cores, 2);
    t.is(host.memory, 1024 ** 3);
    t.true(host.managed);
    t.true(host.heartbeatAgeMs < 2500, `${host.name} heartbeat ${host.heartbeatAgeMs} ms ago`);
  }
  const table = await h.cli(['status']);
  t.regex(table.stdout, /h1.*2.*1GiB.*1gbit.*up/);
  t.regex(table.stdout, /3\/3 hosts up; bus nats:\/\//);
});

test.serial('a second up of a running cluster says so and leaves it alone', async (t) => {
  const before = h.runFile('lab')!;
  const again = await h.cli(['up', '--config', config, '--detach']);
  t.is(again.code, 0);
  t.regex(again.stdout, /cluster "lab" is already running/);
  t.deepEqual(h.runFile('lab'), before);
});

test.serial('a host killed with SIGKILL shows as lost', async (t) => {
  const victim = h.runFile('lab')!.hosts.find((x) => x.name === 'h2')!;
  process.kill(victim.pid, 'SIGKILL');
  let status: StatusJson | undefined;
  const lost = await (async () => {
    for (let i = 0; i < 50; i++) {
      status = await h.cliJson<StatusJson>(['status']);
      if (status.hosts.find((x) => x.name === 'h2')?.state === 'lost') return true;
    }
    return false;
  })();
  t.true(lost, JSON.stringify(status));
  t.deepEqual(status!.hosts.map((x) => x.state), ['up', 'lost', 'up']);
});

test.serial('down stops every process of the cluster and removes the run file', async (t) => {
  const run = h.runFile('lab')!;
  const down = await h.cli(['down']);
  t.is(down.code, 0, down.stderr);
  t.regex(down.stdout, /cluster lab stopped/);
  const pids = [run.launcherPid, run.nats!.pid, ...run.hosts.map((x) => x.pid)];
  t.true(await pollUntil(() => pids.every((pid) => !isAlive(pid)), 5000), 'no process of the cluster is left');
  t.is(h.runFile('lab'), undefined);
});

test.serial('a foreground up stops everything on Ctrl-C', async (t) => {
  const up = h.start(['up', '--config', config]);
  t.true(await pollUntil(() => /is up/.test(up.output()), 30_000), up.output());
  const run = h.runFile('lab')!;
  t.is(run.launcherPid, up.child.pid);
  up.child.kill('SIGINT');
  t.is(await up.exited, 0);
  t.regex(up.output(), /cluster lab stopped/);
  const pids = [run.nats!.pid, ...run.hosts.map((x) => x.pid)];
  t.true(pids.every((pid) => !isAlive(pid)));
  t.is(h.runFile('lab'), undefined);
});

test.serial('hosts and the embedded bus stop with their launcher, even one killed with SIGKILL; status says so; clean removes the rest', async (t) => {
  t.is((await h.cli(['up', '--config', config, '--detach'])).code, 0);
  const run = h.runFile('lab')!;
  process.kill(run.launcherPid, 'SIGKILL');
  // the server dies at once (it runs under setpriv --pdeathsig); a host gives its goodbye a few seconds
  t.true(await pollUntil(() => !isAlive(run.nats!.pid), 5000), 'no orphaned nats-server');
  t.true(await pollUntil(() => run.hosts.every((x) => !isAlive(x.pid)), 10_000), 'no orphaned hosts');
  const status = await h.cli(['status']);
  t.is(status.code, 1);
  t.regex(status.stderr, /^slicelab: cluster "lab" is dead: its launcher \(pid \d+\) is gone and nothing of it runs; run: slicelab clean\n$/);
  const clean = await h.cliJson<{ cleaned: Array<{ cluster: string; killed: number[] }> }>(['clean']);
  t.is(clean.code, 0);
  t.deepEqual(clean.cleaned.map((c) => [c.cluster, c.killed]), [['lab', []]]);
  t.is(h.runFile('lab'), undefined);
  t.regex((await h.cli(['clean'])).stdout, /nothing to clean/);
  const again = await h.cli(['up', '--config', config, '--detach']);
  t.is(again.code, 0, `the same cluster comes up again, its dead hosts' names free: ${again.stderr}`);
  t.is((await h.cli(['down'])).code, 0);
});
