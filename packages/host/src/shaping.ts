/**
 * Shaping: the token bucket that meters a rate, and the HTB egress scheduler that shares a host's uplink
 * among its nics.
 *
 * Division of labor:
 *   TokenBucket: how much may go now and when the next amount may (io.max's four limits, HTB's rates)
 *   Htb: which nic's packet leaves the uplink next (guarantee, cap, weight; a queue per nic, tail drop)
 *   the owner (disk.ts's IoGroup, the uplink): the clock, the timers, and what happens after
 *
 * Neither holds a timer nor reads a clock: every call is given `now` (ms), so the owner drives them from
 * its own timers, a test from a fake clock, and a saved bucket means the same on another host.
 *
 * Two other limiters stay on their own mechanisms. cpu.max (scheduler/bandwidth.ts) refills once per
 * period, not continuously: a throttled group must wait for the period's end, which a bucket refilled
 * continuously would not make it do. The T2 credit account (scheduler/credit.ts) does earn continuously
 * up to a cap, but nearly all of it is rules a bucket does not hold (launch credits spent first and
 * outside the cap, a floor at zero in standard mode, a debt limit whose excess is charged, `earned`
 * counting what the cap throws away), so on a TokenBucket it would keep a second clock and read worse.
 */

/** A bucket as data: its rate and burst are configuration, which the owner restores (io.max from the cgroup files). */
export interface TokenBucketState {
  tokens: number;
  /** ms since its last refill, or null while its clock has not started */
  sinceRefillMs: number | null;
}

/**
 * A token bucket refilled continuously at `rate` units per second up to `burst` units. `rate` and `burst`
 * may be changed in place at any time; the change counts from the last refill (for a bucket in use, the
 * last request or packet). The clock starts at the first call given a time: until then the bucket holds
 * what it was made with, so an owner can make its buckets before it knows the time (an IoGroup does).
 */
export class TokenBucket {
  private refilledAt: number | undefined;

  constructor(public rate: number, public burst: number, private tokens: number) {}

  /** The tokens held now: negative while an overrun is being paid back. */
  level(now: number): number {
    if (this.refilledAt !== undefined) this.tokens = Math.min(this.burst, this.tokens + (this.rate * (now - this.refilledAt)) / 1000);
    this.refilledAt = now;
    return this.tokens;
  }

  /**
   * When `amount` can be taken (`now` if it can at once): when the bucket holds it, or for an amount
   * larger than the burst, which it could never hold, when it is full. Asking for 0 is asking when the
   * bucket is out of debt, HTB's rule for sending.
   */
  readyAt(now: number, amount: number): number {
    const need = Math.min(amount, this.burst);
    const tokens = this.level(now);
    return tokens >= need ? now : now + ((need - tokens) / this.rate) * 1000;
  }

  /**
   * Takes `amount` whether or not it is there: a caller charging what was really used (a request larger
   * than the burst, a packet HTB sent on a bucket just out of debt) leaves the balance negative, and the
   * refills pay that back before the bucket is ready again.
   */
  take(amount: number, now: number): void {
    this.tokens = this.level(now) - amount;
  }

  save(now: number): TokenBucketState {
    return { tokens: this.tokens, sinceRefillMs: this.refilledAt === undefined ? null : now - this.refilledAt };
  }

  load(state: TokenBucketState, now: number): void {
    this.tokens = state.tokens;
    this.refilledAt = state.sinceRefillMs === null ? undefined : now - state.sinceRefillMs;
  }
}

/** What Htb queues: a frame (Uint8Array) is one; a segment a nic offloads stands for several packets on the wire. */
export interface Sized {
  readonly byteLength: number;
  /** the packets it is on the wire, for queue limits and counts (1 when not given) */
  readonly packets?: number;
}

export interface HtbLink {
  /** bytes per second */
  bandwidth: number;
  /** the queue limit in packets of a class that sets none (Linux gives HTB's leaf fifos the device's txqueuelen) */
  limit: number;
}

