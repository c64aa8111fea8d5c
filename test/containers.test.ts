/**
 * Containers, cgroups and schedulers through the CLI, as a user drives them, on one detached cluster of
 * real host processes (h1, h2) shared by the whole file (tests run in order and build on each other).
 */
import test, { type ExecutionContext } from 'ava';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerInfo, ProcessInfo } from '@slicelab/protocol';
import { Harness, hostConfig, keyed, oneLineError, poll } from './harness.js';

const h = new Harness();
const config = h.writeConfig('ctr', hostConfig('ctr', ['h1', 'h2']));
const MiB = 1024 * 1024;

type ErrorJson = { error: { code: string; message: string } };
type CgroupJson = { container: string; files: Record<string, string> };
type TopJson = { containers: Array<{ name: string; host: string; cpuPercent: number; memoryCurrent: number; memoryMax: number | null; pids: number; pidsMax: number | null }> };
type StatusJson = { hosts: Array<{ name: string; state: string; heartbeatAgeMs: number }> };

test.before(async () => {
  await h.up(config);
});

test.after.always(async () => {
  await h.cli(['down']);
  await h.cleanup();
});

// ---------------------------------------------------------------------------------------------------------
// helpers: all of them go through the CLI

async function ps(host?: string): Promise<ContainerInfo[]> {
  const result = await h.cliJson<{ containers: ContainerInfo[] }>(['container', 'ps', ...(host ? ['--host', host] : [])]);
  if (result.code !== 0) throw new Error(`container ps failed (exit ${result.code}): ${result.stderr}`);
  return result.containers;
}

async function container(name: string): Promise<ContainerInfo | undefined> {
  return (await ps()).find((c) => c.name === name);
}

async function cgroup(name: string): Promise<Record<string, string>> {
  const result = await h.cliJson<CgroupJson>(['cgroup', 'get', name]);
  if (result.code !== 0) throw new Error(`cgroup get ${name} failed (exit ${result.code}): ${result.stderr}`);
  return result.files;
}

/** Table rows of a text output, as arrays of trimmed cells. */
function tableRows(text: string): string[][] {
  return text
    .split('\n')
    .filter((line) => line.includes('│'))
    .map((line) => line.split('│').slice(1, -1).map((cell) => cell.trim()));
}

const live = (c: ContainerInfo | undefined) => (c?.processes ?? []).filter((p) => p.state !== 'exited');

/** web's processes as the first tests see them: later tests check they were left alone. */
const web = { initGpid: 0, sleeperGpid: 0 };

// ---------------------------------------------------------------------------------------------------------

test.serial('container run starts the program as pid 1 in its own pid and user namespaces', async (t) => {
  const run = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h1', '--name', 'web', '--program', 'cpu-burn', '--cpu-weight', '200']);
  t.is(run.code, 0, run.stderr);
  t.is(run.name, 'web');
  t.is(run.host, 'h1');

  const found = (await ps()).filter((c) => c.name === 'web');
  t.is(found.length, 1);
  const c = found[0]!;
  t.is(c.host, 'h1');
  t.is(c.state, 'running');
  t.is(c.program, 'cpu-burn');
  t.is(c.cpuWeight, 200);
  t.is(c.pids, 1);
  t.is(c.processes.length, 1);
  const init = c.processes[0]!;
  t.is(init.pid, 1, 'pid 1 inside');
  t.is(init.ppid, 0);
  t.true(init.gpid > 1, `a host pid of its own (gpid ${init.gpid})`);
  t.not(init.gpid, init.pid);
  t.is(init.uid, 0, 'root inside');
  t.not(init.hostUid, init.uid, 'but not root outside');
  t.true(init.hostUid > 0);
  t.regex(c.uidMap, new RegExp(`^0 ${init.hostUid} \\d+`));
  web.initGpid = init.gpid;
});

