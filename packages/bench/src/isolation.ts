/**
 * `bench isolation`, after the Isolation Benchmark Suite: a victim container runs the `lu` kernel alone,
 * then beside a neighbour container running one stress at a time (cpu, memory, io, fork bomb), both at
 * the same cpu.weight. The victim's slowdown is its loss of lu work units per second against running
 * alone. The fork-bomb neighbour runs under pids.max; its pids.current is sampled (never above the limit)
 * and so is the time the host takes to answer a status request while the bomb goes off.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { withBenchCluster, type BenchCluster } from './cluster.js';
import { writeChart } from './chart.js';
import { summarize, type Summary } from './stats.js';

export interface IsolationOptions {
  /** how long each measurement runs (ms) */
  durationMs: number;
  cores: number;
  pidsMax: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

export interface VictimRate {
  unitsPerSecond: number;
  /** lu work per CPU second: what is left of the victim's speed once its CPU share is accounted for */
  unitsPerCpuSecond: number;
  /** cores' worth of CPU the victim received */
  cpuShare: number;
}

export interface StressRow extends VictimRate {
  stress: string;
  neighbour: string;
  slowdown: number;
  neighbourCpuMs: number;
}

export interface IsolationResult {
  cores: number;
  durationMs: number;
  /** the better of the runs alone, before and after the stresses */
  alone: VictimRate;
  aloneRuns: [VictimRate, VictimRate];
  rows: StressRow[];
  forkBomb: { pidsMax: number; pidsPeak: number; refusedForks: number; statusMs: Summary };
  aims: { everySlowdownAtMost5Percent: boolean; pidsNeverAboveMax: boolean; statusUnder100ms: boolean };
  files: { json: string; chart: string };
}

const stresses: Array<{ stress: string; program: string; args: Record<string, string>; cgroup?: Record<string, string> }> = [
  { stress: 'cpu', program: 'cpu-burn', args: { procs: '4' } },
  { stress: 'memory', program: 'mem-writer', args: { wss: '256MiB', pattern: 'random' } },
  { stress: 'io', program: 'io-stress', args: { op: 'mixed', bytes: '1MiB' } },
  { stress: 'fork bomb', program: 'fork-bomb', args: {} },
];

export async function benchIsolation(o: IsolationOptions): Promise<IsolationResult> {
  return withBenchCluster('bench-isolation', [{ name: 'h1', cores: o.cores }], async (cluster) => {
    // measured first and last: the better of the two is the baseline, so a cold start cannot flatter the slowdowns
    const aloneFirst = await victimRate(cluster, o, 'alone');
    const rows: StressRow[] = [];
    let forkBomb: IsolationResult['forkBomb'] = { pidsMax: o.pidsMax, pidsPeak: 0, refusedForks: 0, statusMs: summarize([]) };
    for (const s of stresses) {
      const neighbour = `stress-${s.stress.replace(' ', '-')}`;
      await cluster.client.runContainer('h1', { name: neighbour, program: s.program, args: s.args, cgroup: { 'pids.max': String(o.pidsMax) } });
      const statusMs: number[] = [];
      const rate = await victimRate(cluster, o, s.stress, async () => {
        if (s.program !== 'fork-bomb') return;
        const began = performance.now();
        await cluster.client.hostStatus('h1');
        statusMs.push(performance.now() - began);
      });
      const info = (await cluster.client.containers('h1')).find((c) => c.name === neighbour)!;
      if (s.program === 'fork-bomb') {
        const files = await cluster.client.cgroupGet(neighbour);
        forkBomb = {
          pidsMax: o.pidsMax, pidsPeak: Number(files['pids.peak']), refusedForks: Number(files['pids.events']!.split(' ')[1]), statusMs: summarize(statusMs),
        };
      }
      await cluster.client.removeContainer(neighbour, true);
      rows.push({ stress: s.stress, neighbour, ...rate, slowdown: 0, neighbourCpuMs: info.cpuUsageMs });
    }
    const aloneLast = await victimRate(cluster, o, 'alone, again');
    const alone = aloneLast.unitsPerSecond > aloneFirst.unitsPerSecond ? aloneLast : aloneFirst;
    for (const row of rows) row.slowdown = Math.max(0, 1 - row.unitsPerSecond / alone.unitsPerSecond);
    mkdirSync(o.outDir, { recursive: true });
    const files = { json: join(o.outDir, 'isolation.json'), chart: join(o.outDir, 'isolation.svg') };
    const result: IsolationResult = {
      cores: o.cores, durationMs: o.durationMs, alone, aloneRuns: [aloneFirst, aloneLast], rows, forkBomb,
      aims: {
        everySlowdownAtMost5Percent: rows.every((r) => r.slowdown <= 0.05),
        pidsNeverAboveMax: forkBomb.pidsPeak <= o.pidsMax,
        statusUnder100ms: forkBomb.statusMs.max < 100,
      },
      files,
    };
    writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
    await writeChart({
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'slicelab isolation: victim (lu) slowdown per neighbour stress',
      width: 420, height: 260,
      data: { values: rows.map((r) => ({ stress: r.stress, slowdown: r.slowdown * 100 })) },
      layer: [
        { mark: 'bar', encoding: { x: { field: 'stress', type: 'nominal', sort: null }, y: { field: 'slowdown', type: 'quantitative', title: 'victim slowdown (%)' } } },
        { mark: { type: 'rule', color: 'red' }, encoding: { y: { datum: 5 } } },
      ],
    }, files.chart);
    return result;
  });
}

/** lu work units per second of a fresh victim container over one measurement window. */
async function victimRate({ client }: BenchCluster, o: IsolationOptions, label: string, probe?: () => Promise<void>): Promise<VictimRate> {
  await client.runContainer('h1', { name: 'victim', program: 'lu', args: {} });
  const sample = async () => {
    const victim = (await client.containers('h1')).find((c) => c.name === 'victim')!;
    return { units: victim.processes[0]!.metrics['units'] ?? 0, cpuMs: victim.cpuUsageMs };
  };
  // let the victim and its neighbour settle before the window opens
  await sleep(1000);
  const first = await sample();
  const began = performance.now();
  while (performance.now() - began < o.durationMs) {
    o.onProgress?.(`victim beside ${label}: ${((performance.now() - began) / 1000).toFixed(0)}/${(o.durationMs / 1000).toFixed(0)} s`);
    await probe?.();
    await sleep(100);
  }
  const last = await sample();
  const seconds = (performance.now() - began) / 1000;
  await client.removeContainer('victim', true);
  const units = last.units - first.units;
  const cpuSeconds = (last.cpuMs - first.cpuMs) / 1000;
  return { unitsPerSecond: units / seconds, unitsPerCpuSecond: units / cpuSeconds, cpuShare: cpuSeconds / seconds };
}
