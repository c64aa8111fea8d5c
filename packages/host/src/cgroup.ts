/**
 * A container's cgroup as data: the limits it holds, the kernel's rules for changing them, and every control
 * file printed exactly as Linux cgroup v2 prints it.
 *
 * Division of labour:
 *   this module: file names, syntax, ranges, errno names and output formats (no clocks, no processes);
 *   the scheduler and memory code: hold a `CgroupLimits`, apply `writeCgroupFile` on `cgroup set`, and pass
 *     the live `CgroupCounters` to `readCgroupFile` on `cgroup get`;
 *   `Pressure`: turns stall time reported by those subsystems into PSI averages, as kernel/sched/psi.c does.
 *
 * Units are the kernel's: µs for CPU time, bytes for memory (whole 4 KiB pages), bytes/s and IO/s for io.max.
 * A read returns the file's text without its final newline; an empty file reads as "".
 */
import { SlicelabError, parseSize, type ErrorCode } from '@slicelab/protocol';

export interface CpuMax {
  /** µs of CPU per period; null is "max" (no limit). */
  quota: number | null;
  /** µs. */
  period: number;
}

export interface IoMax {
  /** Bytes per second; null is "max". */
  rbps: number | null;
  wbps: number | null;
  /** IOs per second; null is "max". */
  riops: number | null;
  wiops: number | null;
}

export interface CgroupLimits {
  /**
   * cpu.weight, 1..10000. The kernel keeps the scheduler's share (1024 at weight 100), so after a
   * cpu.weight.nice write this holds that share exactly, share × 100 / 1024, which can be fractional
   * (nice 19 is 1.46); cpu.weight then reads it rounded.
   */
  cpuWeight: number;
  cpuMax: CpuMax;
  /** µs a period may borrow from earlier unused quota; 0..quota. */
  cpuMaxBurst: number;
  /** cpuset.cpus, sorted; null is all the host's cores. */
  cpus: number[] | null;
  /** Bytes, a multiple of 4096; null is "max". */
  memoryMax: number | null;
  memoryHigh: number | null;
  /** Bytes of protected memory, a multiple of 4096; null is "max" (all of it). */
  memoryLow: number | null;
  pidsMax: number | null;
  ioWeight: number;
  ioMax: IoMax;
  /** cgroup.freeze. */
  frozen: boolean;
}

export function defaultLimits(): CgroupLimits {
  return {
    cpuWeight: 100,
    cpuMax: { quota: null, period: 100_000 },
    cpuMaxBurst: 0,
    cpus: null,
    memoryMax: null,
    memoryHigh: null,
    memoryLow: 0,
    pidsMax: null,
    ioWeight: 100,
    ioMax: { rbps: null, wbps: null, riops: null, wiops: null },
    frozen: false,
  };
}

export interface PsiLine {
  /** Percent of wall time stalled, two decimals, as the kernel prints it. */
  avg10: number;
  avg60: number;
  avg300: number;
  /** µs stalled since the cgroup was created. */
  total: number;
}

export interface PsiSnapshot {
  some: PsiLine;
  full: PsiLine;
}

/** What the live system reports; readCgroupFile only formats it. */
export interface CgroupCounters {
  cpu: {
    usageUsec: number; userUsec: number; systemUsec: number;
    nrPeriods: number; nrThrottled: number; throttledUsec: number; nrBursts: number; burstUsec: number;
  };
  memory: { current: number; peak: number; events: { low: number; high: number; max: number; oom: number; oomKill: number } };
  pids: { current: number; peak: number; eventsMax: number };
  io: { rbytes: number; wbytes: number; rios: number; wios: number };
  pressure: { cpu: PsiSnapshot; memory: PsiSnapshot; io: PsiSnapshot };
  procs: number[];
  populated: boolean;
  /** processes still on a core: a freezing cgroup reports frozen 1 once none is, as the kernel does */
  onCores: number;
}

