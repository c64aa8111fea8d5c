/**
 * The machine with real cores (worker threads running the compiled core entry: run `npm run build`
 * first). Each test starts its own 2-core machine, stays under 3 s and closes it in teardown.
 */
import test from 'ava';
import type { Machine } from '../dist/machine.js';
import { MiB, machine, sleep, until } from './machines.js';

/** The errno of what `fn` throws. */
function errno(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code ?? `not a SlicelabError: ${String(error)}`;
  }
  return 'no error';
}

/** A flat-keyed cgroup file ("key value" lines) as numbers. */
function keyed(m: Machine, name: string, file: string): Record<string, number> {
  const text = m.cgroupGet(name, file)[file]!;
  return Object.fromEntries(text.split('\n').filter(Boolean).map((line) => {
    const [key, value] = line.split(' ');
    return [key!, Number(value)];
  }));
}

const single = (m: Machine, name: string, file: string) => Number(m.cgroupGet(name, file)[file]);
const usageMs = (m: Machine, name: string) => keyed(m, name, 'cpu.stat')['usage_usec']! / 1000;
const pids = (m: Machine, name: string) => m.inspect(name).processes.map((p) => p.pid);

/** Waits until no quantum of the container is on a core (a quantum already dispatched runs to its end). */
async function offCores(m: Machine, name: string): Promise<boolean> {
  const id = m.inspect(name).id;
  const group = [...m.scheduler.groups].find((g) => g.id === id);
  return until(() => group === undefined || group.running === 0);
}

test.serial('pid namespace: init is pid 1 in every container, with distinct global pids from 100 up; exec gets pid 2', async (t) => {
  const m = machine(t);
  const a = m.run({ name: 'a', program: 'sleeper', args: { run: '1ms', sleep: '1s' } });
  const b = m.run({ name: 'b', program: 'sleeper', args: { run: '1ms', sleep: '1s' } });
  t.is(a.processes.length, 1);
  const [initA] = a.processes;
  const [initB] = b.processes;
  t.like(initA, { pid: 1, ppid: 0, program: 'sleeper' });
  t.like(initB, { pid: 1, ppid: 0 });
  t.true(initA!.gpid >= 100 && initB!.gpid >= 100);
  t.not(initA!.gpid, initB!.gpid);
  const child = m.exec('a', 'sleeper', { run: '1ms', sleep: '1s' });
  t.like(child, { pid: 2, ppid: 1 });
  t.true(child.gpid >= 100);
  t.false([initA!.gpid, initB!.gpid].includes(child.gpid));
  // the other namespace is unaffected: its next pid is 2 as well
  t.is(m.exec('b', 'sleeper', { run: '1ms', sleep: '1s' }).pid, 2);
  t.deepEqual(pids(m, 'a'), [1, 2]);
  t.is(single(m, 'a', 'pids.current'), 2);
  const procs = m.cgroupGet('a', 'cgroup.procs')['cgroup.procs']!.split('\n').map(Number).sort((x, y) => x - y);
  t.deepEqual(procs, [initA!.gpid, child.gpid].sort((x, y) => x - y));
});

test.serial('mount namespaces: each container has its own rootfs, shared by the processes in it', async (t) => {
  const m = machine(t);
  for (const name of ['a', 'b']) m.run({ name, program: 'sleeper', args: { run: '1ms', sleep: '1s' } });
  const fs = async (name: string, args: Record<string, string>) => {
    const before = m.logs(name).length;
    const { pid } = m.exec(name, 'fs', args);
    t.true(await until(() => !pids(m, name).includes(pid)), `fs ${JSON.stringify(args)} in ${name} exits`);
    return m.logs(name).slice(before).map((line) => line.replace(/^\[\d+\] /, ''));
  };
  t.deepEqual(await fs('a', { op: 'read', path: '/etc/hostname' }), ['a']);
  t.deepEqual(await fs('a', { op: 'write', path: '/tmp/secret', data: 'only in a' }), []);
  // another process of the same container sees the file; the other container does not
  t.deepEqual(await fs('a', { op: 'read', path: '/tmp/secret' }), ['only in a']);
  t.deepEqual(await fs('b', { op: 'read', path: '/tmp/secret' }), ['fs: /tmp/secret: ENOENT']);
  t.deepEqual(await fs('b', { op: 'list', path: '/tmp' }), []);
  t.deepEqual(await fs('a', { op: 'list', path: '/tmp' }), ['secret']);
  t.deepEqual(await fs('b', { op: 'read', path: '/../../etc/hostname' }), ['b']);
  t.deepEqual(await fs('a', { op: 'remove', path: '/etc' }), ['fs: /etc: ENOTEMPTY']);
});

