/**
 * `bench isolation`, after the Isolation Benchmark Suite: a victim container runs the `lu` kernel beside
 * a neighbour container running one stress at a time (cpu, memory, io, fork bomb), both at the same
 * cpu.weight. For each stress, paired rounds (paired.ts) measure the victim with the neighbour frozen
 * (the victim alone on the host) and with it running; a round's slowdown is the victim's loss of lu work
 * units per second, and the figure is the median over rounds with its 95 % confidence interval.
 *
 * Before the containers start, the same pairing measures the machine floor: lu in a plain worker
 * thread alone and beside cpu-burn in another, no slicelab at all. It is what this machine's second real
 * CPU being busy costs lu (shared caches and memory bandwidth, the hypervisor), and a bound under which
 * no emulator on this machine can bring the cpu row.
 *
 * The fork-bomb neighbour runs under pids.max; its pids.peak is read (never above the limit) and the host
 * is asked for its status every 100 ms while the bomb goes off (and, for a fair pairing, while it is
 * frozen too).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { withBenchCluster } from './cluster.js';
import { writeChart } from './chart.js';
import { containerWindow, median, pairedRounds, PlainThread, setFrozen, spread, type ContainerWindow, type Spread } from './paired.js';
import { summarize, type Summary } from './stats.js';

export interface IsolationOptions {
  /** each window (ms): the victim alone, then beside the stress, or the other way round */
  durationMs: number;
  /** paired rounds per stress */
  rounds: number;
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

export interface IsolationRound {
  alone: VictimRate;
  beside: VictimRate;
  /** 1 − beside / alone units per second; below zero when the victim did more beside the stress */
  slowdown: number;
}

export interface StressRow {
  stress: string;
  neighbour: string;
  rounds: IsolationRound[];
  /** medians over the rounds */
  alone: VictimRate;
  beside: VictimRate;
  slowdown: Spread;
  /** cores' worth of CPU the neighbour received while it ran */
  neighbourCpuShare: number;
}

export interface IsolationResult {
  cores: number;
  durationMs: number;
  rounds: number;
  /** lu beside cpu-burn in plain worker threads, no slicelab: the machine's own floor */
  floor: { rounds: Array<{ alone: number; beside: number; slowdown: number }>; alone: number; beside: number; slowdown: Spread };
  rows: StressRow[];
  forkBomb: { pidsMax: number; pidsPeak: number; refusedForks: number; statusMs: Summary };
  aims: { everySlowdownAtMost5Percent: boolean; pidsNeverAboveMax: boolean; statusUnder100ms: boolean };
  files: { json: string; chart: string };
}

const stresses: Array<{ stress: string; program: string; args: Record<string, string> }> = [
  { stress: 'cpu', program: 'cpu-burn', args: { procs: '4' } },
  { stress: 'memory', program: 'mem-writer', args: { wss: '256MiB', pattern: 'random' } },
  { stress: 'io', program: 'io-stress', args: { op: 'mixed', bytes: '1MiB' } },
  { stress: 'fork bomb', program: 'fork-bomb', args: {} },
];

const warmupMs = 1500;
/** how long a thawed neighbour runs before the victim's window opens */
const leadMs = 150;