test.serial('container exec starts pid 2, a child of pid 1; ps -a shows both', async (t) => {
  const exec = await h.cliJson<ProcessInfo>(['container', 'exec', 'web', '--program', 'sleeper']);
  t.is(exec.code, 0, exec.stderr);
  t.is(exec.pid, 2);
  t.is(exec.ppid, 1);
  t.is(exec.program, 'sleeper');
  t.not(exec.gpid, web.initGpid);
  t.not(exec.gpid, exec.pid);
  web.sleeperGpid = exec.gpid;

  const text = await h.cli(['container', 'ps', '-a']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^web on h1:$/m);
  const rows = tableRows(text.stdout);
  t.truthy(rows.find((r) => r[0] === 'web' && r[1] === 'h1' && /^10\.0\.\d+\.\d+$/.test(r[2]!) && r[3] === 'cpu-burn' && r[4] === 'running' && r[5] === '2'), text.stdout);
  // pid, host pid, ppid, uid, host uid, program, state, cpu
  t.truthy(rows.find((r) => r[0] === '1' && r[1] === String(web.initGpid) && r[2] === '0' && r[3] === '0' && r[4] !== '0' && r[5] === 'cpu-burn'), text.stdout);
  t.truthy(rows.find((r) => r[0] === '2' && r[1] === String(web.sleeperGpid) && r[2] === '1' && r[5] === 'sleeper'), text.stdout);
});

test.serial('container top --once reports CPU %, memory and pids', async (t) => {
  const inRange = (r: TopJson) => {
    const w = r.containers.find((c) => c.name === 'web');
    return w !== undefined && w.cpuPercent >= 50 && w.cpuPercent <= 250;
  };
  // the host samples CPU % once a second: the first sample of a new container reads 0
  const top = await poll(() => h.cliJson<TopJson>(['container', 'top', '--once']), inRange, 8, 300);
  t.is(top.code, 0, top.stderr);
  const w = top.containers.find((c) => c.name === 'web');
  t.truthy(w, JSON.stringify(top));
  t.is(w!.host, 'h1');
  t.true(w!.cpuPercent >= 50 && w!.cpuPercent <= 250, `cpu-burn (one process) and a sleeper use about one core: ${w!.cpuPercent}%`);
  t.is(typeof w!.memoryCurrent, 'number');
  t.true(w!.memoryCurrent >= 0);
  t.is(w!.memoryMax, null);
  t.is(w!.pids, 2);
  t.is(w!.pidsMax, null);
});

test.serial('cgroup get prints every cgroup file as the kernel does', async (t) => {
  const [get, stat] = await Promise.all([h.cliJson<CgroupJson>(['cgroup', 'get', 'web']), h.cli(['cgroup', 'get', 'web', 'cpu.stat'])]);
  t.is(get.code, 0, get.stderr);
  t.is(get.container, 'web');
  const files = get.files;
  const expected = [
    'cgroup.procs', 'cgroup.events', 'cgroup.freeze', 'cpu.weight', 'cpu.weight.nice', 'cpu.max', 'cpu.max.burst', 'cpu.stat',
    'cpuset.cpus', 'cpuset.cpus.effective', 'memory.current', 'memory.max', 'memory.high', 'memory.low', 'memory.peak', 'memory.events',
    'pids.max', 'pids.current', 'pids.peak', 'pids.events', 'io.weight', 'io.max', 'io.stat', 'cpu.pressure', 'memory.pressure', 'io.pressure',
  ];
  for (const file of expected) t.true(file in files, `${file} is there`);
  t.false('cgroup.kill' in files, 'write-only files are not read');
  t.is(files['cpu.weight'], '200');
  t.is(files['cpu.max'], 'max 100000');
  t.is(files['memory.max'], 'max');
  t.is(files['pids.max'], 'max');
  t.is(files['io.weight'], 'default 100');
  t.regex(files['cgroup.events'] ?? '', /^populated 1$/m);
  t.is(files['pids.current'], '2');
  t.deepEqual((files['cgroup.procs'] ?? '').split('\n').map(Number).sort((a, b) => a - b), [web.initGpid, web.sleeperGpid].sort((a, b) => a - b));
  t.deepEqual(Object.keys(keyed(files['memory.events'])), ['low', 'high', 'max', 'oom', 'oom_kill']);

  t.is(stat.code, 0, stat.stderr);
  const cpu = keyed(stat.stdout);
  t.true(cpu['usage_usec']! > 0, stat.stdout);
  t.true(cpu['usage_usec']! >= cpu['user_usec']!, stat.stdout);
});

