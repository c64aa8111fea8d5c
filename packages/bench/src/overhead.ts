/**
 * `bench overhead`: what running inside slicelab costs. The `lu` kernel runs in a plain Node worker
 * thread (same program, same memory class, no host) and as the only container on an idle one-core host,
 * in paired rounds (paired.ts): while one side is measured the other is idle (the container frozen, the
 * plain thread waiting), and the side that goes first alternates. A round's overhead is the loss of lu
 * work units per second of the container against the plain thread; the figure is the median over
 * rounds, with its spread. The scheduler's dispatch cost is the time the host spent in its scheduler code
 * (kick, dispatch, renewals, settling quanta; from its status) as a share of one core; beside it, the CPU
 * time of the host's whole main thread (read from /proc, outside the host), which also serves the bus,
 * heartbeats and garbage collection: an upper bound. Both are taken over the container's windows only.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { withBenchCluster } from './cluster.js';
import { writeChart } from './chart.js';
import { containerWindow, median, pairedRounds, PlainThread, setFrozen, spread, type Spread } from './paired.js';

export interface OverheadOptions {
  /** each side's window per round (ms) */
  durationMs: number;
  rounds: number;
  n: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

export interface LuRate {
  unitsPerSecond: number;
  unitsPerCpuSecond: number;
}

export interface OverheadRound {
  plain: LuRate;
  container: LuRate & { cpuShare: number };
  /** 1 − container / plain units per second; below zero when the container did more */
  overhead: number;
}

export interface OverheadResult {
  n: number;
  durationMs: number;
  rounds: OverheadRound[];
  /** medians over the rounds */
  plain: LuRate;
  container: LuRate & { cpuShare: number };
  overhead: Spread;
  /** time in the host's scheduler code, as a share of one core */
  schedulerCostOfACore: number;
  /** CPU of the host's whole main thread (scheduler, bus, heartbeats, GC) as a share of one core */
  mainThreadOfACore: number;
  /** of the quanta the container ran, the share renewed on the core instead of dispatched again */
  renewedQuanta: number;
  aims: { overheadAtMost5Percent: boolean; dispatchUnder2PercentOfACore: boolean };
  files: { json: string; chart: string };
}

const warmupMs = 1500;

export async function benchOverhead(o: OverheadOptions): Promise<OverheadResult> {
  return withBenchCluster('bench-overhead', [{ name: 'h1', cores: 1 }], async ({ client, launcher }) => {
    const args = { n: String(o.n) };
    o.onProgress?.('warming up lu in a container');
    await client.runContainer('h1', { name: 'lu', program: 'lu', args });
    await sleep(warmupMs);
    await setFrozen(client, 'lu', true);
    o.onProgress?.('warming up lu in a plain worker thread');
    const plainThread = await PlainThread.start({ program: 'lu', args, metric: 'units', warmupMs });
    const hostPid = launcher.hostPid('h1')!;
    const host = { schedulerMs: 0, mainThreadMs: 0, wallMs: 0, dispatched: 0, renewed: 0 };
    const hostSample = async () => {
      const status = await client.hostStatus('h1');
      return { schedulerMs: status.schedulerCost * status.uptime * 1000, mainThreadMs: threadCpuMs(hostPid, hostPid), ...status.quanta };
    };
    let round = 0;
    const progress = (side: string) => o.onProgress?.(`round ${Math.floor(round / 2) + 1}/${o.rounds}: lu ${side}`);
    try {
      const rounds = await pairedRounds(o.rounds, async () => {
        progress('in a plain worker thread');
        round++;
        const w = await plainThread.window(o.durationMs);
        return { unitsPerSecond: w.count / (w.wallMs / 1000), unitsPerCpuSecond: w.count / (w.cpuMs / 1000) };
      }, async () => {
        progress('in a container');
        round++;
        await setFrozen(client, 'lu', false);
        const before = await hostSample();
        const w = await containerWindow(client, 'h1', 'lu', 'units', o.durationMs);
        const after = await hostSample();
        await setFrozen(client, 'lu', true);
        host.schedulerMs += after.schedulerMs - before.schedulerMs;
        host.mainThreadMs += after.mainThreadMs - before.mainThreadMs;
        host.wallMs += w.wallMs;
        host.dispatched += after.dispatched - before.dispatched;
        host.renewed += after.renewed - before.renewed;
        return { unitsPerSecond: w.count / (w.wallMs / 1000), unitsPerCpuSecond: w.count / (w.cpuMs / 1000), cpuShare: w.cpuMs / w.wallMs };
      });
      const rows: OverheadRound[] = rounds.map(([plain, container]) => ({ plain, container, overhead: 1 - container.unitsPerSecond / plain.unitsPerSecond }));
      const overhead = spread(rows.map((r) => r.overhead));
      const schedulerCost = host.schedulerMs / host.wallMs;
      mkdirSync(o.outDir, { recursive: true });
      const files = { json: join(o.outDir, 'overhead.json'), chart: join(o.outDir, 'overhead.svg') };
      const result: OverheadResult = {
        n: o.n, durationMs: o.durationMs, rounds: rows,
        plain: { unitsPerSecond: median(rows.map((r) => r.plain.unitsPerSecond)), unitsPerCpuSecond: median(rows.map((r) => r.plain.unitsPerCpuSecond)) },
        container: {
          unitsPerSecond: median(rows.map((r) => r.container.unitsPerSecond)), unitsPerCpuSecond: median(rows.map((r) => r.container.unitsPerCpuSecond)),
          cpuShare: median(rows.map((r) => r.container.cpuShare)),
        },
        overhead,
        schedulerCostOfACore: schedulerCost,
        mainThreadOfACore: host.mainThreadMs / host.wallMs,
        renewedQuanta: host.renewed / Math.max(1, host.renewed + host.dispatched),
        aims: { overheadAtMost5Percent: overhead.median <= 0.05, dispatchUnder2PercentOfACore: schedulerCost < 0.02 },
        files,
      };
      writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
      await writeChart({
        $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
        title: `slicelab overhead: lu (n=${o.n}) work units per second, ${o.rounds} paired rounds`,
        width: 360, height: 240,
        data: { values: rows.flatMap((r, i) => [{ where: 'plain worker', round: i + 1, rate: r.plain.unitsPerSecond }, { where: 'container', round: i + 1, rate: r.container.unitsPerSecond }]) },
        layer: [
          { mark: 'bar', encoding: { x: { field: 'where', type: 'nominal', sort: null, title: null }, y: { aggregate: 'median', field: 'rate', type: 'quantitative', title: 'lu units per second (bar: median; dots: rounds)' } } },
          { mark: { type: 'point', filled: true, color: 'black' }, encoding: { x: { field: 'where', type: 'nominal', sort: null }, y: { field: 'rate', type: 'quantitative' } } },
        ],
      }, files.chart);
      return result;
    } finally {
      await plainThread.close();
    }
  });
}

/** CPU time of one thread of a process, in ms, from the kernel's schedstat. */
function threadCpuMs(pid: number, tid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ', 1)[0]) / 1e6;
}
