/**
 * heartbeat: a probe for the pauses a process itself observes, such as a live migration's downtime or a
 * throttled period. It stamps the time (ctx.now) into its one page every `interval`, and counts a pause
 * whenever two stamps are more than two intervals apart, adding the time beyond one interval to
 * `pausedMs`. The page write also keeps one page dirty, so migrations always have something to copy.
 */
import { pageSize } from './program.js';
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type HeartbeatRegs = {
  intervalMs: number;
  phase: 'start' | 'alloc' | 'beat';
  addr: number;
  /** the previous stamp (meaningful once metrics.stamps > 0) */
  lastMs: number;
  metrics: { stamps: number; maxGapMs: number; pauses: number; pausedMs: number };
};

export const heartbeat = defineProgram<HeartbeatRegs>({
  name: 'heartbeat',
  description: 'stamp the time every interval and report the pauses seen (args: interval=1ms)',
  init(args) {
    const reader = new ArgReader('heartbeat', args, ['interval']);
    const intervalMs = reader.duration('interval', '1ms');
    return {
      intervalMs, phase: 'start', addr: -1, lastMs: 0,
      metrics: { stamps: 0, maxGapMs: 0, pauses: 0, pausedMs: 0 },
    };
  },
  step(regs, ctx) {
    if (regs.phase !== 'beat') {
      const ret = ctx.ret;
      if (regs.phase === 'alloc' && ret !== undefined) {
        if (!ret.ok) {
          ctx.log(`heartbeat: cannot allocate its page: ${ret.errno}`);
          return { sys: 'exit', code: ret.errno === 'ENOMEM' ? 12 : 1 };
        }
        regs.addr = ret.value ?? 0;
        regs.phase = 'beat';
      } else {
        regs.phase = 'alloc';
        return { sys: 'alloc', bytes: pageSize };
      }
    }

    const now = ctx.now();
    ctx.mem.writeF64(regs.addr, now);
    const metrics = regs.metrics;
    if (metrics.stamps > 0) {
      const gap = now - regs.lastMs;
      if (gap > metrics.maxGapMs) metrics.maxGapMs = gap;
      if (gap > 2 * regs.intervalMs) {
        metrics.pauses++;
        metrics.pausedMs += gap - regs.intervalMs;
      }
    }
    regs.lastMs = now;
    metrics.stamps++;
    return { sys: 'sleep', ms: regs.intervalMs };
  },
});
