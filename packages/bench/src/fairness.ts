/**
 * `bench fairness`: how exactly a host's scheduler shares its cores, from the scheduler's own trace (every
 * quantum charged, every change of the runnable set), fetched over the bus.
 *
 * wfq and lottery: CPU-bound containers with the given weights (each with as many processes as cores, so
 * each can always use a core), plus one that sleeps and wakes, one held by cpu.max "20000 100000", and one
 * that arrives halfway. Reported per phase (before and after the arrival): achieved vs ideal share among
 * the CPU-bound containers, the lag |W_i − T·w_i/W| at every quantum boundary while that set is unchanged
 * (aim: under one quantum for wfq), the lottery's 3-sigma binomial bound, and the cpu.max peak per period.
 *
 * credit: three t2.micro containers on a fast credit clock: one busy in standard mode, one busy in
 * unlimited mode, one mostly idle. Reported: the balance sampled over time (never above its cap), the busy
 * standard container's use once its credits are gone (aim: its 10 % baseline), surplus and charged credits.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SchedulerTrace } from '@slicelab/protocol';
import { withBenchCluster } from './cluster.js';
import { writeChart } from './chart.js';

export interface FairnessOptions {
  policy: 'wfq' | 'lottery' | 'credit';
  weights: number[];
  durationMs: number;
  cores: number;
  quantumMs: number;
  seed: number;
  creditSpeed: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

export interface ShareRow {
  container: string;
  weight: number;
  phase: string;
  serviceMs: number;
  quanta: number;
  achieved: number;
  ideal: number;
  relativeError: number;
  /** lottery only: the 3-sigma bound on the share of quanta, and whether it held */
  bound?: number;
  withinBound?: boolean;
}

export interface FairnessResult {
  policy: string;
  cores: number;
  quantumMs: number;
  durationMs: number;
  shares: ShareRow[];
  maxRelativeError: number;
  /** wfq only (lottery keeps no virtual time): the largest EEVDF lag seen */
  maxLagMs: number | null;
  lagUnderOneQuantum: boolean | null;
  cpuMax: { quotaMs: number; periodMs: number; peakPeriodMs: number; exceeded: boolean };
  sleeper: { serviceMs: number };
  credit?: {
    speed: number;
    cap: number;
    maxBalance: number;
    balanceNeverAboveCap: boolean;
    standardUseAfterCredits: number;
    baseline: number;
    atBaseline: boolean;
    unlimited: { surplus: number; charged: number; use: number };
  };
  aims: Record<string, boolean>;
  files: { json: string; chart: string };
}

const capQuotaMs = 20;
const capPeriodMs = 100;

export async function benchFairness(o: FairnessOptions): Promise<FairnessResult> {
  const name = `bench-fairness-${o.policy}`;
  return withBenchCluster(name, [{
    name: 'h1', cores: o.cores,
    scheduler: { policy: o.policy, quantum: `${o.quantumMs}ms`, seed: o.seed, creditSpeed: o.creditSpeed },
  }], async ({ client }) => (o.policy === 'credit' ? creditRun(o, client) : shareRun(o, client)));
}

type Client = Parameters<Parameters<typeof withBenchCluster>[2]>[0]['client'];