test.serial('cgroup set writes a file while the container runs; bad writes get the kernel errno', async (t) => {
  const [set, cap] = await Promise.all([
    h.cli(['cgroup', 'set', 'web', 'cpu.weight=300']),
    // a two-field write: web keeps running, held to 10% of a core (which leaves the CPU to the rest of the file)
    h.cli(['cgroup', 'set', 'web', 'cpu.max=10000 100000']),
  ]);
  t.is(cap.code, 0, cap.stderr);
  t.regex(cap.stdout, /web cpu\.max: 10000 100000/);
  t.is(set.code, 0, set.stderr);
  t.regex(set.stdout, /web cpu\.weight: 300/);

  // the read back goes with the refused writes: none of them may change cpu.weight
  const [get, zero, zeroJson, readOnly, bogus, cpuMax] = await Promise.all([
    h.cli(['cgroup', 'get', 'web', 'cpu.weight']),
    h.cli(['cgroup', 'set', 'web', 'cpu.weight=0']),
    h.cliJson<ErrorJson>(['cgroup', 'set', 'web', 'cpu.weight=0']),
    h.cliJson<ErrorJson>(['cgroup', 'set', 'web', 'memory.current=5']),
    h.cliJson<ErrorJson>(['cgroup', 'set', 'web', 'bogus.file=1']),
    h.cliJson<ErrorJson>(['cgroup', 'set', 'web', 'cpu.max=500 100000']),
  ]);
  t.is(get.code, 0, get.stderr);
  t.is(get.stdout.trim(), '300');
  t.is(zero.code, 1);
  oneLineError(t, zero, /^slicelab: cpu\.weight: 0 is out of range 1\.\.10000 \(ERANGE\)$/, 'cpu.weight=0');
  t.is(zeroJson.code, 1);
  t.is(zeroJson.error.code, 'ERANGE');
  t.regex(zeroJson.error.message, /out of range/);
  t.not(readOnly.code, 0);
  t.is(readOnly.error.code, 'EACCES');
  t.regex(readOnly.error.message, /memory\.current is read-only/);
  t.not(bogus.code, 0);
  t.is(bogus.error.code, 'ENOENT');
  t.regex(bogus.error.message, /bogus\.file/);
  t.not(cpuMax.code, 0);
  t.is(cpuMax.error.code, 'EINVAL');
  t.regex(cpuMax.error.message, /cpu\.max/);
  // that the refused writes changed nothing is checked by the next test's ps (weight still 300)
});

test.serial('memory.max: an allocation above it is a reservation (as mmap); touching past it OOM-kills inside the container only', async (t) => {
  const [hog, hog2] = await Promise.all([
    h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h2', '--name', 'hog', '--program', 'mem-writer', '--arg', 'wss=24MiB', '--memory', '16MiB']),
    h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h2', '--name', 'hog2', '--program', 'mem-writer', '--arg', 'wss=12MiB', '--memory', '16MiB']),
  ]);
  t.is(hog.code, 0, hog.stderr);
  t.is(hog.memoryMax, 16 * MiB);
  t.is(hog2.code, 0, hog2.stderr);
  // by the time this exec arrives, hog2's pid 1 has written its 12 MiB: 12 + 12 MiB do not fit in 16
  const exec = await h.cliJson<ProcessInfo>(['container', 'exec', 'hog2', '--program', 'mem-writer', '--arg', 'wss=12MiB']);
  t.is(exec.code, 0, exec.stderr);
  t.is(exec.pid, 2);

  const files = await poll(() => cgroup('hog2'), (f) => {
    const events = keyed(f['memory.events']);
    return events['oom']! >= 1 && events['oom_kill']! >= 1;
  }, 30, 100);
  const events = keyed(files['memory.events']);
  t.true(events['oom']! >= 1, files['memory.events']);
  t.true(events['oom_kill']! >= 1, files['memory.events']);
  t.true(events['oom_kill']! <= 2, `no process is OOM-killed twice: ${files['memory.events']}`);
  t.true(Number(files['memory.current']) <= 16 * MiB, `memory.current ${files['memory.current']}`);
  t.true(Number(files['memory.peak']) <= 16 * MiB, `memory.peak ${files['memory.peak']}`);

  const all = await poll(ps, (list) => list.find((c) => c.name === 'hog')?.state === 'exited', 30, 100);
  const hogEnd = all.find((c) => c.name === 'hog');
  t.is(hogEnd?.state, 'exited');
  t.is(hogEnd?.exitCode, 137, 'its 24 MiB reservation succeeds, as in Docker; writing past 16 MiB OOM-kills it (SIGKILL)');
  t.is(hogEnd?.memoryCurrent, 0);
  const after = all.find((c) => c.name === 'hog2');
  t.true(live(after).filter((p) => p.program === 'mem-writer').length <= 1, JSON.stringify(after?.processes));
  t.true(after!.memoryCurrent <= 16 * MiB);
  const w = all.find((c) => c.name === 'web');
  t.is(w?.host, 'h1');
  t.is(w?.state, 'running', 'the neighbour on h1 is untouched');
  t.deepEqual(live(w).map((p) => p.gpid), [web.initGpid, web.sleeperGpid]);
  t.is(w?.cpuWeight, 300, 'the refused cgroup writes of the test before changed nothing');
  t.true(w!.cpuPercent <= 25, `cpu.max 10000 100000 holds web to about 10% (${w!.cpuPercent}%)`);
});

