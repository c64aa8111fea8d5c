/**
 * A host's network: its bridge, its uplink, and the net namespaces of its containers with their nics
 * attached to the bridge. The fabric (NATS) is not here: the host hands the uplink a `send` that
 * publishes, and hands `fromFabric` what arrives, so two machines can be joined in memory in tests.
 *
 * Division of labor:
 *   HostNetwork: who is attached where, the one timer that drives every clock-driven part, captures, and
 *     what `net links / set-link / set-nic / arp` read and change, in the bus's units (this file)
 *   Bridge (bridge.ts), UplinkPort (uplink.ts), NetStack (stack.ts): the parts
 *   PcapWriter (pcap.ts): the capture file
 *
 * Captures tap the ports here, where every frame passes between a part and the bridge: nothing else
 * needs to know, and with no capture on the cost is one size check per frame.
 */
import {
  SlicelabError, formatRate,
  type HostArp, type HostLinks, type LinkSet, type NicLink, type NicSettings, type NicShaping, type Uplink,
} from '@slicelab/protocol';
import { Bridge, type FdbEntry } from './bridge.js';
import { decodeEthernet, FrameError } from './frame.js';
import { PcapWriter } from './pcap.js';
import { NetStack, type Nic, type NicClass } from './stack.js';
import { UplinkPort, type LinkStats } from './uplink.js';

/**
 * A capture (`tcpdump -w` with `-c`): each frame stamped with the time it crossed. A container's capture
 * watches its nics' ports both ways, as tcpdump on its eth0 would; a host's watches frames entering the
 * bridge from any port (nics and uplink), so each frame crossing it is recorded once.
 */
export class FrameCapture {
  readonly writer: PcapWriter;
  /** resolves once `maxFrames` are recorded: the capture is full and may stop */
  readonly full: Promise<void>;
  private fill!: () => void;

  constructor(readonly ports: ReadonlySet<string> | null, maxFrames: number, private readonly end: (capture: FrameCapture) => void) {
    this.writer = new PcapWriter(maxFrames);
    this.full = new Promise((resolve) => (this.fill = resolve));
  }

  add(frame: Uint8Array, atMs: number): void {
    if (this.writer.add(frame, atMs) && this.writer.frames === this.writer.maxFrames) this.fill();
  }

  /** Ends the capture; the pcap file's bytes. */
  stop(): Uint8Array {
    this.end(this);
    return this.writer.bytes();
  }
}

/** how far ahead of the time asked for the timer is armed (see `reschedule`) */
const earlyMs = 1;

export class HostNetwork {
  readonly bridge: Bridge;
  readonly uplink: UplinkPort;
  private readonly stacks = new Map<NetStack, { container: string; ports: string[] }>();
  /** the bridge port of each nic */
  private readonly portOf = new Map<Nic, string>();
  /** namespaces being checkpointed: nothing in or out, no timers (`lock`) */
  private readonly locked = new Set<NetStack>();
  /** frames on their way to local nics, delivered next turn */
  private readonly local: Array<{ stack: NetStack; nic: Nic; frame: Uint8Array }> = [];
  private readonly captures = new Set<FrameCapture>();
  /** the pending wake-up: a timer, or the turn-by-turn wait for the last of the time (`fire`) */
  private wake?: { cancel: () => void };
  private timerAt = Infinity;
  /** the time waited for is a frame's arrival, kept to the microsecond (`reschedule`) */
  private precise = false;
  private closed = false;

  constructor(
    private readonly clock: () => number,
    spec: Uplink,
    seed: number,
    send: (to: string, frame: Uint8Array) => void,
  ) {
    this.bridge = new Bridge(clock);
    this.uplink = new UplinkPort(clock, spec, seed, this.bridge, send, () => this.reschedule());
    this.bridge.attach(this.uplink);
  }

  /** A net namespace for `container`; `readable` wakes the processes waiting on one of its sockets. */
  stack(container: string, readable: (fd: number) => void): NetStack {
    const stack = new NetStack(this.clock, (nic, frame) => this.fromNic(nic, frame), readable);
    this.stacks.set(stack, { container, ports: [] });
    return stack;
  }

  /** Gives the namespace a nic on the bridge (its address leased by the host); announces it (gratuitous ARP). */
  attach(stack: NetStack, name: string, ip: string, mac: string, shaping?: NicClass): Nic {
    const entry = this.stacks.get(stack)!;
    const nic = stack.addNic(name, ip, mac);
    nic.shaping = shaping;
    const id = `${entry.container}-${name}`;
    entry.ports.push(id);
    this.portOf.set(nic, id);
    this.bridge.attach({ id, deliver: (frame) => this.toNic(stack, nic, frame) });
    this.uplink.addNic(mac, shaping);
    stack.announce(nic);
    this.reschedule();
    return nic;
  }