test.serial('an orphan left by fork-exit (run via exec) is re-parented to pid 1', async (t) => {
  const m = machine(t);
  m.run({ name: 'a', program: 'sleeper', args: { run: '1ms', sleep: '1s' } });
  const parent = m.exec('a', 'fork-exit', { child: 'sleeper' });
  t.is(parent.pid, 2);
  t.true(await until(() => !pids(m, 'a').includes(2)), 'the parent exits');
  const processes = m.inspect('a').processes;
  t.deepEqual(processes.map((p) => p.pid), [1, 3]);
  t.like(processes[1], { pid: 3, ppid: 1, program: 'sleeper' });
  t.is(m.inspect('a').state, 'running');
});

test.serial('a container whose init is fork-exit ends entirely, with the exit code of init', async (t) => {
  const m = machine(t);
  m.run({ name: 'fe', program: 'fork-exit', args: { child: 'sleeper', code: 7 } });
  t.true(await until(() => m.inspect('fe').state === 'exited'));
  const info = m.inspect('fe');
  t.is(info.exitCode, 7);
  t.deepEqual(info.processes, []);
  t.is(info.pids, 0);
  t.is(single(m, 'fe', 'pids.current'), 0);
  t.is(m.cgroupGet('fe', 'cgroup.procs')['cgroup.procs'], '');
  t.is(keyed(m, 'fe', 'cgroup.events')['populated'], 0);
  // the orphaned child did not survive its namespace, and nothing runs any more once the quanta already
  // on a core have ended
  t.true(await until(() => m.runnable === 0));
  await sleep(100);
  t.deepEqual(m.inspect('fe').processes, []);
  t.is(m.runnable, 0);
});

test.serial('uid_map: container n maps root to 100000 + 65536·n; processes are uid 0 inside, that uid outside', (t) => {
  const m = machine(t);
  const infos = ['u1', 'u2', 'u3'].map((name) => m.run({ name, program: 'sleeper', args: { run: '1ms', sleep: '1s' } }));
  for (const info of infos) {
    const outside = 100_000 + 65_536 * info.id;
    t.is(info.uidMap, `0 ${outside} 65536`);
    t.like(info.processes[0], { uid: 0, hostUid: outside });
  }
  t.deepEqual(infos.map((i) => i.id), [1, 2, 3]);
  const execd = m.exec('u2', 'sleeper', { run: '1ms', sleep: '1s' });
  t.like(execd, { uid: 0, hostUid: 100_000 + 65_536 * 2 });
  // the ranges do not overlap: root of one container is no uid of another
  const ranges = infos.map((i) => 100_000 + 65_536 * i.id);
  for (let i = 1; i < ranges.length; i++) t.true(ranges[i]! >= ranges[i - 1]! + 65_536);
});

test.serial('a crasher is killed alone with exit code 139 while cpu-burn on the same machine keeps running', async (t) => {
  const m = machine(t);
  m.run({ name: 'burn', program: 'cpu-burn', args: {} });
  m.run({ name: 'crash', program: 'crasher', args: { after: 50 } });
  t.true(await until(() => m.inspect('crash').state === 'exited'));
  t.is(m.inspect('crash').exitCode, 139);
  t.deepEqual(m.inspect('crash').processes, []);
  // a crasher exec'd into the burning container dies alone: init and the container live on
  const crashing = m.exec('burn', 'crasher', { after: 50 });
  t.is(crashing.pid, 2);
  t.true(await until(() => !pids(m, 'burn').includes(2)));
  const before = usageMs(m, 'burn');
  t.true(await until(() => usageMs(m, 'burn') > before + 30), 'cpu-burn kept using the CPU');
  const info = m.inspect('burn');
  t.is(info.state, 'running');
  t.deepEqual(info.processes.map((p) => p.pid), [1]);
});