export interface HtbClassConfig {
  /** guaranteed bytes per second; 0 for no guarantee */
  rate: number;
  /** cap in bytes per second; null for the link's bandwidth (following it when it changes) */
  ceil: number | null;
  /** share of the bandwidth the guarantees leave, against the other classes' weights */
  weight: number;
  /** queue limit in packets; null for the link's */
  limit: number | null;
}

export interface ShapingStats {
  bytes: number;
  packets: number;
  /** packets dropped at the tail of a full queue (for the link also those of a class removed with a backlog) */
  drops: number;
  /** packets queued, and their bytes */
  backlog: number;
  backlogBytes: number;
  /** bytes per second sent, averaged exponentially over about the last second */
  rate: number;
}

/** An Ethernet frame at MTU 1500 without its FCS: the largest packet, and the lightest class's DRR quantum. */
const mtu = 1514;
/**
 * How many ms of its rate a bucket holds beyond one MTU. tc's default burst is one timer tick's worth
 * plus an MTU; the Node timer of the uplink's owner wakes later than a kernel's (setTimeout(1), measured
 * once here on 2 cores at load 4.8: 0.1 ms late at the median, 3 ms at p99), and a bucket holding 3 ms'
 * worth loses no bandwidth to all but the latest wake-ups.
 */
const burstMs = 3;
const burstOf = (rate: number) => (rate * burstMs) / 1000 + mtu;
const rateWindowMs = 1000;

/** What a class or the link sent: totals, and a rate decaying exponentially with `rateWindowMs` (as tc's estimators). */
class Throughput {
  bytes = 0;
  packets = 0;
  private average = 0;
  private at = 0;

  add(bytes: number, packets: number, now: number): void {
    this.average = this.rate(now) + (bytes * 1000) / rateWindowMs;
    this.at = now;
    this.bytes += bytes;
    this.packets += packets;
  }

  rate(now: number): number {
    return this.average * Math.exp(-(now - this.at) / rateWindowMs);
  }
}

class HtbClass<P extends Sized> {
  readonly queue: P[] = [];
  backlogPackets = 0;
  backlogBytes = 0;
  drops = 0;
  readonly sent = new Throughput();
  /** DRR deficits in bytes, one per level: 0 sending under its rate, 1 borrowing */
  readonly deficit = [0, 0];
  /** null without a guarantee */
  rate: TokenBucket | null = null;
  /** null when capped by the link alone */
  ceil: TokenBucket | null = null;
  config: HtbClassConfig = { rate: 0, ceil: null, weight: 1, limit: null };
}

type Level = 0 | 1;

/** When a bucket is out of debt (HTB's rule for sending), `now` for a limit there is no bucket for. */
function free(bucket: TokenBucket | null, now: number): number {
  return bucket ? bucket.readyAt(now, 0) : now;
}

/** A bucket for `rate`, made or kept (with its tokens); none for no rate. New buckets start full, as HTB's do. */
function bucketFor(bucket: TokenBucket | null, rate: number | null): TokenBucket | null {
  if (!rate) return null;
  if (!bucket) return new TokenBucket(rate, burstOf(rate), burstOf(rate));
  bucket.rate = rate;
  bucket.burst = burstOf(rate);
  return bucket;
}

/**
 * Linux HTB's egress scheduling for one link with one class per nic (no inner classes), in bytes per
 * second. Each class has a FIFO queue with a limit in packets (tail drop, counted on the class and the
 * link), a guaranteed `rate` and a `ceil`. Each packet out, first a class under its rate (level 0),
 * then a class under its ceil borrowing what the link has left (level 1); a class at its ceil waits.
 * Within a level classes take turns by deficit round robin, quanta proportional to their weights (HTB
 * derives its quanta from the rates, rate / r2q; here the share of the spare bandwidth is the nic's own
 * weight). As in HTB a bucket may send while it is out of debt and is charged after, a class's rate is
 * charged only for what it sent under it, and the link's bucket stands for the wire: it may send while
 * out of debt, so each packet holds it for its bytes' time.
 *
 * The owner calls `dequeue(now)` until it returns nothing, then again at `nextReadyAt(now)`.
 */
