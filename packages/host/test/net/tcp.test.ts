/**
 * The TCP state machine between two connections over a simulated wire, on a fake clock: a wire that
 * delays, drops, duplicates and reorders segments by a seeded PRNG, and a loop that jumps the clock to
 * the next delivery or the next connection timer. The applications on both ends are driven only by the
 * connections' events, as the socket layer will be, so a missing wake-up shows as a stalled transfer.
 * Segments cross the wire as bytes (frame.ts's encoding), so a field that does not fit the header, such
 * as a window above 65535, fails the test.
 */
import test, { type ExecutionContext } from 'ava';
import { SlicelabError, decode, encode } from '@slicelab/protocol';
import { decodeTcp, encodeTcp, type TcpSegment } from '../../dist/net/frame.js';
import {
  TcpConnection, defaultTcpConfig, resetFor, type TcpConfig, type TcpEvent, type TcpState, type TcpStateName,
} from '../../dist/net/tcp.js';

type Side = 'a' | 'b';
const other = (side: Side): Side => (side === 'a' ? 'b' : 'a');
const KiB = 1024;
const MiB = 1024 * KiB;

/** mulberry32: a small seeded PRNG, so every run of a test sees the same wire */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** bytes that are not periodic, so a segment delivered at the wrong place shows */
function randomBytes(length: number, seed: number): Uint8Array {
  const random = prng(seed);
  const words = Uint32Array.from({ length: Math.ceil(length / 4) }, () => random() * 2 ** 32);
  return new Uint8Array(words.buffer, 0, length);
}

interface Wire {
  delayMs: number;
  /** each copy of a segment arrives up to this much later still: segments sent together reorder */
  jitterMs?: number;
  loss?: number;
  duplicate?: number;
  /** a → b through a bottleneck: this many bytes per ms (a segment and 54 bytes of headers each), a tail-drop queue of `queue` segments */
  bottleneck?: { bytesPerMs: number; queue: number };
}

/** One end: a connection (once opened), the clock offset of its host, and what answers a SYN before that. */
interface End {
  conn?: TcpConnection;
  offset: number;
  listen?: (syn: TcpSegment) => TcpConnection;
  /** a host that is away (being migrated): what reaches it is lost */
  away?: boolean;
}

/** The wire and the clock. Deterministic: events at the same time run in the order they were scheduled. */
class Net {
  now = 0;
  readonly ends: Record<Side, End> = { a: { offset: 0 }, b: { offset: 0 } };
  /** everything each side put on the wire, with the (simulated) time */
  readonly sent: Record<Side, { at: number; segment: TcpSegment }[]> = { a: [], b: [] };
  /** what reached each side, in order of arrival */
  readonly arrived: Record<Side, TcpSegment[]> = { a: [], b: [] };
  /** drops a segment on top of the wire's random loss */
  drop?: (from: Side, segment: TcpSegment) => boolean;
  /** changes a segment on the way, as a middlebox would */
  rewrite?: (from: Side, segment: TcpSegment) => TcpSegment;
  /** runs after every step, to watch states */
  watch?: () => void;
  private readonly events: { at: number; order: number; run: () => void }[] = [];
  /** the bottleneck: when each segment in it leaves, and what its tail dropped */
  private departures: Array<{ at: number; packets: number }> = [];
  bottleneckDrops = 0;
  private order = 0;
  private readonly random: () => number;

  constructor(readonly wire: Wire, seed = 1) {
    this.random = prng(seed);
  }

  clock(side: Side): () => number {
    return () => this.now + this.ends[side].offset;
  }

  hooks(side: Side, onEvent?: (event: TcpEvent) => void) {
    return { clock: this.clock(side), send: (segment: TcpSegment) => this.transmit(side, segment), onEvent };
  }

  at(time: number, run: () => void): void {
    const event = { at: time, order: this.order++, run };
    let i = this.events.length;
    while (i > 0 && this.events[i - 1]!.at > time) i--;
    this.events.splice(i, 0, event);
  }

  private transmit(from: Side, segment: TcpSegment): void {
    this.sent[from].push({ at: this.now, segment });
    if (this.drop?.(from, segment)) return;
    const [src, dst] = from === 'a' ? ['10.0.0.1', '10.0.0.2'] : ['10.0.0.2', '10.0.0.1'];
    const arriving = decodeTcp(encodeTcp(this.rewrite?.(from, segment) ?? segment, src, dst), src, dst);
    const { bottleneck } = this.wire;
    if (bottleneck && from === 'a') {
      // a segment larger than the MSS (offloaded) is the packets it cuts into, as the uplink counts it
      const packets = Math.max(1, Math.ceil(segment.payload.length / 1460));
      this.departures = this.departures.filter((d) => d.at > this.now);
      if (this.departures.reduce((n, d) => n + d.packets, 0) + packets > bottleneck.queue) {
        this.bottleneckDrops++;
        return;
      }
      const leaves = Math.max(this.now, this.departures.at(-1)?.at ?? 0) + (segment.payload.length + 54 * packets) / bottleneck.bytesPerMs;
      this.departures.push({ at: leaves, packets });
      this.at(leaves + this.wire.delayMs, () => this.deliver('b', arriving));
      return;
    }
    const copies = this.random() < (this.wire.duplicate ?? 0) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (this.random() < (this.wire.loss ?? 0)) continue;
      const delay = this.wire.delayMs + this.random() * (this.wire.jitterMs ?? 0);
      this.at(this.now + delay, () => this.deliver(other(from), arriving));
    }
  }

  private deliver(to: Side, segment: TcpSegment): void {
    const end = this.ends[to];
    if (end.away) return;
    this.arrived[to].push(segment);
    if (end.conn) {
      end.conn.receive(segment);
    } else if (end.listen && segment.flags.syn && !segment.flags.ack) {
      end.conn = end.listen(segment);
    } else {
      // a closed port, as the socket layer answers it
      const reset = resetFor(segment);
      if (reset) this.transmit(to, reset);
    }
  }

  /** Runs deliveries and timers in time order until `done` holds; false if `limitMs` passed first. */
  run(done: () => boolean, limitMs: number): boolean {
    const end = this.now + limitMs;
    while (!done()) {
      let next = this.events[0]?.at ?? Infinity;
      let due: Side | undefined;
      for (const side of ['a', 'b'] as const) {
        const { conn, offset } = this.ends[side];
        const at = conn?.nextTimerAt();
        if (at !== undefined && at - offset < next) [next, due] = [at - offset, side];
      }
      if (next > end) {
        this.now = end;
        return false;
      }
      this.now = Math.max(this.now, next);
      if (due === undefined) {
        this.events.shift()!.run();
      } else {
        const conn = this.ends[due].conn!;
        conn.tick();
        const again = conn.nextTimerAt();
        if (again !== undefined && again <= this.clock(due)()) throw new Error(`${due}: tick left a timer due at ${again}`);
      }
      this.watch?.();
    }
    return true;
  }

  /** Runs for `ms` of simulated time. */
  runFor(ms: number): void {
    this.run(() => false, ms);
  }
}

