/**
 * When precopy stops copying rounds and what it does then: plain rules over measured numbers, no
 * timers or I/O, so the unit tests drive them with made-up rounds.
 *
 *   switch over when the dirty pages left would go within the downtime limit at the bandwidth measured
 *     over the last round (QEMU's expected-downtime);
 *   hybrid: switch to postcopy after `postcopyAfter` rounds;
 *   auto-converge (QEMU's rule): when a round leaves more than half as many dirty pages as it sent, twice,
 *     throttle the container's CPU: 20 %, then 10 points more each time, at most 99 %;
 *   stop rule (P.Haul's): a round that grew more than 10 % over the one before, or the round cap, ends
 *     precopy: auto-converge throttles harder while it can, hybrid goes to postcopy, plain precopy stops
 *     and copies with the downtime it gets, which the statistics report against the limit.
 */
import { pageSize } from '@slicelab/programs';
import { throttleSteps, type MigrationMode, type RoundStats } from '@slicelab/protocol';

export interface ConvergenceOptions {
  mode: MigrationMode;
  downtimeLimitMs: number;
  maxRounds: number;
  autoConverge: boolean;
  postcopyAfter: number | null;
}

export type Decision =
  | { next: 'round'; throttle?: number }
  | { next: 'stop-and-copy'; why: string }
  | { next: 'postcopy'; why: string };

export class Convergence {
  readonly rounds: RoundStats[] = [];
  /** bytes per ms, measured over the last round that sent something */
  private rate: number | undefined;
  /** QEMU's dirty_rate_high_cnt */
  private high = 0;
  throttle = 0;

  constructor(private readonly options: ConvergenceOptions, private readonly capBytesPerMs: number | undefined) {}

  /** ms to send `pages` pages at the measured rate (or the cap before anything was measured). */
  expectedDowntimeMs(pages: number): number {
    if (pages === 0) return 0;
    const rate = this.rate ?? this.capBytesPerMs;
    return rate === undefined ? Infinity : (pages * pageSize) / rate;
  }

  /** The pages dirtied per second during the last round. */
  get dirtyRate(): number {
    const last = this.rounds.at(-1);
    return last && last.ms > 0 ? (last.dirtyPages * 1000) / last.ms : 0;
  }

  /** A round ended: `sent` pages in `ms`, after which `dirtyPages` are dirty. What comes next. */
  after(round: { pages: number; bytes: number; ms: number; dirtyPages: number }): Decision {
    const previous = this.rounds.at(-1);
    this.rounds.push({ round: this.rounds.length + 1, ...round, throttle: this.throttle });
    if (round.bytes >= 64 * pageSize && round.ms > 0) this.rate = round.bytes / round.ms;
    const count = this.rounds.length;
    const expected = this.expectedDowntimeMs(round.dirtyPages);
    if (expected <= this.options.downtimeLimitMs) return { next: 'stop-and-copy', why: `${round.dirtyPages} dirty pages fit the downtime limit (${expected.toFixed(1)} ms expected)` };
    if (this.options.mode === 'hybrid' && this.options.postcopyAfter !== null && count >= this.options.postcopyAfter) {
      return { next: 'postcopy', why: `after ${count} precopy rounds` };
    }
    const grew = previous !== undefined && round.dirtyPages > previous.dirtyPages * 1.1;
    const capped = count >= this.options.maxRounds;
    if (this.options.autoConverge && this.throttle < throttleSteps.max) {
      this.high = round.dirtyPages > round.pages / 2 ? this.high + 1 : 0;
      if (this.high >= 2 || grew || capped) {
        this.high = 0;
        this.throttle = this.throttle === 0 ? throttleSteps.initial : Math.min(throttleSteps.max, this.throttle + throttleSteps.increment);
        return { next: 'round', throttle: this.throttle };
      }
      return { next: 'round' };
    }
    if (!grew && !capped) return { next: 'round' };
    const why = capped ? `round cap (${this.options.maxRounds}) reached` : `round ${count} grew over 10 % (${previous!.dirtyPages} → ${round.dirtyPages} dirty pages)`;
    if (this.options.mode === 'hybrid') return { next: 'postcopy', why };
    return { next: 'stop-and-copy', why: `${why}; ${expected.toFixed(1)} ms expected, over the ${this.options.downtimeLimitMs} ms limit` };
  }
}