/** The counters of a cgroup that has not run anything yet. */
export function emptyCounters(): CgroupCounters {
  return {
    cpu: { usageUsec: 0, userUsec: 0, systemUsec: 0, nrPeriods: 0, nrThrottled: 0, throttledUsec: 0, nrBursts: 0, burstUsec: 0 },
    memory: { current: 0, peak: 0, events: { low: 0, high: 0, max: 0, oom: 0, oomKill: 0 } },
    pids: { current: 0, peak: 0, eventsMax: 0 },
    io: { rbytes: 0, wbytes: 0, rios: 0, wios: 0 },
    pressure: { cpu: new Pressure().snapshot(), memory: new Pressure().snapshot(), io: new Pressure().snapshot() },
    procs: [],
    populated: false,
    onCores: 0,
  };
}

// ---------------------------------------------------------------------------------------------------------
// PSI: kernel/sched/psi.c averaging, in the kernel's fixed point (include/linux/sched/loadavg.h).

const psiPeriodMs = 2000; // PSI_FREQ: the averages move every 2 s
const fixed1 = 2048; // FIXED_1: 11 bits of fraction
const psiExp = [1677, 1981, 2034] as const; // EXP_10s, EXP_60s, EXP_300s = FIXED_1 / exp(2 s / window)

export type StallKind = 'some' | 'full';

/** a1 = a0 · e + a · (1 − e), rounding up while the load rises: calc_load(). */
function calcLoad(load: number, exp: number, active: number): number {
  let next = load * exp + active * (fixed1 - exp);
  if (active >= load) next += fixed1 - 1;
  return Math.floor(next / fixed1);
}

/** x^n in fixed point, rounding each step: fixed_power_int(). */
function fixedPower(x: number, n: number): number {
  let result = fixed1;
  for (let base = x, rest = n; rest > 0; rest = Math.floor(rest / 2)) {
    if (rest % 2 === 1) result = Math.floor((result * base + fixed1 / 2) / fixed1);
    base = Math.floor((base * base + fixed1 / 2) / fixed1);
  }
  return result;
}

/** LOAD_INT.LOAD_FRAC of a fixed-point percentage. */
function loadPercent(load: number): number {
  return Math.floor(load / fixed1) + Math.floor(((load % fixed1) * 100) / fixed1) / 100;
}

/**
 * Pressure stall information for one resource of one cgroup. Subsystems report stalled time as it happens;
 * `tick` folds it into the 10 s / 60 s / 300 s averages once per 2 s period, catching up on periods it missed.
 * "full" means every runnable process of the cgroup was stalled; such time is also "some" time, so report
 * each stalled interval once, with the kind it had.
 */
/** PSI as data: totals, averages, and the next update relative to now. */
export interface PressureState {
  total: Record<StallKind, number>;
  averaged: Record<StallKind, number>;
  avg: Record<StallKind, number[]>;
  /** ms since the last update, ms until the next */
  sinceUpdateMs: number;
  untilUpdateMs: number;
}

export class Pressure {
  private readonly total: Record<StallKind, number> = { some: 0, full: 0 };
  private readonly averaged: Record<StallKind, number> = { some: 0, full: 0 };
  private readonly avg: Record<StallKind, number[]> = { some: [0, 0, 0], full: [0, 0, 0] };
  private lastUpdateMs: number;
  private nextUpdateMs: number;

  constructor(nowMs = 0) {
    this.lastUpdateMs = nowMs;
    this.nextUpdateMs = nowMs + psiPeriodMs;
  }

  save(nowMs: number): PressureState {
    return {
      total: { ...this.total }, averaged: { ...this.averaged }, avg: { some: [...this.avg.some], full: [...this.avg.full] },
      sinceUpdateMs: nowMs - this.lastUpdateMs, untilUpdateMs: this.nextUpdateMs - nowMs,
    };
  }

  static restore(state: PressureState, nowMs: number): Pressure {
    const pressure = new Pressure(nowMs);
    Object.assign(pressure.total, state.total);
    Object.assign(pressure.averaged, state.averaged);
    pressure.avg.some = [...state.avg.some];
    pressure.avg.full = [...state.avg.full];
    pressure.lastUpdateMs = nowMs - state.sinceUpdateMs;
    pressure.nextUpdateMs = nowMs + state.untilUpdateMs;
    return pressure;
  }

