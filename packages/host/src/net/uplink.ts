/**
 * A host's uplink: its emulated physical NIC, a port of the bridge. Egress, as Mininet's TCLink stacks tc
 * on an interface: the HTB shaper (shaping.ts) shares the link's bandwidth among the host's nics by weight
 * and holds each to its rate and ceil, a full queue drops at the tail; then netem adds the delay, jitter
 * (per frame, uniform in ±jitter, so frames may reorder as netem's do) and independent loss; then the
 * frame goes to the fabric: to the host that its destination MAC was last seen behind, or to every host
 * (broadcast, or a MAC not learned yet). Ingress: a frame from the fabric teaches which host its source
 * MAC lives on and goes into the bridge. Delay applies on the way out, so a round trip between two hosts
 * with delay d each takes 2d, as between two Mininet hosts.
 *
 * The link changes while running (`set`), as `tc qdisc change` would. Nothing here arms a timer: the
 * owner (network.ts) asks `nextTimerAt()` and calls `tick(now)`.
 *
 * The uplink also watches slicelab itself (`LinkHealth`): the shaper sends on time only if its owner's
 * timer wakes on time, and a Node timer on a busy machine wakes late. Per one-second window it measures
 * how long frames waited in the shaper, what it sent meanwhile against what the link and the waiting
 * nics' ceilings allowed, and how late each wake-up came against the time `nextTimerAt` had asked for.
 * The rule that calls the emulator, not the link model, the limit is `limitedBy` below.
 */
import type { LinkHealth, Uplink } from '@slicelab/protocol';
import { xorshift32 } from '@slicelab/programs';
import type { Bridge, BridgePort } from './bridge.js';
import { broadcastHost } from './fabric.js';
import { FrameError, broadcastMac, decodeEthernet, macFromBytes, onWire, segmentFrame } from './frame.js';
import { Htb, type HtbClassConfig, type ShapingStats } from '../shaping.js';

/** A nic's class in the shaper, bytes per second: rate guaranteed, ceil at most (null: the link's), weight of what is left. */
export type NicShaping = Pick<HtbClassConfig, 'rate' | 'ceil' | 'weight'>;

export interface LinkStats {
  /** the link as configured now: bandwidth bits/s, delay and jitter ms, loss %, queue frames */
  spec: Uplink;
  txBytes: number;
  txPackets: number;
  rxBytes: number;
  rxPackets: number;
  /** frames dropped at the tail of a full queue */
  queueDrops: number;
  /** frames netem's loss took */
  lossDrops: number;
  /** frames in the shaper's queues and in flight (delayed) now */
  backlog: number;
  inFlight: number;
  /** bits per second sent, over about the last second */
  rateBps: number;
  /** the last full second: whether slicelab kept up with the link */
  health: LinkHealth;
}

/** a 1 gbit link without delay or loss: a host's uplink when nothing else is said */
export const defaultUplink: Uplink = { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 };

/** the class frames of no local nic go into (ARP for a nic not attached yet) */
const otherTraffic = 'other';

/** A frame in the shaper, with the class it was queued in (so the uplink knows which classes wait); its size is on the wire's. */
interface Queued {
  readonly byteLength: number;
  readonly packets: number;
  readonly frame: Uint8Array;
  readonly cls: string;
}

const windowMs = 1000;
/**
 * The shaper's buckets hold 3 ms of sending beyond a frame (shaping.ts's burstMs): a wake-up up to that
 * late loses the link nothing, a later one loses the rest of its lateness.
 */
const lateAllowanceMs = 3;
/** less waiting than this in a second is too little to judge a rate by */
const minWaitingMs = 100;
/** sent under this share of what was allowed counts as held back */
const shortfall = 0.9;

/** One window of the uplink's life, as it accrues. */
interface Window {
  start: number;
  /** ms during which frames waited in the shaper */
  waitingMs: number;
  /** bytes the link and the waiting classes' ceilings allowed during that time */
  allowedBytes: number;
  /** bytes sent from a shaper that had frames waiting since the call before */
  sentBytes: number;
  /** how late each wake-up came after the time asked for, ms */
  late: number[];
}

