/**
 * The CPU benchmarks end to end, short: each starts its own cluster of real host processes, prints JSON,
 * writes its JSON file and SVG chart, and leaves nothing running. Figures on this shared machine are
 * noise at these lengths, so what is checked is what cannot depend on speed: that every summary figure
 * is computed from the rounds or the trace it reports (recomputed here), that work was really done and
 * measured, the limits that must hold however loaded the host is, and, for wfq, the shares by weight
 * within a tolerance far looser than the benchmark's aim but far tighter than ignoring the weights.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness } from './harness.js';

const h = new Harness();
test.after.always(() => h.cleanup());

interface Spread { median: number; low: number; high: number; min: number; max: number }
interface Rate { unitsPerSecond: number; unitsPerCpuSecond: number; cpuShare: number }
const files = (result: { files: { json: string; chart: string } }, title: RegExp) => {
  const saved = JSON.parse(readFileSync(result.files.json, 'utf8'));
  return { saved, chart: existsSync(result.files.chart) && title.test(readFileSync(result.files.chart, 'utf8')) };
};
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
const middle = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
/** A spread that comes from `samples`: the median recomputed, min and max theirs, low and high two of them around the median. */
const spreadOf = (s: Spread, samples: readonly number[]) =>
  close(s.median, middle(samples)) && s.min === Math.min(...samples) && s.max === Math.max(...samples)
  && samples.includes(s.low) && samples.includes(s.high) && s.low <= s.median && s.median <= s.high;

test.serial('bench overhead: paired rounds of lu in a plain thread and in a container, renewed quanta', async (t) => {
  const out = join(h.home, 'overhead');
  const r = await h.cliJson<{
    rounds: Array<{ plain: Omit<Rate, 'cpuShare'>; container: Rate; overhead: number }>;
    plain: Omit<Rate, 'cpuShare'>; container: Rate;
    overhead: Spread; renewedQuanta: number; schedulerCostOfACore: number; mainThreadOfACore: number; files: { json: string; chart: string };
  }>(['bench', 'overhead', '--rounds', '2', '--duration', '400ms', '--out', out], 60_000);
  t.is(r.code, 0, r.stderr);
  t.is(r.rounds.length, 2);
  for (const round of r.rounds) {
    t.true(round.plain.unitsPerSecond > 0 && round.container.unitsPerSecond > 0, 'lu did work on both sides');
    t.true(close(round.overhead, 1 - round.container.unitsPerSecond / round.plain.unitsPerSecond), `overhead ${round.overhead} is not what the round's rates give`);
    // one thread cannot run longer than the window: its work per CPU second is at least its work per second
    t.true(round.plain.unitsPerCpuSecond >= 0.98 * round.plain.unitsPerSecond, `plain ${JSON.stringify(round.plain)}`);
    t.true(round.container.cpuShare > 0 && round.container.cpuShare <= 1.05, `container CPU ${round.container.cpuShare}`);
    t.true(close(round.container.cpuShare, round.container.unitsPerSecond / round.container.unitsPerCpuSecond), 'the container\'s figures come from one window');
  }
  const overheads = r.rounds.map((round) => round.overhead);
  t.true(spreadOf(r.overhead, overheads), `${JSON.stringify(r.overhead)} from rounds ${overheads}`);
  // two rounds are too few for an interval narrower than their range
  t.deepEqual([r.overhead.low, r.overhead.high], [Math.min(...overheads), Math.max(...overheads)]);
  t.true(close(r.plain.unitsPerSecond, middle(r.rounds.map((round) => round.plain.unitsPerSecond))));
  t.true(close(r.container.unitsPerSecond, middle(r.rounds.map((round) => round.container.unitsPerSecond))));
  t.true(close(r.container.cpuShare, middle(r.rounds.map((round) => round.container.cpuShare))));
  // alone on its host, the container's quanta are renewed on its core rather than dispatched again
  t.true(r.renewedQuanta > 0.5 && r.renewedQuanta <= 1, `renewed ${r.renewedQuanta}`);
  // the scheduler runs on the host's main thread, whose CPU time bounds it from above
  t.true(r.schedulerCostOfACore > 0 && r.schedulerCostOfACore <= r.mainThreadOfACore, `scheduler ${r.schedulerCostOfACore}, main thread ${r.mainThreadOfACore}`);
  const { saved, chart } = files(r, /lu units per second/);
  t.deepEqual(saved.rounds, r.rounds);
  t.deepEqual(saved.overhead, r.overhead);
  t.true(chart);
});