/** An application on one end: writes `outgoing` as the connection takes it, reads what arrives. */
class App {
  readonly events: TcpEvent[] = [];
  private readonly chunks: Uint8Array[] = [];
  received = 0;
  written = 0;
  /** times the writer found the send buffer full */
  blocked = 0;
  /** read on 'readable'; a slow reader reads on its own schedule instead */
  eager = true;
  closed = false;

  constructor(
    private readonly net: Net,
    private readonly side: Side,
    private readonly outgoing: Uint8Array = new Uint8Array(0),
    private readonly closeWhenDone = true,
  ) {}

  get conn(): TcpConnection {
    return this.net.ends[this.side].conn!;
  }

  readonly onEvent = (event: TcpEvent): void => {
    this.events.push(event);
    // the state the event was raised in, before the application acts on it
    this.net.watch?.();
    if (event === 'readable' && this.eager) this.read(Infinity);
    if (event === 'established' || event === 'writable') this.write();
  };

  write(): void {
    while (this.written < this.outgoing.length) {
      const taken = this.conn.write(this.outgoing.subarray(this.written, this.written + 64 * KiB));
      if (taken === 0) {
        this.blocked++;
        return;
      }
      this.written += taken;
    }
    if (this.closeWhenDone && !this.closed) {
      this.closed = true;
      this.conn.close();
    }
  }

  read(max: number): void {
    while (max > 0) {
      const bytes = this.conn.read(Math.min(max, 64 * KiB));
      if (bytes.length === 0) return;
      this.chunks.push(bytes);
      this.received += bytes.length;
      max -= bytes.length;
    }
  }

  bytes(): Uint8Array {
    return Buffer.concat(this.chunks);
  }
}

function sameBytes(t: ExecutionContext, got: Uint8Array, want: Uint8Array, what: string): void {
  t.is(got.length, want.length, `${what}: length`);
  if (Buffer.compare(got, want) === 0) return;
  t.fail(`${what}: first wrong byte at ${want.findIndex((byte, i) => got[i] !== byte)}`);
}

interface PairOptions {
  aToB?: Uint8Array;
  bToA?: Uint8Array;
  close?: boolean;
  config?: { a?: Partial<TcpConfig>; b?: Partial<TcpConfig> };
  iss?: { a?: number; b?: number };
}

/** b listens, a connects; both applications write their data and (by default) close when done. */
function pair(net: Net, options: PairOptions = {}) {
  const close = options.close ?? true;
  const a = new App(net, 'a', options.aToB, close);
  const b = new App(net, 'b', options.bToA, close);
  net.ends.b.listen = (syn) => TcpConnection.accept(syn, { ...net.hooks('b', b.onEvent), config: options.config?.b, iss: options.iss?.b });
  net.ends.a.conn = TcpConnection.connect(40000, 80, { ...net.hooks('a', a.onEvent), config: options.config?.a, iss: options.iss?.a });
  return { a, b };
}

const bothClosed = (net: Net) => () => net.ends.a.conn?.state === 'CLOSED' && net.ends.b.conn?.state === 'CLOSED';

/** 1 MiB each way at once, both closing after their data; every byte must arrive, in order. */
function transferBothWays(t: ExecutionContext, wire: Wire, options: PairOptions = {}) {
  const net = new Net(wire, 7);
  const aToB = randomBytes(MiB, 1);
  const bToA = randomBytes(MiB, 2);
  const { a, b } = pair(net, { ...options, aToB, bToA });
  t.true(net.run(bothClosed(net), 3_600_000), 'both ends closed');
  sameBytes(t, b.bytes(), aToB, 'a → b');
  sameBytes(t, a.bytes(), bToA, 'b → a');
  t.is(a.conn.error, undefined);
  t.is(b.conn.error, undefined);
  return { net, a, b };
}

test('handshake negotiates the MSS, then 1 MiB each way arrives in order and both ends close', (t) => {
  const { net, a, b } = transferBothWays(t, { delayMs: 10 }, { config: { b: { mss: 1000 } } });
  const syn = net.sent.a[0]!.segment;
  t.true(syn.flags.syn && !syn.flags.ack);
  t.is(syn.mss, 1460);
  t.is(net.sent.b[0]!.segment.mss, 1000);
  t.is(a.conn.info().mss, 1000);
  t.is(b.conn.info().mss, 1000);
  t.true([...net.sent.a, ...net.sent.b].every(({ segment }) => segment.payload.length <= 1000));
  for (const app of [a, b]) {
    const info = app.conn.info();
    t.is(info.retransmits, 0);
    t.is(info.bytesAcked, MiB);
    t.is(info.bytesReceived, MiB);
    t.deepEqual([app.events[0], app.events.at(-1)], ['established', 'closed']);
    // 20 ms of path plus up to 40 ms of delayed ACK
    t.true(info.srtt! >= 20 && info.srtt! <= 60, `srtt ${info.srtt}`);
    t.is(info.rto, Math.max(200, info.srtt! + 4 * info.rttvar));
  }
});

/** a middlebox that strips the Window Scale option from a's SYN: b never hears it, so neither side scales */
const stripWindowScale = (from: Side, segment: TcpSegment): TcpSegment => (from === 'a' && segment.flags.syn ? { ...segment, windowScale: undefined } : segment);