const openWindow = (start: number): Window => ({ start, waitingMs: 0, allowedBytes: 0, sentBytes: 0, late: [] });

/**
 * The rule, kept simple enough to explain: in a full second, the emulator (not the link model) held the
 * link back when frames waited in the shaper for at least `minWaitingMs`, the link sent under `shortfall`
 * of what its bandwidth and the waiting nics' ceilings allowed in that time, and its timer woke more than
 * `lateAllowanceMs` late at the 99th percentile. While frames wait, the shaper is work-conserving up to
 * those limits when it is called on time, so a shortfall with a late timer is time the emulator lost.
 */
function limitedBy(w: Window, lateP99Ms: number): boolean {
  return w.waitingMs >= minWaitingMs && w.sentBytes < shortfall * w.allowedBytes && lateP99Ms > lateAllowanceMs;
}

/** A window's figures; `ms` is how much of it has passed (less than `windowMs` only for the first one). */
function summary(w: Window, ms: number): LinkHealth {
  const late = [...w.late].sort((a, b) => a - b);
  const lateP99Ms = late.length > 0 ? late[Math.ceil(late.length * 0.99) - 1]! : 0;
  const perSecond = w.waitingMs > 0 ? 8000 / w.waitingMs : 0;
  return {
    windowMs: ms, waitingMs: w.waitingMs, sentBps: w.sentBytes * perSecond, allowedBps: w.allowedBytes * perSecond,
    lateP99Ms, lateMaxMs: late.at(-1) ?? 0, limited: limitedBy(w, lateP99Ms),
  };
}

export class UplinkPort implements BridgePort {
  readonly id = 'uplink';
  private spec: Uplink;
  private readonly shaper: Htb<Queued>;
  /** frames past the shaper, waiting out their delay, in order of departure */
  private readonly flight: Array<{ at: number; to: string; frame: Uint8Array }> = [];
  /** which host each remote MAC was last seen behind */
  private readonly remote = new Map<string, string>();
  private random: number;
  private counters = { txBytes: 0, txPackets: 0, rxBytes: 0, rxPackets: 0, queueDrops: 0, lossDrops: 0 };
  /** frames waiting in the shaper, per class and in all */
  private readonly queued = new Map<string, number>();
  private waiting = 0;
  /** bytes per second the waiting classes may send at together; recomputed when they or the limits change */
  private allowed: number | undefined;
  /** the earliest time the owner was asked to call `tick` since the last tick */
  private dueAt: number | undefined;
  private window: Window;
  private lastWindow: LinkHealth | undefined;
  /** when the waiting time was last brought up to date, and whether frames waited since */
  private observedAt: number;
  private waited = false;

  constructor(
    private readonly clock: () => number,
    spec: Uplink,
    seed: number,
    private readonly bridge: Bridge,
    private readonly send: (to: string, frame: Uint8Array) => void,
    private readonly changed: () => void,
  ) {
    this.spec = { ...spec };
    this.random = seed >>> 0 || 1;
    this.shaper = new Htb<Queued>({ bandwidth: spec.bandwidth / 8, limit: spec.maxQueue });
    this.shaper.setClass(otherTraffic, { rate: 0, ceil: null, weight: 1, limit: null });
    this.observedAt = clock();
    this.window = openWindow(this.observedAt);
  }

  /** The link as configured now. */
  get config(): Uplink {
    return { ...this.spec };
  }

  /** A local nic's class in the shaper: by default no guarantee, the whole link as its ceil, weight 1. */
  addNic(mac: string, shaping: Partial<NicShaping> = {}): void {
    this.shaper.setClass(mac, { rate: 0, ceil: null, weight: 1, limit: null, ...shaping });
  }

