/**
 * fs: one operation on the container's own root filesystem (its mount namespace), as `cat`, `ls`, `echo >`
 * and friends would do it: an `fs` system call, then exit. What it reads goes to the container log, one
 * line per line of the file or name in the directory, the first `fsLinesMax` of them (a core keeps 100
 * log lines per quantum); a failure logs `fs: PATH: ERRNO` and exits 1.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';
import { fsOps, type FsOp } from './program.js';

/** the most lines one call logs; the rest are counted in one more line */
export const fsLinesMax = 99;

/** the most one write may carry (an arg typed on a command line) */
export const fsDataMax = 64 * 1024;

type FsRegs = {
  op: FsOp;
  path: string;
  data: string;
  sent: boolean;
  /** bytes: what the call read or wrote */
  metrics: { bytes: number };
};

export const fs = defineProgram<FsRegs>({
  name: 'fs',
  description: 'one operation on the container\'s root filesystem, output to its log (args: op=list|read|write|append|mkdir|remove, path=/, data=TEXT)',
  init(args) {
    const reader = new ArgReader('fs', args, ['op', 'path', 'data']);
    const op = reader.choice('op', 'list', fsOps);
    const path = String(args['path'] ?? '/');
    if (!path.startsWith('/')) throw reader.error(`path: an absolute path, got "${path}"`);
    const data = String(args['data'] ?? '');
    if (data !== '' && op !== 'write' && op !== 'append') throw reader.error(`data: only for op=write or op=append`);
    if (data.length > fsDataMax) throw reader.error(`data: at most ${fsDataMax} characters, got ${data.length}`);
    return { op, path, data, sent: false, metrics: { bytes: 0 } };
  },
  step(regs, ctx) {
    if (!regs.sent) {
      regs.sent = true;
      return { sys: 'fs', op: regs.op, path: regs.path, data: regs.data };
    }
    const ret = ctx.ret;
    if (!ret?.ok) {
      ctx.log(`fs: ${regs.path}: ${ret?.errno ?? 'EIO'}`);
      return { sys: 'exit', code: 1 };
    }
    const text = ret.data ?? '';
    regs.metrics.bytes = ret.data === undefined ? regs.data.length : text.length;
    const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
    for (const line of lines.slice(0, fsLinesMax)) ctx.log(line);
    if (lines.length > fsLinesMax) ctx.log(`fs: ${regs.path}: ${lines.length - fsLinesMax} more lines not shown`);
    return { sys: 'exit', code: 0 };
  },
});
