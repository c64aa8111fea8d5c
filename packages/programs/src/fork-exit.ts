/**
 * fork-exit: forks one child running `child` (default sleeper), then exits with `code`. As a container's
 * first process it shows the pid-namespace rule that init's exit kills the namespace; started with
 * `container exec` it leaves an orphan, which the namespace re-parents to pid 1.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type ForkExitRegs = {
  child: string;
  code: number;
  forked: boolean;
  metrics: { childPid: number };
};

export const forkExit = defineProgram<ForkExitRegs>({
  name: 'fork-exit',
  description: 'fork a child (args: child=sleeper), then exit (args: code=0)',
  init(args) {
    const reader = new ArgReader('fork-exit', args, ['child', 'code']);
    const child = String(args['child'] ?? 'sleeper');
    if (child === 'fork-exit') throw reader.error('child: fork-exit would fork forever');
    return { child, code: reader.integer('code', 0, 0, 255), forked: false, metrics: { childPid: 0 } };
  },
  step(regs, ctx) {
    if (!regs.forked) {
      regs.forked = true;
      return { sys: 'spawn', program: regs.child };
    }
    regs.metrics.childPid = ctx.ret?.ok ? (ctx.ret.value ?? 0) : 0;
    return { sys: 'exit', code: regs.code };
  },
});