/** The largest window each side saw the other advertise, in bytes, and the largest window field sent. */
function watchWindows(net: Net) {
  const largest = { a: 0, b: 0 };
  net.watch = () => {
    for (const side of ['a', 'b'] as const) largest[side] = Math.max(largest[side], net.ends[side].conn?.info().sendWindow ?? 0);
  };
  return largest;
}

test('window scaling: both SYNs offer it (SYN windows unscaled), then every window field is shifted by its sender\'s count', (t) => {
  const net = new Net({ delayMs: 10 });
  // a's 4 MiB (the default) needs a shift of 7, as Linux's; b's 512 KiB one of 4
  const seenAtEstablished: number[] = [];
  const largest = watchWindows(net);
  const watch = net.watch!;
  net.watch = () => {
    watch();
    if (net.ends.a.conn?.state === 'ESTABLISHED' && seenAtEstablished.length === 0) seenAtEstablished.push(net.ends.a.conn.info().sendWindow);
  };
  const aToB = randomBytes(MiB, 1);
  const bToA = randomBytes(MiB, 2);
  const { a, b } = pair(net, { aToB, bToA, config: { b: { receiveBuffer: 512 * KiB } } });
  // each side's state once its handshake is over
  const states: Partial<Record<Side, TcpState>> = {};
  t.true(net.run(() => {
    for (const side of ['a', 'b'] as const) {
      const conn = net.ends[side].conn;
      if (!states[side] && conn && conn.state !== 'SYN_SENT' && conn.state !== 'SYN_RECEIVED') states[side] = conn.save(net.now);
    }
    return a.conn.state === 'CLOSED' && b.conn?.state === 'CLOSED';
  }, 60_000));
  sameBytes(t, b.bytes(), aToB, 'a → b');
  sameBytes(t, a.bytes(), bToA, 'b → a');
  const syn = net.sent.a[0]!.segment;
  const synAck = net.sent.b[0]!.segment;
  t.like(syn, { flags: { syn: true, ack: false }, mss: 1460, windowScale: 7, window: 65535 });
  t.like(synAck, { flags: { syn: true, ack: true }, mss: 1460, windowScale: 4, window: 65535 });
  t.deepEqual([states.a?.windowShift, states.b?.windowShift], [{ send: 4, receive: 7 }, { send: 7, receive: 4 }]);
  // the SYN-ACK's window was taken as it stood, not shifted
  t.deepEqual(seenAtEstablished, [65535]);
  // b's fields count 16-byte units: its empty 512 KiB buffer is a field of 32768
  const bFields = net.sent.b.slice(1).map(({ segment }) => segment.window);
  t.is(Math.max(...bFields), 32768);
  t.is(largest.a, 512 * KiB);
  t.true(largest.b > 65535 && largest.b <= defaultTcpConfig.receiveBuffer, `a advertised up to ${largest.b}`);
  t.is(a.conn.info().retransmits + b.conn.info().retransmits, 0);
});

test('window scaling: a SYN without the option gets a SYN-ACK without it, and no window exceeds 65535', (t) => {
  const net = new Net({ delayMs: 10 });
  net.rewrite = stripWindowScale;
  const largest = watchWindows(net);
  const { a, b } = pair(net, { aToB: randomBytes(MiB, 1), bToA: randomBytes(MiB, 2) });
  t.true(net.run(bothClosed(net), 60_000));
  t.is(a.received, MiB);
  t.is(b.received, MiB);
  t.is(net.sent.a[0]!.segment.windowScale, 7, 'a offered it');
  t.is(net.arrived.b[0]!.windowScale, undefined, 'b never heard it');
  t.false('windowScale' in net.sent.b[0]!.segment);
  t.is(a.conn.save(net.now).windowShift, null);
  t.is(b.conn.save(net.now).windowShift, null);
  // both 4 MiB buffers advertised as the 16-bit field allows, unscaled
  t.is(largest.a, 65535);
  t.is(largest.b, 65535);
});

/** A connection of ours (iss 0, port 40000) against a peer played by hand: what we sent, and a way to answer. */
function handPlayed(config?: Partial<TcpConfig>) {
  const sent: TcpSegment[] = [];
  const conn = TcpConnection.connect(40000, 80, { clock: () => 0, send: (segment) => sent.push(segment), iss: 0, config });
  const flags = { syn: false, ack: true, fin: false, rst: false, psh: false };
  const peer = (segment: Partial<TcpSegment>) => conn.receive({ srcPort: 80, dstPort: 40000, seq: 5001, ack: 1, flags, window: 0, payload: new Uint8Array(0), ...segment });
  const synAck = (segment: Partial<TcpSegment>) => peer({ seq: 5000, flags: { ...flags, syn: true }, mss: 1460, ...segment });
  return { conn, sent, peer, synAck };
}

test('window scaling: a SYN-ACK without the option leaves our windows unscaled; a shift count above 14 counts as 14', (t) => {
  const old = handPlayed();
  t.is(old.sent[0]!.windowScale, 7);
  old.synAck({ window: 50000 });
  t.is(old.conn.state, 'ESTABLISHED');
  t.is(old.conn.save(0).windowShift, null);
  t.is(old.conn.info().sendWindow, 50000);
  old.peer({ window: 40000 });
  t.is(old.conn.info().sendWindow, 40000);
  // our 4 MiB buffer, as much of it as 16 bits say
  t.deepEqual(old.sent.slice(1).map((segment) => segment.window), [65535]);
  t.is(old.conn.info().receiveWindow, 65535);

  const greedy = handPlayed();
  greedy.synAck({ window: 1000, windowScale: 20 });
  t.deepEqual(greedy.conn.save(0).windowShift, { send: 14, receive: 7 });
  // the SYN-ACK's window is never scaled, the next segment's is
  t.is(greedy.conn.info().sendWindow, 1000);
  greedy.peer({ window: 2 });
  t.is(greedy.conn.info().sendWindow, 2 * 2 ** 14);
  // our ACK's field: the free 4 MiB in units of 128 bytes
  t.deepEqual(greedy.sent.slice(1).map((segment) => segment.window), [32768]);
  t.is(greedy.conn.info().receiveWindow, 4 * MiB);
});

