/**
 * sleeper: an interactive-looking process that runs for `run` ms of CPU, sleeps for `sleep` ms, and
 * repeats. It is the load that exercises wake-up placement (a waking container starts at max(s_i, s_min)),
 * CPU credits earned while idle, and the latency a waking process sees. Only time inside its own steps
 * counts as running, measured with ctx.now() around each chunk, so time spent preempted is not counted.
 */
import { ArgReader } from './args.js';
import { burnChunk } from './cpu-burn.js';
import { defineProgram } from './define.js';

type SleeperRegs = {
  runMs: number;
  sleepMs: number;
  /** CPU time run since the last wake-up */
  burstMs: number;
  /** the previous step returned a sleep */
  sleeping: boolean;
  acc: number;
  metrics: { wakeups: number; ranMs: number };
};

export const sleeper = defineProgram<SleeperRegs>({
  name: 'sleeper',
  description: 'run for a while, sleep for a while, repeat (args: run=20ms, sleep=50ms)',
  init(args) {
    const reader = new ArgReader('sleeper', args, ['run', 'sleep']);
    const runMs = reader.duration('run', '20ms');
    const sleepMs = reader.duration('sleep', '50ms');
    return { runMs, sleepMs, burstMs: 0, sleeping: false, acc: 1, metrics: { wakeups: 0, ranMs: 0 } };
  },
  step(regs, ctx) {
    if (regs.sleeping) {
      regs.sleeping = false;
      regs.metrics.wakeups++;
    }
    const began = ctx.now();
    regs.acc = burnChunk(regs.acc);
    const ran = ctx.now() - began;
    regs.burstMs += ran;
    regs.metrics.ranMs += ran;
    if (regs.burstMs < regs.runMs) return undefined;
    regs.burstMs = 0;
    regs.sleeping = true;
    return { sys: 'sleep', ms: regs.sleepMs };
  },
});
