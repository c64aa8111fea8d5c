/**
 * The one save/restore shape: each part saves to plain data and restores from it, a restored part saves
 * to the same record (also after a jump of the clock, since times are stored relative), and a whole
 * container checkpointed on one machine resumes on another exactly where it stopped. Also the fixes
 * that checkpointing depends on: results a core makes itself survive a quantum's end, the OOM killer
 * does not over-kill on several cores, a host's memory is a real limit, stuck steps are killed.
 */
import test from 'ava';
import { Worker } from 'node:worker_threads';
import { decode, encode, memoryDigest } from '@slicelab/protocol';
import { pageSize } from '@slicelab/programs';
import { Pressure } from '../dist/cgroup.js';
import { Disk, IoGroup } from '../dist/disk.js';
import { GuestMemory, HostMemory } from '../dist/memory.js';
import type { Machine } from '../dist/machine.js';
import { Rootfs } from '../dist/namespaces.js';
import { validateRecord } from '../dist/persist.js';
import { Bandwidth } from '../dist/scheduler/bandwidth.js';
import { CreditAccount, t2Sizes } from '../dist/scheduler/credit.js';
import { SchedGroup } from '../dist/scheduler/scheduler.js';
import { MiB, machine, sleep, until } from './machines.js';

const metric = (m: Machine, name: string, key: string, pid = 1) => m.inspect(name).processes.find((p) => p.pid === pid)?.metrics[key] ?? -1;

test.serial('cpu.max limiter: save → restore → save is the same record, after a jump of the clock too', (t) => {
  const b = new Bandwidth(20, 100, 5, 1000);
  b.reserve(12);
  b.settle(12, 14);
  b.throttle(1030);
  const saved = b.save(1040);
  t.deepEqual(Bandwidth.restore(saved, 1040).save(1040), saved);
  // on a host whose clock reads a million ms later, the period is as far along
  const moved = Bandwidth.restore(saved, 1_001_040);
  t.deepEqual(moved.save(1_001_040), saved);
  t.is(moved.nextPeriod, 1_001_040 + (100 - saved.periodElapsedMs));
  t.is(moved.available(1_001_040), b.available(1040));
});

test.serial('credit account: restored with the balance it had, earning from the moment of the restore', (t) => {
  const a = new CreditAccount(t2Sizes['t2.micro']!, 'standard', 3600, 0);
  a.spend(30_000, 10_000);
  const saved = a.save(20_000);
  const b = CreditAccount.restore(saved, 5_000_000);
  t.deepEqual(b.save(5_000_000), saved);
  // the time the image spent on its way earns nothing: a second later it has earned one second's worth
  const later = b.save(5_001_000);
  t.true(Math.abs(later.earned - saved.earned - (6 * 3600) / 3600) < 1e-9, `earned ${later.earned - saved.earned}`);
});

test.serial('PSI: totals and averages survive, and the next update stays as far away', (t) => {
  const p = new Pressure(0);
  p.stall('some', 500_000);
  p.tick(2000);
  p.stall('full', 300_000);
  const saved = p.save(3000);
  const q = Pressure.restore(saved, 90_000);
  t.deepEqual(q.save(90_000), saved);
  t.deepEqual(q.snapshot(), p.snapshot());
});

test.serial('disk group and scheduler group: relative to the device and policy they are restored under', (t) => {
  const disk = new Disk({ bandwidth: 1e6, iops: 1000 }, () => 0);
  const io = new IoGroup(1, 100);
  io.stat.wbytes = 4096;
  io.vtime = 7;
  const saved = io.save(500, 2);
  const back = new IoGroup(2, 100);
  back.load(saved, 10_500, disk.vtime + 40);
  t.deepEqual(back.save(10_500, disk.vtime + 40), saved);
  t.is(back.vtime, 45);
  const group = new SchedGroup(1, 100);
  group.vtime = 30;
  group.usageMs = 1234;
  group.holdUntil = 150;
  const state = group.save(100, 25);
  const other = new SchedGroup(9, 100);
  other.load(state, 5000, 1000);
  t.is(other.vtime, 1005, 'five ahead of the new reference, as it was five ahead of the old');
  t.is(other.holdUntil, 5050);
  t.deepEqual(other.save(5000, 1000), state);
});

