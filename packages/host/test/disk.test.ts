/**
 * The virtual disk with real timers, kept short: io.weight shares, io.max caps, IOPS beyond the timer's
 * resolution, and the exact accounting of io.stat.
 */
import test from 'ava';
import { Disk, IoGroup, type IoLimits } from '../src/disk.js';

const clock = () => performance.timeOrigin + performance.now();
const MiB = 1 << 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Load {
  weight: number;
  limits?: Partial<IoLimits>;
  op?: 'read' | 'write';
  bytes: number;
  /** requests kept outstanding (queued or in flight) */
  depth: number;
  /** ms between a completion and the next request, as a process needs to run again before it asks */
  thinkMs?: number;
}

/** Runs the loads on one disk for `ms` of wall time and returns what each group got, per second. */
async function drive(spec: { bandwidth: number; iops: number }, loads: Load[], ms: number) {
  const disk = new Disk(spec, clock);
  let stopped = false;
  const groups = loads.map((load, i) => {
    const group = new IoGroup(i + 1, load.weight);
    group.limits = { ...group.limits, ...load.limits };
    disk.add(group);
    return group;
  });
  const issue = (group: IoGroup, load: Load) => {
    if (stopped) return;
    disk.submit(group, load.op ?? 'write', load.bytes, 1, () => {
      if (load.thinkMs === undefined) issue(group, load);
      else setTimeout(() => issue(group, load), load.thinkMs);
    });
  };
  const began = clock();
  loads.forEach((load, i) => {
    for (let k = 0; k < load.depth; k++) issue(groups[i]!, load);
  });
  await sleep(ms);
  const seconds = (clock() - began) / 1000;
  stopped = true;
  disk.close();
  return groups.map((group) => ({
    group,
    bytesPerSecond: (group.stat.rbytes + group.stat.wbytes) / seconds,
    iosPerSecond: (group.stat.rios + group.stat.wios) / seconds,
  }));
}

test.serial('io.weight 100 vs 300, both backlogged with 1 MiB writes on a 100 MB/s disk: bytes 1:3 within 15%', async (t) => {
  const [light, heavy] = await drive({ bandwidth: 100e6, iops: 5000 }, [
    { weight: 100, bytes: MiB, depth: 4 },
    { weight: 300, bytes: MiB, depth: 4 },
  ], 1000);
  const ratio = heavy!.bytesPerSecond / light!.bytesPerSecond;
  t.true(Math.abs(ratio - 3) <= 0.15 * 3, `ratio ${ratio.toFixed(2)} (${(light!.bytesPerSecond / 1e6).toFixed(1)} vs ${(heavy!.bytesPerSecond / 1e6).toFixed(1)} MB/s)`);
  // work conserving: together they keep the disk busy
  const total = light!.bytesPerSecond + heavy!.bytesPerSecond;
  t.true(total >= 0.75 * 100e6 && total <= 1.02 * 100e6, `total ${(total / 1e6).toFixed(1)} MB/s`);
});

test.serial('io.weight 100 vs 400 with synchronous I/O (one request at a time, 1 ms between): bytes 1:4 within 25%', async (t) => {
  // each group's queue is empty between its requests: only waiting for the one owed service gives the weights
  const [light, heavy] = await drive({ bandwidth: 200e6, iops: 5000 }, [
    { weight: 100, bytes: MiB, depth: 1, thinkMs: 1 },
    { weight: 400, bytes: MiB, depth: 1, thinkMs: 1 },
  ], 1500);
  const ratio = heavy!.bytesPerSecond / light!.bytesPerSecond;
  t.true(Math.abs(ratio - 4) <= 0.25 * 4, `ratio ${ratio.toFixed(2)} (${(light!.bytesPerSecond / 1e6).toFixed(1)} vs ${(heavy!.bytesPerSecond / 1e6).toFixed(1)} MB/s)`);
});