  stall(kind: StallKind, usec: number): void {
    this.total.some += usec;
    if (kind === 'full') this.total.full += usec;
  }

  /** update_averages(): call as often as convenient; the averages move only at period boundaries. */
  tick(nowMs: number): void {
    if (nowMs < this.nextUpdateMs) return;
    const missed = nowMs - this.nextUpdateMs >= psiPeriodMs ? Math.floor((nowMs - this.nextUpdateMs) / psiPeriodMs) : 0;
    const periodUsec = (nowMs - (this.lastUpdateMs + missed * psiPeriodMs)) * 1000;
    this.nextUpdateMs += (1 + missed) * psiPeriodMs;
    this.lastUpdateMs = nowMs;
    for (const kind of ['some', 'full'] as const) {
      // Stall beyond the period's length is carried into the next period rather than reported above 100 %.
      const sample = Math.min(this.total[kind] - this.averaged[kind], periodUsec);
      this.averaged[kind] += sample;
      const pct = Math.floor((sample * 100) / periodUsec) * fixed1;
      this.avg[kind] = this.avg[kind].map((load, w) => {
        const idle = missed > 0 ? calcLoad(load, fixedPower(psiExp[w]!, missed), 0) : load;
        return calcLoad(idle, psiExp[w]!, pct);
      });
    }
  }

