/** What the host tests that run a real Machine share: a small machine that closes with its test, and polling. */
import type { ExecutionContext } from 'ava';
import { Machine, type MachineOptions } from '../dist/machine.js';

export const MiB = 1 << 20;

const options: MachineOptions = {
  host: 'h1', cores: 2, memory: 1 << 30, quantumMs: 10, policy: 'wfq', seed: 1, creditSpeed: 1, disk: { bandwidth: 200e6, iops: 5000 },
};

/** A 2-core, 1 GiB machine with real cores (run `npm run build` first), closed in the test's teardown. */
export function machine(t: ExecutionContext, overrides: Partial<MachineOptions> = {}): Machine {
  const m = new Machine({ ...options, ...overrides });
  t.teardown(() => m.close());
  return m;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `condition` holds (true) or `ms` pass (false): generous, it only waits that long on a stalled host. */
export async function until(condition: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (condition()) return true;
    if (performance.now() > deadline) return false;
    await sleep(5);
  }
}
