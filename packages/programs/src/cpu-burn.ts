/**
 * cpu-burn: pure CPU demand, the load for proportional-share, hard-limit and credit experiments. With
 * procs > 1 it first forks procs − 1 single-process copies (one spawn per step; a refused fork is counted
 * and skipped), then every step does one fixed chunk of integer arithmetic (~20–50 µs), so the number of
 * chunks (`metrics.loops`) is a direct measure of the CPU the process was given.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

/** Iterations of one chunk: about 30 µs on a 2020s laptop core. */
export const burnIterations = 12_000;

/** One chunk of arithmetic; the result feeds the next chunk, so the work cannot be optimised away. */
export function burnChunk(state: number): number {
  let x = state | 0 || 0x2545f491;
  let y = 0;
  for (let i = 0; i < burnIterations; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    y = (y + Math.imul(x, 0x9e3779b1)) | 0;
  }
  return (x ^ y) >>> 0;
}

type CpuBurnRegs = {
  /** children still to fork */
  toSpawn: number;
  /** the previous step returned a spawn whose result is ctx.ret */
  spawning: boolean;
  acc: number;
  metrics: { loops: number; children: number; spawnFailed: number };
};

export const cpuBurn = defineProgram<CpuBurnRegs>({
  name: 'cpu-burn',
  description: 'burn CPU in fixed ~30 µs chunks (args: procs=1, forks procs-1 copies)',
  init(args) {
    const reader = new ArgReader('cpu-burn', args, ['procs']);
    const procs = reader.integer('procs', 1, 1, 4096);
    return { toSpawn: procs - 1, spawning: false, acc: 1, metrics: { loops: 0, children: 0, spawnFailed: 0 } };
  },
  step(regs, ctx) {
    if (regs.spawning) {
      regs.spawning = false;
      if (ctx.ret?.ok) regs.metrics.children++;
      else regs.metrics.spawnFailed++;
    }
    if (regs.toSpawn > 0) {
      regs.toSpawn--;
      regs.spawning = true;
      return { sys: 'spawn', program: 'cpu-burn', args: { procs: 1 } };
    }
    regs.acc = burnChunk(regs.acc);
    regs.metrics.loops++;
    return undefined;
  },
});