test('window scaling: our shift is the smallest whose largest window covers the receive buffer', (t) => {
  const shiftFor = (receiveBuffer: number) => handPlayed({ receiveBuffer }).sent[0]!.windowScale;
  t.deepEqual([65535, 65536, 131070, 131071, 256 * KiB, MiB, 6 * MiB].map(shiftFor), [0, 1, 1, 2, 3, 5, 7]);
  t.is(shiftFor(65535 * 2 ** 14), 14);
  t.is(t.throws(() => shiftFor(65535 * 2 ** 14 + 1), { instanceOf: SlicelabError })?.code, 'EINVAL');
  // a buffer below 65535 offers scaling too, with 0 (RFC 7323 2.2), and its SYN's window is the buffer
  const small = handPlayed({ receiveBuffer: 16 * KiB }).sent[0]!;
  t.like(small, { windowScale: 0, window: 16 * KiB });
});

test('window scaling: a SYN-ACK resent after a restore in SYN_RECEIVED still carries our shift count', (t) => {
  const sent: TcpSegment[] = [];
  const hooks = { clock: () => 0, send: (segment: TcpSegment) => sent.push(segment) };
  const flags = { syn: true, ack: false, fin: false, rst: false, psh: false };
  const syn = { srcPort: 40000, dstPort: 80, seq: 7, ack: 0, flags, window: 65535, mss: 1460, windowScale: 5, payload: new Uint8Array(0) };
  const conn = TcpConnection.accept(syn, { ...hooks, config: { receiveBuffer: MiB } });
  const state = decode(encode(conn.save(0))) as TcpState;
  t.deepEqual(state.windowShift, { send: 5, receive: 5 });
  const restored = TcpConnection.restore(state, 10_000, { ...hooks, clock: () => 10_000 });
  restored.receive(syn);
  t.is(sent.length, 2);
  for (const synAck of sent) t.like(synAck, { flags: { syn: true, ack: true }, windowScale: 5, window: 65535 });
  // and without the option in the SYN, none in the SYN-ACK, before or after a restore
  const plain = TcpConnection.accept({ ...syn, windowScale: undefined }, hooks);
  TcpConnection.restore(plain.save(0), 0, hooks).receive({ ...syn, windowScale: undefined });
  t.deepEqual(sent.slice(2).map((segment) => segment.windowScale), [undefined, undefined]);
});

test('window scaling: a path whose bandwidth-delay product exceeds 64 KiB carries more than 64 KiB per round trip', (t) => {
  const data = randomBytes(4 * MiB, 16);
  /** 4 MiB a → b over 20 ms of RTT and no bandwidth limit: the window alone sets the pace */
  const transfer = (rewrite?: Net['rewrite']) => {
    const net = new Net({ delayMs: 10 });
    net.rewrite = rewrite;
    const { a, b } = pair(net, { aToB: data });
    let inFlight = 0;
    net.watch = () => {
      inFlight = Math.max(inFlight, net.ends.a.conn?.info().inFlight ?? 0);
    };
    t.true(net.run(() => b.conn?.eof === true, 60_000));
    sameBytes(t, b.bytes(), data, 'a → b');
    const goodput = data.length / (net.now / 1000);
    t.log(`${rewrite ? 'unscaled' : 'scaled'}: ${(goodput / 1e6).toFixed(1)} MB/s, at most ${inFlight} bytes in flight, ${net.now} ms`);
    return { goodput, inFlight };
  };
  const unscaled = transfer(stripWindowScale);
  const scaled = transfer();
  const windowPerRtt = 65535 / 0.020;
  t.true(unscaled.inFlight <= 65535);
  t.true(unscaled.goodput <= windowPerRtt, `unscaled ${unscaled.goodput} B/s`);
  t.true(scaled.inFlight > 4 * 65535, `scaled: ${scaled.inFlight} bytes in flight`);
  t.true(scaled.goodput > 3 * windowPerRtt, `scaled ${scaled.goodput} B/s`);
});

test('1 MiB each way under 5 % loss', (t) => {
  const { a } = transferBothWays(t, { delayMs: 10, loss: 0.05 });
  const info = a.conn.info();
  t.true(info.retransmits > 0 && info.fastRetransmits > 0 && info.timeouts > 0, JSON.stringify(info));
});

test('1 MiB each way with 10 % of segments duplicated', (t) => {
  const { net, a } = transferBothWays(t, { delayMs: 10, duplicate: 0.1 });
  // the copies reached b and were discarded, and they cost no retransmission
  const arrived = net.arrived.b.reduce((sum, segment) => sum + segment.payload.length, 0);
  t.true(arrived > 1.05 * MiB, `${arrived} bytes arrived`);
  t.is(a.conn.info().retransmits, 0);
});

test('1 MiB each way with segments reordered', (t) => {
  const { net } = transferBothWays(t, { delayMs: 10, jitterMs: 8 });
  // data segments reached b behind ones sent after them
  const seqs = net.arrived.b.filter((segment) => segment.payload.length > 0).map((segment) => segment.seq);
  const overtaken = seqs.filter((seq, i) => i > 0 && ((seq - seqs[i - 1]!) | 0) < 0).length;
  t.true(overtaken > 50, `${overtaken} arrived out of order`);
});

test('1 MiB each way under loss, duplication and reordering at once', (t) => {
  transferBothWays(t, { delayMs: 10, jitterMs: 8, loss: 0.05, duplicate: 0.05 });
});

test('sequence numbers wrap past 2^32 during a transfer under loss', (t) => {
  const { net } = transferBothWays(t, { delayMs: 10, loss: 0.01 }, { iss: { a: 2 ** 32 - 100_000, b: 2 ** 32 - 1 } });
  for (const side of ['a', 'b'] as const) {
    const seqs = net.sent[side].map(({ segment }) => segment.seq);
    t.true(seqs.some((seq) => seq > 2 ** 32 - 200_000) && seqs.some((seq) => seq < 2 * MiB), `${side} wrapped`);
    t.true(seqs.every((seq) => Number.isInteger(seq) && seq >= 0 && seq < 2 ** 32));
  }
});