  /**
   * Stops a namespace's traffic while its container is written down, as CRIU locks the network of a
   * dump: frames for it are dropped, it sends nothing and its timers wait. Otherwise it would go on
   * acknowledging what arrives, and a peer would hear of bytes the saved streams never got.
   */
  lock(stack: NetStack): void {
    this.locked.add(stack);
  }

  /** Lets a locked namespace go on (the container runs on): its timers that fell due meanwhile fire. */
  unlock(stack: NetStack): void {
    if (this.locked.delete(stack)) this.reschedule();
  }

  /** Takes the namespace's nics off the bridge: a removed or checkpointed container. */
  detach(stack: NetStack): void {
    this.locked.delete(stack);
    const entry = this.stacks.get(stack);
    if (!entry) return;
    for (const id of entry.ports) this.bridge.detach(id);
    for (const nic of stack.nics) {
      this.uplink.removeNic(nic.mac);
      this.portOf.delete(nic);
    }
    this.stacks.delete(stack);
  }

  /** Frames another host's uplink sent to this one. */
  fromFabric(host: string, frames: Uint8Array[]): void {
    for (const frame of frames) {
      if (this.captures.size > 0) this.tap(this.uplink.id, frame, true);
      this.uplink.receive(host, frame);
    }
    // what arrived goes to its nics now, not a turn later: what they answer leaves through the fabric,
    // so no chain of calls can grow (frames they send to each other still wait a turn)
    this.deliverLocal();
  }

  /** Every nic of every namespace on this host, with its counters and its class in the uplink's shaper (bits/s). */
  nics(): NicLink[] {
    const { classes } = this.uplink.shaping();
    const shown: NicLink[] = [];
    for (const [stack, { container }] of this.stacks) {
      for (const nic of stack.nics) {
        const sent = classes[nic.mac];
        shown.push({
          container, nic: nic.name, ip: nic.ip, mac: nic.mac, counters: { ...nic.counters },
          shaping: {
            ...this.shapingOf(nic.mac), bytes: sent?.bytes ?? 0, packets: sent?.packets ?? 0, drops: sent?.drops ?? 0, backlog: sent?.backlog ?? 0,
            rateBps: (sent?.rate ?? 0) * 8,
          },
        });
      }
    }
    return shown;
  }

  link(): LinkStats {
    return this.uplink.stats();
  }

  fdb(): FdbEntry[] {
    return this.bridge.table();
  }

  /** `net links` of this host: the uplink, the nics, and a warning when slicelab could not keep up with the link. */
  links(host: string): Omit<HostLinks, 'fabric'> {
    const uplink = this.link();
    const { health } = uplink;
    const warnings = health.limited
      ? [`${host}'s uplink sent ${formatRate(health.sentBps)}/s of the ${formatRate(health.allowedBps)}/s it was allowed while frames waited: ` +
        `slicelab, not the link, was the limit (its timer woke ${health.lateP99Ms.toFixed(1)} ms late at p99)`]
      : [];
    return { host, uplink, nics: this.nics(), warnings };
  }

  /** `tc qdisc change`: the fields given change, the others stay; the link as it is now. */
  setLink(changes: LinkSet): Uplink {
    const next = this.uplink.config;
    for (const [field, value] of Object.entries(changes) as Array<[keyof Uplink, number | undefined]>) if (value !== undefined) next[field] = value;
    this.uplink.set(next);
    return this.uplink.config;
  }

  /**
   * `tc class change` for a container's nic, in bits per second as on the bus (the shaper counts bytes):
   * the fields given change; a ceil below the rate is refused, as HTB's is.
   */
  setNic(container: string, name: string, changes: Partial<NicShaping>): Omit<NicSettings, 'host'> {
    const nic = this.findNic(container, name);
    const next = { ...this.shapingOf(nic.mac) };
    if (changes.rate !== undefined) next.rate = changes.rate;
    if (changes.ceil !== undefined) next.ceil = changes.ceil;
    if (changes.weight !== undefined) next.weight = changes.weight;
    if (next.ceil !== null && next.ceil < next.rate) {
      throw new SlicelabError('EINVAL', `${container} ${name}: ceil ${formatRate(next.ceil)} is below rate ${formatRate(next.rate)} (HTB's ceil is at least its rate)`);
    }
    nic.shaping = { rate: next.rate / 8, ceil: next.ceil === null ? null : next.ceil / 8, weight: next.weight };
    this.uplink.setNic(nic.mac, nic.shaping);
    this.reschedule();
    return { container, nic: nic.name, ip: nic.ip, mac: nic.mac, ...this.shapingOf(nic.mac) };
  }

  /** The neighbour table of every namespace (`ip neigh`) and the bridge's forwarding table (`bridge fdb`). */
  arp(host: string): HostArp {
    const neighbours: HostArp['neighbours'] = [];
    for (const [stack, { container }] of this.stacks) for (const entry of stack.neighbours()) neighbours.push({ container, ...entry });
    return { host, neighbours, fdb: this.fdb() };
  }