export class Htb<P extends Sized> {
  private readonly classes = new Map<string, HtbClass<P>>();
  /** the classes in DRR order */
  private readonly order: HtbClass<P>[] = [];
  /** per level, the index in `order` of the class whose turn it is, and whether its quantum is still due */
  private readonly turn = [0, 0];
  private readonly quantumDue = [true, true];
  private readonly wire: TokenBucket;
  private linkLimit: number;
  private readonly sent = new Throughput();
  private drops = 0;

  constructor(link: HtbLink) {
    checkLink(link);
    this.wire = new TokenBucket(link.bandwidth, burstOf(link.bandwidth), burstOf(link.bandwidth));
    this.linkLimit = link.limit;
  }

  /** Changes the link while it runs; classes without a ceil or a limit of their own follow it. */
  setLink(link: Partial<HtbLink>): void {
    const next = { bandwidth: this.wire.rate, limit: this.linkLimit, ...link };
    checkLink(next);
    this.wire.rate = next.bandwidth;
    this.wire.burst = burstOf(next.bandwidth);
    this.linkLimit = next.limit;
  }

  /**
   * Makes or changes a class. Fields left out keep their value; a new class starts from rate 0 (no
   * guarantee), ceil and limit null (the link's) and weight 1. A change keeps the queue and the counters.
   */
  setClass(id: string, config: Partial<HtbClassConfig>): void {
    const existing = this.classes.get(id);
    const c = existing ?? new HtbClass<P>();
    const next = { ...c.config, ...config };
    checkClass(id, next);
    c.config = next;
    c.rate = bucketFor(c.rate, next.rate);
    c.ceil = bucketFor(c.ceil, next.ceil);
    if (!existing) {
      this.classes.set(id, c);
      this.order.push(c);
    }
  }

  /** Removes a class: its backlog never leaves, and counts in the link's drops. */
  removeClass(id: string): void {
    const c = this.get(id);
    this.drops += c.backlogPackets;
    this.classes.delete(id);
    const index = this.order.indexOf(c);
    this.order.splice(index, 1);
    for (const level of [0, 1] as const) {
      if (this.turn[level] > index) this.turn[level]--;
      // the turn of the removed class passes to the next
      else if (this.turn[level] === index) this.quantumDue[level] = true;
      if (this.turn[level] >= this.order.length) this.turn[level] = 0;
    }
  }

  has(id: string): boolean {
    return this.classes.has(id);
  }

  /** A class's configuration as set (ceil and limit null where they are the link's). */
  classOf(id: string): HtbClassConfig {
    return { ...this.get(id).config };
  }

  /** Queues a packet of class `id`; false when its queue is full and the packet is dropped. */
  enqueue(id: string, packet: P): boolean {
    const c = this.get(id);
    const packets = packet.packets ?? 1;
    if (c.backlogPackets + packets > (c.config.limit ?? this.linkLimit)) {
      c.drops += packets;
      this.drops += packets;
      return false;
    }
    c.queue.push(packet);
    c.backlogPackets += packets;
    c.backlogBytes += packet.byteLength;
    return true;
  }

  /** The packet that leaves the link now, if any may. */
  dequeue(now: number): P | undefined {
    if (free(this.wire, now) > now) return undefined;
    for (const level of [0, 1] as const) {
      const c = this.pick(level, now);
      if (c) return this.send(c, level, now);
    }
    return undefined;
  }

  /** When `dequeue` will next give a packet (Infinity with nothing queued); later than `now` when it gave none now. */
  nextReadyAt(now: number): number {
    let at = Infinity;
    // any queued class under its ceil may borrow: the earliest such ceil and the wire decide
    for (const c of this.order) if (c.queue.length > 0) at = Math.min(at, free(c.ceil, now));
    return at === Infinity ? at : Math.max(at, free(this.wire, now));
  }