test.serial('OOM: the biggest writer over memory.max is killed, alone, inside its container only', async (t) => {
  const m = machine(t);
  // init is a quiet sleeper, as a container's shell would be; the two writers are exec'd into it. The
  // second writer is the bigger one when the limit is hit (5 MiB against 3 MiB), so the victim is the
  // faulting process, which is off its core.
  m.run({ name: 'oom', program: 'sleeper', args: { run: '1ms', sleep: '10s' }, cgroup: { 'memory.max': '8M' } });
  m.run({ name: 'neighbour', program: 'mem-writer', args: { wss: '6MiB' } });
  const first = m.exec('oom', 'mem-writer', { wss: '3MiB' });
  const written = (name: string, pid: number) => m.inspect(name).processes.find((p) => p.pid === pid)?.metrics['pagesWritten'] ?? -1;
  t.true(await until(() => written('oom', first.pid) >= 768), 'the first writer fills its 3 MiB');
  t.is(single(m, 'oom', 'memory.current'), 3 * MiB);
  const second = m.exec('oom', 'mem-writer', { wss: '6MiB' });
  let highest = 0;
  const killed = await until(() => {
    highest = Math.max(highest, single(m, 'oom', 'memory.current'));
    return keyed(m, 'oom', 'memory.events')['oom_kill']! >= 1;
  });
  t.true(killed, 'an OOM kill');
  const pagesBefore = written('oom', first.pid);
  // the survivor goes on writing, and nothing more is killed
  t.true(await until(() => written('oom', first.pid) > pagesBefore + 768));
  t.deepEqual(keyed(m, 'oom', 'memory.events'), { low: 0, high: 0, max: 1, oom: 1, oom_kill: 1 });
  const alive = pids(m, 'oom');
  t.deepEqual(alive, [1, first.pid], 'exactly one writer was killed: the bigger one');
  t.false(alive.includes(second.pid));
  t.is(m.inspect('oom').state, 'running');
  t.true(highest <= 8 * MiB);
  t.is(single(m, 'oom', 'memory.current'), 3 * MiB, "the victim's pages are uncharged");
  t.is(single(m, 'oom', 'memory.peak'), 8 * MiB);
  // the neighbour is untouched: it fills its 6 MiB and keeps running
  t.true(await until(() => written('neighbour', 1) >= 1536));
  const neighbour = m.inspect('neighbour');
  t.is(neighbour.state, 'running');
  t.deepEqual(neighbour.processes.map((p) => p.pid), [1]);
  t.is(single(m, 'neighbour', 'memory.current'), 6 * MiB);
  t.deepEqual(keyed(m, 'neighbour', 'memory.events'), { low: 0, high: 0, max: 0, oom: 0, oom_kill: 0 });
});

test.serial('memory.max written below memory.current OOM-kills the biggest process until it fits', async (t) => {
  const m = machine(t);
  m.run({ name: 'shrink', program: 'sleeper', args: { run: '1ms', sleep: '10s' }, cgroup: { 'memory.max': '64M' } });
  const big = m.exec('shrink', 'mem-writer', { wss: '16MiB', rate: '100000' });
  const small = m.exec('shrink', 'mem-writer', { wss: '1MiB', rate: '100000' });
  t.true(await until(() => single(m, 'shrink', 'memory.current') >= 17 * MiB), 'both writers fill their sets');
  m.cgroupSet('shrink', 'memory.max', '4M');
  t.deepEqual(pids(m, 'shrink'), [1, small.pid], 'the big writer is killed at once, the small one fits');
  t.false(pids(m, 'shrink').includes(big.pid));
  t.like(keyed(m, 'shrink', 'memory.events'), { oom: 1, oom_kill: 1 });
  t.true(await until(() => single(m, 'shrink', 'memory.current') === MiB), 'its pages go back');
  t.true(m.logs('shrink').some((line) => /mem-writer killed by the OOM killer/.test(line)));
});

test.serial('an allocation larger than memory.max is a reservation, as mmap\'s: touching past the limit OOM-kills (137), as in Docker', async (t) => {
  const m = machine(t);
  m.run({ name: 'huge', program: 'mem-writer', args: { wss: '64MiB' }, cgroup: { 'memory.max': '32M' } });
  t.true(await until(() => m.inspect('huge').state === 'exited'));
  t.is(m.inspect('huge').exitCode, 137);
  t.like(keyed(m, 'huge', 'memory.events'), { max: 1, oom: 1, oom_kill: 1 });
  t.is(single(m, 'huge', 'memory.peak'), 32 * MiB, 'it wrote up to the limit');
  t.true(m.logs('huge').some((line) => /killed by the OOM killer/.test(line)));
});