  /** Starts a capture of `container`'s nics, or of the whole bridge without one; at most `maxFrames` are recorded. */
  capture(container: string | undefined, maxFrames: number): FrameCapture {
    let ports: Set<string> | null = null;
    if (container !== undefined) {
      const entry = [...this.stacks.values()].find((e) => e.container === container);
      if (!entry) throw new SlicelabError('ENOENT', `no container "${container}" on this host`);
      ports = new Set(entry.ports);
    }
    const capture = new FrameCapture(ports, maxFrames, (ended) => this.captures.delete(ended));
    this.captures.add(capture);
    return capture;
  }

  close(): void {
    this.closed = true;
    this.wake?.cancel();
  }

  private fromNic(nic: Nic, frame: Uint8Array): void {
    let dst: string;
    try {
      dst = decodeEthernet(frame).dst;
    } catch (error) {
      if (error instanceof FrameError) {
        nic.counters.txDropped += 1;
        return;
      }
      throw error;
    }
    const port = this.portOf.get(nic);
    // a nic taken off the bridge sends nothing
    if (!port) return;
    if (this.captures.size > 0) this.tap(port, frame, true);
    this.bridge.receive(port, frame, dst, nic.mac);
    this.reschedule();
  }

  /**
   * A frame for a local nic is delivered on the next turn of the event loop, in order, as a switch's
   * queue would: two streams between containers of one host otherwise answer each other inside one call
   * chain for ever, and the host stops answering the bus.
   */
  private toNic(stack: NetStack, nic: Nic, frame: Uint8Array): void {
    this.local.push({ stack, nic, frame });
    if (this.local.length === 1) setImmediate(() => this.deliverLocal());
  }

  private deliverLocal(): void {
    for (const { stack, nic, frame } of this.local.splice(0)) {
      if (!this.stacks.has(stack)) continue;
      if (this.locked.has(stack)) {
        nic.counters.rxDropped += 1;
        continue;
      }
      if (this.captures.size > 0) this.tap(this.portOf.get(nic)!, frame, false);
      stack.receive(nic, frame);
    }
    this.reschedule();
  }

  /** Hands a frame crossing `port` (into the bridge, or out of it to a nic) to the captures watching it. */
  private tap(port: string, frame: Uint8Array, intoBridge: boolean): void {
    const at = this.clock();
    for (const capture of this.captures) if (capture.ports ? capture.ports.has(port) : intoBridge) capture.add(frame, at);
  }

  /** A nic's class as the bus gives it: bits per second. */
  private shapingOf(mac: string): NicShaping {
    const { rate, ceil, weight } = this.uplink.nicShaping(mac);
    return { rate: rate * 8, ceil: ceil === null ? null : ceil * 8, weight };
  }

  private findNic(container: string, name: string): Nic {
    const entry = [...this.stacks].find(([, e]) => e.container === container);
    if (!entry) throw new SlicelabError('ENOENT', `no container "${container}" on this host`);
    const nic = entry[0].nics.find((n) => n.name === name);
    if (!nic) throw new SlicelabError('ENOENT', `container "${container}" has no nic ${name}`);
    return nic;
  }

  /**
   * One timer for every part that waits for a time: the uplink's queue and link (delay), the stacks' TCP
   * and ARP timers. Node's timers count whole milliseconds and wake up to one late, which a 5 ms delay
   * each way would turn into 11–12 ms of RTT: for a frame ending its delay the timer is armed `earlyMs`
   * ahead and `fire` waits out the rest turn by turn of the event loop, which goes on serving the bus
   * meanwhile. Other times need no such care (the shaper's buckets hold 3 ms, TCP's timers are coarse),
   * and a shaped link with a standing queue would otherwise keep the loop turning without rest.
   */
  private reschedule(): void {
    if (this.closed) return;
    let next = this.uplink.nextTimerAt() ?? Infinity;
    for (const stack of this.stacks.keys()) if (!this.locked.has(stack)) next = Math.min(next, stack.nextTimerAt() ?? Infinity);
    if (next >= this.timerAt && this.wake) return;
    this.wake?.cancel();
    this.wake = undefined;
    this.timerAt = next;
    if (next === Infinity) return;
    this.precise = next === this.uplink.nextArrivalAt();
    this.arm();
  }

  /** A timer for `timerAt` (a timer may also wake early: Node counts from the loop's cached time), or the next turn. */
  private arm(): void {
    const wait = this.timerAt - this.clock();
    if (this.precise && wait <= earlyMs) {
      const turn = setImmediate(() => this.fire());
      this.wake = { cancel: () => clearImmediate(turn) };
      return;
    }
    const timer = setTimeout(() => this.fire(), this.precise ? wait - earlyMs : wait);
    this.wake = { cancel: () => clearTimeout(timer) };
  }

  private fire(): void {
    if (this.clock() < this.timerAt) return this.arm();
    this.wake = undefined;
    this.timerAt = Infinity;
    const now = this.clock();
    this.uplink.tick(now);
    for (const stack of this.stacks.keys()) if (!this.locked.has(stack)) stack.tick(now);
    this.reschedule();
  }
}