/** the buffers before window scaling: a window of at most 65535 bytes, which needs no shift */
const unscaledBuffers = { receiveBuffer: 65535, sendBuffer: 128 * KiB };
/** buffers whose window needs a shift of 3 (65535 << 2 is 4 bytes short of 256 KiB) */
const scaledBuffers = { receiveBuffer: 256 * KiB, sendBuffer: 256 * KiB };

/** `chunk` bytes read every 20 ms, far below what the path carries: the window, not the path, sets the pace. */
function slowReader(t: ExecutionContext, buffers: typeof unscaledBuffers, dataBytes: number, chunk: number, shift: number) {
  const net = new Net({ delayMs: 10 });
  const data = randomBytes(dataBytes, 3);
  const { a, b } = pair(net, { aToB: data, config: { a: buffers, b: buffers } });
  b.eager = false;
  const readSlowly = () => {
    if (net.ends.b.conn) b.read(chunk);
    if (!net.ends.b.conn?.eof) net.at(net.now + 20, readSlowly);
  };
  net.at(0, readSlowly);
  let zeroWindow = false;
  let largestWindow = 0;
  net.watch = () => {
    const { sendWindow } = a.conn.info();
    if (sendWindow === 0) zeroWindow = true;
    largestWindow = Math.max(largestWindow, sendWindow);
  };
  t.true(net.run(() => b.conn?.eof === true, 60_000));
  sameBytes(t, b.bytes(), data, 'a → b');
  const info = a.conn.info();
  t.is(b.conn.save(net.now).windowShift?.receive, shift);
  t.true(largestWindow > buffers.receiveBuffer - 2 ** shift && largestWindow <= buffers.receiveBuffer, `largest window ${largestWindow}`);
  t.true(zeroWindow, 'the window closed');
  t.true(a.blocked > 0, 'the writer blocked on a full send buffer');
  t.is(info.retransmits, 0);
  t.is(info.timeouts, 0);
  const pace = (dataBytes / chunk - 1) * 20;
  t.true(net.now >= pace, `took ${net.now} ms, as the reader's pace (${pace} ms)`);
}

test('a slow reader stalls the sender by the window, without loss or retransmission', (t) => {
  slowReader(t, unscaledBuffers, 512 * KiB, 2 * KiB, 0);
});

test('a slow reader stalls the sender by a scaled window, without loss or retransmission', (t) => {
  slowReader(t, scaledBuffers, 768 * KiB, 8 * KiB, 3);
});

/** The receiver stops reading until the window closes; the ACKs that reopen it are lost. */
function lostWindowUpdate(t: ExecutionContext, receiveBuffer: number, dataBytes: number, shift: number) {
  const net = new Net({ delayMs: 10 });
  const data = randomBytes(dataBytes, 4);
  const { a, b } = pair(net, { aToB: data, config: { b: { receiveBuffer } } });
  b.eager = false;
  const stalled = () => a.conn !== undefined && a.conn.info().sendWindow === 0 && a.conn.info().inFlight === 0 && a.written > 0;
  t.true(net.run(stalled, 10_000));
  t.is(b.conn.info().receiveWindow, 0);
  t.is(b.received, 0);
  // up to the last byte, or the last unit of the scaled field: the edge is counted in units of 2^shift
  t.true(b.conn.readable > receiveBuffer - 2 ** shift && b.conn.readable <= receiveBuffer, `${b.conn.readable} bytes wait`);
  t.is(b.conn.save(net.now).windowShift?.receive, shift);
  // the reader empties the buffer; the ACKs announcing the open window (one per doubling) are lost
  let dropped = 0;
  net.drop = (from) => from === 'b' && ++dropped > 0;
  const probesBefore = a.conn.info().windowProbes;
  b.eager = true;
  b.read(Infinity);
  net.drop = undefined;
  t.true(dropped >= 1);
  t.is(a.conn.info().sendWindow, 0);
  t.true(net.run(() => b.conn.eof, 60_000));
  sameBytes(t, b.bytes(), data, 'a → b');
  t.true(a.conn.info().windowProbes > probesBefore, 'a probe found the open window');
  t.is(a.conn.info().retransmits, 0);
}

test('a window update lost on the wire is recovered by the zero-window probe', (t) => {
  lostWindowUpdate(t, 16 * KiB, 200 * KiB, 0);
});

test('a scaled window update lost on the wire is recovered by the zero-window probe', (t) => {
  lostWindowUpdate(t, scaledBuffers.receiveBuffer, 768 * KiB, 3);
});

/** A pair over a 10 ms wire that loses the first sending of the given data segments of a → b (counted from 1). */
function losing(dataSegmentsLost: number[], config?: PairOptions['config']) {
  const net = new Net({ delayMs: 10 });
  const data = randomBytes(MiB, 12);
  const seen = new Set<number>();
  const lost: TcpSegment[] = [];
  net.drop = (from, segment) => {
    if (from !== 'a' || segment.payload.length === 0 || seen.has(segment.seq)) return false;
    seen.add(segment.seq);
    if (!dataSegmentsLost.includes(seen.size)) return false;
    lost.push(segment);
    return true;
  };
  return { net, data, lost, ...pair(net, { aToB: data, config }) };
}

/** when each lost segment was sent again, ms after its first send */
const resentAfter = (net: Net, lost: TcpSegment[]) => lost.map((segment) => {
  const sends = net.sent.a.filter((sent) => sent.segment.seq === segment.seq && sent.segment.payload.length > 0);
  return sends.length < 2 ? Infinity : sends[1]!.at - sends[0]!.at;
});

test('three duplicate ACKs trigger a fast retransmit well before the RTO', (t) => {
  const { net, data, lost, a, b } = losing([30]);
  t.true(net.run(bothClosed(net), 60_000));
  sameBytes(t, b.bytes(), data, 'a → b');
  const info = a.conn.info();
  t.is(info.fastRetransmits, 1);
  t.is(info.retransmits, 1);
  t.is(info.timeouts, 0);
  const [delay] = resentAfter(net, lost);
  t.true(delay! < defaultTcpConfig.rtoMinMs, `retransmitted after ${delay} ms, before any RTO could fire`);
});