test.serial('pids.max 16 holds a fork bomb: pids.current never above 16, refused forks in pids.events', async (t) => {
  const m = machine(t);
  m.run({ name: 'bomb', program: 'fork-bomb', args: {}, cgroup: { 'pids.max': '16' } });
  m.run({ name: 'victim', program: 'cpu-burn', args: {} });
  let highest = 0;
  const reached = await until(() => {
    highest = Math.max(highest, single(m, 'bomb', 'pids.current'));
    return keyed(m, 'bomb', 'pids.events')['max']! > 20;
  });
  const deadline = performance.now() + 300;
  while (performance.now() < deadline) {
    highest = Math.max(highest, single(m, 'bomb', 'pids.current'));
    await sleep(3);
  }
  t.true(reached);
  t.true(highest <= 16, `pids.current reached ${highest}`);
  t.is(single(m, 'bomb', 'pids.current'), 16);
  t.is(single(m, 'bomb', 'pids.peak'), 16);
  t.true(keyed(m, 'bomb', 'pids.events')['max']! > 0);
  t.is(m.inspect('bomb').processes.length, 16);
  // the neighbour still runs
  t.is(m.inspect('victim').state, 'running');
  const victimBefore = usageMs(m, 'victim');
  t.true(await until(() => usageMs(m, 'victim') > victimBefore + 30), 'the neighbour keeps running');
});

test.serial('refusals carry the kernel errno, and a refused run leaves nothing behind', async (t) => {
  const m = machine(t);
  m.run({ name: 'c', program: 'cpu-burn', args: {} });
  t.is(errno(() => m.cgroupSet('c', 'cpu.weight', '0')), 'ERANGE');
  t.is(errno(() => m.cgroupSet('c', 'cpu.weight', '10001')), 'ERANGE');
  t.is(single(m, 'c', 'cpu.weight'), 100);
  t.is(errno(() => m.cgroupSet('c', 'memory.current', '0')), 'EACCES');
  t.is(errno(() => m.cgroupSet('c', 'no.such.file', '1')), 'ENOENT');
  t.is(errno(() => m.cgroupGet('c', 'no.such.file')), 'ENOENT');
  t.is(errno(() => m.cgroupGet('nobody')), 'ENOENT');
  t.is(errno(() => m.run({ name: 'x', program: 'no-such-program', args: {} })), 'ENOENT');
  t.is(errno(() => m.exec('c', 'no-such-program', {})), 'ENOENT');
  t.is(errno(() => m.exec('nobody', 'sleeper', {})), 'ENOENT');
  t.is(errno(() => m.run({ name: 'c', program: 'cpu-burn', args: {} })), 'EEXIST');
  t.is(errno(() => m.run({ name: 'x', program: 'cpu-burn', args: { procs: 0 } })), 'EINVAL');
  t.is(errno(() => m.run({ name: 'x', program: 'cpu-burn', args: { nope: 1 } })), 'EINVAL');
  t.is(errno(() => m.exec('c', 'mem-writer', { wss: 'lots' })), 'EINVAL');
  t.is(errno(() => m.run({ name: 'x', program: 'cpu-burn', args: {}, cgroup: { 'cpu.weight': '0' } })), 'ERANGE');
  t.is(errno(() => m.run({ name: 'x', program: 'cpu-burn', args: {}, cgroup: { 'cpu.credit.size': 't9.huge' } })), 'EINVAL');
  t.is(errno(() => m.rm('c')), 'EBUSY');
  t.is(errno(() => m.start('c')), 'EBUSY');
  t.is(errno(() => m.setPolicy('fifo')), 'EINVAL');
  // none of the refused runs left a container, a process or a pid behind
  t.is(m.containerCount, 1);
  t.deepEqual(m.ps().map((c) => c.name), ['c']);
  t.deepEqual(pids(m, 'c'), [1]);
  const x = m.run({ name: 'x', program: 'sleeper', args: { run: '1ms', sleep: '1s' } });
  t.is(x.id, 2, 'refused runs used no container id');
  t.is(x.processes[0]!.gpid, m.inspect('c').processes[0]!.gpid + 1, 'refused runs and execs used no global pid');
});