  setNic(mac: string, shaping: Partial<NicShaping>): void {
    this.observe(this.clock());
    this.shaper.setClass(mac, shaping);
    this.allowed = undefined;
  }

  nicShaping(mac: string): NicShaping {
    const { rate, ceil, weight } = this.shaper.classOf(mac);
    return { rate, ceil, weight };
  }

  /** The shaper's figures: the link's and each class's (a nic's by its MAC), bytes and bytes per second. */
  shaping(): { link: ShapingStats; classes: Record<string, ShapingStats> } {
    return this.shaper.stats(this.clock());
  }

  removeNic(mac: string): void {
    this.observe(this.clock());
    this.shaper.removeClass(mac);
    // its waiting frames went with it
    this.waiting -= this.queued.get(mac) ?? 0;
    this.queued.delete(mac);
    this.allowed = undefined;
  }

  /** Changes the link while it runs. */
  set(spec: Uplink): void {
    this.observe(this.clock());
    this.spec = { ...spec };
    this.shaper.setLink({ bandwidth: spec.bandwidth / 8, limit: spec.maxQueue });
    this.allowed = undefined;
    this.changed();
  }

  /**
   * From the bridge: a frame leaving the host. A segment its nic offloaded is shaped and queued as the
   * packets it is on the wire; when netem is to lose or reorder single packets it is cut into them first.
   */
  deliver(frame: Uint8Array): void {
    const now = this.clock();
    this.observe(now);
    const src = macFromBytes(frame, 6);
    const cls = this.shaper.has(src) ? src : otherTraffic;
    const frames = this.spec.loss > 0 || this.spec.jitter > 0 ? segmentFrame(frame) : [frame];
    for (const piece of frames) {
      const wire = onWire(piece);
      if (this.enqueue(cls, piece, wire)) continue;
      // a segment the queue has no room for whole goes in as its packets, as far as they fit (tail drop)
      if (wire.packets === 1) this.counters.queueDrops += 1;
      else for (const packet of segmentFrame(piece)) if (!this.enqueue(cls, packet, onWire(packet))) this.counters.queueDrops += 1;
    }
    this.pump(now);
  }

  private enqueue(cls: string, frame: Uint8Array, wire: { packets: number; bytes: number }): boolean {
    if (!this.shaper.enqueue(cls, { byteLength: wire.bytes, packets: wire.packets, frame, cls })) return false;
    this.waiting += 1;
    const before = this.queued.get(cls) ?? 0;
    this.queued.set(cls, before + 1);
    if (before === 0) this.allowed = undefined;
    return true;
  }

  /** From the fabric: a frame another host sent here. */
  receive(host: string, frame: Uint8Array): void {
    let dst: string;
    let src: string;
    let wire: { packets: number; bytes: number };
    try {
      ({ dst, src } = decodeEthernet(frame));
      wire = onWire(frame);
    } catch (error) {
      if (error instanceof FrameError) return;
      throw error;
    }
    this.counters.rxBytes += wire.bytes;
    this.counters.rxPackets += wire.packets;
    this.remote.set(src, host);
    this.bridge.receive(this.id, frame, dst, src);
  }

  /**
   * When `tick` must be called next. The earliest time asked for since the last tick is remembered: the
   * owner's timer is armed for it (a timer is moved earlier, never later), so the tick can tell how late
   * the timer woke.
   */
  /** When the next frame in flight ends its delay: the one time here worth waking for to the microsecond. */
  nextArrivalAt(): number | undefined {
    return this.flight[0]?.at;
  }

  nextTimerAt(): number | undefined {
    const now = this.clock();
    const next = Math.min(this.shaper.nextReadyAt(now), this.flight[0]?.at ?? Infinity);
    if (next !== Infinity) this.dueAt = Math.min(this.dueAt ?? Infinity, next);
    return next === Infinity ? undefined : next;
  }