test('NewReno (SACK off): three losses in one window are repaired in one recovery, by partial ACKs, without a timeout', (t) => {
  // segments 60, 63 and 66: one window (slow start has opened it to about 40 segments by then)
  const { net, data, lost, a, b } = losing([60, 63, 66], { a: { sack: false } });
  const windows: { cwnd: number; ssthresh: number }[] = [];
  net.watch = () => {
    const { cwnd, ssthresh } = a.conn.info();
    if (windows.at(-1)?.ssthresh !== ssthresh) windows.push({ cwnd, ssthresh });
  };
  t.true(net.run(bothClosed(net), 60_000));
  sameBytes(t, b.bytes(), data, 'a → b');
  const info = a.conn.info();
  // the third duplicate ACK repairs the first hole, each partial ACK the next
  t.is(info.fastRetransmits, 3);
  t.is(info.retransmits, 3);
  t.is(info.timeouts, 0);
  // one loss event: ssthresh set once, to half the flight
  t.is(windows.length, 2);
  t.true(windows[1]!.ssthresh >= 2 * info.mss && windows[1]!.ssthresh < 40 * info.mss, JSON.stringify(windows));
});

test('SACK: both SYNs offer it (nop,nop,sackOK); one end without it turns it off for both', (t) => {
  const net = new Net({ delayMs: 1 });
  pair(net, { aToB: randomBytes(64 * KiB, 3) });
  t.true(net.run(bothClosed(net), 60_000));
  t.true(net.sent.a[0]!.segment.sackPermitted, 'SYN');
  t.true(net.sent.b[0]!.segment.sackPermitted, 'SYN-ACK');
  const off = new Net({ delayMs: 1 });
  pair(off, { aToB: randomBytes(64 * KiB, 3), config: { b: { sack: false } } });
  t.true(off.run(bothClosed(off), 60_000));
  t.true(off.sent.a[0]!.segment.sackPermitted, 'SYN offers it');
  t.falsy(off.sent.b[0]!.segment.sackPermitted, 'SYN-ACK declines');
  t.false([...off.sent.a, ...off.sent.b].some(({ segment }) => segment.sack), 'no SACK blocks on a connection without SACK');
});

test('SACK: three losses in one window are all resent within a round trip of the first (NewReno needs a round trip for each)', (t) => {
  const { net, data, lost, a, b } = losing([60, 63, 66]);
  t.true(net.run(bothClosed(net), 60_000));
  sameBytes(t, b.bytes(), data, 'a → b');
  const info = a.conn.info();
  t.is(info.retransmits, 3);
  t.is(info.fastRetransmits, 1);
  t.is(info.timeouts, 0);
  // the receiver told of every hole: its ACKs carried the blocks above them
  t.true(net.sent.b.some(({ segment }) => (segment.sack?.length ?? 0) >= 3), 'an ACK with three SACK blocks');
  // the first hole goes at the third duplicate ACK; the others as soon as the pipe has room, within the next round trip
  const resends = lost.map((segment) => net.sent.a.filter((sent) => sent.segment.seq === segment.seq && sent.segment.payload.length > 0)[1]!.at);
  t.true(Math.max(...resends) - Math.min(...resends) <= 20, `resent at ${resends.join(', ')} ms; the round trip is 20 ms`);
  const newReno = losing([60, 63, 66], { a: { sack: false } });
  t.true(newReno.net.run(bothClosed(newReno.net), 60_000));
  const renoResends = resentAfter(newReno.net, newReno.lost);
  t.true(renoResends[2]! - renoResends[0]! >= 2 * 20 - 1, `NewReno resent at +${renoResends.join(', +')} ms`);
});

test('SACK: 50 losses in one window are repaired without a timeout, each segment sent again once; NewReno takes far longer', (t) => {
  // every other segment from 152 to 250: slow start's fifth round, segments 151 to 310
  const burst = Array.from({ length: 50 }, (_, i) => 152 + 2 * i);
  const delivered = (run: ReturnType<typeof losing>, limitMs: number) => {
    t.true(run.net.run(() => run.b.received === run.data.length, limitMs), 'every byte arrived');
    sameBytes(t, run.b.bytes(), run.data, 'a → b');
    return { ms: run.net.now, ...run.a.conn.info() };
  };
  const sack = delivered(losing(burst), 60_000);
  t.is(sack.timeouts, 0);
  t.is(sack.retransmits, 50);
  const reno = delivered(losing(burst, { a: { sack: false } }), 600_000);
  t.log(`SACK: all delivered at ${sack.ms} ms, ${sack.retransmits} retransmits; NewReno: ${reno.ms} ms, ${reno.retransmits} retransmits, ${reno.timeouts} timeouts`);
  t.true(2 * sack.ms < reno.ms, 'SACK delivers in less than half the time');
});

test('segment offload: new data leaves in segments of about a millisecond of the rate, up to 44 MSS; retransmissions stay one MSS', (t) => {
  const net = new Net({ delayMs: 10, loss: 0.02 }, 5);
  const data = randomBytes(4 * MiB, 21);
  const { b } = pair(net, { aToB: data, config: { a: { segmentOffload: true } } });
  t.true(net.run(bothClosed(net), 600_000));
  sameBytes(t, b.bytes(), data, 'a → b');
  const mss = defaultTcpConfig.mss;
  const sizes = net.sent.a.map(({ segment }) => segment.payload.length).filter((n) => n > 0);
  t.true(sizes.some((n) => n > mss), `largest segment ${Math.max(...sizes)}`);
  t.true(sizes.every((n) => n <= 44 * mss && (n <= mss || n % mss === 0 || n % mss === data.length % mss)), 'whole MSSs, but for the end of the data');
  // a segment sent again is one MSS, whatever size it first left in
  const firsts = new Set<number>();
  const again = net.sent.a.filter(({ segment }) => segment.payload.length > 0 && (firsts.has(segment.seq) || !firsts.add(segment.seq)));
  t.true(again.length > 0, 'the loss made retransmissions');
  t.true(again.every(({ segment }) => segment.payload.length <= mss));
  // without it, every segment is one MSS at most
  const plain = new Net({ delayMs: 10 }, 5);
  pair(plain, { aToB: randomBytes(MiB, 22) });
  t.true(plain.run(bothClosed(plain), 600_000));
  t.true(plain.sent.a.every(({ segment }) => segment.payload.length <= mss));
});