  snapshot(): PsiSnapshot {
    const line = (kind: StallKind): PsiLine => {
      const [avg10, avg60, avg300] = this.avg[kind].map(loadPercent) as [number, number, number];
      return { avg10, avg60, avg300, total: Math.floor(this.total[kind]) };
    };
    return { some: line('some'), full: line('full') };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The files.

export interface CgroupFileInfo {
  readable: boolean;
  writable: boolean;
  description: string;
}

const ro = { readable: true, writable: false } as const;
const rw = { readable: true, writable: true } as const;

export const cgroupFiles = {
  'cgroup.procs': { ...ro, description: 'pids of the processes in the container, one per line' },
  'cgroup.events': { ...ro, description: 'populated (has processes) and frozen (1 once a freeze has stopped every process), 0 or 1' },
  'cgroup.freeze': { ...rw, description: '1 stops every process of the container at its next step, 0 resumes them' },
  'cgroup.kill': { readable: false, writable: true, description: 'writing 1 kills every process of the container' },
  'cpu.weight': { ...rw, description: 'proportional CPU share, 1..10000 (default 100)' },
  'cpu.weight.nice': { ...rw, description: 'cpu.weight as a nice value, -20..19' },
  'cpu.max': { ...rw, description: 'hard CPU limit "$MAX $PERIOD" in µs; MAX may be "max"' },
  'cpu.max.burst': { ...rw, description: 'µs of unused quota a period may borrow, 0..quota' },
  'cpu.stat': { ...ro, description: 'CPU time used and throttling statistics' },
  'cpuset.cpus': { ...rw, description: 'cores the container may run on, list syntax ("0-1,3"); empty is all' },
  'cpuset.cpus.effective': { ...ro, description: 'cores the container actually runs on' },
  'memory.current': { ...ro, description: 'bytes of memory in use' },
  'memory.max': { ...rw, description: 'hard memory limit in bytes (K/M/G suffixes) or "max"; OOM kill above it' },
  'memory.high': { ...rw, description: 'memory throttle limit in bytes or "max"; never OOM kills' },
  'memory.low': { ...rw, description: 'bytes of memory protected from reclaim, or "max"' },
  'memory.peak': { ...ro, description: 'highest memory.current seen' },
  'memory.events': { ...ro, description: 'times the low, high and max limits were hit, OOMs and OOM kills' },
  'pids.max': { ...rw, description: 'most processes the container may have, or "max"' },
  'pids.current': { ...ro, description: 'processes in the container' },
  'pids.peak': { ...ro, description: 'highest pids.current seen' },
  'pids.events': { ...ro, description: 'forks refused at pids.max' },
  'io.weight': { ...rw, description: 'proportional IO share, "default N" or "N", 1..10000 (default 100)' },
  'io.max': { ...rw, description: 'IO limits on the host disk, "254:0 rbps=N wbps=N riops=N wiops=N" ("max" lifts one)' },
  'io.stat': { ...ro, description: 'bytes and IOs read and written on the host disk' },
  'cpu.pressure': { ...ro, description: 'share of time processes waited for a CPU (PSI)' },
  'memory.pressure': { ...ro, description: 'share of time processes waited for memory (PSI)' },
  'io.pressure': { ...ro, description: 'share of time processes waited for IO (PSI)' },
} as const satisfies Record<string, CgroupFileInfo>;

export type CgroupFile = keyof typeof cgroupFiles;
type ReadableFile = { [F in CgroupFile]: (typeof cgroupFiles)[F]['readable'] extends true ? F : never }[CgroupFile];
type WritableFile = { [F in CgroupFile]: (typeof cgroupFiles)[F]['writable'] extends true ? F : never }[CgroupFile];

function cgroupFile(name: string): CgroupFile {
  if (!Object.hasOwn(cgroupFiles, name)) throw new SlicelabError('ENOENT', `${name}: no such cgroup file`);
  return name as CgroupFile;
}

// ---------------------------------------------------------------------------------------------------------
// Kernel constants and conversions.

/** sched_prio_to_weight[] (kernel/sched/core.c): the scheduler share of nice -20..19. */
const niceToShares = [
  88761, 71755, 56483, 46273, 36291,
  29154, 23254, 18705, 14949, 11916,
  9548, 7620, 6100, 4904, 3906,
  3121, 2501, 1991, 1586, 1277,
  1024, 820, 655, 526, 423,
  335, 272, 215, 172, 137,
  110, 87, 70, 56, 45,
  36, 29, 23, 18, 15,
] as const;

const weightMin = 1; // CGROUP_WEIGHT_MIN
const weightMax = 10_000; // CGROUP_WEIGHT_MAX
const bandwidthMinUsec = 1000; // min_bw_quota_period_us
const periodMaxUsec = 1_000_000; // max_bw_quota_period_us
const runtimeMaxUsec = 2 ** 44 - 1; // max_bw_runtime_us = MAX_BW (BW_SHIFT 20): about 203 days
const u64Max = 2n ** 64n - 1n;
const usecMax = Number(u64Max / 1000n); // a µs value must survive conversion to ns
const pageSize = 4096;
const pageCounterMax = 2 ** 51 - 1; // PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE; a limit this high reads "max"
const pidsMax = 4 * 1024 * 1024 + 1; // PIDS_MAX = PID_MAX_LIMIT + 1 on 64-bit
const iopsMax = 2 ** 32 - 1; // UINT_MAX: io.max stores iops in 32 bits and prints UINT_MAX as "max"
const hostDisk = '254:0';

/** The scheduler share the kernel keeps for a cgroup weight: DIV_ROUND_CLOSEST(weight × 1024, 100). */
function sharesOf(weight: number): number {
  return Math.round((weight * 1024) / 100);
}

/** cpu_weight_nice_read_s64(): the nice value whose share is closest, the lower nice on a tie. */
function niceOf(weight: number): number {
  const shares = sharesOf(weight);
  let index = 0;
  while (index + 1 < niceToShares.length && Math.abs(niceToShares[index + 1]! - shares) < Math.abs(niceToShares[index]! - shares)) index++;
  return index - 20;
}

// ---------------------------------------------------------------------------------------------------------
// Reading.

type Reader = (limits: CgroupLimits, counters: CgroupCounters, hostCores: number) => string;

const int = (n: number): string => String(Math.floor(n));
const orMax = (n: number | null): string => (n === null ? 'max' : int(n));
const keyLines = (pairs: Array<[string, number]>): string => pairs.map(([key, n]) => `${key} ${int(n)}`).join('\n');

function psiText(psi: PsiSnapshot): string {
  const line = (kind: StallKind, l: PsiLine) =>
    `${kind} avg10=${l.avg10.toFixed(2)} avg60=${l.avg60.toFixed(2)} avg300=${l.avg300.toFixed(2)} total=${int(l.total)}`;
  return `${line('some', psi.some)}\n${line('full', psi.full)}`;
}

function cpuListText(cpus: readonly number[]): string {
  const ranges: string[] = [];
  for (let i = 0; i < cpus.length; ) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j]! + 1) j++;
    ranges.push(i === j ? `${cpus[i]}` : `${cpus[i]}-${cpus[j]}`);
    i = j + 1;
  }
  return ranges.join(',');
}