async function shareRun(o: FairnessOptions, client: Client): Promise<FairnessResult> {
  const procs = String(o.cores);
  const weights = new Map<string, number>();
  for (const [i, w] of o.weights.entries()) {
    weights.set(`w${i + 1}`, w);
    await client.runContainer('h1', { name: `w${i + 1}`, program: 'cpu-burn', args: { procs }, cgroup: { 'cpu.weight': String(w * 100) } });
  }
  await client.runContainer('h1', { name: 'sleeper', program: 'sleeper', args: { run: '20ms', sleep: '80ms' } });
  await client.runContainer('h1', { name: 'capped', program: 'cpu-burn', args: { procs }, cgroup: { 'cpu.max': `${capQuotaMs * 1000} ${capPeriodMs * 1000}` } });
  // the window opens once all of them run (they were started one after another)
  await sleep(1000);
  await client.schedulerTrace('h1', 'start');
  const began = Date.now();
  let arrived = false;
  while (Date.now() - began < o.durationMs) {
    const elapsed = Date.now() - began;
    if (!arrived && elapsed >= o.durationMs / 2) {
      await client.runContainer('h1', { name: 'late', program: 'cpu-burn', args: { procs }, cgroup: { 'cpu.weight': '100' } });
      weights.set('late', 1);
      arrived = true;
    }
    o.onProgress?.(`${o.policy}: ${(elapsed / 1000).toFixed(0)}/${(o.durationMs / 1000).toFixed(0)} s${arrived ? ' (late container arrived)' : ''}`);
    await sleep(Math.min(250, o.durationMs - elapsed));
  }
  const trace = await client.schedulerTrace('h1', 'stop');
  return analyse(o, trace, weights);
}

interface Phase {
  label: string;
  from: number;
  to: number;
  members: string[];
}

function analyse(o: FairnessOptions, trace: SchedulerTrace, weights: Map<string, number>): Promise<FairnessResult> {
  const names = new Map(Object.entries(trace.groups).map(([id, g]) => [Number(id), g.name]));
  const end = trace.events.at(-1)?.[0] ?? 0;
  const lateArrival = trace.events.find(([, id, kind]) => kind === 1 && names.get(id) === 'late')?.[0] ?? end;
  const phases: Phase[] = [
    { label: 'before arrival', from: 0, to: lateArrival, members: [...weights.keys()].filter((n) => n !== 'late') },
    { label: 'after arrival', from: lateArrival, to: end, members: [...weights.keys()] },
  ].filter((p) => p.to > p.from);

  const shares: ShareRow[] = [];
  const quantum = o.quantumMs;
  let maxLag = 0;
  for (const phase of phases) {
    const service = new Map(phase.members.map((n) => [n, 0]));
    const quanta = new Map(phase.members.map((n) => [n, 0]));
    const totalWeight = phase.members.reduce((s, n) => s + weights.get(n)!, 0);
    // EEVDF's lag, lag_i = w_i (V − v_i) with V the weighted mean virtual time of the set: the distance
    // from the fluid ideal, whatever the history. The scheduler charges a quantum's virtual time when it
    // dispatches it; a quantum still on a core counts for the time it has run, not the time granted.
    const vtime = new Map<string, number>();
    const inFlight = new Map<string, number[]>(phase.members.map((n) => [n, []]));
    for (const [t, id, kind, used, v] of trace.events) {
      const member = names.get(id);
      if (member === undefined || !service.has(member)) continue;
      if (kind === 3) inFlight.get(member)!.push(t);
      if (kind !== 2) vtime.set(member, v);
      if (kind !== 0) continue;
      inFlight.get(member)!.shift();
      if (t < phase.from || t > phase.to) continue;
      service.set(member, service.get(member)! + used);
      quanta.set(member, quanta.get(member)! + 1);
      if (!phase.members.every((n) => vtime.has(n))) continue;
      // virtual times advance by used / cpu.weight, and cpu.weight is 100 × the benchmark's weight
      const cpuWeight = (n: string) => 100 * weights.get(n)!;
      const current = (n: string) => vtime.get(n)! + inFlight.get(n)!.reduce((s, started) => s + Math.min(quantum, t - started) - quantum, 0) / cpuWeight(n);
      const mean = phase.members.reduce((s, n) => s + cpuWeight(n) * current(n), 0) / (100 * totalWeight);
      for (const n of phase.members) maxLag = Math.max(maxLag, Math.abs(cpuWeight(n) * (mean - current(n))));
    }
    const totalService = [...service.values()].reduce((s, x) => s + x, 0);
    const totalQuanta = [...quanta.values()].reduce((s, x) => s + x, 0);
    for (const n of phase.members) {
      const ideal = weights.get(n)! / totalWeight;
      const achieved = totalService > 0 ? service.get(n)! / totalService : 0;
      const row: ShareRow = {
        container: n, weight: weights.get(n)!, phase: phase.label, serviceMs: service.get(n)!, quanta: quanta.get(n)!,
        achieved, ideal, relativeError: Math.abs(achieved - ideal) / ideal,
      };
      if (o.policy === 'lottery' && totalQuanta > 0) {
        row.bound = 3 * Math.sqrt((ideal * (1 - ideal)) / totalQuanta);
        row.withinBound = Math.abs(quanta.get(n)! / totalQuanta - ideal) <= row.bound;
      }
      shares.push(row);
    }
  }
  const capped = Object.values(trace.groups).find((g) => g.name === 'capped')!;
  const sleeperId = [...names].find(([, n]) => n === 'sleeper')?.[0];
  const sleeperService = trace.events.filter(([, id, kind]) => kind === 0 && id === sleeperId).reduce((s, e) => s + e[3], 0);
  const maxRelativeError = Math.max(...shares.map((s) => s.relativeError));
  // a quantum may overrun its reservation by the one step that crossed its end: tolerate 1 ms
  const cpuMax = { quotaMs: capQuotaMs, periodMs: capPeriodMs, peakPeriodMs: capped.peakPeriodMs, exceeded: capped.peakPeriodMs > capQuotaMs + 1 };
  const aims: Record<string, boolean> = { cpuMaxNeverExceeded: !cpuMax.exceeded };
  if (o.policy === 'wfq') {
    aims['withinOnePercent'] = maxRelativeError <= 0.01;
    aims['lagUnderOneQuantum'] = maxLag < o.quantumMs;
  }
  if (o.policy === 'lottery') aims['withinThreeSigma'] = shares.every((s) => s.withinBound);
  return finish(o, {
    policy: o.policy, cores: o.cores, quantumMs: o.quantumMs, durationMs: o.durationMs, shares, maxRelativeError,
    maxLagMs: o.policy === 'wfq' ? maxLag : null, lagUnderOneQuantum: o.policy === 'wfq' ? maxLag < o.quantumMs : null, cpuMax, sleeper: { serviceMs: sleeperService }, aims,
  }, serviceChart(trace, names));
}