for (const segmentOffload of [false, true]) {
  test(`slow start ends when the RTT grows (HyStart), before a deep queue at a 10 Mbit/s bottleneck overflows: no loss, the link kept busy${segmentOffload ? ' (segment offload)' : ''}`, (t) => {
    // 1250 bytes per ms, a queue of 1000 segments (1.2 s of sending), 1 ms each way
    const net = new Net({ delayMs: 1, bottleneck: { bytesPerMs: 1250, queue: 1000 } });
    const data = randomBytes(8 * MiB, 31);
    const { a, b } = pair(net, { aToB: data, config: { a: { segmentOffload } } });
    let exitedAt: number | undefined;
    net.watch = () => {
      if (exitedAt === undefined && a.conn.info().ssthresh < 2 ** 31 - 1) exitedAt = a.conn.info().cwnd;
    };
    t.true(net.run(() => b.received === data.length, 60_000));
    sameBytes(t, b.bytes(), data, 'a → b');
    const ofLink = b.received / net.now / 1250;
    t.log(`slow start ended at cwnd ${exitedAt} bytes; ${ofLink.toFixed(3)} of the link over ${(net.now / 1000).toFixed(1)} s; ${net.bottleneckDrops} drops`);
    t.is(net.bottleneckDrops, 0);
    t.is(a.conn.info().retransmits, 0);
    t.true(exitedAt !== undefined && exitedAt < 1000 * 1460 / 4, 'well before the queue could overflow');
    // payload over the wire's bytes (54 of headers a segment) is the most a stream can get
    t.true(ofLink > 0.9 * (1460 / 1514), `${ofLink}`);
  });
}

test('retransmission timeouts back off ×2 up to 120 s, then the connection fails with ETIMEDOUT', (t) => {
  const net = new Net({ delayMs: 10 });
  const { a } = pair(net, { aToB: randomBytes(MiB, 6), close: false });
  t.true(net.run(() => a.conn.info().bytesAcked > 100 * KiB, 10_000));
  t.is(a.conn.info().rto, defaultTcpConfig.rtoMinMs);
  // the path goes black (segments already on it still arrive)
  net.drop = () => true;
  const start = net.sent.a.length;
  t.true(net.run(() => a.conn.state === 'CLOSED', 3_600_000));
  t.is(a.conn.error, 'ETIMEDOUT');
  t.is(a.events.at(-1), 'failed');
  t.throws(() => a.conn.write(new Uint8Array(1)), { instanceOf: SlicelabError, message: /ETIMEDOUT/ });
  // after the timeouts only the oldest unacknowledged segment goes out, once per timeout
  const last = net.sent.a.at(-1)!.segment.seq;
  const retransmissions = net.sent.a.slice(start).filter(({ segment }) => segment.seq === last);
  t.is(retransmissions.length, defaultTcpConfig.dataRetries);
  t.is(a.conn.info().timeouts, defaultTcpConfig.dataRetries);
  const times = [...retransmissions.map(({ at }) => at), net.now];
  const gaps = times.slice(1).map((at, i) => at - times[i]!);
  t.deepEqual(gaps, gaps.map((_, i) => Math.min(2 * defaultTcpConfig.rtoMinMs * 2 ** i, defaultTcpConfig.rtoMaxMs)));
  // Linux's well-known 924.6 s for tcp_retries2 = 15 from a 200 ms RTO, less the first 200 ms
  t.is(net.now - times[0]!, 924_400);
});

test('a connect that gets no answer sends 7 SYNs and fails with ETIMEDOUT after 127 s', (t) => {
  const net = new Net({ delayMs: 10 });
  net.drop = () => true;
  const events: TcpEvent[] = [];
  net.ends.a.conn = TcpConnection.connect(40000, 80, net.hooks('a', (event) => events.push(event)));
  t.true(net.run(() => net.ends.a.conn!.state === 'CLOSED', 3_600_000));
  const syns = net.sent.a.filter(({ segment }) => segment.flags.syn);
  t.is(syns.length, 1 + defaultTcpConfig.synRetries);
  t.deepEqual(syns.map(({ at }) => at / 1000), [0, 1, 3, 7, 15, 31, 63]);
  t.is(net.now, 127_000);
  t.is(net.ends.a.conn!.error, 'ETIMEDOUT');
  t.deepEqual(events, ['failed']);
});

test('a SYN answered by RST fails the connect with ECONNREFUSED', (t) => {
  const net = new Net({ delayMs: 10 });
  const events: TcpEvent[] = [];
  const conn = TcpConnection.connect(40000, 81, net.hooks('a', (event) => events.push(event)));
  net.ends.a.conn = conn;
  t.true(net.run(() => conn.state === 'CLOSED', 10_000));
  t.is(net.now, 20);
  t.true(net.sent.b[0]!.segment.flags.rst);
  t.is(conn.error, 'ECONNREFUSED');
  t.deepEqual(events, ['failed']);
  t.throws(() => conn.write(new Uint8Array(1)), { instanceOf: SlicelabError, message: /ECONNREFUSED/ });
});

test('a RST mid-stream fails the connection with ECONNRESET', (t) => {
  const net = new Net({ delayMs: 10 });
  // neither end closes: a closed one (CLOSING, LAST_ACK) takes a RST as the end, with no error
  const { a, b } = pair(net, { aToB: randomBytes(MiB, 8), close: false });
  t.true(net.run(() => b.received > 100 * KiB, 10_000));
  t.is(a.conn.state, 'ESTABLISHED');
  b.conn.abort();
  t.is(b.conn.state, 'CLOSED');
  t.is(b.conn.error, undefined);
  t.true(net.run(() => a.conn.state === 'CLOSED', 10_000));
  t.is(a.conn.error, 'ECONNRESET');
  t.is(a.events.at(-1), 'failed');
  t.throws(() => a.conn.write(new Uint8Array(1)), { instanceOf: SlicelabError, message: /ECONNRESET/ });
});

/** ms until the connection's next timer, from `now` on its clock */
function timerIn(conn: TcpConnection, now: number): number | undefined {
  const at = conn.nextTimerAt();
  return at === undefined ? undefined : at - now;
}