/** The cores a container runs on: its cpuset within the host, or all of the host if that leaves none. */
export function effectiveCpus(cpus: readonly number[] | null, hostCores: number): number[] {
  const all = Array.from({ length: hostCores }, (_, core) => core);
  const usable = cpus?.filter((core) => core < hostCores) ?? [];
  return usable.length > 0 ? usable : all;
}

const readers: Record<ReadableFile, Reader> = {
  'cgroup.procs': (_l, c) => c.procs.join('\n'),
  'cgroup.events': (l, c) => `populated ${+c.populated}\nfrozen ${+(l.frozen && c.onCores === 0)}`,
  'cgroup.freeze': (l) => `${+l.frozen}`,
  'cpu.weight': (l) => String(cpuWeightRead(l)),
  'cpu.weight.nice': (l) => String(niceOf(l.cpuWeight)),
  'cpu.max': (l) => `${orMax(l.cpuMax.quota)} ${int(l.cpuMax.period)}`,
  'cpu.max.burst': (l) => int(l.cpuMaxBurst),
  'cpu.stat': (_l, { cpu }) => keyLines([
    ['usage_usec', cpu.usageUsec], ['user_usec', cpu.userUsec], ['system_usec', cpu.systemUsec],
    ['nr_periods', cpu.nrPeriods], ['nr_throttled', cpu.nrThrottled], ['throttled_usec', cpu.throttledUsec],
    ['nr_bursts', cpu.nrBursts], ['burst_usec', cpu.burstUsec],
  ]),
  'cpuset.cpus': (l) => cpuListText(l.cpus ?? []),
  'cpuset.cpus.effective': (l, _c, hostCores) => cpuListText(effectiveCpus(l.cpus, hostCores)),
  'memory.current': (_l, c) => int(c.memory.current),
  'memory.max': (l) => orMax(l.memoryMax),
  'memory.high': (l) => orMax(l.memoryHigh),
  'memory.low': (l) => orMax(l.memoryLow),
  'memory.peak': (_l, c) => int(c.memory.peak),
  'memory.events': (_l, { memory: { events: e } }) => keyLines([
    ['low', e.low], ['high', e.high], ['max', e.max], ['oom', e.oom], ['oom_kill', e.oomKill],
  ]),
  'pids.max': (l) => orMax(l.pidsMax),
  'pids.current': (_l, c) => int(c.pids.current),
  'pids.peak': (_l, c) => int(c.pids.peak),
  'pids.events': (_l, c) => `max ${int(c.pids.eventsMax)}`,
  'io.weight': (l) => `default ${int(l.ioWeight)}`,
  // Nothing is printed for a device without limits (tg_prfill_limit()).
  'io.max': ({ ioMax: m }) => (Object.values(m).every((v) => v === null)
    ? ''
    : `${hostDisk} rbps=${orMax(m.rbps)} wbps=${orMax(m.wbps)} riops=${orMax(m.riops)} wiops=${orMax(m.wiops)}`),
  // A cgroup has no entry for a disk it never used (its blkg does not exist yet); discards are not emulated.
  'io.stat': (_l, { io }) => (io.rbytes + io.wbytes + io.rios + io.wios === 0
    ? ''
    : `${hostDisk} rbytes=${int(io.rbytes)} wbytes=${int(io.wbytes)} rios=${int(io.rios)} wios=${int(io.wios)} dbytes=0 dios=0`),
  'cpu.pressure': (_l, c) => psiText(c.pressure.cpu),
  'memory.pressure': (_l, c) => psiText(c.pressure.memory),
  'io.pressure': (_l, c) => psiText(c.pressure.io),
};

