/**
 * Paired measurements for benchmarks that compare two conditions on a machine whose speed drifts (a
 * shared VM can run 20 % faster or slower from one minute to the next): each round measures both
 * conditions back to back, the order alternating from round to round, and the figure is the median of
 * the per-round comparisons, reported with its spread. The pieces: a program in a plain worker thread
 * (the baseline without slicelab), a container's work rate over a window, and cgroup.freeze to take a
 * container out of the picture between windows without losing its warm state.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { ClusterClient } from '@slicelab/client';
import type { PlainWindow, PlainWorkerData } from './plain-worker.js';

/** Runs `rounds` rounds of `a` and `b`, a first in even rounds and b first in odd ones. */
export async function pairedRounds<A, B>(rounds: number, a: () => Promise<A>, b: () => Promise<B>): Promise<Array<[A, B]>> {
  const pairs: Array<[A, B]> = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      const first = await a();
      pairs.push([first, await b()]);
    } else {
      const second = await b();
      pairs.push([await a(), second]);
    }
  }
  return pairs;
}

/** The median of samples (the mean of the middle two for an even count). */
export function median(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * A figure over rounds: the median, a distribution-free 95 % confidence interval for it (order
 * statistics of the binomial: ranks ⌊(n − 1.96·√n) / 2⌋ and its mirror, 1-based), and the whole range.
 */
export interface Spread {
  median: number;
  low: number;
  high: number;
  min: number;
  max: number;
}

export function spread(samples: readonly number[]): Spread {
  const sorted = [...samples].sort((x, y) => x - y);
  const n = sorted.length;
  const k = Math.max(0, Math.floor((n - 1.96 * Math.sqrt(n)) / 2) - 1);
  return { median: median(sorted), low: sorted[k]!, high: sorted[n - 1 - k]!, min: sorted[0]!, max: sorted[n - 1]! };
}

/** A compute program in a plain worker thread of this process, measured in windows. */
export class PlainThread {
  private constructor(private readonly worker: Worker) {}

  static async start(data: PlainWorkerData): Promise<PlainThread> {
    const worker = new Worker(new URL('./plain-worker.js', import.meta.url), { workerData: data });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    return new PlainThread(worker);
  }

  window(ms: number): Promise<PlainWindow> {
    return new Promise((resolve, reject) => {
      const failed = (error: Error) => reject(error);
      this.worker.once('error', failed);
      this.worker.once('message', (window: PlainWindow) => {
        this.worker.off('error', failed);
        resolve(window);
      });
      this.worker.postMessage({ ms });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** What a container's first process did over a window. */
export interface ContainerWindow {
  /** growth of the process's metric */
  count: number;
  wallMs: number;
  /** CPU the container was charged */
  cpuMs: number;
  /** CPU the host's other containers were charged meanwhile, by name */
  othersCpuMs: Record<string, number>;
}

/** Measures `metric` of the first process of container `name` on `host` over `ms`, calling `during` meanwhile. */
export async function containerWindow(
  client: ClusterClient, host: string, name: string, metric: string, ms: number, during?: () => Promise<void>,
): Promise<ContainerWindow> {
  const sample = async () => {
    const containers = await client.containers(host);
    const info = containers.find((c) => c.name === name);
    if (!info?.processes[0]) throw new Error(`container "${name}" has no process on ${host}`);
    return { at: performance.now(), count: info.processes[0].metrics[metric] ?? 0, cpu: new Map(containers.map((c) => [c.name, c.cpuUsageMs])) };
  };
  const first = await sample();
  while (performance.now() - first.at < ms) {
    await during?.();
    await sleep(Math.min(100, Math.max(0, ms - (performance.now() - first.at))));
  }
  const last = await sample();
  const cpu = (other: string) => (last.cpu.get(other) ?? 0) - (first.cpu.get(other) ?? 0);
  const othersCpuMs: Record<string, number> = {};
  for (const other of last.cpu.keys()) if (other !== name) othersCpuMs[other] = cpu(other);
  return { count: last.count - first.count, wallMs: last.at - first.at, cpuMs: cpu(name), othersCpuMs };
}

/** cgroup.freeze; freezing waits until cgroup.events says every process has stopped. */
export async function setFrozen(client: ClusterClient, name: string, frozen: boolean): Promise<void> {
  await client.cgroupSet(name, 'cgroup.freeze', frozen ? '1' : '0');
  if (!frozen) return;
  for (let tries = 0; ; tries++) {
    const events = (await client.cgroupGet(name, 'cgroup.events'))['cgroup.events'] ?? '';
    if (/^frozen 1$/m.test(events)) return;
    if (tries >= 500) throw new Error(`container "${name}" did not freeze: ${events.replace(/\n/g, ', ')}`);
    await sleep(10);
  }
}
