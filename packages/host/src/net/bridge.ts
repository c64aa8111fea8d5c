/**
 * A host's bridge: the learning switch between its containers' nics and its uplink (Linux's bridge, or
 * Mininet's OVS switch in learning mode). Each frame teaches it where its source MAC lives; a frame for
 * a known MAC goes out of that port alone, a broadcast, multicast or unknown destination is flooded to
 * every port but the one it came in on. Entries age out after `agingMs` (Linux's default 300 s) and move
 * at once when a MAC shows up on another port (a gratuitous ARP after a migration).
 *
 * Division of labor:
 *   Bridge: which port a frame leaves by (this file)
 *   ports: a nic's stack (stack.ts) or the uplink (uplink.ts), each delivering what it is handed
 */

export interface BridgePort {
  readonly id: string;
  /** hands the port a frame (bytes, as they are on the wire) */
  deliver(frame: Uint8Array): void;
}

export interface FdbEntry {
  mac: string;
  port: string;
  /** ms since the bridge last saw this MAC as a source */
  ageMs: number;
}

export interface BridgeStats {
  forwarded: number;
  flooded: number;
  /** frames for the port they came from (a switch does not send a frame back) */
  filtered: number;
}

/** the first octet's low bit: a group (broadcast or multicast) address */
function isGroup(mac: string): boolean {
  return (Number.parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

export class Bridge {
  readonly stats: BridgeStats = { forwarded: 0, flooded: 0, filtered: 0 };
  private readonly ports = new Map<string, BridgePort>();
  private readonly fdb = new Map<string, { port: string; at: number }>();

  constructor(private readonly clock: () => number, readonly agingMs = 300_000) {}

  attach(port: BridgePort): void {
    this.ports.set(port.id, port);
  }

  /** Removes a port and forgets every MAC learned on it. */
  detach(id: string): void {
    this.ports.delete(id);
    for (const [mac, entry] of this.fdb) if (entry.port === id) this.fdb.delete(mac);
  }

  /** A frame that came in on port `from`, with its Ethernet addresses already read. */
  receive(from: string, frame: Uint8Array, dst: string, src: string): void {
    const now = this.clock();
    if (!isGroup(src)) this.fdb.set(src, { port: from, at: now });
    const known = isGroup(dst) ? undefined : this.fdb.get(dst);
    if (known && now - known.at <= this.agingMs && this.ports.has(known.port)) {
      if (known.port === from) {
        this.stats.filtered += 1;
        return;
      }
      this.stats.forwarded += 1;
      this.ports.get(known.port)!.deliver(frame);
      return;
    }
    this.stats.flooded += 1;
    for (const port of this.ports.values()) if (port.id !== from) port.deliver(frame);
  }

  /** The forwarding table as `bridge fdb show` lists it, oldest entries aged out first. */
  table(): FdbEntry[] {
    const now = this.clock();
    for (const [mac, entry] of this.fdb) if (now - entry.at > this.agingMs) this.fdb.delete(mac);
    return [...this.fdb].map(([mac, entry]) => ({ mac, port: entry.port, ageMs: now - entry.at })).sort((a, b) => a.mac.localeCompare(b.mac));
  }
}
