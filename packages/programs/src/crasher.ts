/**
 * crasher: runs `after` steps, then throws, like a program that dereferences a bad pointer. The host must
 * kill it alone, record its exit code (139, SIGSEGV's) and keep everything else running.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type CrasherRegs = { after: number; metrics: { steps: number } };

export const crasher = defineProgram<CrasherRegs>({
  name: 'crasher',
  description: 'throw after some steps, to show a crash kills only its process (args: after=100)',
  init(args) {
    const reader = new ArgReader('crasher', args, ['after']);
    return { after: reader.integer('after', 100, 0, 1_000_000_000), metrics: { steps: 0 } };
  },
  step(regs) {
    if (regs.metrics.steps >= regs.after) throw new Error(`crasher: deliberate crash after ${regs.after} steps`);
    regs.metrics.steps++;
    return undefined;
  },
});