test.serial('bench isolation: a row per stress beside the machine floor, and the fork bomb held at pids.max', async (t) => {
  const out = join(h.home, 'isolation');
  const r = await h.cliJson<{
    cores: number;
    rows: Array<{ stress: string; rounds: Array<{ alone: Rate; beside: Rate; slowdown: number }>; slowdown: Spread; alone: Rate; beside: Rate; neighbourCpuShare: number }>;
    floor: { rounds: Array<{ alone: number; beside: number; slowdown: number }>; alone: number; beside: number; slowdown: Spread };
    forkBomb: { pidsMax: number; pidsPeak: number; refusedForks: number; statusMs: { n: number; max: number } };
    files: { json: string; chart: string };
  }>(['bench', 'isolation', '--rounds', '1', '--duration', '300ms', '--pids-max', '16', '--out', out], 120_000);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.rows.map((row) => row.stress), ['cpu', 'memory', 'io', 'fork bomb']);
  for (const row of r.rows) {
    t.is(row.rounds.length, 1);
    const [round] = row.rounds;
    t.true(round!.alone.unitsPerSecond > 0 && round!.beside.unitsPerSecond > 0, `${row.stress}: the victim worked`);
    t.true(close(round!.slowdown, 1 - round!.beside.unitsPerSecond / round!.alone.unitsPerSecond), `${row.stress}: slowdown ${round!.slowdown} is not what its rates give`);
    // of one round, the medians are that round and the whole spread is its one value
    t.true(spreadOf(row.slowdown, [round!.slowdown]), `${row.stress}: ${JSON.stringify(row.slowdown)}`);
    t.deepEqual([row.alone, row.beside], [round!.alone, round!.beside]);
    // the victim is one process: at most one core; with its neighbour, at most the host's cores between them
    // (a quantum is counted when it ends, so a 300 ms window may hold up to a quantum more per core)
    for (const rate of [round!.alone, round!.beside]) t.true(rate.cpuShare > 0 && rate.cpuShare <= 1.1, `${row.stress}: victim CPU ${rate.cpuShare}`);
    t.true(row.neighbourCpuShare >= 0 && round!.beside.cpuShare + row.neighbourCpuShare <= r.cores * 1.1, `${row.stress}: victim ${round!.beside.cpuShare} + neighbour ${row.neighbourCpuShare} cores`);
  }
  t.true(r.rows[0]!.neighbourCpuShare > 0.1, `the cpu stress ran beside the victim: ${r.rows[0]!.neighbourCpuShare} cores`);
  t.is(r.floor.rounds.length, 1);
  const [floor] = r.floor.rounds;
  t.true(close(floor!.slowdown, 1 - floor!.beside / floor!.alone));
  t.true(spreadOf(r.floor.slowdown, [floor!.slowdown]), JSON.stringify(r.floor.slowdown));
  t.deepEqual([r.floor.alone, r.floor.beside], [floor!.alone, floor!.beside]);
  t.is(r.forkBomb.pidsMax, 16);
  t.true(r.forkBomb.refusedForks > 0, 'the bomb ran into its limit');
  // a fork is refused only at pids.max, so a refused bomb had reached it, and never went past it
  t.is(r.forkBomb.pidsPeak, 16);
  t.true(r.forkBomb.statusMs.n > 0, 'the host was asked for its status while the bomb went off');
  const { saved, chart } = files(r, /victim \(lu\) slowdown/);
  t.deepEqual(saved.rows, r.rows);
  t.deepEqual(saved.forkBomb, r.forkBomb);
  t.true(chart);
});

