/**
 * The host's virtual disk: one device with a bandwidth (bytes/s) and an IOPS limit, serving one request
 * at a time; a request takes max(bytes / bandwidth, 1 / iops). Containers share it by io.weight (WFQ on
 * service time, like the kernel's io.cost weights) and each may be capped by io.max (rbps, wbps, riops,
 * wiops: a TokenBucket each, shaping.ts; a capped container waits while others use the device).
 * The device keeps its own clock: requests are served back to back in device time and complete by timer
 * in batches, so an IOPS rate above the timer's 1 ms resolution is still delivered.
 *
 * A process doing synchronous I/O has one request outstanding: between a completion and its next request
 * its queue is empty, and a disk that served whoever is queued would split the device evenly whatever
 * the weights. So, as BFQ does with slice_idle, a group stays active for `idleWindowMs` after a
 * completion: the device waits for an active group that is owed service (its virtual time below the
 * candidate's) rather than serve one that is ahead, and such a group keeps its virtual time when its
 * next request comes. Only a group idle for longer wakes under the start-time fair queueing rule. As in
 * BFQ, the device does not wait for a group that is slow to ask again (mean think time of a window or
 * more) nor for one capped by io.max: waiting would only idle the device that others could use.
 */
import type { DiskSpec } from '@slicelab/protocol';
import { TokenBucket, type TokenBucketState } from './shaping.js';

export type { DiskSpec };

export interface IoLimits {
  rbps: number | null;
  wbps: number | null;
  riops: number | null;
  wiops: number | null;
}

export interface IoStat {
  rbytes: number;
  wbytes: number;
  rios: number;
  wios: number;
  /** ms its requests waited in the queue (io pressure) */
  waitedMs: number;
}

interface Request {
  op: 'read' | 'write';
  bytes: number;
  /** the process that asked (its host pid): a killed process's requests are withdrawn */
  owner: number;
  queuedAt: number;
  done: () => void;
}

/**
 * A group as data, its times relative to now and to the device's virtual time. Its queue is not here:
 * requests belong to processes, which save what they wait on and submit it again on restore. Nor are
 * its limits: they come from the cgroup files.
 */
export interface IoGroupState {
  /** virtual time ahead of the device's */
  vtimeLead: number;
  /** ms since its last request completed, or null if none has */
  sinceDoneMs: number | null;
  thinkMs: number;
  stat: IoStat;
  buckets: Record<keyof IoLimits, TokenBucketState>;
}

const ioKeys = ['rbps', 'wbps', 'riops', 'wiops'] as const;

/** The bucket of a limit not set: when one is, it starts empty, refilling from its first use. */
const emptyBucket = () => new TokenBucket(0, 0, 0);

export class IoGroup {
  vtime = 0;
  /** device time its last request completed */
  lastDone = -Infinity;
  /** mean ms from a completion to its next request, when it had nothing else queued or in flight (BFQ's ttime) */
  thinkMs = 0;
  readonly queue: Request[] = [];
  readonly stat: IoStat = { rbytes: 0, wbytes: 0, rios: 0, wios: 0, waitedMs: 0 };
  private ioMax: IoLimits = { rbps: null, wbps: null, riops: null, wiops: null };
  private readonly buckets: Record<keyof IoLimits, TokenBucket> = { rbps: emptyBucket(), wbps: emptyBucket(), riops: emptyBucket(), wiops: emptyBucket() };

  constructor(readonly id: number, public weight: number) {}

  get limits(): Readonly<IoLimits> {
    return this.ioMax;
  }

  /** io.max: each limit a bucket refilled at its rate; a limit changed keeps its tokens. */
  set limits(limits: IoLimits) {
    this.ioMax = { ...limits };
    for (const key of ioKeys) {
      const rate = limits[key];
      const bucket = this.buckets[key];
      // a limit lifted and set again starts empty, as one set for the first time does
      if (rate === null) this.buckets[key] = emptyBucket();
      else {
        bucket.rate = rate;
        // a burst of one second's worth, like a token bucket sized to its rate
        bucket.burst = rate;
      }
    }
  }

  /** When this group's next request may start under io.max (now, or later). */
  readyAt(now: number): number {
    const request = this.queue[0];
    if (!request) return Infinity;
    return Math.max(now, ...this.charges(request).map(([bucket, amount]) => bucket.readyAt(now, amount)));
  }

  save(now: number, deviceVtime: number): IoGroupState {
    return {
      vtimeLead: this.vtime - deviceVtime, sinceDoneMs: Number.isFinite(this.lastDone) ? now - this.lastDone : null, thinkMs: this.thinkMs,
      stat: { ...this.stat },
      buckets: { rbps: this.buckets.rbps.save(now), wbps: this.buckets.wbps.save(now), riops: this.buckets.riops.save(now), wiops: this.buckets.wiops.save(now) },
    };
  }

  /** Takes on a saved state (the limits and weight come from the cgroup files). */
  load(state: IoGroupState, now: number, deviceVtime: number): void {
    this.vtime = deviceVtime + state.vtimeLead;
    this.lastDone = state.sinceDoneMs === null ? -Infinity : now - state.sinceDoneMs;
    this.thinkMs = state.thinkMs;
    Object.assign(this.stat, state.stat);
    for (const key of ioKeys) this.buckets[key].load(state.buckets[key], now);
  }

  take(request: Request, now: number): void {
    for (const [bucket, amount] of this.charges(request)) bucket.take(amount, now);
  }