/** The text of a cgroup file, as `cat` shows it on Linux (without the final newline). */
export function readCgroupFile(file: string, limits: CgroupLimits, counters: CgroupCounters, hostCores: number): string {
  const name = cgroupFile(file);
  if (!cgroupFiles[name].readable) throw new SlicelabError('EACCES', `${name} is write-only`);
  return readers[name as ReadableFile](limits, counters, hostCores);
}

// ---------------------------------------------------------------------------------------------------------
// Writing.

/** cpu.weight as it reads back: after a cpu.weight.nice write, the nice's weight in cpu.weight's scale, rounded */
export function cpuWeightRead(limits: CgroupLimits): number {
  return Math.round((sharesOf(limits.cpuWeight) * 100) / 1024);
}

function refuse(code: ErrorCode, file: string, problem: string): SlicelabError {
  return new SlicelabError(code, `${file}: ${problem}`);
}

const integerSyntax = /^([+-]?)(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)$/i;
const integerBounds = {
  u64: [0n, u64Max],
  s64: [-(2n ** 63n), 2n ** 63n - 1n],
  s32: [-(2n ** 31n), 2n ** 31n - 1n],
} as const;

/** kstrtoull / kstrtoll / kstrtoint with base 0: decimal, 0x hex or 0 octal; EINVAL if not a number, ERANGE on overflow. */
function kernelInteger(file: string, text: string, type: keyof typeof integerBounds): number {
  const match = integerSyntax.exec(text);
  if (!match || (match[1] === '-' && type === 'u64')) throw refuse('EINVAL', file, `"${text}" is not ${type === 'u64' ? 'a non-negative integer' : 'an integer'}`);
  const digits = match[2]!;
  const magnitude = /^0[0-7]/.test(digits) ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  const value = match[1] === '-' ? -magnitude : magnitude;
  const [min, max] = integerBounds[type];
  if (value < min || value > max) throw refuse('ERANGE', file, `${text} is out of range`);
  return Number(value);
}

/** A decimal number of microseconds, as sscanf("%llu") reads cpu.max. */
function decimalUsec(file: string, text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw refuse('EINVAL', file, `${what} "${text}" is not a number of µs`);
  return Number(text);
}

/** page_counter_memparse(): "max" or a size, rounded down to whole pages. */
function memoryLimit(file: string, text: string): number | null {
  if (text === 'max') return null;
  let bytes: number;
  try {
    bytes = parseSize(text);
  } catch (error) {
    if (error instanceof SlicelabError) throw refuse('EINVAL', file, `${error.message} (write bytes, a K/M/G/T size or "max")`);
    throw error;
  }
  const pages = Math.floor(bytes / pageSize);
  return pages >= pageCounterMax ? null : pages * pageSize;
}

/** tg_set_bandwidth(): the checks shared by cpu.max and cpu.max.burst, all EINVAL. */
function setBandwidth(file: string, next: CgroupLimits, period: number, quota: number | null, burst: number): void {
  if (quota !== null && quota < bandwidthMinUsec) throw refuse('EINVAL', file, `quota ${quota} µs is below the minimum ${bandwidthMinUsec} µs`);
  if (period < bandwidthMinUsec) throw refuse('EINVAL', file, `period ${period} µs is below the minimum ${bandwidthMinUsec} µs`);
  if (period > periodMaxUsec) throw refuse('EINVAL', file, `period ${period} µs is above the maximum ${periodMaxUsec} µs`);
  if (burst > usecMax) throw refuse('EINVAL', file, `burst ${burst} µs is too large`);
  if (quota !== null) {
    if (quota > runtimeMaxUsec) throw refuse('EINVAL', file, `quota ${quota} µs is above the maximum ${runtimeMaxUsec} µs`);
    if (burst > quota) throw refuse('EINVAL', file, `burst ${burst} µs is above the quota ${quota} µs`);
    if (burst + quota > runtimeMaxUsec) throw refuse('EINVAL', file, `quota + burst is above the maximum ${runtimeMaxUsec} µs`);
  }
  next.cpuMax = { quota, period };
  next.cpuMaxBurst = burst;
}

