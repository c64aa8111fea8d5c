/**
 * CFS bandwidth control (cpu.max, cpu.max.burst): a group may run `quota` per `period`, summed over all
 * cores; once spent it is throttled until the next period and its unused share is NOT given to others.
 * Each period the runtime refills to min(runtime + quota, quota + burst). Quanta reserve runtime when
 * dispatched and settle what they really used, so concurrent cores cannot overrun the quota. A quantum
 * that runs past the runtime it reserved (a core sees its deadline one step late) leaves the runtime
 * negative: the next period pays it back, and it is not a burst, as the kernel's negative
 * runtime_remaining is not; nr_bursts counts only use above the quota that carried-over runtime paid for.
 */
export interface BandwidthStats {
  nrPeriods: number;
  nrThrottled: number;
  throttledMs: number;
  nrBursts: number;
  burstMs: number;
  /** the most any completed period used (ms): what the fairness benchmark checks against the quota */
  peakPeriodMs: number;
}

/** A limiter as data: the period's position relative to now, so it means the same on another host. */
export interface BandwidthState {
  quotaMs: number;
  periodMs: number;
  burstMs: number;
  runtime: number;
  /** ms since the current period began */
  periodElapsedMs: number;
  usedInPeriod: number;
  periodRuntime: number;
  /** ms it has been throttled in this period, or null */
  throttledForMs: number | null;
  stats: BandwidthStats;
}

export class Bandwidth {
  runtime: number;
  private periodStart: number;
  private usedInPeriod = 0;
  /** the runtime the current period began with: above the quota only by what earlier periods left */
  private periodRuntime: number;
  private throttledSince?: number;
  readonly stats: BandwidthStats = { nrPeriods: 0, nrThrottled: 0, throttledMs: 0, nrBursts: 0, burstMs: 0, peakPeriodMs: 0 };

  constructor(public quotaMs: number, public periodMs: number, public burstMs: number, now: number) {
    this.runtime = quotaMs;
    this.periodRuntime = quotaMs;
    this.periodStart = now;
  }

  /** Changes the limits in place, keeping the counters (a write to cpu.max while running). */
  update(quotaMs: number, periodMs: number, burstMs: number): void {
    this.quotaMs = quotaMs;
    this.periodMs = periodMs;
    this.burstMs = burstMs;
    this.runtime = Math.min(this.runtime, quotaMs + burstMs);
    this.periodRuntime = Math.min(this.periodRuntime, quotaMs + burstMs);
  }

  save(now: number): BandwidthState {
    this.refresh(now);
    return {
      quotaMs: this.quotaMs, periodMs: this.periodMs, burstMs: this.burstMs, runtime: this.runtime, periodElapsedMs: now - this.periodStart,
      usedInPeriod: this.usedInPeriod, periodRuntime: this.periodRuntime,
      throttledForMs: this.throttledSince === undefined ? null : now - this.throttledSince, stats: { ...this.stats },
    };
  }

  static restore(state: BandwidthState, now: number): Bandwidth {
    const bandwidth = new Bandwidth(state.quotaMs, state.periodMs, state.burstMs, now - state.periodElapsedMs);
    bandwidth.runtime = state.runtime;
    bandwidth.usedInPeriod = state.usedInPeriod;
    bandwidth.periodRuntime = state.periodRuntime;
    bandwidth.throttledSince = state.throttledForMs === null ? undefined : now - state.throttledForMs;
    Object.assign(bandwidth.stats, state.stats);
    return bandwidth;
  }

  /** Runtime left now (after any period boundaries that passed). */
  available(now: number): number {
    this.refresh(now);
    return this.runtime;
  }

  /** When the next refill happens. */
  get nextPeriod(): number {
    return this.periodStart + this.periodMs;
  }

  reserve(ms: number): void {
    this.runtime -= ms;
    this.usedInPeriod += ms;
  }

  settle(reservedMs: number, usedMs: number): void {
    this.runtime += reservedMs - usedMs;
    this.usedInPeriod += usedMs - reservedMs;
  }

  /** The group has work but no runtime. Counted when the period ends, as the kernel's period timer does. */
  throttle(now: number): void {
    this.throttledSince ??= now;
  }

  private refresh(now: number): void {
    const periods = Math.floor((now - this.periodStart) / this.periodMs);
    if (periods < 1) return;
    // the period that just ended; any later ones passed idle (nothing used, nothing throttled)
    const boundary = this.periodStart + this.periodMs;
    if (this.usedInPeriod > 0 || this.throttledSince !== undefined) this.stats.nrPeriods++;
    const burst = Math.min(this.usedInPeriod, this.periodRuntime) - this.quotaMs;
    if (burst > 0) {
      this.stats.nrBursts++;
      this.stats.burstMs += burst;
    }
    this.stats.peakPeriodMs = Math.max(this.stats.peakPeriodMs, this.usedInPeriod);
    if (this.throttledSince !== undefined) {
      this.stats.nrThrottled++;
      this.stats.throttledMs += boundary - this.throttledSince;
      this.throttledSince = undefined;
    }
    this.runtime = Math.min(this.runtime + periods * this.quotaMs, this.quotaMs + this.burstMs);
    this.periodRuntime = this.runtime;
    this.usedInPeriod = 0;
    this.periodStart += periods * this.periodMs;
  }
}