  tick(now: number): void {
    this.observe(now);
    if (this.dueAt !== undefined && this.dueAt <= now) this.window.late.push(now - this.dueAt);
    this.dueAt = undefined;
    this.pump(now);
    while (this.flight.length > 0 && this.flight[0]!.at <= now) {
      const { to, frame } = this.flight.shift()!;
      this.send(to, frame);
    }
  }

  stats(): LinkStats {
    const now = this.clock();
    this.observe(now);
    const { link } = this.shaper.stats(now);
    return {
      spec: { ...this.spec }, ...this.counters, backlog: link.backlog, inFlight: this.flight.length, rateBps: link.rate * 8,
      health: this.lastWindow ?? summary(this.window, now - this.window.start),
    };
  }

  /**
   * Brings the window up to `now`: between two calls nothing enters or leaves the shaper, so frames
   * either waited the whole time since the last call or not at all. A window ends after `windowMs`; when
   * whole windows passed without a call, the last of them (spent in the same state) is the one kept.
   */
  private observe(now: number): void {
    const end = this.window.start + windowMs;
    if (now >= end) {
      this.accrue(end);
      const skipped = Math.floor((now - end) / windowMs);
      if (skipped > 0) {
        this.window = openWindow(end + (skipped - 1) * windowMs);
        this.observedAt = this.window.start;
        this.accrue(this.window.start + windowMs);
      }
      this.lastWindow = summary(this.window, windowMs);
      this.window = openWindow(end + skipped * windowMs);
      this.observedAt = this.window.start;
    }
    this.accrue(now);
  }

  private accrue(now: number): void {
    const ms = now - this.observedAt;
    this.observedAt = now;
    this.waited = this.waiting > 0;
    if (!this.waited || ms <= 0) return;
    this.window.waitingMs += ms;
    this.window.allowedBytes += (this.allowedRate() * ms) / 1000;
  }

  /** The link's bandwidth, or less when the ceilings of the classes with frames waiting sum to less; bytes per second. */
  private allowedRate(): number {
    if (this.allowed === undefined) {
      const link = this.spec.bandwidth / 8;
      let ceilings = 0;
      for (const cls of this.queued.keys()) ceilings += this.shaper.classOf(cls).ceil ?? link;
      this.allowed = Math.min(link, ceilings);
    }
    return this.allowed;
  }

  /** Takes from the shaper what the link may send now, through netem. */
  private pump(now: number): void {
    for (let item = this.shaper.dequeue(now); item; item = this.shaper.dequeue(now)) {
      const { frame, cls, byteLength, packets } = item;
      this.waiting -= 1;
      const left = this.queued.get(cls)! - 1;
      if (left > 0) this.queued.set(cls, left);
      else {
        this.queued.delete(cls);
        this.allowed = undefined;
      }
      // what an idle link sends at once comes out of its buckets' burst, not out of the time frames waited
      if (this.waited) this.window.sentBytes += byteLength;
      this.counters.txBytes += byteLength;
      this.counters.txPackets += packets;
      if (this.spec.loss > 0 && this.uniform() * 100 < this.spec.loss) {
        this.counters.lossDrops += packets;
        continue;
      }
      const jitter = this.spec.jitter > 0 ? (this.uniform() * 2 - 1) * this.spec.jitter : 0;
      const at = now + Math.max(0, this.spec.delay + jitter);
      const dst = macFromBytes(frame, 0);
      const to = dst === broadcastMac ? broadcastHost : this.remote.get(dst) ?? broadcastHost;
      if (at <= now && this.flight.length === 0) {
        this.send(to, frame);
        continue;
      }
      // in order of departure: with jitter a later frame may land first, as with netem
      let i = this.flight.length;
      while (i > 0 && this.flight[i - 1]!.at > at) i--;
      this.flight.splice(i, 0, { at, to, frame });
    }
  }

  /** seeded: a run with the same seed loses the same frames */
  private uniform(): number {
    this.random = xorshift32(this.random);
    return this.random / 2 ** 32;
  }
}