test.serial('pids.max holds a fork bomb, and the cluster still answers', async (t) => {
  const began = performance.now();
  // held to one emulated core: its host has two, and so has the real machine the CLI itself runs on
  const run = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h2', '--name', 'bomb', '--program', 'fork-bomb', '--pids-max', '20', '--cpus', '0']);
  let removed = false;
  // the bomb keeps a host core busy: it goes even when an assertion fails, or the rest of the file crawls
  t.teardown(async () => {
    if (!removed) await h.cli(['container', 'rm', 'bomb', '--force']);
  });
  t.is(run.code, 0, run.stderr);
  t.is(run.pidsMax, 20);
  const timedStatus = async () => {
    const asked = performance.now();
    const result = await h.cliJson<StatusJson>(['status']);
    return { result, ms: performance.now() - asked };
  };
  // the bomb has run for a second by the time these reach the cluster (run itself takes about that long)
  const [files, { result: status, ms: roundTrip }] = await Promise.all([
    poll(() => cgroup('bomb'), (f) => performance.now() - began >= 1000 && keyed(f['pids.events'])['max']! > 0, 20, 150),
    timedStatus(),
  ]);
  const rm = await h.cli(['container', 'rm', 'bomb', '--force']);
  removed = rm.code === 0;
  t.is(files['pids.max'], '20');
  t.true(Number(files['pids.current']) <= 20, `pids.current ${files['pids.current']}`);
  t.true(Number(files['pids.current']) > 1, 'the bomb did fork');
  t.true(Number(files['pids.peak']) <= 20, `pids.peak ${files['pids.peak']}`);
  t.true(keyed(files['pids.events'])['max']! > 0, files['pids.events']);

  t.log(`slicelab status next to a fork bomb: ${roundTrip.toFixed(0)} ms (CLI start included)`);
  t.is(status.code, 0, status.stderr);
  const h2 = status.hosts.find((x) => x.name === 'h2');
  t.is(h2?.state, 'up');
  t.true(h2!.heartbeatAgeMs < 2500, `h2 still heartbeats (${h2!.heartbeatAgeMs} ms ago)`);
  // Most of the round trip is starting the CLI (0.7 s on an idle machine, several seconds on a busy
  // one); a starved registry would fail the 2 s request timeout instead. The bound only catches a hang.
  t.true(roundTrip < 15_000, `status took ${roundTrip} ms`);
  t.is(rm.code, 0, rm.stderr);
});

test.serial('a crashing program dies alone with SIGSEGV\'s exit code', async (t) => {
  const run = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h1', '--name', 'boom', '--program', 'crasher', '--arg', 'after=20']);
  t.is(run.code, 0, run.stderr);
  const all = await poll(() => ps(), (cs) => cs.find((c) => c.name === 'boom')?.state === 'exited', 20, 100);
  const boom = all.find((c) => c.name === 'boom');
  t.is(boom?.state, 'exited');
  t.is(boom?.exitCode, 139);
  t.deepEqual(boom?.processes, []);
  const w = all.find((c) => c.name === 'web');
  t.is(w?.state, 'running');
  t.deepEqual(live(w).map((p) => p.gpid), [web.initGpid, web.sleeperGpid]);
});