  /**
   * The buckets a request draws from (those of its direction with a limit) and what it costs each. One
   * larger than a second's worth of bytes starts from a full bucket and leaves it in debt.
   */
  private charges(request: Request): Array<[TokenBucket, number]> {
    const costs = request.op === 'read' ? ([['rbps', request.bytes], ['riops', 1]] as const) : ([['wbps', request.bytes], ['wiops', 1]] as const);
    return costs.filter(([key]) => this.ioMax[key] !== null).map(([key, amount]) => [this.buckets[key], amount]);
  }
}

interface InFlight {
  group: IoGroup;
  request: Request;
  completesAt: number;
}

/** How far ahead of the wall clock the device may schedule work. */
const horizonMs = 2;
/** BFQ's slice_idle: how long the device waits for the next request of a group it owes service */
export const idleWindowMs = 8;

export class Disk {
  private readonly groups = new Set<IoGroup>();
  private readonly inFlight: InFlight[] = [];
  /** device time when the last started request completes */
  private busyUntil = 0;
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private closed = false;
  /** the start tag of the request dispatched last: the device's virtual time */
  private virtualNow = 0;

  constructor(readonly spec: DiskSpec, private readonly now: () => number) {}

  add(group: IoGroup): void {
    this.groups.add(group);
  }

  remove(group: IoGroup): void {
    this.groups.delete(group);
    group.queue.splice(0);
  }

  /** The device's virtual time: what saved groups' virtual times are relative to. */
  get vtime(): number {
    return this.virtualNow;
  }

  /** Withdraws the queued requests of process `owner` (killed): they take no device time. */
  cancel(group: IoGroup, owner: number): void {
    for (let i = group.queue.length - 1; i >= 0; i--) if (group.queue[i]!.owner === owner) group.queue.splice(i, 1);
  }

  submit(group: IoGroup, op: 'read' | 'write', bytes: number, owner: number, done: () => void): void {
    const now = this.now();
    if (group.queue.length === 0 && Number.isFinite(group.lastDone) && !this.onDevice(group)) {
      group.thinkMs = 0.75 * group.thinkMs + 0.25 * Math.min(now - group.lastDone, 4 * idleWindowMs);
    }
    // the start-time fair queueing wake rule: a group back from idle starts no earlier than the device's
    // virtual time, so idling earns no credit (one still active keeps its place)
    if (!this.active(group, now)) group.vtime = Math.max(group.vtime, this.virtualNow);
    group.queue.push({ op, bytes, owner, queuedAt: now, done });
    this.pump();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private pump(): void {
    if (this.closed) return;
    const now = this.now();
    this.complete(now);
    let earliestReady = Infinity;
    while (Math.max(this.busyUntil, now) <= now + horizonMs) {
      let best: IoGroup | undefined;
      for (const group of this.groups) {
        if (group.queue.length === 0) continue;
        const at = group.readyAt(now);
        if (at > now) {
          earliestReady = Math.min(earliestReady, at);
          continue;
        }
        if (!best || group.vtime < best.vtime) best = group;
      }
      if (!best) break;
      const owed = this.owed(best, now);
      if (owed !== undefined) {
        // wait for it: its next request comes on completion, or its window closes
        earliestReady = Math.min(earliestReady, owed);
        break;
      }
      const request = best.queue.shift()!;
      best.take(request, now);
      this.virtualNow = best.vtime;
      const serviceMs = Math.max(request.bytes / this.spec.bandwidth, 1 / this.spec.iops) * 1000;
      best.vtime += serviceMs / best.weight;
      best.stat.waitedMs += now - request.queuedAt;
      this.busyUntil = Math.max(this.busyUntil, now) + serviceMs;
      this.inFlight.push({ group: best, request, completesAt: this.busyUntil });
    }
    const next = Math.min(this.inFlight[0]?.completesAt ?? Infinity, this.inFlight.length === 0 ? earliestReady : Infinity);
    if (next !== Infinity) this.wakeAt(next, now);
  }

  /** A group with nothing queued: whether it still counts as busy (in flight, or within its idle window). */
  private active(group: IoGroup, now: number): boolean {
    return group.queue.length > 0 || now - group.lastDone < idleWindowMs || this.onDevice(group);
  }

  /** Whether one of the group's requests is started on the device and not completed. */
  private onDevice(group: IoGroup): boolean {
    return this.inFlight.some((f) => f.group === group);
  }

  /**
   * When some active group with nothing queued is owed service before `candidate` (a smaller virtual
   * time), the time its idle window closes (Infinity while its request is in flight); else undefined.
   */
  private owed(candidate: IoGroup, now: number): number | undefined {
    let until: number | undefined;
    for (const group of this.groups) {
      if (group === candidate || group.queue.length > 0 || group.vtime >= candidate.vtime || !this.active(group, now)) continue;
      if (group.thinkMs >= idleWindowMs || Object.values(group.limits).some((limit) => limit !== null)) continue;
      const closes = this.onDevice(group) ? Infinity : group.lastDone + idleWindowMs;
      until = Math.min(until ?? Infinity, closes);
    }
    return until;
  }

  private complete(now: number): void {
    while (this.inFlight.length > 0 && this.inFlight[0]!.completesAt <= now) {
      const { group, request, completesAt } = this.inFlight.shift()!;
      group.lastDone = completesAt;
      if (request.op === 'read') {
        group.stat.rbytes += request.bytes;
        group.stat.rios++;
      } else {
        group.stat.wbytes += request.bytes;
        group.stat.wios++;
      }
      request.done();
    }
  }

  private wakeAt(at: number, now: number): void {
    if (at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(0, at - now));
  }
}