/** bitmap_parselist() for cpuset.cpus: "0-1,3", "0-7:2/4" (2 of every 4), "all", "N" (the last core). */
function cpuList(file: string, text: string, hostCores: number): number[] | null {
  const last = hostCores - 1;
  const number = (s: string): number => (s === 'N' ? last : Number(s));
  const cpus = new Set<number>();
  for (const region of text.split(/[\s,]+/).filter((r) => r !== '')) {
    const match = /^(?:(all)|(\d+|N)(?:-(\d+|N))?)(?::(\d+)\/(\d+))?$/.exec(region);
    if (!match || (match[4] !== undefined && match[2] !== undefined && match[3] === undefined)) {
      throw refuse('EINVAL', file, `"${region}" is not a cpu, a range "A-B" or a pattern "A-B:USED/GROUP"`);
    }
    const start = match[1] ? 0 : number(match[2]!);
    const end = match[1] ? last : number(match[3] ?? match[2]!);
    const used = match[4] === undefined ? 1 : Number(match[4]);
    const group = match[5] === undefined ? 1 : Number(match[5]);
    if (start > end || group === 0 || used > group) throw refuse('EINVAL', file, `"${region}" is not a valid range`);
    if (end > last) throw refuse('EINVAL', file, `cpu ${end} is not on this host (cpus 0-${last})`);
    for (let base = start; base <= end; base += group) {
      for (let core = base; core < base + used && core <= end; core++) cpus.add(core);
    }
  }
  return cpus.size > 0 ? [...cpus].sort((a, b) => a - b) : null;
}

/** tg_set_limit(): "254:0 key=value ..." where value is a positive number or "max". */
function ioLimits(file: string, text: string, current: IoMax): IoMax {
  const [device = '', ...settings] = text.split(/\s+/);
  const parsed = /^(\d+):(\d+)$/.exec(device);
  if (!parsed) throw refuse('EINVAL', file, `"${device}" is not a device MAJ:MIN`);
  if (`${Number(parsed[1])}:${Number(parsed[2])}` !== hostDisk) throw refuse('ENODEV', file, `no device ${device} (the host disk is ${hostDisk})`);
  const next = { ...current };
  for (const setting of settings) {
    const [, key, value] = /^([^=]*)=(.*)$/.exec(setting) ?? [];
    if (key === undefined || value === undefined || (value !== 'max' && !/^\d+$/.test(value))) {
      throw refuse('EINVAL', file, `"${setting}" is not key=N or key=max`);
    }
    if (value !== 'max' && BigInt(value) === 0n) throw refuse('ERANGE', file, `${key}=0 is out of range (use ${key}=max to lift the limit)`);
    if (!Object.hasOwn(next, key)) throw refuse('EINVAL', file, `unknown key "${key}" (rbps, wbps, riops, wiops)`);
    const ceiling = key === 'riops' || key === 'wiops' ? BigInt(iopsMax) : u64Max;
    next[key as keyof IoMax] = value === 'max' || BigInt(value) >= ceiling ? null : Number(value);
  }
  return next;
}

/** Applies a write to `next` (a copy of the limits); 'kill' asks the caller to kill every process. */
type Writer = (file: string, value: string, next: CgroupLimits, hostCores: number) => 'kill' | void;