test.serial('rootfs: every file and directory back, through the same checks; a bad path is refused', (t) => {
  const fs = Rootfs.image('web');
  fs.mkdir('/tmp/a');
  fs.write('/tmp/a/note', 'hello');
  const saved = fs.save();
  const back = Rootfs.restore(decode(encode(saved)) as typeof saved);
  t.deepEqual(back.save(), saved);
  t.is(new TextDecoder().decode(back.read('/tmp/a/note')), 'hello');
  t.is(back.bytes, fs.bytes);
  t.throws(() => Rootfs.restore({ capacity: saved.capacity, nodes: [['/', { kind: 'dir' }], ['/x/../y', { kind: 'dir' }]] }), { message: /bad path/ });
  t.throws(() => Rootfs.restore({ capacity: saved.capacity, nodes: [['/', { kind: 'dir' }], ['/no/parent', { kind: 'dir' }]] }));
});

test.serial('memory: pages, bitmaps and counters back on another host; a host without room refuses', (t) => {
  const host = HostMemory.create(64 * pageSize);
  const m = GuestMemory.create(32 * pageSize, host);
  m.writeU32(3 * pageSize, 33);
  m.writeU32(17 * pageSize + 8, 1717);
  const pages = m.touchedCopy();
  t.deepEqual([...pages.pageNumbers], [3, 17]);
  const saved = m.save();
  const other = HostMemory.create(64 * pageSize);
  const back = GuestMemory.restore(saved, pages, other)!;
  t.is(back.readU32(17 * pageSize + 8), 1717);
  t.is(back.currentBytes, 2 * pageSize);
  t.is(other.usedBytes, 2 * pageSize, 'charged to the new host');
  t.deepEqual(back.save(), saved);
  t.deepEqual([...back.touchedCopy().pageNumbers], [3, 17]);
  t.is(GuestMemory.restore(saved, pages, HostMemory.create(pageSize)), undefined, 'one free page is not enough for two');
});

