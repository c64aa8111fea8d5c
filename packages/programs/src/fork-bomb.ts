/**
 * fork-bomb: the isolation suite's fork bomb. Every step forks another fork-bomb, and every child does
 * the same, until the container's pids.max refuses with EAGAIN; then it keeps trying, one fork per step,
 * as a real fork bomb does. Processes are records here, so the bomb costs its own container pids and
 * CPU share, and the question it answers is whether the neighbours notice.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type ForkBombRegs = {
  /** the previous step returned a spawn whose result is ctx.ret */
  forking: boolean;
  metrics: { forks: number; eagain: number; errors: number };
};

export const forkBomb = defineProgram<ForkBombRegs>({
  name: 'fork-bomb',
  description: 'fork copies of itself without end; counts forks and EAGAIN at pids.max (no args)',
  init(args) {
    // it takes no args: the reader refuses any
    new ArgReader('fork-bomb', args, []);
    return { forking: false, metrics: { forks: 0, eagain: 0, errors: 0 } };
  },
  step(regs, ctx) {
    const ret = ctx.ret;
    if (regs.forking && ret !== undefined) {
      if (ret.ok) regs.metrics.forks++;
      else if (ret.errno === 'EAGAIN') regs.metrics.eagain++;
      else regs.metrics.errors++;
    }
    regs.forking = true;
    return { sys: 'spawn', program: 'fork-bomb' };
  },
});
