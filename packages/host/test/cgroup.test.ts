import test from 'ava';
import { SlicelabError, type ErrorCode } from '@slicelab/protocol';
import {
  Pressure, cgroupFiles, defaultLimits, emptyCounters, readCgroupFile, writeCgroupFile,
  type CgroupLimits,
} from '../src/cgroup.js';

const cores = 4;
const counters = emptyCounters();
const read = (file: string, limits: CgroupLimits = defaultLimits(), hostCores = cores) => readCgroupFile(file, limits, counters, hostCores);
const write = (file: string, value: string, limits: CgroupLimits = defaultLimits()) => writeCgroupFile(file, value, limits, cores).limits;
/** Writes each [file, value] in turn, starting from the defaults. */
const apply = (...writes: Array<[string, string]>) => writes.reduce((limits, [file, value]) => write(file, value, limits), defaultLimits());

function refusal(file: string, value: string, limits: CgroupLimits = defaultLimits()): SlicelabError {
  const error = (() => {
    try {
      writeCgroupFile(file, value, limits, cores);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  if (!(error instanceof SlicelabError)) throw new Error(`expected ${file} to refuse ${JSON.stringify(value)}`);
  return error;
}

const idlePsi = 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0';

test('a fresh cgroup reads exactly as the kernel prints it', (t) => {
  const expected: Record<string, string> = {
    'cgroup.procs': '',
    'cgroup.events': 'populated 0\nfrozen 0',
    'cgroup.freeze': '0',
    'cpu.weight': '100',
    'cpu.weight.nice': '0',
    'cpu.max': 'max 100000',
    'cpu.max.burst': '0',
    'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0',
    'cpuset.cpus': '',
    'cpuset.cpus.effective': '0-3',
    'memory.current': '0',
    'memory.max': 'max',
    'memory.high': 'max',
    'memory.low': '0',
    'memory.peak': '0',
    'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0',
    'pids.max': 'max',
    'pids.current': '0',
    'pids.peak': '0',
    'pids.events': 'max 0',
    'io.weight': 'default 100',
    'io.max': '',
    'io.stat': '',
    'cpu.pressure': idlePsi,
    'memory.pressure': idlePsi,
    'io.pressure': idlePsi,
  };
  const readable = Object.entries(cgroupFiles).filter(([, info]) => info.readable).map(([file]) => file);
  t.deepEqual(readable.sort(), Object.keys(expected).sort());
  for (const [file, text] of Object.entries(expected)) t.is(read(file), text, file);
});

test('live counters are formatted as the kernel formats them', (t) => {
  const live = emptyCounters();
  live.procs = [1, 7, 12];
  live.populated = true;
  live.cpu.usageUsec = 1500.7;
  live.memory.events.oomKill = 2;
  live.pids.eventsMax = 3;
  live.io = { rbytes: 4096, wbytes: 8192, rios: 1, wios: 2 };
  live.pressure.memory = { some: { avg10: 12.5, avg60: 3.07, avg300: 0.6, total: 123456 }, full: { avg10: 0, avg60: 0, avg300: 0, total: 0 } };
  const get = (file: string) => readCgroupFile(file, defaultLimits(), live, cores);
  t.is(get('cgroup.procs'), '1\n7\n12');
  t.is(get('cgroup.events'), 'populated 1\nfrozen 0');
  t.true(get('cpu.stat').startsWith('usage_usec 1500\n'));
  t.true(get('memory.events').endsWith('\noom_kill 2'));
  t.is(get('pids.events'), 'max 3');
  t.is(get('io.stat'), '254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0');
  t.is(get('memory.pressure'), 'some avg10=12.50 avg60=3.07 avg300=0.60 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0');
});

test('every writable file round-trips a valid value', (t) => {
  const cases: Array<[file: string, value: string, readBack: string]> = [
    ['cgroup.freeze', '1', '1'],
    ['cpu.weight', '250', '250'],
    ['cpu.weight', '0x64', '100'], // kstrtoull with base 0
    ['cpu.weight.nice', '-5', '-5'],
    ['cpu.max', '50000 200000', '50000 200000'],
    ['cpuset.cpus', '0-1,3', '0-1,3'],
    ['memory.max', '512M', '536870912'],
    ['memory.high', '1G', '1073741824'],
    ['memory.low', '64K', '65536'],
    ['memory.low', 'max', 'max'],
    ['pids.max', '64', '64'],
    ['io.weight', 'default 300', 'default 300'],
    ['io.weight', '50', 'default 50'],
    ['io.max', '254:0 rbps=1048576 wiops=100', '254:0 rbps=1048576 wbps=max riops=max wiops=100'],
  ];
  const writable = Object.entries(cgroupFiles).filter(([, info]) => info.writable).map(([file]) => file);
  t.deepEqual(writable.sort(), [...new Set([...cases.map(([file]) => file), 'cpu.max.burst', 'cgroup.kill'])].sort());
  for (const [file, value, readBack] of cases) t.is(read(file, write(file, value)), readBack, `${file} ← ${value}`);

  const bursting = apply(['cpu.max', '50000'], ['cpu.max.burst', '20000']);
  t.is(read('cpu.max.burst', bursting), '20000');
  t.is(read('cpu.max', bursting), '50000 100000');

  const kill = writeCgroupFile('cgroup.kill', '1', defaultLimits(), cores);
  t.true(kill.kill);
  t.deepEqual(kill.limits, defaultLimits());
});

test('writes follow the kernel: period kept, pages, "max", resets', (t) => {
  t.is(read('cpu.max', apply(['cpu.max', '50000 200000'], ['cpu.max', 'max'])), 'max 200000');
  t.is(read('cpu.max', apply(['cpu.max', '50000 200000'], ['cpu.max', '25000'])), '25000 200000');
  t.is(read('memory.max', write('memory.max', '5000')), '4096'); // memory limits are whole pages, rounded down
  t.is(read('memory.max', apply(['memory.max', '1G'], ['memory.max', 'max'])), 'max');
  t.is(read('memory.max', write('memory.max', '9223372036854775807')), 'max'); // PAGE_COUNTER_MAX
  t.is(read('pids.max', apply(['pids.max', '10'], ['pids.max', 'max'])), 'max');
  t.is(read('io.max', apply(['io.max', '254:0 rbps=100 riops=5'], ['io.max', '254:0 rbps=max riops=max'])), '');
  t.is(read('io.max', write('io.max', '254:0 riops=4294967295')), ''); // UINT_MAX iops is "max"
  t.is(read('cgroup.events', write('cgroup.freeze', '1')), 'populated 0\nfrozen 1');
  t.is(read('cpuset.cpus', apply(['cpuset.cpus', '1'], ['cpuset.cpus', ''])), '');
  t.is(write('memory.max', '1G\n').memoryMax, 1024 ** 3); // echo's newline
  // cpu.max.burst is kept while the quota is "max" (as in mainline) but must fit a quota set later.
  const burstWithoutQuota = write('cpu.max.burst', '20000');
  t.is(read('cpu.max.burst', burstWithoutQuota), '20000');
  t.is(refusal('cpu.max', '10000', burstWithoutQuota).code, 'EINVAL');
});

test('writes never change the limits they are given', (t) => {
  const before = apply(['cpuset.cpus', '0-1'], ['io.max', '254:0 rbps=10']);
  const snapshot = structuredClone(before);
  write('cpuset.cpus', '3', before);
  write('io.max', '254:0 wbps=20', before);
  write('cpu.max', '20000 50000', before);
  t.deepEqual(before, snapshot);
});

test('cpuset lists: ranges, patterns, "all", "N", and the effective set', (t) => {
  t.deepEqual(write('cpuset.cpus', '0-1,3').cpus, [0, 1, 3]);
  t.deepEqual(write('cpuset.cpus', '3,0 , 1').cpus, [0, 1, 3]);
  t.deepEqual(write('cpuset.cpus', '0-3:1/2').cpus, [0, 2]);
  t.deepEqual(write('cpuset.cpus', 'all').cpus, [0, 1, 2, 3]);
  t.deepEqual(write('cpuset.cpus', '2-N').cpus, [2, 3]);
  t.is(read('cpuset.cpus', write('cpuset.cpus', '0,1,2')), '0-2');
  const limits = write('cpuset.cpus', '1,3');
  t.is(read('cpuset.cpus.effective', limits), '1,3');
  // On a smaller host (after a migration) the cores that exist; none left falls back to all of them.
  t.is(read('cpuset.cpus.effective', limits, 2), '1');
  t.is(read('cpuset.cpus.effective', write('cpuset.cpus', '3'), 2), '0-1');
});

test('cpu.weight.nice and cpu.weight convert through the kernel table', (t) => {
  // sched_prio_to_weight: nice 0 → 1024 shares, -20 → 88761, -5 → 3121, 17 → 23, 19 → 15.
  // cpu.weight reads DIV_ROUND_CLOSEST(shares × 100, 1024).
  t.is(read('cpu.weight', write('cpu.weight.nice', '0')), '100');
  t.is(read('cpu.weight', write('cpu.weight.nice', '-20')), '8668'); // 8876100 / 1024 = 8668.07
  t.is(read('cpu.weight', write('cpu.weight.nice', '-5')), '305'); // 312100 / 1024 = 304.79
  t.is(read('cpu.weight', write('cpu.weight.nice', '19')), '1'); // 1500 / 1024 = 1.46
  // The share is kept exactly, so nice 17 reads back 17 although cpu.weight shows only 2 (as the kernel).
  const nice17 = write('cpu.weight.nice', '17');
  t.is(read('cpu.weight', nice17), '2');
  t.is(read('cpu.weight.nice', nice17), '17');
  t.is(write('cpu.weight.nice', '19').cpuWeight, 1500 / 1024);
  // cpu.weight → shares = DIV_ROUND_CLOSEST(weight × 1024, 100) → the nearest nice.
  t.is(read('cpu.weight.nice', write('cpu.weight', '100')), '0');
  t.is(read('cpu.weight.nice', write('cpu.weight', '10000')), '-20'); // 102400, nearest 88761
  t.is(read('cpu.weight.nice', write('cpu.weight', '50')), '3'); // 512, nearest 526
  t.is(read('cpu.weight.nice', write('cpu.weight', '1')), '19'); // 10, nearest 15
  t.is(read('cpu.weight.nice', write('cpu.weight', '305')), '-5'); // 3123, nearest 3121
});

test('bad writes are refused with the kernel\'s errno and a line naming the file', (t) => {
  const cases: Array<[file: string, value: string, code: ErrorCode]> = [
    ['cpu.weight', '0', 'ERANGE'],
    ['cpu.weight', '10001', 'ERANGE'],
    ['cpu.weight', '99999999999999999999999', 'ERANGE'],
    ['cpu.weight', 'heavy', 'EINVAL'],
    ['cpu.weight', '-1', 'EINVAL'],
    ['cpu.weight', '1.5', 'EINVAL'],
    ['cpu.weight.nice', '20', 'ERANGE'],
    ['cpu.weight.nice', '-21', 'ERANGE'],
    ['cpu.weight.nice', 'low', 'EINVAL'],
    ['cpu.max', '999', 'EINVAL'],
    ['cpu.max', 'max 999', 'EINVAL'],
    ['cpu.max', '50000 1000001', 'EINVAL'],
    ['cpu.max', '17592186044416', 'EINVAL'],
    ['cpu.max', 'half', 'EINVAL'],
    ['cpu.max', '', 'EINVAL'],
    ['cpu.max', '50000 100000 1', 'EINVAL'],
    ['cpu.max.burst', '-1', 'EINVAL'],
    ['cpuset.cpus', '4', 'EINVAL'],
    ['cpuset.cpus', '3-1', 'EINVAL'],
    ['cpuset.cpus', '0-3:3/2', 'EINVAL'],
    ['cpuset.cpus', 'first', 'EINVAL'],
    ['memory.max', 'lots', 'EINVAL'],
    ['memory.high', '-1G', 'EINVAL'],
    ['memory.low', '', 'EINVAL'],
    ['pids.max', '-1', 'EINVAL'],
    ['pids.max', '4194305', 'EINVAL'],
    ['pids.max', 'many', 'EINVAL'],
    ['io.weight', '0', 'EINVAL'],
    ['io.weight', '10001', 'EINVAL'],
    ['io.weight', 'heavy', 'EINVAL'],
    ['io.weight', '254:0 200', 'EINVAL'],
    ['io.max', '8:0 rbps=1', 'ENODEV'],
    ['io.max', 'sda rbps=1', 'EINVAL'],
    ['io.max', '254:0 rbps=0', 'ERANGE'],
    ['io.max', '254:0 speed=1', 'EINVAL'],
    ['io.max', '254:0 toString=1', 'EINVAL'],
    ['io.max', '254:0 rbps', 'EINVAL'],
    ['io.max', '254:0 rbps=fast', 'EINVAL'],
    ['cgroup.freeze', '2', 'ERANGE'],
    ['cgroup.freeze', 'yes', 'EINVAL'],
    ['cgroup.kill', '0', 'ERANGE'],
    ['cgroup.kill', 'now', 'EINVAL'],
    ['memory.current', '1', 'EACCES'],
    ['cpu.stat', '1', 'EACCES'],
    ['cpu.pressure', 'some 150000 1000000', 'EACCES'],
    ['cpu.shares', '1024', 'ENOENT'],
  ];
  for (const [file, value, code] of cases) {
    const error = refusal(file, value);
    t.is(error.code, code, `${file} ← ${JSON.stringify(value)}: ${error.message}`);
    t.true(error.message.includes(file) && !error.message.includes('\n'), error.message);
  }
  t.is(refusal('cpu.weight', '0').message, 'cpu.weight: 0 is out of range 1..10000');
  t.is(refusal('memory.current', '1').message, 'memory.current is read-only');
  const quota = write('cpu.max', '50000');
  t.is(refusal('cpu.max.burst', '50001', quota).code, 'EINVAL');
  t.is(refusal('cpu.max', '10000', write('cpu.max.burst', '20000', quota)).code, 'EINVAL');
});

test('reading a write-only or unknown file throws', (t) => {
  t.is(t.throws(() => read('cgroup.kill'), { instanceOf: SlicelabError })!.code, 'EACCES');
  t.is(t.throws(() => read('cpu.shares'), { instanceOf: SlicelabError })!.code, 'ENOENT');
});

test('PSI averages follow the kernel: 50 % stall for 60 s gives avg10 ≈ 50', (t) => {
  const pressure = new Pressure(0);
  for (let now = 2000; now <= 60_000; now += 2000) {
    pressure.stall('some', 1_000_000); // half of each 2 s period
    pressure.tick(now);
  }
  const busy = pressure.snapshot();
  t.true(Math.abs(busy.some.avg10 - 50) < 0.5, `avg10 ${busy.some.avg10}`);
  t.true(Math.abs(busy.some.avg60 - 50 * (1 - Math.exp(-1))) < 0.5, `avg60 ${busy.some.avg60}`);
  t.true(Math.abs(busy.some.avg300 - 50 * (1 - Math.exp(-0.2))) < 0.5, `avg300 ${busy.some.avg300}`);
  t.is(busy.some.total, 30_000_000);
  t.deepEqual(busy.full, { avg10: 0, avg60: 0, avg300: 0, total: 0 });

  // 10 s without stall decays avg10 by e (five 2 s steps of exp(-2/10)); a late tick catches up in one go.
  const decayed = new Pressure(0);
  const late = new Pressure(0);
  for (let now = 2000; now <= 60_000; now += 2000) {
    for (const p of [decayed, late]) {
      p.stall('full', 1_000_000);
      p.tick(now);
    }
  }
  for (let now = 62_000; now <= 70_000; now += 2000) decayed.tick(now);
  late.tick(70_000);
  const [d, l] = [decayed.snapshot(), late.snapshot()];
  t.true(Math.abs(d.full.avg10 - busy.some.avg10 / Math.E) < 0.5, `decayed avg10 ${d.full.avg10}`);
  t.true(Math.abs(d.full.avg10 - l.full.avg10) < 0.1, `${d.full.avg10} vs ${l.full.avg10}`);
  t.is(d.some.total, 30_000_000); // full stall is some stall too
});

test('PSI never reports more than 100 % and carries the excess into the next period', (t) => {
  const pressure = new Pressure(0);
  pressure.stall('some', 3_000_000); // 3 s of stall reported within one 2 s period
  pressure.tick(1000);
  t.is(pressure.snapshot().some.avg10, 0); // not yet a period boundary
  pressure.tick(2000);
  const first = pressure.snapshot().some.avg10;
  pressure.tick(4000);
  const second = pressure.snapshot().some.avg10;
  t.true(first <= 100 && first > 18, `${first}`); // 100 % for one period: (1 − 0.819) × 100
  t.true(second > first, `${second}`); // the remaining 1 s arrives as 50 %
  t.is(readCgroupFile('cpu.pressure', defaultLimits(), { ...emptyCounters(), pressure: { ...emptyCounters().pressure, cpu: pressure.snapshot() } }, cores).split('\n')[0],
    `some avg10=${second.toFixed(2)} avg60=${pressure.snapshot().some.avg60.toFixed(2)} avg300=${pressure.snapshot().some.avg300.toFixed(2)} total=3000000`);
});
