/**
 * io-stress: disk demand, the load for io.weight / io.max experiments and the isolation suite's disk
 * stress. Every step issues one request of `bytes` on the host's virtual disk (`op=write`, `read`, or
 * `mixed`, which alternates write and read) and sleeps until it completes; a completed request is counted
 * when its result arrives in the next step.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type IoOp = 'read' | 'write';

type IoStressRegs = {
  op: IoOp | 'mixed';
  bytes: number;
  /** the request the previous step issued, whose result is ctx.ret */
  issued: IoOp | null;
  metrics: { requests: number; bytes: number; errors: number };
};

export const ioStress = defineProgram<IoStressRegs>({
  name: 'io-stress',
  description: 'issue disk requests back to back (args: op=write|read|mixed, bytes=1MiB per request)',
  init(args) {
    const reader = new ArgReader('io-stress', args, ['op', 'bytes']);
    const op = reader.choice('op', 'write', ['write', 'read', 'mixed']);
    const bytes = reader.size('bytes', '1MiB', 1);
    return { op, bytes, issued: null, metrics: { requests: 0, bytes: 0, errors: 0 } };
  },
  step(regs, ctx) {
    const ret = ctx.ret;
    if (regs.issued !== null && ret !== undefined) {
      if (ret.ok) {
        regs.metrics.requests++;
        regs.metrics.bytes += regs.bytes;
      } else {
        regs.metrics.errors++;
      }
    }
    const op: IoOp = regs.op !== 'mixed' ? regs.op : regs.issued === 'write' ? 'read' : 'write';
    regs.issued = op;
    return { sys: 'io', op, bytes: regs.bytes };
  },
});