test.serial('lifecycle: stop, start, kill, rm', async (t) => {
  const m = machine(t);
  m.run({ name: 'l', program: 'cpu-burn', args: { procs: 2 } });
  t.true(await until(() => pids(m, 'l').length === 2));
  const firstInit = m.inspect('l').processes[0]!.gpid;
  const stopped = m.stop('l');
  t.like(stopped, { state: 'exited', exitCode: 143, pids: 0 });
  t.deepEqual(stopped.processes, []);
  t.true(await offCores(m, 'l'));
  const frozenUsage = usageMs(m, 'l');
  await sleep(150);
  t.is(usageMs(m, 'l'), frozenUsage, 'a stopped container uses no CPU');
  t.is(errno(() => m.kill('l')), 'EINVAL');
  t.is(errno(() => m.exec('l', 'sleeper', {})), 'EINVAL');
  // stop is idempotent
  t.like(m.stop('l'), { state: 'exited', exitCode: 143 });
  const started = m.start('l');
  t.like(started, { state: 'running', exitCode: undefined });
  t.is(started.processes[0]!.pid, 1);
  t.not(started.processes[0]!.gpid, firstInit);
  t.true(await until(() => pids(m, 'l').length === 2 && usageMs(m, 'l') > frozenUsage + 20));
  t.deepEqual(pids(m, 'l'), [1, 2]);
  const killed = m.kill('l');
  t.like(killed, { state: 'exited', exitCode: 137, pids: 0 });
  m.rm('l');
  t.is(errno(() => m.inspect('l')), 'ENOENT');
  t.deepEqual(m.ps(), []);
  // the name is free again; rm --force takes a running container down
  m.run({ name: 'l', program: 'cpu-burn', args: {} });
  t.is(m.inspect('l').state, 'running');
  m.rm('l', true);
  t.is(m.containerCount, 0);
  t.is(m.runnable, 0);
  // cgroup.kill: every process dies with SIGKILL's code
  m.run({ name: 'k', program: 'cpu-burn', args: { procs: 3 } });
  t.true(await until(() => pids(m, 'k').length === 3));
  m.cgroupSet('k', 'cgroup.kill', '1');
  t.like(m.inspect('k'), { state: 'exited', exitCode: 137, pids: 0 });
});

test.serial('cgroup.freeze=1 stops cpu usage growth, 0 resumes it', async (t) => {
  const m = machine(t);
  m.run({ name: 'f', program: 'cpu-burn', args: { procs: 2 } });
  t.true(await until(() => usageMs(m, 'f') > 50));
  m.cgroupSet('f', 'cgroup.freeze', '1');
  // the quanta already on the cores run to their end: frozen 1 only once both processes have stopped
  t.is(keyed(m, 'f', 'cgroup.events')['frozen'], 0);
  t.is(m.cgroupGet('f', 'cgroup.freeze')['cgroup.freeze'], '1');
  t.true(await until(() => keyed(m, 'f', 'cgroup.events')['frozen'] === 1));
  t.true(await offCores(m, 'f'));
  const frozen = usageMs(m, 'f');
  await sleep(300);
  t.is(usageMs(m, 'f'), frozen, 'no CPU while frozen');
  t.is(m.inspect('f').state, 'running');
  t.deepEqual(pids(m, 'f'), [1, 2], 'frozen processes are alive');
  m.cgroupSet('f', 'cgroup.freeze', '0');
  t.is(keyed(m, 'f', 'cgroup.events')['frozen'], 0);
  t.true(await until(() => usageMs(m, 'f') > frozen + 30), 'usage grows again');
});

test.serial('cpu.max "20000 100000" holds cpu-burn procs=2 to about 20% of a core, throttled', async (t) => {
  const m = machine(t);
  m.run({ name: 'capped', program: 'cpu-burn', args: { procs: 2 }, cgroup: { 'cpu.max': '20000 100000' } });
  // an uncapped neighbour shows what a core can deliver on this host right now (it may be busy)
  m.run({ name: 'free', program: 'cpu-burn', args: {} });
  t.is(m.cgroupGet('capped', 'cpu.max')['cpu.max'], '20000 100000');
  await sleep(200);
  const user = (name: string) => keyed(m, name, 'cpu.stat')['user_usec']! / 1000;
  const c0 = user('capped');
  const f0 = user('free');
  const t0 = performance.now();
  await sleep(2000);
  const elapsed = performance.now() - t0;
  const capped = ((user('capped') - c0) / elapsed) * 100;
  const free = ((user('free') - f0) / elapsed) * 100;
  t.log(`capped ${capped.toFixed(1)}%, uncapped neighbour ${free.toFixed(1)}% of a core`);
  // the cap holds, however idle the host
  t.true(capped <= 25, `capped used ${capped.toFixed(1)}% of a core`);
  // and it gives the quota: 20% ± 5 points, unless the host is so loaded that the uncapped neighbour on its
  // own core could not get 60%, when the quota cannot be delivered and only a proportional floor applies
  const floor = free >= 60 ? 15 : Math.min(15, free / 4);
  t.true(capped >= floor, `capped used ${capped.toFixed(1)}% of a core (floor ${floor.toFixed(1)}%, neighbour ${free.toFixed(1)}%)`);
  const stat = keyed(m, 'capped', 'cpu.stat');
  t.true(stat['nr_throttled']! > 0);
  t.true(stat['nr_periods']! <= 25, `nr_periods ${stat['nr_periods']}`);
  t.true(stat['throttled_usec']! > 0);
  t.is(keyed(m, 'free', 'cpu.stat')['nr_throttled'], 0);
  // no completed period went over the quota by more than what one quantum can overrun its reservation
  // (the last step, and the thread CPU clock's tick granularity: schedstat moves in 4 ms ticks here)
  const trace = m.trace('stop');
  const peak = trace.groups[String(m.inspect('capped').id)]!.peakPeriodMs;
  t.true(peak <= 25, `peak period ${peak} ms`);
});