test.serial('container logs shows the crash; fs works on each container\'s own rootfs', async (t) => {
  type LogsJson = { name: string; lines: string[] };
  const boom = await h.cliJson<LogsJson>(['container', 'logs', 'boom']);
  t.is(boom.code, 0, boom.stderr);
  t.true(boom.lines.some((line) => /crasher crashed/.test(line)), boom.lines.join('\n'));
  const peer = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h2', '--name', 'peer', '--program', 'sleeper']);
  t.is(peer.code, 0, peer.stderr);
  const fs = (name: string, ...args: string[]) => h.cli(['container', 'exec', name, '--program', 'fs', ...args.flatMap((a) => ['--arg', a])]);
  t.is((await fs('web', 'op=write', 'path=/tmp/note', 'data=hello from web')).code, 0);
  t.is((await fs('web', 'op=read', 'path=/tmp/note')).code, 0);
  t.is((await fs('peer', 'op=read', 'path=/tmp/note')).code, 0);
  const logs = (name: string) => h.cliJson<LogsJson>(['container', 'logs', name]);
  const web = await poll(() => logs('web'), (l) => l.lines.some((line) => line.endsWith('] hello from web')));
  t.true(web.lines.some((line) => line.endsWith('] hello from web')), web.lines.join('\n'));
  const other = await poll(() => logs('peer'), (l) => l.lines.length > 0);
  t.deepEqual(other.lines.map((line) => line.replace(/^\[\d+\] /, '')), ['fs: /tmp/note: ENOENT']);
  const tail = await h.cli(['container', 'logs', 'web', '--tail', '1']);
  t.is(tail.stdout, `${web.lines.at(-1)}\n`);
  const bad = await h.cli(['container', 'exec', 'web', '--program', 'fs', '--arg', 'path=tmp/note']);
  t.is(bad.code, 1);
  t.is(bad.stderr, 'slicelab: fs: path: an absolute path, got "tmp/note"\n');
  t.is((await h.cli(['container', 'rm', '--force', 'peer'])).code, 0);
});

test.serial('when pid 1 exits, the namespace ends: its orphan child is killed too', async (t) => {
  const run = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h1', '--name', 'short', '--program', 'fork-exit', '--arg', 'code=3']);
  t.is(run.code, 0, run.stderr);
  const short = await poll(() => container('short'), (c) => c?.state === 'exited', 20, 100);
  t.is(short?.state, 'exited');
  t.is(short?.exitCode, 3, 'the container exits with init\'s code');
  t.is(short?.pids, 0);
  t.deepEqual(short?.processes, []);
});

test.serial('host set-scheduler switches the policy while containers run; an unknown one is refused', async (t) => {
  type SchedulerJson = { hosts: Array<{ name: string; scheduler: { policy: string; seed: number } }> };
  const lottery = await h.cliJson<{ host: string; policy: string; scheduler: { policy: string; seed: number } }>(['host', 'set-scheduler', 'h1', 'lottery', '--seed', '9']);
  t.is(lottery.code, 0, lottery.stderr);
  t.deepEqual([lottery.host, lottery.policy, lottery.scheduler.policy, lottery.scheduler.seed], ['h1', 'lottery', 'lottery', 9]);
  // status hears of it with the next heartbeat, in --json and in the table
  const live = (x: SchedulerJson) => x.hosts.find((host) => host.name === 'h1')?.scheduler;
  const status = await poll(() => h.cliJson<SchedulerJson>(['status']), (x) => live(x)?.policy === 'lottery', 20, 200);
  t.deepEqual(live(status), { ...live(status)!, policy: 'lottery', seed: 9 });
  t.regex((await h.cli(['status'])).stdout, /│ h1 .*│ lottery \(seed 9\) │/);
  const [wfq, fifo] = await Promise.all([
    h.cliJson<{ host: string; policy: string }>(['host', 'set-scheduler', 'h1', 'wfq']),
    h.cli(['host', 'set-scheduler', 'h1', 'fifo']),
  ]);
  t.is(wfq.code, 0, wfq.stderr);
  t.is(wfq.policy, 'wfq');
  oneLineError(t, fifo, /fifo/, 'set-scheduler fifo');
});

