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
 */
import type { Uplink } from '@slicelab/protocol';
import { xorshift32 } from '@slicelab/programs';
import type { Bridge, BridgePort } from './bridge.js';
import { broadcastHost } from './fabric.js';
import { FrameError, broadcastMac, decodeEthernet, macFromBytes } from './frame.js';
import { Htb, type HtbClassConfig } from '../shaping.js';

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
  /** bits per second sent over the last second */
  rateBps: number;
}

/** a 1 gbit link without delay or loss: a host's uplink when nothing else is said */
export const defaultUplink: Uplink = { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 };

/** the class frames of no local nic go into (ARP for a nic not attached yet) */
const otherTraffic = 'other';

export class UplinkPort implements BridgePort {
  readonly id = 'uplink';
  private spec: Uplink;
  private readonly shaper: Htb<Uint8Array>;
  /** frames past the shaper, waiting out their delay, in order of departure */
  private readonly flight: Array<{ at: number; to: string; frame: Uint8Array }> = [];
  /** which host each remote MAC was last seen behind */
  private readonly remote = new Map<string, string>();
  private random: number;
  private counters = { txBytes: 0, txPackets: 0, rxBytes: 0, rxPackets: 0, queueDrops: 0, lossDrops: 0 };
  private readonly recent: Array<{ at: number; bytes: number }> = [];

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
    this.shaper = new Htb<Uint8Array>({ bandwidth: spec.bandwidth / 8, limit: spec.maxQueue });
    this.shaper.setClass(otherTraffic, { rate: 0, ceil: null, weight: 1, limit: null });
  }

  /** A local nic's class in the shaper: by default no guarantee, the whole link as its ceil, weight 1. */
  addNic(mac: string, shaping: Partial<NicShaping> = {}): void {
    this.shaper.setClass(mac, { rate: 0, ceil: null, weight: 1, limit: null, ...shaping });
  }

  setNic(mac: string, shaping: Partial<NicShaping>): void {
    this.shaper.setClass(mac, shaping);
  }

  nicShaping(mac: string): NicShaping {
    const { rate, ceil, weight } = this.shaper.classOf(mac);
    return { rate, ceil, weight };
  }

  removeNic(mac: string): void {
    this.shaper.removeClass(mac);
  }

  /** Changes the link while it runs. */
  set(spec: Uplink): void {
    this.spec = { ...spec };
    this.shaper.setLink({ bandwidth: spec.bandwidth / 8, limit: spec.maxQueue });
    this.changed();
  }

  /** From the bridge: a frame leaving the host. */
  deliver(frame: Uint8Array): void {
    const src = macFromBytes(frame, 6);
    const id = this.shaper.has(src) ? src : otherTraffic;
    if (!this.shaper.enqueue(id, frame)) {
      this.counters.queueDrops += 1;
      return;
    }
    this.pump(this.clock());
  }

  /** From the fabric: a frame another host sent here. */
  receive(host: string, frame: Uint8Array): void {
    let dst: string;
    let src: string;
    try {
      ({ dst, src } = decodeEthernet(frame));
    } catch (error) {
      if (error instanceof FrameError) return;
      throw error;
    }
    this.counters.rxBytes += frame.length;
    this.counters.rxPackets += 1;
    this.remote.set(src, host);
    this.bridge.receive(this.id, frame, dst, src);
  }

  nextTimerAt(): number | undefined {
    const now = this.clock();
    const next = Math.min(this.shaper.nextReadyAt(now), this.flight[0]?.at ?? Infinity);
    return next === Infinity ? undefined : next;
  }

  tick(now: number): void {
    this.pump(now);
    while (this.flight.length > 0 && this.flight[0]!.at <= now) {
      const { to, frame } = this.flight.shift()!;
      this.send(to, frame);
    }
  }

  stats(): LinkStats {
    const now = this.clock();
    while (this.recent.length > 0 && this.recent[0]!.at < now - 1000) this.recent.shift();
    const bytes = this.recent.reduce((sum, r) => sum + r.bytes, 0);
    return { spec: { ...this.spec }, ...this.counters, backlog: this.shaper.stats(now).link.backlog, inFlight: this.flight.length, rateBps: bytes * 8 };
  }

  /** Takes from the shaper what the link may send now, through netem. */
  private pump(now: number): void {
    for (let frame = this.shaper.dequeue(now); frame; frame = this.shaper.dequeue(now)) {
      this.counters.txBytes += frame.length;
      this.counters.txPackets += 1;
      this.recent.push({ at: now, bytes: frame.length });
      if (this.spec.loss > 0 && this.uniform() * 100 < this.spec.loss) {
        this.counters.lossDrops += 1;
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