test.serial('wfq: cpu.weight 100 vs 300 on 2 cores with cpu-burn procs=2 each share 1:3 within 15%', async (t) => {
  const m = machine(t);
  // warm the cores up first: the first quantum a fresh core runs is charged its worker's start-up time as
  // "held" time (a known bug), which would put whichever group drew it hundreds of ms behind
  m.run({ name: 'warmup', program: 'cpu-burn', args: { procs: 2 } });
  t.true(await until(() => m.scheduler.dispatches + m.scheduler.renewals >= 8));
  m.rm('warmup', true);
  t.true(await until(() => m.scheduler.cores.every((core) => !core.busy)));
  m.run({ name: 'light', program: 'cpu-burn', args: { procs: 2 }, cgroup: { 'cpu.weight': '100' } });
  m.run({ name: 'heavy', program: 'cpu-burn', args: { procs: 2 }, cgroup: { 'cpu.weight': '300' } });
  await sleep(2000);
  // freeze both at once and let the quanta on the cores end, so no charge is still open: the usage since
  // both started (from equal virtual times) is then what the policy decided, up to one quantum
  m.cgroupSet('light', 'cgroup.freeze', '1');
  m.cgroupSet('heavy', 'cgroup.freeze', '1');
  t.true(await until(() => m.runnable === 4 && m.scheduler.cores.every((core) => !core.busy)));
  const user = (name: string) => keyed(m, name, 'cpu.stat')['user_usec']! / 1000;
  const light = user('light');
  const heavy = user('heavy');
  const ratio = heavy / light;
  t.true(Math.abs(ratio - 3) <= 0.15 * 3, `ratio ${ratio.toFixed(2)} (${light.toFixed(0)} vs ${heavy.toFixed(0)} ms)`);
  t.is(m.policy, 'wfq');
});

test.serial('exec at pids.max is refused with EAGAIN', async (t) => {
  const m = machine(t);
  m.run({ name: 'p', program: 'sleeper', args: { run: '1ms', sleep: '10s' }, cgroup: { 'pids.max': '2' } });
  m.exec('p', 'sleeper', { run: '1ms', sleep: '10s' });
  t.is(errno(() => m.exec('p', 'sleeper', { run: '1ms', sleep: '10s' })), 'EAGAIN');
  t.is(single(m, 'p', 'pids.current'), 2);
});

test.serial('a container stopped while its process writes ends with memory.current 0', async (t) => {
  const m = machine(t);
  for (const name of ['w1', 'w2', 'w3']) {
    m.run({ name, program: 'mem-writer', args: { wss: '256MiB' } });
    t.true(await until(() => single(m, name, 'memory.current') > 16 * MiB));
    m.stop(name);
    t.true(await offCores(m, name));
    t.is(single(m, name, 'memory.current'), 0, name);
  }
});

test.serial('renewal: a process alone keeps its core across quanta, with every quantum charged', async (t) => {
  const m = machine(t, { cores: 1 });
  m.run({ name: 'solo', program: 'cpu-burn', args: {} });
  t.true(await until(() => m.scheduler.renewals >= 20), `renewals ${m.scheduler.renewals}`);
  t.true(m.scheduler.dispatches <= 3, `dispatches ${m.scheduler.dispatches}`);
  // ps sees the registers the core reports at each renewal, though the process never left its core
  const loops = m.inspect('solo').processes[0]!.metrics['loops']!;
  t.true(await until(() => m.inspect('solo').processes[0]!.metrics['loops']! > loops));
  t.true(usageMs(m, 'solo') >= 150, `usage ${usageMs(m, 'solo')} ms`);
});