test.serial('host memory: touched pages of all containers never pass it; the host OOM killer takes the biggest', async (t) => {
  const m = machine(t, { memory: 48 * MiB });
  for (const name of ['a', 'b', 'c']) m.run({ name, program: 'mem-writer', args: { wss: '20MiB' } });
  let highest = 0;
  const killed = await until(() => {
    highest = Math.max(highest, m.hostMemory.usedBytes);
    return m.ps().some((c) => c.state === 'exited');
  });
  t.true(killed, 'a container was OOM-killed');
  t.true(highest <= 48 * MiB, `host memory in use reached ${highest}`);
  const events = m.ps().map((c) => Number(/oom_kill (\d+)/.exec(m.cgroupGet(c.name, 'memory.events')['memory.events']!)?.[1]));
  t.true(events.reduce((a, b) => a + b, 0) >= 1);
  t.true(await until(() => m.ps().filter((c) => c.state === 'running').every((c) => c.memoryCurrent === 20 * MiB)), 'the survivors get their whole working set');
  t.is(m.ps().filter((c) => c.state === 'running').length, 2, 'one victim was enough');
  t.true(m.hostMemory.usedBytes <= 48 * MiB);
  t.true(m.logs(m.ps().find((c) => c.state === 'exited')!.name).some((l) => /host's memory/.test(l)));
});

test.serial('OOM on several cores kills one writer, not one per core (two 6 MiB writers under memory.max 8M)', async (t) => {
  const m = machine(t);
  for (let trial = 0; trial < 4; trial++) {
    const name = `oom${trial}`;
    m.run({ name, program: 'sleeper', args: { run: '1ms', sleep: '10s' }, cgroup: { 'memory.max': '8M' } });
    m.exec(name, 'mem-writer', { wss: '6MiB' });
    m.exec(name, 'mem-writer', { wss: '6MiB' });
    t.true(await until(() => m.cgroupGet(name, 'memory.events')['memory.events']!.includes('oom_kill 1')), `trial ${trial}: an OOM kill`);
    await sleep(300);
    t.regex(m.cgroupGet(name, 'memory.events')['memory.events']!, /oom_kill 1$/, `trial ${trial}: one kill only`);
    t.is(m.inspect(name).processes.length, 2, `trial ${trial}: init and one writer live`);
    m.rm(name, true);
  }
});

test.serial('an EAGAIN the core makes at pids.max reaches the process even when the quantum ends right after', async (t) => {
  const m = machine(t, { cores: 1 });
  m.run({ name: 'noise', program: 'cpu-burn', args: {} });
  m.run({ name: 'bomb', program: 'fork-bomb', args: {}, cgroup: { 'pids.max': '4' } });
  await sleep(1500);
  const { record } = await m.checkpoint('bomb');
  let seen = 0;
  let pending = 0;
  for (const p of record.processes) {
    seen += (p.regs['metrics'] as { eagain: number }).eagain;
    if (p.ret && !p.ret.ok && p.ret.errno === 'EAGAIN') pending++;
  }
  t.true(record.memory.pidsEvents > 1000, `refusals ${record.memory.pidsEvents}`);
  t.is(seen + pending, record.memory.pidsEvents, 'every refused fork was seen by its process, or is still to be seen');
});

test.serial('a container checkpointed on one machine resumes on another where it stopped, and saves to the same record', async (t) => {
  const a = machine(t);
  const b = machine(t, { seed: 7 });
  a.run({ name: 'mw', program: 'mem-writer', args: { wss: '4MiB', rate: '3000' }, cgroup: { 'cpu.max': '50000 100000', 'pids.max': '10' } });
  a.exec('mw', 'heartbeat', { interval: '2ms' });
  a.exec('mw', 'sleeper', { run: '1ms', sleep: '1s' });
  t.true(await until(() => metric(a, 'mw', 'pagesWritten') > 2000));
  const first = await a.checkpoint('mw');
  a.rm('mw', true);
  const wire = validateRecord(decode(encode(first.record)));
  // the other machine's clock is its own: the container's clock, sleeps and periods are relative
  b.run({ name: 'other', program: 'cpu-burn', args: {} });
  // the image sits a second on its way: the container's clock must not count it
  await sleep(1000);
  const restoredAt = performance.now();
  // byte for byte as restored, before any process of it runs (the restore checks the digest given, and throws)
  const info = b.restore(wire, first.pages, 'mw', memoryDigest(first.pages.pageNumbers, first.pages.pages));
  t.deepEqual(info.processes.map((p) => p.pid), [1, 2, 3]);
  const second = await b.checkpoint('mw');
  const sinceRestore = performance.now() - restoredAt;
  t.deepEqual(second.pages.pageNumbers, first.pages.pageNumbers, 'the same pages are touched');
  b.thaw('mw');
  const strip = (r: typeof first.record) => ({ ...r, clockMs: 0, processes: r.processes.map((p) => ({ ...p, regs: {}, cpuMs: 0, wait: p.wait && { ...p.wait, remainingMs: 0 } })) });
  t.deepEqual(strip(second.record).limits, strip(first.record).limits);
  t.deepEqual(strip(second.record).uidMap, first.record.uidMap);
  t.is(second.record.nextPid, first.record.nextPid);
  const advanced = second.record.clockMs - first.record.clockMs;
  t.true(advanced >= 0 && advanced <= sinceRestore + 1, `its clock went on from where it was, by the ${sinceRestore} ms it ran since, not the second on the way (${advanced} ms)`);
  const sleeperThen = first.record.processes.find((p) => p.program === 'sleeper')!.wait;
  const sleeperNow = second.record.processes.find((p) => p.program === 'sleeper')!.wait;
  t.true(sleeperThen?.kind === 'sleep' && sleeperNow?.kind === 'sleep' && sleeperNow.remainingMs <= sleeperThen.remainingMs, 'the sleeper sleeps only what it had left');
  const pagesThen = (first.record.processes[0]!.regs['metrics'] as { pagesWritten: number }).pagesWritten;
  t.true(await until(() => metric(b, 'mw', 'pagesWritten') > pagesThen + 300), 'the writer carries on from its count');
  t.true(metric(b, 'mw', 'pausedMs', 2) < 500, `the heartbeat saw no pause of the move (${metric(b, 'mw', 'pausedMs', 2)} ms)`);
  t.true(Number(/usage_usec (\d+)/.exec(b.cgroupGet('mw', 'cpu.stat')['cpu.stat']!)![1]) >= first.record.sched.usageMs * 1000, 'cpu.stat continues');
  t.is(b.cgroupGet('mw', 'cpu.max')['cpu.max'], '50000 100000');
});

test.serial('a record whose limits the kernel would refuse is refused when read back, before anything is made', async (t) => {
  const a = machine(t);
  a.run({ name: 'w', program: 'sleeper', args: {} });
  const { record } = await a.checkpoint('w');
  const bent = (limits: object) => decode(encode({ ...record, limits: { ...record.limits, ...limits } }));
  t.notThrows(() => validateRecord(bent({})));
  t.throws(() => validateRecord(bent({ cpuWeight: 0 })), { message: /cpuWeight/ });
  t.throws(() => validateRecord(bent({ ioWeight: 20_000 })), { message: /ioWeight/ });
  t.throws(() => validateRecord(bent({ cpuMax: { quota: 5, period: 100_000 } })), { message: /cpuMax/ });
});

test.serial('a restore that cannot fit, or of a name in use, leaves the machine as it was', async (t) => {
  const a = machine(t);
  a.run({ name: 'big', program: 'mem-writer', args: { wss: '8MiB' } });
  t.true(await until(() => a.inspect('big').memoryCurrent >= 8 * MiB));
  const { record, pages } = await a.checkpoint('big');
  const small = machine(t, { memory: 4 * MiB });
  t.throws(() => small.restore(record, pages), { code: 'ENOMEM' });
  t.is(small.ps().length, 0);
  t.is(small.hostMemory.usedBytes, 0);
  t.throws(() => a.restore(record, pages), { code: 'EEXIST' });
  t.is(a.ps().length, 1);
});

test.serial('a step that never returns is killed by the watchdog, and its core runs others again', async (t) => {
  const m = machine(t, { cores: 1 });
  m.run({ name: 'stuck', program: 'crasher', args: { after: '5', mode: 'hang' } });
  m.run({ name: 'fine', program: 'cpu-burn', args: {} });
  t.true(await until(() => m.inspect('stuck').state === 'exited', 10_000), 'the stuck process was killed');
  t.is(m.inspect('stuck').exitCode, 139);
  t.true(m.logs('stuck').some((l) => /watchdog/.test(l)), m.logs('stuck').join('\n'));
  const before = m.inspect('fine').cpuUsageMs;
  t.true(await until(() => m.inspect('fine').cpuUsageMs > before + 100), 'the core is back');
});

// A writer stores stamps in a loop while the main thread takes pages as a migration round does (clear
// the dirty bit, then copy). A page whose bit ends clear must hold in the copy what memory holds.
const writerWorker = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then(({ GuestMemory }) => {
  const memory = new GuestMemory(workerData.shared);
  const stop = new Int32Array(workerData.stop);
  let stamp = 0;
  while (Atomics.load(stop, 0) === 0) {
    for (let page = 0; page < workerData.pages; page++) memory.writeU32(page * 4096, ++stamp);
  }
  parentPort.postMessage(stamp);
});
`;

test.serial('store first, dirty bit after: a page taken while it is written is never lost with its bit clear', async (t) => {
  const module = new URL('../dist/memory.js', import.meta.url).href;
  const pages = 8;
  const memory = GuestMemory.create(pages * pageSize);
  const stop = new SharedArrayBuffer(4);
  const copies = Array.from({ length: pages }, () => new Uint8Array(pageSize));
  const worker = new Worker(writerWorker, { eval: true, workerData: { module, shared: memory.shared, stop, pages } });
  await sleep(100);
  const deadline = performance.now() + 500;
  while (performance.now() < deadline) for (let page = 0; page < pages; page++) memory.takePage(page, copies[page]!);
  Atomics.store(new Int32Array(stop), 0, 1);
  await new Promise((resolve) => worker.once('message', resolve));
  await worker.terminate();
  const view = new DataView(memory.shared.data);
  let lost = 0;
  for (let page = 0; page < pages; page++) {
    const copied = new DataView(copies[page]!.buffer).getUint32(0, true);
    if (!memory.isDirty(page) && copied !== view.getUint32(page * pageSize, true)) lost++;
  }
  t.is(lost, 0, 'every page with a clear dirty bit was copied with its last write');
});
