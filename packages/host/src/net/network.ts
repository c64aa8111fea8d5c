/**
 * A host's network: its bridge, its uplink, and the net namespaces of its containers with their nics
 * attached to the bridge. The fabric (NATS) is not here: the host hands the uplink a `send` that
 * publishes, and hands `fromFabric` what arrives, so two machines can be joined in memory in tests.
 *
 * Division of labor:
 *   HostNetwork: who is attached where, and the one timer that drives every clock-driven part (this file)
 *   Bridge (bridge.ts), UplinkPort (uplink.ts), NetStack (stack.ts): the parts
 */
import type { Uplink } from '@slicelab/protocol';
import { Bridge, type FdbEntry } from './bridge.js';
import { decodeEthernet, FrameError } from './frame.js';
import { NetStack, type Nic } from './stack.js';
import { UplinkPort, type LinkStats } from './uplink.js';

export interface NicLinkStats {
  container: string;
  nic: string;
  ip: string;
  mac: string;
  counters: Nic['counters'];
}

export class HostNetwork {
  readonly bridge: Bridge;
  readonly uplink: UplinkPort;
  private readonly stacks = new Map<NetStack, { container: string; ports: string[] }>();
  /** the bridge port of each nic */
  private readonly portOf = new Map<Nic, string>();
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
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
  attach(stack: NetStack, name: string, ip: string, mac: string): Nic {
    const entry = this.stacks.get(stack)!;
    const nic = stack.addNic(name, ip, mac);
    const id = `${entry.container}-${name}`;
    entry.ports.push(id);
    this.portOf.set(nic, id);
    this.bridge.attach({ id, deliver: (frame) => this.toNic(stack, nic, frame) });
    this.uplink.addNic(mac);
    stack.announce(nic);
    this.reschedule();
    return nic;
  }

  /** Takes the namespace's nics off the bridge: a removed or checkpointed container. */
  detach(stack: NetStack): void {
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
    for (const frame of frames) this.uplink.receive(host, frame);
    this.reschedule();
  }

  /** Every nic of every namespace on this host, with its counters. */
  nics(): NicLinkStats[] {
    const shown: NicLinkStats[] = [];
    for (const [stack, { container }] of this.stacks) {
      for (const nic of stack.nics) shown.push({ container, nic: nic.name, ip: nic.ip, mac: nic.mac, counters: { ...nic.counters } });
    }
    return shown;
  }

  link(): LinkStats {
    return this.uplink.stats();
  }

  fdb(): FdbEntry[] {
    return this.bridge.table();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
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
    this.bridge.receive(port, frame, dst, nic.mac);
    this.reschedule();
  }

  private toNic(stack: NetStack, nic: Nic, frame: Uint8Array): void {
    stack.receive(nic, frame);
    this.reschedule();
  }

  /** One timer for every part that waits for a time: the uplink's queue and link, the stacks' ARP retries. */
  private reschedule(): void {
    if (this.closed) return;
    let next = this.uplink.nextTimerAt() ?? Infinity;
    for (const stack of this.stacks.keys()) next = Math.min(next, stack.nextTimerAt() ?? Infinity);
    if (next >= this.timerAt && this.timer) return;
    clearTimeout(this.timer);
    this.timerAt = next;
    if (next === Infinity) {
      this.timer = undefined;
      return;
    }
    this.timer = setTimeout(() => this.fire(), Math.max(0, next - this.clock()));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock();
    this.uplink.tick(now);
    for (const stack of this.stacks.keys()) stack.tick(now);
    this.reschedule();
  }
}