test.serial('cgroup.freeze pauses a container as docker pause does: ps says so, and its CPU stops', async (t) => {
  t.is((await h.cli(['cgroup', 'set', 'web', 'cgroup.freeze=1'])).code, 0);
  const frozen = await poll(() => cgroup('web'), (files) => /^frozen 1$/m.test(files['cgroup.events'] ?? ''));
  t.regex(frozen['cgroup.events']!, /^frozen 1$/m);
  const before = await container('web');
  t.true(before?.frozen);
  t.is(before?.state, 'running');
  t.truthy(tableRows((await h.cli(['container', 'ps'])).stdout).find((r) => r[0] === 'web' && r[4] === 'running (frozen)'));
  await sleep(300);
  t.is((await container('web'))?.cpuUsageMs, before?.cpuUsageMs, 'no CPU while frozen');
  t.is((await h.cli(['cgroup', 'set', 'web', 'cgroup.freeze=0'])).code, 0);
  const thawed = await poll(() => container('web'), (c) => (c?.cpuUsageMs ?? 0) > (before?.cpuUsageMs ?? 0));
  t.false(thawed?.frozen);
  t.true((thawed?.cpuUsageMs ?? 0) > (before?.cpuUsageMs ?? 0));
});

test.serial('bad input to container run: one line, non-zero exit, nothing created', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['unknown program', ['--host', 'h1', '--name', 'bad1', '--program', 'nope'], /unknown program "nope"/],
    ['unknown host', ['--host', 'h9', '--name', 'bad2', '--program', 'sleeper'], /no host "h9"/],
    ['a name in use on another host', ['--host', 'h2', '--name', 'web', '--program', 'sleeper'], /"web" exists on h1/],
    ['a negative limit', ['--host', 'h1', '--name', 'bad3', '--program', 'sleeper', '--cpu-weight=-5'], /cpu\.weight.*-5/],
    ['a non-numeric limit', ['--host', 'h1', '--name', 'bad4', '--program', 'sleeper', '--pids-max', 'lots'], /pids\.max.*lots/],
    ['a bad program arg', ['--host', 'h1', '--name', 'bad5', '--program', 'lu', '--arg', 'n=3'], /lu: n: .*got "3"/],
    ['--arg without =', ['--host', 'h1', '--name', 'bad6', '--program', 'sleeper', '--arg', 'n'], /--arg "n" is not k=v/],
    ['no --name', ['--host', 'h1', '--program', 'sleeper'], /Missing required flag name/],
  ];
  const results = await Promise.all(cases.map(([, args]) => h.cli(['container', 'run', ...args])));
  cases.forEach(([what, , pattern], i) => oneLineError(t, results[i]!, pattern, what));
  const after = await ps();
  t.deepEqual(after.filter((c) => c.name.startsWith('bad')).map((c) => c.name), [], 'no container was created');
  t.deepEqual(after.filter((c) => c.name === 'web').map((c) => [c.host, c.state]), [['h1', 'running']], 'web only once, on h1, still running');
});

