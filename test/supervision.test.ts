/**
 * A cluster that survives its bus dying and says what it lost: the launcher starts a killed nats-server
 * again (same port, same JetStream store) and the cluster carries on with its containers; a host that is
 * stopped costs a cluster-wide command one timeout; a lost host's containers are listed as unknown; a
 * server that cannot come back takes the cluster down with the reason in the run file. (A launcher killed
 * with SIGKILL: cluster.test.ts.)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { ContainerInfo } from '@slicelab/protocol';
import { Harness, hostConfig, isAlive, poll, pollUntil } from './harness.js';

const h = new Harness();
test.after.always(() => h.cleanup());

type Survey = { containers: ContainerInfo[]; unknown: Array<{ name: string; host: string; reason: string }>; missing: Array<{ host: string; reason: string }> };
type Status = { hosts: Array<{ name: string; state: string; pid: number }> };

const up = (cluster: string, hosts: string[]) => h.up(h.writeConfig(cluster, hostConfig(cluster, hosts)));

test.serial('nats-server killed with SIGKILL: started again on its port and store, the cluster goes on with its containers', async (t) => {
  const before = await up('sup', ['h1', 'h2']);
  t.teardown(() => h.cli(['down', '--cluster', 'sup']).then(() => undefined));
  t.is((await h.cli(['container', 'run', '--cluster', 'sup', '--host', 'h1', '--name', 'steady', '--program', 'sleeper'])).code, 0);
  process.kill(before.nats!.pid, 'SIGKILL');
  t.true(await pollUntil(() => {
    const run = h.runFile('sup');
    return run?.state === 'running' && run.nats!.pid !== before.nats!.pid;
  }, 15_000), 'the launcher started a new nats-server');
  const after = h.runFile('sup')!;
  t.deepEqual([after.nats!.port, after.nats!.restarts, after.natsUrl], [before.nats!.port, 1, before.natsUrl]);
  const ps = await poll(() => h.cliJson<Survey>(['container', 'ps', '--cluster', 'sup']), (r) => r.code === 0 && r.containers.length === 1, 40, 250);
  t.deepEqual(ps.containers.map((c) => [c.name, c.host, c.state]), [['steady', 'h1', 'running']]);
  const status = await poll(() => h.cliJson<Status>(['status', '--cluster', 'sup']), (r) => r.hosts?.every((x) => x.state === 'up'), 40, 250);
  t.deepEqual(status.hosts.map((x) => [x.name, x.state]), [['h1', 'up'], ['h2', 'up']], 'the hosts reconnected and registered again');
  // the name claims were in the JetStream store and survived the restart
  const again = await h.cli(['container', 'run', '--cluster', 'sup', '--host', 'h2', '--name', 'steady', '--program', 'sleeper']);
  t.regex(again.stderr, /a container named "steady" exists on h1/);
});

test.serial('a stopped host costs a cluster-wide command one timeout; the others answer and it is named', async (t) => {
  const run = await up('slow', ['h1', 'h2']);
  t.teardown(() => h.cli(['down', '--cluster', 'slow']).then(() => undefined));
  for (const [host, name] of [['h1', 'quick'], ['h2', 'frozen']]) {
    t.is((await h.cli(['container', 'run', '--cluster', 'slow', '--host', host!, '--name', name!, '--program', 'sleeper'])).code, 0);
  }
  const h2 = run.hosts.find((x) => x.name === 'h2')!.pid;
  process.kill(h2, 'SIGSTOP');
  try {
    const began = performance.now();
    const ps = await h.cliJson<Survey>(['container', 'ps', '--cluster', 'slow']);
    const tookMs = performance.now() - began;
    t.is(ps.code, 0, ps.stderr);
    t.deepEqual(ps.containers.map((c) => c.name), ['quick']);
    t.deepEqual(ps.unknown.map((u) => [u.name, u.host]), [['frozen', 'h2']]);
    t.deepEqual(ps.missing.map((m) => m.host), ['h2']);
    t.regex(ps.stderr, /^slicelab: host h2 did not answer: host h2 did not answer within 2000 ms\n$/);
    // the CLI's own start and the one 2 s timeout, not one timeout per question nor a failure
    t.true(tookMs < 2000 + 4000, `ps took ${Math.round(tookMs)} ms`);
    const logs = await h.cli(['container', 'logs', '--cluster', 'slow', 'quick']);
    t.is(logs.code, 0, 'a container on a host that answers is reached as ever');
    const rm = await h.cli(['container', 'rm', '--cluster', 'slow', '-f', 'quick']);
    t.is(rm.code, 0, rm.stderr);
    const stuck = await h.cli(['container', 'logs', '--cluster', 'slow', 'frozen']);
    t.regex(stuck.stderr, /^slicelab: container "frozen" is on host h2, which (did not answer within 2000 ms|does not answer \(lost, or gone\))\n$/);
  } finally {
    process.kill(h2, 'SIGCONT');
  }
});

test.serial('a lost host\'s containers are listed as unknown (host lost), not dropped', async (t) => {
  const run = await up('lossy', ['h1', 'h2']);
  t.teardown(() => h.cli(['down', '--cluster', 'lossy']).then(() => undefined));
  t.is((await h.cli(['container', 'run', '--cluster', 'lossy', '--host', 'h2', '--name', 'doomed', '--program', 'sleeper'])).code, 0);
  process.kill(run.hosts.find((x) => x.name === 'h2')!.pid, 'SIGKILL');
  await poll(() => h.cliJson<Status>(['status', '--cluster', 'lossy']), (r) => r.hosts.find((x) => x.name === 'h2')?.state === 'lost', 40, 250);
  const ps = await h.cliJson<Survey>(['container', 'ps', '--cluster', 'lossy']);
  t.is(ps.code, 0);
  t.deepEqual(ps.unknown, [{ name: 'doomed', host: 'h2', reason: 'host lost' }]);
  const text = await h.cli(['container', 'ps', '--cluster', 'lossy']);
  t.regex(text.stdout, /doomed\s+│ h2\s+│ \?\s+│ \?\s+│ unknown \(host lost\)/);
});

test.serial('a nats-server that cannot come back: the cluster is brought down and the run file says why', async (t) => {
  const run = await up('doomed', ['h1']);
  // the trust configuration the server reads at every start, broken
  writeFileSync(join(h.home, 'doomed', 'auth', 'nats-server.conf'), 'operator: {{{ not a config\n');
  process.kill(run.nats!.pid, 'SIGKILL');
  t.true(await pollUntil(() => h.runFile('doomed')?.state === 'failed', 30_000), JSON.stringify(h.runFile('doomed')));
  t.regex(h.runFile('doomed')!.error!, /^the embedded nats-server died and could not be started again on port \d+ \(nats-server did not start; see .*\); the cluster was brought down$/);
  t.true(await pollUntil(() => [run.launcherPid, ...run.hosts.map((x) => x.pid)].every((pid) => !isAlive(pid)), 15_000), 'nothing of it runs');
  const status = await h.cli(['status', '--cluster', 'doomed']);
  t.regex(status.stderr, /^slicelab: cluster "doomed" failed: the embedded nats-server died/);
  const again = await up('doomed', ['h1']);
  t.is(again.state, 'running', '`up` starts it afresh (and writes the configuration again)');
  t.is((await h.cli(['down', '--cluster', 'doomed'])).code, 0);
});
