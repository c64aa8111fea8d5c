/**
 * A net namespace's neighbour table (ARP, RFC 826): IPv4 address → MAC. An entry is learned from any ARP
 * packet that names a sender (requests, replies and gratuitous ARP alike, so a MAC that moved is known at
 * once) and expires `lifetimeMs` after it was last confirmed. A packet for an address not yet resolved
 * waits in a short queue while requests go out every `retryMs`; after `retries` unanswered requests the
 * queue is dropped and its senders learn EHOSTUNREACH, as from Linux's neighbour table.
 *
 * No timers inside: the owner asks `nextTimerAt()` and calls `due(now)`; times are data, so the table
 * saves and restores with the namespace.
 */

export interface ArpEntry {
  ip: string;
  mac: string;
  /** ms since the entry was learned or confirmed */
  ageMs: number;
}

export interface ArpOptions {
  /** how long a learned entry is used before it must be resolved again */
  lifetimeMs: number;
  /** requests sent for an address before it is given up */
  retries: number;
  retryMs: number;
  /** packets held per unresolved address; more are dropped (Linux's unres_qlen) */
  queueLimit: number;
}

/** Linux's gc_stale_time (60 s), mcast_solicit (3), retrans_time (1 s); a small queue */
export const defaultArpOptions: ArpOptions = { lifetimeMs: 60_000, retries: 3, retryMs: 1000, queueLimit: 8 };

interface Pending<T> {
  queue: T[];
  sent: number;
  nextAt: number;
}

export interface ArpState<T> {
  entries: Array<{ ip: string; mac: string; ageMs: number }>;
  pending: Array<{ ip: string; queue: T[]; sent: number; inMs: number }>;
}

export class ArpCache<T> {
  private readonly entries = new Map<string, { mac: string; at: number }>();
  private readonly pending = new Map<string, Pending<T>>();
  /** packets dropped because their queue was full or their address never answered */
  dropped = 0;

  constructor(private readonly clock: () => number, readonly options: ArpOptions = defaultArpOptions) {}

  lookup(ip: string): string | undefined {
    const entry = this.entries.get(ip);
    if (!entry) return undefined;
    if (this.clock() - entry.at > this.options.lifetimeMs) {
      this.entries.delete(ip);
      return undefined;
    }
    return entry.mac;
  }

  /** An ARP packet named `ip` at `mac`: the entry is (re)learned, and what waited for it may go now. */
  learn(ip: string, mac: string): T[] {
    this.entries.set(ip, { mac, at: this.clock() });
    const waiting = this.pending.get(ip);
    this.pending.delete(ip);
    return waiting?.queue ?? [];
  }

  /** Holds `packet` until `ip` resolves; true when a request must go out now (the first for this address). */
  hold(ip: string, packet: T): boolean {
    const waiting = this.pending.get(ip);
    if (waiting) {
      if (waiting.queue.length >= this.options.queueLimit) this.dropped += 1;
      else waiting.queue.push(packet);
      return false;
    }
    this.pending.set(ip, { queue: [packet], sent: 1, nextAt: this.clock() + this.options.retryMs });
    return true;
  }

  /** Addresses to ask again now, and the packets of addresses given up (their senders get EHOSTUNREACH). */
  due(now: number): { ask: string[]; failed: Array<{ ip: string; packets: T[] }> } {
    const ask: string[] = [];
    const failed: Array<{ ip: string; packets: T[] }> = [];
    for (const [ip, waiting] of this.pending) {
      if (waiting.nextAt > now) continue;
      if (waiting.sent >= this.options.retries) {
        this.pending.delete(ip);
        this.dropped += waiting.queue.length;
        failed.push({ ip, packets: waiting.queue });
        continue;
      }
      waiting.sent += 1;
      waiting.nextAt = now + this.options.retryMs;
      ask.push(ip);
    }
    return { ask, failed };
  }

  nextTimerAt(): number | undefined {
    let next: number | undefined;
    for (const waiting of this.pending.values()) next = next === undefined ? waiting.nextAt : Math.min(next, waiting.nextAt);
    return next;
  }

  /** The table as `ip neigh` shows it (expired entries dropped). */
  table(): ArpEntry[] {
    const now = this.clock();
    const shown: ArpEntry[] = [];
    for (const [ip, entry] of this.entries) {
      if (now - entry.at > this.options.lifetimeMs) this.entries.delete(ip);
      else shown.push({ ip, mac: entry.mac, ageMs: now - entry.at });
    }
    return shown.sort((a, b) => a.ip.localeCompare(b.ip, 'en', { numeric: true }));
  }

  save(now: number): ArpState<T> {
    return {
      entries: [...this.entries].map(([ip, e]) => ({ ip, mac: e.mac, ageMs: now - e.at })),
      pending: [...this.pending].map(([ip, p]) => ({ ip, queue: p.queue, sent: p.sent, inMs: p.nextAt - now })),
    };
  }

  load(state: ArpState<T>, now: number): void {
    for (const e of state.entries) this.entries.set(e.ip, { mac: e.mac, at: now - e.ageMs });
    for (const p of state.pending) this.pending.set(p.ip, { queue: p.queue, sent: p.sent, nextAt: now + p.inMs });
  }
}