const writers: Record<WritableFile, Writer> = {
  'cgroup.freeze': (file, value, next) => {
    const freeze = kernelInteger(file, value, 's32');
    if (freeze !== 0 && freeze !== 1) throw refuse('ERANGE', file, `${freeze} is out of range 0..1`);
    next.frozen = freeze === 1;
  },
  'cgroup.kill': (file, value) => {
    const kill = kernelInteger(file, value, 's32');
    if (kill !== 1) throw refuse('ERANGE', file, `${kill} is out of range (write 1 to kill)`);
    return 'kill';
  },
  'cpu.weight': (file, value, next) => {
    const weight = kernelInteger(file, value, 'u64');
    if (weight < weightMin || weight > weightMax) throw refuse('ERANGE', file, `${weight} is out of range ${weightMin}..${weightMax}`);
    next.cpuWeight = weight;
  },
  'cpu.weight.nice': (file, value, next) => {
    const nice = kernelInteger(file, value, 's64');
    if (nice < -20 || nice > 19) throw refuse('ERANGE', file, `${nice} is out of range -20..19`);
    next.cpuWeight = (niceToShares[nice + 20]! * 100) / 1024;
  },
  'cpu.max': (file, value, next) => {
    const [max, period, ...rest] = value.split(/\s+/);
    if (!max || rest.length > 0) throw refuse('EINVAL', file, `"${value}" is not "$MAX $PERIOD" or "$MAX"`);
    const quota = max === 'max' ? null : decimalUsec(file, max, 'quota');
    setBandwidth(file, next, period === undefined ? next.cpuMax.period : decimalUsec(file, period, 'period'), quota, next.cpuMaxBurst);
  },
  'cpu.max.burst': (file, value, next) => {
    setBandwidth(file, next, next.cpuMax.period, next.cpuMax.quota, kernelInteger(file, value, 'u64'));
  },
  'cpuset.cpus': (file, value, next, hostCores) => {
    next.cpus = cpuList(file, value, hostCores);
  },
  'memory.max': (file, value, next) => {
    next.memoryMax = memoryLimit(file, value);
  },
  'memory.high': (file, value, next) => {
    next.memoryHigh = memoryLimit(file, value);
  },
  'memory.low': (file, value, next) => {
    next.memoryLow = memoryLimit(file, value);
  },
  'pids.max': (file, value, next) => {
    if (value === 'max') {
      next.pidsMax = null;
      return;
    }
    const limit = kernelInteger(file, value, 's64');
    if (limit < 0 || limit >= pidsMax) throw refuse('EINVAL', file, `${limit} is out of range 0..${pidsMax - 1}`);
    next.pidsMax = limit;
  },
  'io.weight': (file, value, next) => {
    if (value.includes(':')) throw refuse('EINVAL', file, 'per-device weights are not emulated; write "default N" or "N"');
    const weight = /^(?:default\s+)?(\d+)$/.exec(value)?.[1];
    if (weight === undefined) throw refuse('EINVAL', file, `"${value}" is not "default N" or "N"`);
    if (Number(weight) < weightMin || Number(weight) > weightMax) throw refuse('EINVAL', file, `${weight} is out of range ${weightMin}..${weightMax}`);
    next.ioWeight = Number(weight);
  },
  'io.max': (file, value, next) => {
    next.ioMax = ioLimits(file, value, next.ioMax);
  },
};

function copyLimits(limits: CgroupLimits): CgroupLimits {
  return { ...limits, cpuMax: { ...limits.cpuMax }, cpus: limits.cpus && [...limits.cpus], ioMax: { ...limits.ioMax } };
}

/**
 * Applies `echo value > file`: returns new limits (the input is left alone) and `kill: true` when the write
 * asks to kill every process. Refuses as the kernel does, with its errno name (ENODEV, which our codes lack,
 * becomes ENOENT).
 */
export function writeCgroupFile(file: string, value: string, limits: CgroupLimits, hostCores: number): { limits: CgroupLimits; kill?: true } {
  const name = cgroupFile(file);
  if (!cgroupFiles[name].writable) throw new SlicelabError('EACCES', `${name} is read-only`);
  const next = copyLimits(limits);
  return writers[name as WritableFile](name, value.trim(), next, hostCores) === 'kill' ? { limits: next, kill: true } : { limits: next };
}