/** Records each side's states as they change. */
function watchStates(net: Net): Record<Side, { state: TcpStateName; at: number }[]> {
  const seen: Record<Side, { state: TcpStateName; at: number }[]> = { a: [], b: [] };
  net.watch = () => {
    for (const side of ['a', 'b'] as const) {
      const state = net.ends[side].conn?.state;
      if (state && seen[side].at(-1)?.state !== state) seen[side].push({ state, at: net.now });
    }
  };
  return seen;
}

test('orderly close: the active closer passes FIN_WAIT and TIME_WAIT (2 MSL), the passive one CLOSE_WAIT and LAST_ACK', (t) => {
  const net = new Net({ delayMs: 10 });
  const states = watchStates(net);
  const aToB = randomBytes(10 * KiB, 9);
  const bToA = randomBytes(5 * KiB, 10);
  const a = new App(net, 'a', aToB, true);
  // b writes only after a's FIN arrived: a half-closed connection still carries b's data to a
  const b = new App(net, 'b', bToA, true);
  net.ends.b.listen = (syn) => TcpConnection.accept(syn, net.hooks('b', (event) => {
    b.events.push(event);
    net.watch!();
    if (event === 'readable') b.read(Infinity);
    if ((event === 'readable' || event === 'writable') && b.conn.eof) b.write();
  }));
  net.ends.a.conn = TcpConnection.connect(40000, 80, net.hooks('a', a.onEvent));
  t.true(net.run(bothClosed(net), 60_000));
  sameBytes(t, b.bytes(), aToB, 'a → b');
  sameBytes(t, a.bytes(), bToA, 'b → a after a closed');
  t.deepEqual(states.a.map(({ state }) => state), ['SYN_SENT', 'ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2', 'TIME_WAIT', 'CLOSED']);
  t.deepEqual(states.b.map(({ state }) => state), ['SYN_RECEIVED', 'ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSED']);
  const timeWait = states.a.find(({ state }) => state === 'TIME_WAIT')!;
  t.is(states.a.at(-1)!.at - timeWait.at, 2 * defaultTcpConfig.mslMs);
  t.is(a.events.at(-1), 'closed');
  t.is(b.events.at(-1), 'closed');
});

test('simultaneous close: both ends pass CLOSING and TIME_WAIT', (t) => {
  const net = new Net({ delayMs: 10 });
  const states = watchStates(net);
  const { a, b } = pair(net, { close: false });
  t.true(net.run(() => a.conn.state === 'ESTABLISHED' && b.conn?.state === 'ESTABLISHED', 1000));
  a.conn.close();
  b.conn.close();
  net.watch!();
  t.true(net.run(bothClosed(net), 60_000));
  for (const side of ['a', 'b'] as const) {
    t.deepEqual(states[side].map(({ state }) => state).slice(-4), ['FIN_WAIT_1', 'CLOSING', 'TIME_WAIT', 'CLOSED'], side);
  }
  t.true(a.conn.eof && b.conn.eof);
});

test('throughput falls as loss rises (NewReno): 0.1 % > 1 % > 5 %', (t) => {
  const chunk = new Uint8Array(64 * KiB);
  const goodput = [0.001, 0.01, 0.05].map((loss) => {
    const net = new Net({ delayMs: 50, loss }, 11);
    const a = new App(net, 'a');
    const b = new App(net, 'b');
    net.ends.b.listen = (syn) => TcpConnection.accept(syn, net.hooks('b', b.onEvent));
    // an endless writer
    const write = (event: TcpEvent) => {
      if (event === 'established' || event === 'writable') while (net.ends.a.conn!.write(chunk) > 0);
    };
    net.ends.a.conn = TcpConnection.connect(40000, 5201, net.hooks('a', write));
    net.runFor(60_000);
    t.log(`loss ${loss * 100} %: ${(b.received / 60 / 1000).toFixed(1)} KB/s, retransmits ${net.ends.a.conn.info().retransmits}`);
    return b.received;
  });
  t.true(goodput[0]! > goodput[1]! && goodput[1]! > goodput[2]!, goodput.join(' > '));
});

test('saved mid-transfer under loss and restored on hosts with other clocks, both directions complete in order', (t) => {
  const net = new Net({ delayMs: 10, loss: 0.02 }, 13);
  const aToB = randomBytes(MiB, 14);
  const bToA = randomBytes(512 * KiB, 15);
  const { a, b } = pair(net, { aToB, bToA });
  /** moves one end: save, 30 ms away (what reaches it is lost), restore on a host whose clock reads `offset` ms more */
  const migrate = (side: Side, app: App, offset: number) => {
    const end = net.ends[side];
    const conn = end.conn!;
    const state = conn.save(net.clock(side)());
    const remaining = timerIn(conn, net.clock(side)());
    end.conn = undefined;
    end.away = true;
    net.runFor(30);
    end.away = false;
    end.offset = offset;
    const now = net.clock(side)();
    const restored = TcpConnection.restore(decode(encode(state)) as TcpState, now, net.hooks(side, app.onEvent));
    end.conn = restored;
    // the clock stood still for the connection while it was away
    const resumed = timerIn(restored, now);
    t.true(resumed === remaining || Math.abs(resumed! - remaining!) < 1e-6, `timer due in ${resumed} ms, was ${remaining} ms`);
    const again = restored.save(now);
    t.deepEqual({ ...again, timers: null, rtt: null }, { ...state, timers: null, rtt: null });
    t.deepEqual(again.windowShift, { send: 7, receive: 7 });
    t.is(again.rtt.srtt, state.rtt.srtt);
    return state;
  };
  t.true(net.run(() => b.received >= 300 * KiB, 600_000));
  const saved = migrate('a', a, 1_000_000);
  t.true(saved.send.una < saved.send.max && saved.timers.retransmit !== null, 'saved with data in flight');
  t.true(net.run(() => b.received >= 600 * KiB, 600_000));
  migrate('b', b, 5_000_000);
  t.true(net.run(bothClosed(net), 3_600_000));
  sameBytes(t, b.bytes(), aToB, 'a → b');
  sameBytes(t, a.bytes(), bToA, 'b → a');
  t.true(a.conn.info().retransmits > 0);
});