export async function benchIsolation(o: IsolationOptions): Promise<IsolationResult> {
  return withBenchCluster('bench-isolation', [{ name: 'h1', cores: o.cores }], async (cluster) => {
    const floor = await machineFloor(o);
    const { client } = cluster;
    o.onProgress?.('warming up the victim');
    await client.runContainer('h1', { name: 'victim', program: 'lu', args: {} });
    await sleep(warmupMs);
    const rows: StressRow[] = [];
    let forkBomb: IsolationResult['forkBomb'] = { pidsMax: o.pidsMax, pidsPeak: 0, refusedForks: 0, statusMs: summarize([]) };
    for (const s of stresses) {
      const neighbour = `stress-${s.stress.replace(' ', '-')}`;
      await client.runContainer('h1', { name: neighbour, program: s.program, args: s.args, cgroup: { 'pids.max': String(o.pidsMax) } });
      await sleep(1000);
      // the status probe runs in both windows of a fork-bomb round, so that its own cost is not counted
      // against the bomb; only the answers while the bomb goes off are the figure
      const statusMs: number[] = [];
      const probe = (bombRunning: boolean) => s.program !== 'fork-bomb' ? undefined : async () => {
        const began = performance.now();
        await client.hostStatus('h1');
        if (bombRunning) statusMs.push(performance.now() - began);
      };
      let neighbourCpuMs = 0;
      let besideMs = 0;
      let window = 0;
      const progress = (side: string) => o.onProgress?.(`${s.stress}: round ${Math.floor(window++ / 2) + 1}/${o.rounds}, victim ${side}`);
      const rounds = await pairedRounds(o.rounds, async () => {
        progress('alone (neighbour frozen)');
        await setFrozen(client, neighbour, true);
        return victimRate(await containerWindow(client, 'h1', 'victim', 'units', o.durationMs, probe(false)));
      }, async () => {
        progress(`beside the ${s.stress} stress`);
        await setFrozen(client, neighbour, false);
        await sleep(leadMs);
        const w = await containerWindow(client, 'h1', 'victim', 'units', o.durationMs, probe(true));
        neighbourCpuMs += w.othersCpuMs[neighbour] ?? 0;
        besideMs += w.wallMs;
        return victimRate(w);
      });
      if (s.program === 'fork-bomb') {
        const files = await client.cgroupGet(neighbour);
        forkBomb = {
          pidsMax: o.pidsMax, pidsPeak: Number(files['pids.peak']), refusedForks: Number(files['pids.events']!.split(' ')[1]), statusMs: summarize(statusMs),
        };
      }
      await client.removeContainer(neighbour, true);
      const pairs = rounds.map(([alone, beside]) => ({ alone, beside, slowdown: 1 - beside.unitsPerSecond / alone.unitsPerSecond }));
      rows.push({
        stress: s.stress, neighbour, rounds: pairs, alone: medianRate(pairs.map((p) => p.alone)), beside: medianRate(pairs.map((p) => p.beside)),
        slowdown: spread(pairs.map((p) => p.slowdown)), neighbourCpuShare: neighbourCpuMs / besideMs,
      });
    }
    mkdirSync(o.outDir, { recursive: true });
    const files = { json: join(o.outDir, 'isolation.json'), chart: join(o.outDir, 'isolation.svg') };
    const result: IsolationResult = {
      cores: o.cores, durationMs: o.durationMs, rounds: o.rounds, floor, rows, forkBomb,
      aims: {
        everySlowdownAtMost5Percent: rows.every((r) => r.slowdown.median <= 0.05),
        pidsNeverAboveMax: forkBomb.pidsPeak <= o.pidsMax,
        statusUnder100ms: forkBomb.statusMs.max < 100,
      },
      files,
    };
    writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
    const bars = [
      { stress: 'machine floor', ...percent(floor.slowdown) },
      ...rows.map((r) => ({ stress: r.stress, ...percent(r.slowdown) })),
    ];
    await writeChart({
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `slicelab isolation: victim (lu) slowdown per neighbour stress (median of ${o.rounds} rounds, 95% CI; machine floor: plain threads, no slicelab)`,
      width: 460, height: 260,
      data: { values: bars },
      layer: [
        { mark: 'bar', encoding: { x: { field: 'stress', type: 'nominal', sort: null, title: null }, y: { field: 'median', type: 'quantitative', title: 'victim slowdown (%)' } } },
        { mark: { type: 'rule', color: 'black' }, encoding: { x: { field: 'stress', type: 'nominal', sort: null }, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } } },
        { mark: { type: 'rule', color: 'red' }, encoding: { y: { datum: 5 } } },
      ],
    }, files.chart);
    return result;
  });
}

/** lu alone and beside cpu-burn, each in a plain worker thread: what the machine itself costs the victim. */
async function machineFloor(o: IsolationOptions): Promise<IsolationResult['floor']> {
  o.onProgress?.('machine floor: warming up plain threads');
  const [lu, burn] = await Promise.all([
    PlainThread.start({ program: 'lu', args: {}, metric: 'units', warmupMs }),
    PlainThread.start({ program: 'cpu-burn', args: {}, metric: 'loops', warmupMs }),
  ]);
  try {
    let window = 0;
    const progress = (side: string) => o.onProgress?.(`machine floor: round ${Math.floor(window++ / 2) + 1}/${o.rounds}, plain lu ${side}`);
    const rate = (w: { count: number; wallMs: number }) => w.count / (w.wallMs / 1000);
    const rounds = await pairedRounds(o.rounds, async () => {
      progress('alone');
      return rate(await lu.window(o.durationMs));
    }, async () => {
      progress('beside plain cpu-burn');
      const neighbour = burn.window(o.durationMs + 2 * leadMs);
      await sleep(leadMs);
      const victim = rate(await lu.window(o.durationMs));
      await neighbour;
      return victim;
    });
    const pairs = rounds.map(([alone, beside]) => ({ alone, beside, slowdown: 1 - beside / alone }));
    return { rounds: pairs, alone: median(rounds.map(([a]) => a)), beside: median(rounds.map(([, b]) => b)), slowdown: spread(pairs.map((p) => p.slowdown)) };
  } finally {
    await Promise.all([lu.close(), burn.close()]);
  }
}

function victimRate(w: ContainerWindow): VictimRate {
  return { unitsPerSecond: w.count / (w.wallMs / 1000), unitsPerCpuSecond: w.count / (w.cpuMs / 1000), cpuShare: w.cpuMs / w.wallMs };
}

function medianRate(rates: VictimRate[]): VictimRate {
  return {
    unitsPerSecond: median(rates.map((r) => r.unitsPerSecond)),
    unitsPerCpuSecond: median(rates.map((r) => r.unitsPerCpuSecond)),
    cpuShare: median(rates.map((r) => r.cpuShare)),
  };
}

function percent(s: Spread): { median: number; low: number; high: number } {
  return { median: s.median * 100, low: s.low * 100, high: s.high * 100 };
}
