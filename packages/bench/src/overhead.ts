/**
 * `bench overhead`: what running inside slicelab costs. The `lu` kernel runs in a plain Node worker
 * thread (same program, same memory class, no host), then as the only container on an idle host. The
 * overhead is the loss of lu work units per second. The scheduler's dispatch cost is the time the host
 * spent in its scheduler code (kick, dispatch, settling quanta; from its status), as a share of one core;
 * beside it, the CPU time of the host's whole main thread (read from /proc, outside the host), which also
 * serves the bus, heartbeats and garbage collection: an upper bound.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { withBenchCluster } from './cluster.js';
import { writeChart } from './chart.js';

export interface OverheadOptions {
  durationMs: number;
  n: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

export interface OverheadResult {
  n: number;
  durationMs: number;
  plain: { unitsPerSecond: number; unitsPerCpuSecond: number };
  container: { unitsPerSecond: number; unitsPerCpuSecond: number; cpuShare: number };
  overhead: number;
  /** time in the host's scheduler code, as a share of one core */
  schedulerCostOfACore: number;
  /** CPU of the host's whole main thread (scheduler, bus, heartbeats, GC) as a share of one core */
  mainThreadOfACore: number;
  aims: { overheadAtMost5Percent: boolean; dispatchUnder2PercentOfACore: boolean };
  files: { json: string; chart: string };
}

const plainWorker = new URL('./plain-worker.js', import.meta.url);
const warmupMs = 1500;

export async function benchOverhead(o: OverheadOptions): Promise<OverheadResult> {
  o.onProgress?.('lu in a plain worker thread');
  const plain = await new Promise<{ before: Record<string, number>; after: Record<string, number>; wallMs: number; cpuMs: number }>((resolve, reject) => {
    const worker = new Worker(plainWorker, { workerData: { program: 'lu', args: { n: String(o.n) }, durationMs: o.durationMs, warmupMs } });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const plainUnits = (plain.after['units'] ?? 0) - (plain.before['units'] ?? 0);

  return withBenchCluster('bench-overhead', [{ name: 'h1', cores: 1 }], async ({ client, launcher }) => {
    await client.runContainer('h1', { name: 'lu', program: 'lu', args: { n: String(o.n) } });
    const hostPid = launcher.hostPid('h1')!;
    const sample = async () => {
      const [info] = await client.containers('h1');
      const status = await client.hostStatus('h1');
      return {
        at: performance.now(), units: info!.processes[0]!.metrics['units'] ?? 0, cpuMs: info!.cpuUsageMs,
        mainThreadMs: threadCpuMs(hostPid, hostPid), schedulerMs: status.schedulerCost * status.uptime * 1000,
      };
    };
    // the same warm-up the plain worker had
    await sleep(warmupMs);
    const first = await sample();
    while (performance.now() - first.at < o.durationMs) {
      o.onProgress?.(`lu in a container: ${((performance.now() - first.at) / 1000).toFixed(0)}/${(o.durationMs / 1000).toFixed(0)} s`);
      await sleep(250);
    }
    const last = await sample();
    const seconds = (last.at - first.at) / 1000;
    const units = last.units - first.units;
    const container = { unitsPerSecond: units / seconds, unitsPerCpuSecond: units / ((last.cpuMs - first.cpuMs) / 1000), cpuShare: (last.cpuMs - first.cpuMs) / 1000 / seconds };
    const plainRate = { unitsPerSecond: plainUnits / (plain.wallMs / 1000), unitsPerCpuSecond: plainUnits / (plain.cpuMs / 1000) };
    const overhead = Math.max(0, 1 - container.unitsPerSecond / plainRate.unitsPerSecond);
    const schedulerCost = (last.schedulerMs - first.schedulerMs) / (last.at - first.at);
    const mainThread = (last.mainThreadMs - first.mainThreadMs) / (last.at - first.at);
    mkdirSync(o.outDir, { recursive: true });
    const files = { json: join(o.outDir, 'overhead.json'), chart: join(o.outDir, 'overhead.svg') };
    const result: OverheadResult = {
      n: o.n, durationMs: o.durationMs, plain: plainRate, container, overhead, schedulerCostOfACore: schedulerCost, mainThreadOfACore: mainThread,
      aims: { overheadAtMost5Percent: overhead <= 0.05, dispatchUnder2PercentOfACore: schedulerCost < 0.02 },
      files,
    };
    writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
    await writeChart({
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `slicelab overhead: lu (n=${o.n}) work units per second`,
      width: 360, height: 240,
      data: { values: [{ where: 'plain worker', rate: plainRate.unitsPerSecond }, { where: 'container', rate: container.unitsPerSecond }] },
      mark: 'bar',
      encoding: { x: { field: 'where', type: 'nominal', sort: null, title: null }, y: { field: 'rate', type: 'quantitative', title: 'lu units per second' } },
    }, files.chart);
    return result;
  });
}

/** CPU time of one thread of a process, in ms, from the kernel's schedstat. */
function threadCpuMs(pid: number, tid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ', 1)[0]) / 1e6;
}