test.serial('bench fairness --policy wfq: shares of every container in both phases, with the lag and cpu.max checks', async (t) => {
  const out = join(h.home, 'fairness');
  const durationMs = 2000;
  const r = await h.cliJson<{
    policy: string; cores: number; quantumMs: number;
    shares: Array<{ container: string; weight: number; phase: string; serviceMs: number; achieved: number; ideal: number; relativeError: number; quanta: number }>;
    maxRelativeError: number; maxLagMs: number; cpuMax: { quotaMs: number; periodMs: number; peakPeriodMs: number; exceeded: boolean };
    sleeper: { serviceMs: number }; files: { json: string; chart: string };
  }>(['bench', 'fairness', '--policy', 'wfq', '--weights', '1,3', '--duration', `${durationMs}ms`, '--out', out], 60_000);
  t.is(r.code, 0, r.stderr);
  t.is(r.policy, 'wfq');
  const weights: Record<string, number> = { w1: 1, w2: 3, late: 1 };
  const members = { 'before arrival': ['w1', 'w2'], 'after arrival': ['w1', 'w2', 'late'] };
  for (const [phase, names] of Object.entries(members)) {
    const shares = r.shares.filter((s) => s.phase === phase);
    t.deepEqual(shares.map((s) => s.container), names, `${phase}: the containers measured`);
    const service = shares.reduce((sum, s) => sum + s.serviceMs, 0);
    const totalWeight = names.reduce((sum, n) => sum + weights[n]!, 0);
    for (const s of shares) {
      const ideal = weights[s.container]! / totalWeight;
      t.true(close(s.ideal, ideal), `${phase} ${s.container}: ideal ${s.ideal}, weights give ${ideal}`);
      t.true(close(s.achieved, s.serviceMs / service), `${phase} ${s.container}: achieved ${s.achieved} is not its part of the service`);
      // the aim is 1 %; five points still tell weights 1:3 (25 % : 75 %) from an even split
      t.true(Math.abs(s.achieved - ideal) <= 0.05, `${phase} ${s.container}: achieved ${s.achieved}, ideal ${ideal}`);
      // each quantum charged is at most one quantum long, and a step's overrun
      t.true(s.quanta > 0 && s.serviceMs > 0 && s.serviceMs / s.quanta <= r.quantumMs + 1, `${phase} ${s.container}: ${s.serviceMs} ms in ${s.quanta} quanta`);
    }
  }
  t.true(close(r.maxRelativeError, Math.max(...r.shares.map((s) => Math.abs(s.achieved - s.ideal) / s.ideal))));
  // CPU-bound, the measured containers had most of the host's cores, and cannot have had more than all of them
  const service = r.shares.reduce((sum, s) => sum + s.serviceMs, 0);
  t.true(service > 0.15 * r.cores * durationMs && service <= r.cores * (durationMs + 1000), `${service} ms of service on ${r.cores} cores in ${durationMs} ms`);
  // the sleeper runs 20 ms for every 80 ms it sleeps: a fifth of a core at most, and a little
  t.true(r.sleeper.serviceMs > 0 && r.sleeper.serviceMs <= 0.25 * (durationMs + 1000), `sleeper ${r.sleeper.serviceMs} ms`);
  // cpu.max "20000 100000": the capped container used its quota, and no period more than that and one step's overrun
  t.deepEqual([r.cpuMax.quotaMs, r.cpuMax.periodMs], [20, 100]);
  t.true(r.cpuMax.peakPeriodMs >= r.cpuMax.quotaMs / 2 && r.cpuMax.peakPeriodMs <= r.cpuMax.quotaMs + 1, `peak ${r.cpuMax.peakPeriodMs} ms in a period`);
  t.false(r.cpuMax.exceeded);
  // the aim is under one quantum; a scheduler that ignored the weights would be hundreds of ms off by now
  t.true(r.maxLagMs > 0 && r.maxLagMs < 10 * r.quantumMs, `lag ${r.maxLagMs} ms`);
  const { saved, chart } = files(r, /./);
  t.deepEqual(saved.shares, r.shares);
  t.true(chart);
});