test.serial('proportional share: cpu.weight 300 gets three times the CPU of weight 100', async (t) => {
  const removed = await Promise.all([h.cli(['container', 'rm', 'hog']), h.cli(['container', 'rm', 'hog2'])]);
  for (const rm of removed) t.is(rm.code, 0, rm.stderr);

  const started = performance.now();
  const runs = await Promise.all([
    h.cli(['container', 'run', '--host', 'h2', '--name', 'lo', '--program', 'cpu-burn', '--arg', 'procs=2', '--cpu-weight', '100']),
    h.cli(['container', 'run', '--host', 'h2', '--name', 'hi', '--program', 'cpu-burn', '--arg', 'procs=2', '--cpu-weight', '300']),
  ]);
  for (const run of runs) t.is(run.code, 0, run.stderr);
  // both have forked their second process, and have run a while
  const first = await poll(() => ps('h2'), (cs) => performance.now() - started >= 1000 && ['lo', 'hi'].every((n) => cs.find((c) => c.name === n)?.pids === 2), 10, 100);
  // ~2 s between the two samples on the host: the second CLI call takes ~0.5 s to start
  await sleep(1500);
  const second = await ps('h2');
  const usage = (list: ContainerInfo[], name: string) => list.find((c) => c.name === name)?.cpuUsageMs ?? Number.NaN;
  const lo = usage(second, 'lo') - usage(first, 'lo');
  const hi = usage(second, 'hi') - usage(first, 'hi');
  const ratio = hi / lo;
  t.log(`cpu over ~2 s: weight 100 ${lo.toFixed(0)} ms, weight 300 ${hi.toFixed(0)} ms, ratio ${ratio.toFixed(2)}`);
  t.true(lo > 0 && hi > 0);
  t.true(Math.abs(ratio - 3) <= 0.6, `ratio ${ratio} is within 20% of 3`);
});

test.serial('rm --force removes running containers', async (t) => {
  const forced = await Promise.all(['hi', 'lo'].map((name) => h.cliJson<{ name: string; removed: boolean }>(['container', 'rm', name, '--force'])));
  for (const result of forced) {
    t.is(result.code, 0, result.stderr);
    t.true(result.removed);
  }
});

test.serial('a removed container\'s memory goes back to the OS: the host\'s rss falls again', async (t) => {
  type RssJson = { hosts: Array<{ name: string; rss: number; lastHeartbeat: number }> };
  const h2 = async () => (await h.cliJson<RssJson>(['status'])).hosts.find((x) => x.name === 'h2')!;
  const run = await h.cliJson<ContainerInfo>(['container', 'run', '--host', 'h2', '--name', 'fat', '--program', 'mem-writer', '--arg', 'wss=64MiB', '--arg', 'rate=100000']);
  t.is(run.code, 0, run.stderr);
  const filled = await poll(() => cgroup('fat'), (files) => Number(files['memory.current']) === 64 * MiB, 40, 100);
  t.is(Number(filled['memory.current']), 64 * MiB);
  // the rss a heartbeat after the set was filled
  const seen = await h2();
  const full = await poll(h2, (x) => x.lastHeartbeat > seen.lastHeartbeat, 30, 100);
  t.is((await h.cli(['container', 'rm', '--force', 'fat'])).code, 0);
  const after = await poll(h2, (x) => full.rss - x.rss >= 48 * MiB, 40, 150);
  t.true(full.rss - after.rss >= 48 * MiB, `rss ${(full.rss / MiB).toFixed(0)} MiB → ${(after.rss / MiB).toFixed(0)} MiB`);
});

test.serial('lifecycle: rm of a running container needs --force; stop, start, kill, rm', async (t) => {
  const busy = await h.cli(['container', 'rm', 'web']);
  t.is(busy.code, 1);
  oneLineError(t, busy, /"web" is running.*--force/, 'rm of a running container');

  const stop = await h.cliJson<ContainerInfo>(['container', 'stop', 'web']);
  t.is(stop.code, 0, stop.stderr);
  t.is(stop.state, 'exited', 'a refused rm left it alone; stop ends it');
  t.is(stop.exitCode, 143);
  t.deepEqual(stop.processes, []);

  const start = await h.cliJson<ContainerInfo>(['container', 'start', 'web']);
  t.is(start.code, 0, start.stderr);
  t.is(start.state, 'running');
  t.is(start.exitCode, undefined);
  t.deepEqual(start.processes.map((p) => [p.pid, p.program]), [[1, 'cpu-burn']]);

  const kill = await h.cliJson<ContainerInfo>(['container', 'kill', 'web']);
  t.is(kill.code, 0, kill.stderr);
  t.is(kill.state, 'exited');
  t.is(kill.exitCode, 137);

  const rm = await h.cliJson<{ name: string; removed: boolean }>(['container', 'rm', 'web']);
  t.is(rm.code, 0, rm.stderr);
  t.true(rm.removed);
  const names = (await ps()).map((c) => c.name);
  for (const gone of ['web', 'hi', 'lo']) t.false(names.includes(gone), `${gone} is removed`);
});