/** Cumulative CPU time per container, sampled every 100 ms of the trace. */
function serviceChart(trace: SchedulerTrace, names: Map<number, string>) {
  const totals = new Map<string, number>();
  const points: Array<{ seconds: number; container: string; cpuSeconds: number }> = [];
  let next = 0;
  for (const [t, id, kind, used] of trace.events) {
    while (t >= next) {
      for (const [container, total] of totals) points.push({ seconds: next / 1000, container, cpuSeconds: total / 1000 });
      next += 100;
    }
    if (kind !== 0) continue;
    const name = names.get(id) ?? String(id);
    totals.set(name, (totals.get(name) ?? 0) + used);
  }
  return { points, y: 'cpuSeconds', title: 'CPU seconds received' };
}

async function creditRun(o: FairnessOptions, client: Client): Promise<FairnessResult> {
  await client.runContainer('h1', { name: 'standard', program: 'cpu-burn', args: {}, cgroup: { 'cpu.credit.size': 't2.micro', 'cpu.credit.mode': 'standard' } });
  await client.runContainer('h1', { name: 'unlimited', program: 'cpu-burn', args: {}, cgroup: { 'cpu.credit.size': 't2.micro', 'cpu.credit.mode': 'unlimited' } });
  await client.runContainer('h1', { name: 'saver', program: 'sleeper', args: { run: '1ms', sleep: '200ms' }, cgroup: { 'cpu.credit.size': 't2.micro' } });
  await client.schedulerTrace('h1', 'start');
  const began = Date.now();
  const samples: Array<{ seconds: number; container: string; balance: number; surplus: number; launch: number; atBaseline: boolean }> = [];
  while (Date.now() - began < o.durationMs) {
    const seconds = (Date.now() - began) / 1000;
    for (const container of ['standard', 'unlimited', 'saver']) {
      const stat = parseStat((await client.cgroupGet(container, 'cpu.credit.stat'))['cpu.credit.stat']!);
      samples.push({ seconds, container, balance: stat['balance']!, surplus: stat['surplus']!, launch: stat['launch']!, atBaseline: stat['at_baseline'] === 1 });
    }
    o.onProgress?.(`credit: ${seconds.toFixed(0)}/${(o.durationMs / 1000).toFixed(0)} s`);
    await sleep(200);
  }
  const trace = await client.schedulerTrace('h1', 'stop');
  const unlimitedStat = parseStat((await client.cgroupGet('unlimited', 'cpu.credit.stat'))['cpu.credit.stat']!);
  const names = new Map(Object.entries(trace.groups).map(([id, g]) => [Number(id), g.name]));
  const end = trace.events.at(-1)?.[0] ?? o.durationMs;
  // the standard container's use once it has been at baseline: from its first baseline sample on
  const firstBaseline = samples.find((s) => s.container === 'standard' && s.atBaseline)?.seconds;
  const windowFrom = firstBaseline === undefined ? end : firstBaseline * 1000 + 500;
  const use = (container: string, from: number) =>
    trace.events.filter(([t, id, kind]) => kind === 0 && t >= from && names.get(id) === container).reduce((s, e) => s + e[3], 0) / Math.max(1, end - from);
  const standardUse = use('standard', windowFrom);
  const cap = 144;
  const maxBalance = Math.max(...samples.map((s) => s.balance));
  const baseline = 0.1;
  const credit = {
    speed: o.creditSpeed, cap, maxBalance, balanceNeverAboveCap: maxBalance <= cap + 1e-6,
    standardUseAfterCredits: standardUse, baseline, atBaseline: firstBaseline !== undefined && Math.abs(standardUse - baseline) <= 0.03,
    unlimited: { surplus: unlimitedStat['surplus']!, charged: unlimitedStat['charged']!, use: use('unlimited', 0) },
  };
  return finish(o, {
    policy: 'credit', cores: o.cores, quantumMs: o.quantumMs, durationMs: o.durationMs, shares: [], maxRelativeError: 0, maxLagMs: null,
    lagUnderOneQuantum: null, cpuMax: { quotaMs: 0, periodMs: 0, peakPeriodMs: 0, exceeded: false }, sleeper: { serviceMs: 0 },
    credit, aims: { balanceNeverAboveCap: credit.balanceNeverAboveCap, standardAtBaseline: credit.atBaseline },
  }, { points: samples.map((s) => ({ seconds: s.seconds, container: s.container, balance: s.balance })), y: 'balance', title: 'CPU credit balance' });
}

function parseStat(text: string): Record<string, number> {
  const stat: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [key, value] = line.split(' ');
    if (key && value !== undefined && !Number.isNaN(Number(value))) stat[key] = Number(value);
  }
  return stat;
}

async function finish(
  o: FairnessOptions,
  result: Omit<FairnessResult, 'files'>,
  chart: { points: Array<Record<string, number | string>>; y: string; title: string },
): Promise<FairnessResult> {
  mkdirSync(o.outDir, { recursive: true });
  const files = { json: join(o.outDir, `fairness-${o.policy}.json`), chart: join(o.outDir, `fairness-${o.policy}.svg`) };
  const full = { ...result, files };
  writeFileSync(files.json, `${JSON.stringify(full, null, 2)}\n`);
  await writeChart({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `slicelab fairness, ${o.policy}: ${chart.title}`,
    width: 520, height: 300,
    data: { values: chart.points },
    mark: { type: 'line' },
    encoding: {
      x: { field: 'seconds', type: 'quantitative', title: 'seconds' },
      y: { field: chart.y, type: 'quantitative', title: chart.title },
      color: { field: 'container', type: 'nominal' },
    },
  }, files.chart);
  return full;
}