  stats(now: number): { link: ShapingStats; classes: Record<string, ShapingStats> } {
    const classes: Record<string, ShapingStats> = {};
    let backlog = 0;
    let backlogBytes = 0;
    for (const [id, c] of this.classes) {
      classes[id] = { bytes: c.sent.bytes, packets: c.sent.packets, drops: c.drops, backlog: c.backlogPackets, backlogBytes: c.backlogBytes, rate: c.sent.rate(now) };
      backlog += c.backlogPackets;
      backlogBytes += c.backlogBytes;
    }
    return { link: { bytes: this.sent.bytes, packets: this.sent.packets, drops: this.drops, backlog, backlogBytes, rate: this.sent.rate(now) }, classes };
  }

  private get(id: string): HtbClass<P> {
    const c = this.classes.get(id);
    if (!c) throw new RangeError(`no class "${id}"`);
    return c;
  }

  private eligible(c: HtbClass<P>, level: Level, now: number): boolean {
    if (c.queue.length === 0 || free(c.ceil, now) > now) return false;
    return level === 1 || (c.rate !== null && free(c.rate, now) <= now);
  }

  /**
   * Deficit round robin among the eligible classes of a level: an eligible class adds its quantum when
   * its turn comes and sends while its deficit covers its head packet, then the turn passes on. Quanta
   * are scaled so the lightest class's is one MTU: the error stays one packet per turn whatever scale the
   * weights are written in.
   */
  private pick(level: Level, now: number): HtbClass<P> | undefined {
    const eligible = new Set(this.order.filter((c) => this.eligible(c, level, now)));
    if (eligible.size === 0) return undefined;
    const lightest = Math.min(...this.order.map((c) => c.config.weight));
    for (;;) {
      const c = this.order[this.turn[level]]!;
      if (eligible.has(c)) {
        if (this.quantumDue[level]) c.deficit[level] += (mtu * c.config.weight) / lightest;
        this.quantumDue[level] = false;
        if (c.deficit[level] >= c.queue[0]!.byteLength) return c;
      }
      this.turn[level] = (this.turn[level] + 1) % this.order.length;
      this.quantumDue[level] = true;
    }
  }

  private send(c: HtbClass<P>, level: Level, now: number): P {
    const packet = c.queue.shift()!;
    const bytes = packet.byteLength;
    const packets = packet.packets ?? 1;
    c.backlogPackets -= packets;
    c.backlogBytes -= bytes;
    c.deficit[level] -= bytes;
    // an emptied queue ends its turn with nothing saved up (DRR)
    if (c.queue.length === 0) c.deficit.fill(0);
    this.wire.take(bytes, now);
    c.ceil?.take(bytes, now);
    // what a class borrows comes out of the link's spare bandwidth, not its guarantee
    if (level === 0) c.rate!.take(bytes, now);
    c.sent.add(bytes, packets, now);
    this.sent.add(bytes, packets, now);
    return packet;
  }
}

function checkLink(link: HtbLink): void {
  if (!(link.bandwidth > 0) || !Number.isFinite(link.bandwidth)) throw new RangeError(`link bandwidth ${link.bandwidth} is not a positive number of bytes/s`);
  if (!Number.isInteger(link.limit) || link.limit < 0) throw new RangeError(`link limit ${link.limit} is not a number of packets`);
}

function checkClass(id: string, c: HtbClassConfig): void {
  if (!(c.rate >= 0) || !Number.isFinite(c.rate)) throw new RangeError(`class "${id}": rate ${c.rate} is not a number of bytes/s`);
  if (c.ceil !== null && (!(c.ceil > 0) || !Number.isFinite(c.ceil) || c.ceil < c.rate)) throw new RangeError(`class "${id}": ceil ${c.ceil} is not a number of bytes/s at or above its rate`);
  if (!(c.weight > 0) || !Number.isFinite(c.weight)) throw new RangeError(`class "${id}": weight ${c.weight} is not positive`);
  if (c.limit !== null && (!Number.isInteger(c.limit) || c.limit < 0)) throw new RangeError(`class "${id}": limit ${c.limit} is not a number of packets`);
}