test.serial('the device does not wait for a group slow to ask again, nor for one capped by io.max', async (t) => {
  // 4 KiB writes: 0.2 ms each on a 5000-IOPS device; the backlogged group should get nearly all of it
  const alone = await drive({ bandwidth: 200e6, iops: 5000 }, [{ weight: 100, bytes: 4096, depth: 4 }], 500);
  const [slow, busy] = await drive({ bandwidth: 200e6, iops: 5000 }, [
    { weight: 1000, bytes: 4096, depth: 1, thinkMs: 20 },
    { weight: 100, bytes: 4096, depth: 4 },
  ], 800);
  const [capped, busy2] = await drive({ bandwidth: 200e6, iops: 5000 }, [
    { weight: 1000, bytes: 4096, depth: 1, thinkMs: 2, limits: { wiops: 100 } },
    { weight: 100, bytes: 4096, depth: 4 },
  ], 800);
  const base = alone[0]!.iosPerSecond;
  t.true(slow!.iosPerSecond > 10 && busy!.iosPerSecond > 0.8 * base, `beside a slow group: ${busy!.iosPerSecond.toFixed(0)} of ${base.toFixed(0)} IOPS`);
  t.true(capped!.iosPerSecond <= 110 && busy2!.iosPerSecond > 0.8 * base, `beside a capped group: ${busy2!.iosPerSecond.toFixed(0)} of ${base.toFixed(0)} IOPS`);
});

test.serial('io.max wbps caps a group within 15% and the other group gets the rest', async (t) => {
  const [capped, free] = await drive({ bandwidth: 100e6, iops: 5000 }, [
    { weight: 100, limits: { wbps: 20e6 }, bytes: MiB, depth: 2 },
    { weight: 100, bytes: MiB, depth: 2 },
  ], 1000);
  t.true(Math.abs(capped!.bytesPerSecond - 20e6) <= 0.15 * 20e6, `capped at ${(capped!.bytesPerSecond / 1e6).toFixed(1)} MB/s`);
  t.true(Math.abs(free!.bytesPerSecond - 80e6) <= 0.15 * 80e6, `the other got ${(free!.bytesPerSecond / 1e6).toFixed(1)} MB/s`);
});

test.serial('io.max riops caps the request rate; a read limit leaves writes alone', async (t) => {
  const [reads, writes] = await drive({ bandwidth: 1e12, iops: 5000 }, [
    { weight: 100, op: 'read', limits: { riops: 200, wbps: 1 }, bytes: 4096, depth: 4 },
    { weight: 100, op: 'write', limits: { riops: 1 }, bytes: 4096, depth: 16 },
  ], 600);
  t.true(Math.abs(reads!.iosPerSecond - 200) <= 0.15 * 200, `reads at ${reads!.iosPerSecond.toFixed(0)}/s`);
  t.is(reads!.group.stat.wios, 0);
  t.is(writes!.group.stat.rios, 0);
  t.true(writes!.iosPerSecond > 2000, `writes at ${writes!.iosPerSecond.toFixed(0)}/s`);
});

test.serial('IOPS above 1000/s are delivered: completions are batched beyond the 1 ms timer', async (t) => {
  const [only] = await drive({ bandwidth: 1e12, iops: 5000 }, [{ weight: 100, bytes: 4096, depth: 16 }], 600);
  t.true(only!.iosPerSecond > 2500, `${only!.iosPerSecond.toFixed(0)} IOPS`);
  // and never more than the device's IOPS
  t.true(only!.iosPerSecond <= 5000 * 1.02, `${only!.iosPerSecond.toFixed(0)} IOPS`);
});

test.serial('a request takes max(bytes / bandwidth, 1 / iops): the disk never beats its bandwidth', async (t) => {
  const [only] = await drive({ bandwidth: 50e6, iops: 100_000 }, [{ weight: 100, bytes: 256 * 1024, depth: 8 }], 500);
  t.true(only!.bytesPerSecond <= 50e6 * 1.02, `${(only!.bytesPerSecond / 1e6).toFixed(1)} MB/s`);
  // below it only by what late timers cost on a busy host
  t.true(only!.bytesPerSecond >= 50e6 * 0.75, `${(only!.bytesPerSecond / 1e6).toFixed(1)} MB/s`);
});