test.serial('renewal: a newcomer, a freeze and a kill each take the core back from a renewed process', async (t) => {
  const m = machine(t, { cores: 1 });
  m.run({ name: 'first', program: 'cpu-burn', args: {} });
  t.true(await until(() => m.scheduler.renewals >= 5));
  m.run({ name: 'second', program: 'cpu-burn', args: {} });
  t.true(await until(() => usageMs(m, 'second') > 30), 'the newcomer ran');
  m.cgroupSet('second', 'cgroup.freeze', '1');
  t.true(await until(() => m.scheduler.renewals >= 10));
  m.cgroupSet('first', 'cgroup.freeze', '1');
  t.true(await until(() => m.scheduler.cores.every((core) => !core.busy)), 'freezing both left the core idle');
  m.cgroupSet('first', 'cgroup.freeze', '0');
  const renewed = m.scheduler.renewals;
  t.true(await until(() => m.scheduler.renewals >= renewed + 5));
  m.kill('first');
  t.true(await until(() => m.scheduler.cores.every((core) => !core.busy)), 'the killed process left its core');
  t.is(single(m, 'first', 'memory.current'), 0);
});

test.serial('pick ahead under lottery: the draw ahead of a quantum\'s end includes the running group', async (t) => {
  const m = machine(t, { cores: 1, policy: 'lottery', seed: 7 });
  m.run({ name: 'light', program: 'cpu-burn', args: {}, cgroup: { 'cpu.weight': '100' } });
  m.run({ name: 'heavy', program: 'cpu-burn', args: {}, cgroup: { 'cpu.weight': '900' } });
  const cpu = () => ['light', 'heavy'].map((name) => m.inspect(name).processes[0]?.cpuMs ?? 0);
  t.true(await until(() => cpu().every((ms) => ms > 0)));
  const before = cpu();
  await sleep(1500);
  const [light, heavy] = cpu().map((ms, i) => ms - before[i]!) as [number, number];
  // a draw among the others only would hand the core over at every quantum: 50 % each; tickets say 90 %
  // (3σ over ~150 draws is 7 points)
  t.true(heavy / (light + heavy) > 0.8, `weight 900 got ${(100 * heavy / (light + heavy)).toFixed(1)} %`);
});

test.serial('pick ahead: a group of three processes on one core takes turns, each process a third', async (t) => {
  const m = machine(t, { cores: 1 });
  m.run({ name: 'trio', program: 'cpu-burn', args: { procs: 3 } });
  t.true(await until(() => m.inspect('trio').processes.length === 3));
  const cpu = () => m.inspect('trio').processes.map((p) => p.cpuMs);
  const before = cpu();
  await sleep(1500);
  const used = cpu().map((ms, i) => ms - before[i]!);
  const total = used.reduce((a, b) => a + b, 0);
  t.true(total > 300, `the core ran the group ${total.toFixed(0)} ms`);
  // the next process is posted to the core before each quantum ends, in the group's turn order
  for (const ms of used) t.true(Math.abs(ms / total - 1 / 3) < 0.1, `shares ${used.map((u) => (u / total).toFixed(2)).join(' ')}`);
  t.is(m.scheduler.renewals, 0, 'a process with runnable siblings is never renewed');
});

test.serial('under the credit scheduler a cgroup write keeps the T2 account and its baseline limiter (it used to refill them)', (t) => {
  const m = machine(t, { policy: 'credit' });
  const info = m.run({ name: 't2', program: 'sleeper', args: { run: '1ms', sleep: '1s' } });
  const group = [...m.scheduler.groups].find((g) => g.id === info.id)!;
  const { credit, baseline } = group;
  t.truthy(credit && baseline);
  m.cgroupSet('t2', 'cpu.weight', '200');
  m.cgroupSet('t2', 'cpu.credit.mode', 'unlimited');
  t.is(group.credit, credit);
  t.is(group.baseline, baseline);
  m.cgroupSet('t2', 'cpu.credit.size', 't2.small');
  t.not(group.credit, credit, 'another size is another account');
});
