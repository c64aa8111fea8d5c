/**
 * crasher: runs `after` steps, then throws, like a program that dereferences a bad pointer. The host must
 * kill it alone, record its exit code (139, SIGSEGV's) and keep everything else running. With `mode=hang`
 * the step instead never returns, like a process stuck in a loop in the kernel: the core's watchdog must
 * kill it and give the core back.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type CrasherRegs = { after: number; hang: boolean; metrics: { steps: number } };

export const crasher = defineProgram<CrasherRegs>({
  name: 'crasher',
  description: 'throw (or hang in one step) after some steps, to show a crash kills only its process (args: after=100, mode=throw|hang)',
  init(args) {
    const reader = new ArgReader('crasher', args, ['after', 'mode']);
    return { after: reader.integer('after', 100, 0, 1_000_000_000), hang: reader.choice('mode', 'throw', ['throw', 'hang']) === 'hang', metrics: { steps: 0 } };
  },
  step(regs) {
    if (regs.metrics.steps >= regs.after && regs.hang) for (;;);
    if (regs.metrics.steps >= regs.after) throw new Error(`crasher: deliberate crash after ${regs.after} steps`);
    regs.metrics.steps++;
    return undefined;
  },
});
