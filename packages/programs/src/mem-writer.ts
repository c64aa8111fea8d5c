/**
 * mem-writer: a working set with a dirty rate, the load that decides whether a live migration converges.
 * It allocates `wss` bytes, then writes pages one after another (`pattern=seq`) or at random
 * (`pattern=random`), storing a 32-bit sequence stamp at the start of each page: the write marks the page
 * dirty, and the stamp lets a test or a migration digest see which write a page holds. With `rate` r > 0
 * it keeps to r pages per second of wall time (floor(r × elapsed) pages due, at most 64 per step, and a
 * sleep until the next page is due once caught up); with rate 0 it dirties 64 pages per step, flat out.
 * `passes` counts whole sweeps' worth of writes (pagesWritten / wssPages, rounded down).
 *
 * With `fill=yes` every page of the working set is written once first, flat out (`filled` says when),
 * and the rate counts from then: a live migration's benchmark gets its whole memory touched, then dirtied
 * at the rate it asks for. `rate=idle` writes nothing more after the fill (an idle guest of that size).
 *
 * The random pattern draws from a generator kept in the registers (seeded once from ctx.rand), so a step
 * that faults and runs again writes the very same pages with the very same stamps.
 */
import { pageSize } from './program.js';
import { ArgReader } from './args.js';
import { defineProgram, xorshift32 } from './define.js';

/** Pages written per step at most: 64 stamps is a few µs, and a fault repeats little work. */
export const pagesPerStep = 64;

type MemWriterRegs = {
  wssPages: number;
  /** pages per second; 0 = as fast as possible; -1 = idle (no writes after the fill) */
  rate: number;
  /** pages of the fill still to write (0 once filled, or without fill) */
  toFill: number;
  /** pagesWritten when the rate began */
  base: number;
  random: boolean;
  phase: 'start' | 'alloc' | 'write';
  addr: number;
  /** when writing began (ctx.now), the origin of the rate */
  startMs: number;
  rng: number;
  metrics: { pagesWritten: number; wssPages: number; passes: number; filled: number };
};

export const memWriter = defineProgram<MemWriterRegs>({
  name: 'mem-writer',
  description: 'dirty a working set at a rate (args: wss=64MiB, rate=0 pages/s (0 = flat out, idle = none after the fill), pattern=seq|random, fill=no|yes)',
  init(args) {
    const reader = new ArgReader('mem-writer', args, ['wss', 'rate', 'pattern', 'fill']);
    const wssPages = Math.floor(reader.size('wss', '64MiB', pageSize) / pageSize);
    const rate = args['rate'] === 'idle' ? -1 : reader.number('rate', 0, 0, 'pages per second, or idle');
    const pattern = reader.choice('pattern', 'seq', ['seq', 'random']);
    const fill = reader.choice('fill', 'no', ['no', 'yes']) === 'yes';
    return {
      wssPages, rate, random: pattern === 'random', toFill: fill ? wssPages : 0, base: 0,
      phase: 'start', addr: -1, startMs: 0, rng: 0,
      metrics: { pagesWritten: 0, wssPages, passes: 0, filled: fill ? 0 : 1 },
    };
  },
  step(regs, ctx) {
    if (regs.phase !== 'write') {
      const ret = ctx.ret;
      if (regs.phase === 'alloc' && ret !== undefined) {
        if (!ret.ok) {
          ctx.log(`mem-writer: cannot allocate ${regs.wssPages} pages: ${ret.errno}`);
          return { sys: 'exit', code: ret.errno === 'ENOMEM' ? 12 : 1 };
        }
        regs.addr = ret.value ?? 0;
        regs.startMs = ctx.now();
        regs.rng = Math.floor(ctx.rand() * 0x1_0000_0000) || 1;
        regs.phase = 'write';
        return undefined;
      }
      regs.phase = 'alloc';
      return { sys: 'alloc', bytes: regs.wssPages * pageSize };
    }

    const now = ctx.now();
    if (regs.toFill > 0) {
      const first = regs.wssPages - regs.toFill;
      const count = Math.min(pagesPerStep, regs.toFill);
      for (let i = 0; i < count; i++) ctx.mem.writeU32(regs.addr + (first + i) * pageSize, (regs.metrics.pagesWritten + i + 1) >>> 0);
      regs.toFill -= count;
      regs.metrics.pagesWritten += count;
      regs.metrics.passes = Math.floor(regs.metrics.pagesWritten / regs.wssPages);
      if (regs.toFill === 0) {
        regs.metrics.filled = 1;
        regs.startMs = now;
        regs.base = regs.metrics.pagesWritten;
      }
      return undefined;
    }
    if (regs.rate < 0) return { sys: 'sleep', ms: 1000 };
    const written = regs.metrics.pagesWritten;
    const due = regs.rate > 0 ? regs.base + Math.floor((regs.rate * (now - regs.startMs)) / 1000) : Infinity;
    const count = Math.min(pagesPerStep, due - written);
    let rng = regs.rng;
    for (let i = 0; i < count; i++) {
      let page: number;
      if (regs.random) {
        rng = xorshift32(rng);
        page = Math.floor((rng / 0x1_0000_0000) * regs.wssPages);
      } else {
        page = (written + i) % regs.wssPages;
      }
      ctx.mem.writeU32(regs.addr + page * pageSize, (written + i + 1) >>> 0);
    }

    const total = written + Math.max(0, count);
    regs.rng = rng;
    regs.metrics.pagesWritten = total;
    regs.metrics.passes = Math.floor(total / regs.wssPages);
    if (total < due) return undefined;
    const nextDueMs = regs.startMs + ((total - regs.base + 1) * 1000) / regs.rate;
    return { sys: 'sleep', ms: Math.max(1, nextDueMs - now) };
  },
});