test.serial('io.stat counts bytes and ios per op, each completion once; a removed group gets nothing more', async (t) => {
  const disk = new Disk({ bandwidth: 100e6, iops: 5000 }, clock);
  const group = new IoGroup(1, 100);
  const other = new IoGroup(2, 100);
  disk.add(group);
  disk.add(other);
  const completions: string[] = [];
  disk.submit(group, 'write', 1000, 1, () => completions.push('w1'));
  disk.submit(group, 'read', 3000, 1, () => completions.push('r1'));
  disk.submit(group, 'write', 500, 1, () => completions.push('w2'));
  await sleep(50);
  t.deepEqual(completions, ['w1', 'r1', 'w2']);
  t.like(group.stat, { wbytes: 1500, wios: 2, rbytes: 3000, rios: 1 });
  t.like(other.stat, { wbytes: 0, wios: 0, rbytes: 0, rios: 0 });
  // requests queued behind a long one are dropped when their group is removed
  disk.submit(other, 'write', 5 * MiB, 1, () => completions.push('big'));
  disk.submit(other, 'write', 1, 1, () => completions.push('dropped'));
  disk.submit(other, 'write', 1, 1, () => completions.push('dropped'));
  disk.remove(other);
  await sleep(120);
  disk.close();
  t.false(completions.includes('dropped'));
  t.is(other.queue.length, 0);
});

test.serial('a group that comes back from idle starts at the smallest active virtual time', async (t) => {
  const disk = new Disk({ bandwidth: 100e6, iops: 5000 }, clock);
  const busy = new IoGroup(1, 100);
  const idle = new IoGroup(2, 100);
  disk.add(busy);
  disk.add(idle);
  let stop = false;
  const loop = () => {
    if (!stop) disk.submit(busy, 'write', MiB, 1, loop);
  };
  for (let k = 0; k < 3; k++) loop();
  await sleep(150);
  t.true(busy.vtime > 0);
  t.is(idle.vtime, 0);
  disk.submit(idle, 'write', MiB, 1, () => {});
  t.true(idle.vtime > 0);
  t.true(idle.vtime <= busy.vtime);
  // it does not take the disk over: over the next 300 ms it gets about half, not all
  const before = { busy: busy.stat.wbytes, idle: idle.stat.wbytes };
  let idleStop = false;
  const idleLoop = () => {
    if (!idleStop) disk.submit(idle, 'write', MiB, 2, idleLoop);
  };
  for (let k = 0; k < 2; k++) idleLoop();
  await sleep(300);
  stop = true;
  idleStop = true;
  disk.close();
  const gotIdle = idle.stat.wbytes - before.idle;
  const gotBusy = busy.stat.wbytes - before.busy;
  t.true(gotIdle / (gotIdle + gotBusy) <= 0.65, `the returning group got ${((100 * gotIdle) / (gotIdle + gotBusy)).toFixed(0)}%`);
  t.true(gotBusy > 0);
});


test.serial('a killed process\'s queued requests are withdrawn: they take no device time and never complete', async (t) => {
  const disk = new Disk({ bandwidth: 10e6, iops: 5000 }, clock);
  const group = new IoGroup(1, 100);
  disk.add(group);
  const completions: string[] = [];
  // 1 MB takes the device 100 ms: what is queued behind it is still waiting when its owner is killed
  disk.submit(group, 'write', 1e6, 1, () => completions.push('first'));
  disk.submit(group, 'write', 1e6, 7, () => completions.push('killed'));
  disk.submit(group, 'write', 1000, 2, () => completions.push('other'));
  disk.cancel(group, 7);
  await sleep(250);
  disk.close();
  t.deepEqual(completions, ['first', 'other']);
  t.is(group.stat.wbytes, 1e6 + 1000, 'the withdrawn megabyte was never written');
});
