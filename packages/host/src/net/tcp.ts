/**
 * The TCP stream protocol of the virtual network, as a state machine with no timers, sockets or I/O of its
 * own. Division of labor:
 *   TcpConnection: knows the protocol: handshake, sequence space, windows, retransmission, congestion
 *     control, close and reset
 *   its owner (the socket layer): hands it the segments of its 4-tuple, arms one timer at `nextTimerAt()`
 *     and calls `tick()`, puts what it sends on the wire, wakes the processes waiting on its events, and
 *     answers segments for no connection with `resetFor`
 *   frame.ts: knows the bytes of a segment on the wire
 * So between two calls a connection is plain data: `save` writes it down with its times relative to the
 * clock and `restore` continues it on another host, which keeps open streams alive across a migration.
 *
 * Followed: RFC 9293 (states, segment processing, SWS avoidance on both sides), RFC 6298 (retransmission
 * timer, Karn's rule), RFC 5681 (slow start, congestion avoidance, delayed ACKs, fast retransmit),
 * RFC 6582 (NewReno fast recovery, its "impatient" timer variant), RFC 6928 (initial window of 10
 * segments, as Linux), RFC 3465 (byte counting in congestion avoidance), RFC 5961 (challenge ACK for an
 * in-window SYN), RFC 7323 section 2 (window scaling, offered in every SYN as Linux's default
 * tcp_window_scaling=1). Where the RFCs leave a choice, Linux's: RTO between 200 ms and 120 s, 6 SYN
 * retries and 15 data retries (tcp_syn_retries, tcp_retries2), zero-window probes with an old sequence
 * number, a 40 ms delayed ACK. Left out: SACK, timestamps (and with them PAWS, which RFC 7323 asks for
 * at high rates: a 1 GiB window wraps the sequence space quickly, an emulated link never does), Nagle
 * (sends as with TCP_NODELAY), simultaneous open, urgent data, Linux's buffer auto-tuning (buffers are
 * fixed by the config).
 *
 * Window scaling (RFC 7323 2): without it a window is at most 65535 bytes, one window per round trip,
 * which held iperf to 117 Mbit/s at the fabric's 3–4 ms RTT on a 1 Gbit/s link. Both SYNs must carry
 * the option for it to apply; then every later window field is the window shifted right by its
 * sender's shift count. Ours is the smallest that lets the field cover the receive buffer.
 *
 * Inside, sequence numbers are stream offsets from the initial sequence numbers (offset 0 is the SYN, data
 * byte i is at offset 1 + i), exact up to 2^53 bytes. The wire's 32-bit numbers are converted at the edge
 * by their signed distance from a known offset (modular comparison, RFC 1982), so wraparound is handled
 * in one place.
 */
import { SlicelabError, type ErrorCode } from '@slicelab/protocol';
import { maxSackBlocks, maxWindowShift, sackBlocksWithin, type TcpFlags, type TcpSegment } from './frame.js';

export type TcpStateName =
  | 'CLOSED' | 'SYN_SENT' | 'SYN_RECEIVED' | 'ESTABLISHED' | 'FIN_WAIT_1' | 'FIN_WAIT_2' | 'CLOSE_WAIT'
  | 'CLOSING' | 'LAST_ACK' | 'TIME_WAIT';

/** Why a connection failed: reset by the peer, refused (a SYN answered by RST), or no answer. */
export type TcpErrno = Extract<ErrorCode, 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT'>;

/** What the owner hears, after the call that caused it returns (so it may call back in at once). */
export type TcpEvent = 'established' | 'readable' | 'writable' | 'closed' | 'failed';

/** The tunables of a connection, as sysctls and socket options would set them. Saved with the connection. */
export interface TcpConfig {
  /** the MSS announced in our SYN: Ethernet's 1500-byte MTU less 40 bytes of IPv4 and TCP headers */
  mss: number;
  /** bytes written and not yet acknowledged that the connection holds */
  sendBuffer: number;
  /**
   * bytes received and not yet read; its free space is the window advertised, at most 65535 unless
   * both ends scale windows, and it sets our shift count (so at most 65535 << 14, about 1 GiB)
   */
  receiveBuffer: number;
  /** initial congestion window, in segments; 1 after a handshake that needed a retransmission */
  initialWindow: number;
  rtoInitialMs: number;
  rtoMinMs: number;
  rtoMaxMs: number;
  /** SYN (or SYN-ACK) retransmissions before the handshake fails with ETIMEDOUT */
  synRetries: number;
  /** retransmissions of the same data, or unanswered zero-window probes, before ETIMEDOUT */
  dataRetries: number;
  /** maximum segment lifetime: TIME_WAIT lasts 2 MSL */
  mslMs: number;
  /** how long an ACK may wait for a second segment or for data to ride on; 0 acknowledges at once */
  delayedAckMs: number;
  /** offer selective acknowledgements (RFC 2018), as net.ipv4.tcp_sack; used when both SYNs carry the option */
  sack: boolean;
  /**
   * the nic segments for us (TSO): new data goes out in segments of several MSS, sized as Linux's
   * tcp_tso_autosize to about a millisecond of the connection's rate (cwnd / srtt), at least 2 MSS and at
   * most what one IPv4 packet holds; retransmissions stay one MSS. Off, as on a nic without it: the
   * stack turns it on for its streams
   */
  segmentOffload: boolean;
}

/**
 * Linux's defaults, except where noted. Buffers of 4 MiB each way, Linux's tcp_wmem maximum and near
 * tcp_rmem's 6 MiB: Linux auto-tunes its buffers up to those on a bulk stream, these are fixed there
 * (and take memory only as data waits in them). A 4 MiB window carries 1 Gbit/s at up to 33 ms RTT, 500
 * Mbit/s at up to 67 ms, and the send buffer, which holds what is in flight, allows as much; the receive
 * buffer gives a shift count of 7, what Linux announces. An MSL of 1 s (TIME_WAIT 2 s instead of Linux's
 * 60 s), because emulated hosts reuse ports quickly and no segment outlives a second in the fabric. SYN retries 6: SYNs at 0, 1, 3, 7, 15, 31 and
 * 63 s, ETIMEDOUT at 127 s. Data retries 15: about 924.6 s of back-off from a 200 ms RTO.
 */
export const defaultTcpConfig: Readonly<TcpConfig> = {
  mss: 1460,
  sendBuffer: 4 * 1024 * 1024,
  receiveBuffer: 4 * 1024 * 1024,
  initialWindow: 10,
  rtoInitialMs: 1000,
  rtoMinMs: 200,
  rtoMaxMs: 120_000,
  synRetries: 6,
  dataRetries: 15,
  mslMs: 1000,
  delayedAckMs: 40,
  sack: true,
  segmentOffload: false,
};

/** What a connection needs from its owner; not saved, given again on restore. */
export interface TcpHooks {
  /** ms, monotonic */
  clock: () => number;
  send: (segment: TcpSegment) => void;
  onEvent?: (event: TcpEvent) => void;
}

export interface TcpOptions extends TcpHooks {
  config?: Partial<TcpConfig>;
  /** initial sequence number; by default RFC 9293's clock, one step per 4 µs */
  iss?: number;
}

export interface TcpCounters {
  /** payload bytes put on the wire, retransmissions included */
  bytesSent: number;
  /** payload bytes the peer acknowledged */
  bytesAcked: number;
  /** payload bytes received in order */
  bytesReceived: number;
  segmentsSent: number;
  segmentsReceived: number;
  /** segments sent again, for any reason (iperf's Retr) */
  retransmits: number;
  /** of those, sent by fast retransmit or for a NewReno partial ACK */
  fastRetransmits: number;
  /** expirations of the retransmission timer that retransmitted */
  timeouts: number;
  windowProbes: number;
}

/** A connection's numbers, as tcp_info gives them. */
export interface TcpInfo extends TcpCounters {
  state: TcpStateName;
  /** the segment size both sides send: the smaller of the two MSS options */
  mss: number;
  cwnd: number;
  ssthresh: number;
  /** undefined until the first RTT sample */
  srtt: number | undefined;
  rttvar: number;
  rto: number;
  /** the peer's window */
  sendWindow: number;
  /** the window we advertised last, less what arrived since */
  receiveWindow: number;
  /** bytes sent and not yet acknowledged */
  inFlight: number;
}

/** A connection written down: plain data, offsets as above, times relative to the moment of the save. */
export interface TcpState {
  state: TcpStateName;
  error: TcpErrno | null;
  config: TcpConfig;
  localPort: number;
  remotePort: number;
  /** initial sequence numbers, ours and the peer's (wire numbers) */
  iss: number;
  irs: number;
  mss: number;
  /**
   * RFC 7323 shift counts (0..14), null when a SYN lacked the option (or before both were seen): send is
   * the peer's, by which its window fields are shifted left (Snd.Wind.Shift); receive is ours, by which
   * our window is shifted right into the field (Rcv.Wind.Shift)
   */
  windowShift: { send: number; receive: number } | null;
  /** both SYNs carried SACK-Permitted: ACKs carry SACK blocks, and loss recovery follows RFC 6675 */
  sack: boolean;
  send: {
    /** oldest unacknowledged, next to send, highest sent (offsets from iss) */
    una: number;
    nxt: number;
    max: number;
    /** the peer's window, scaled, and the segment that set it (RFC 9293's SND.WND, SND.WL1, SND.WL2) */
    window: number;
    wl1: number;
    wl2: number;
    /** data bytes taken from the writer; the FIN, once queued, follows at offset written + 1 */
    written: number;
    fin: boolean;
    /** written and not yet acknowledged */
    buffer: Uint8Array;
    /** the scoreboard: [start, end) offsets above una the peer selectively acknowledged, sorted, disjoint */
    sacked: Array<[number, number]>;
  };
  receive: {
    /** the next offset expected from the peer (from irs) */
    nxt: number;
    /** the right edge of the window advertised last (the field's window, scaled) */
    edge: number;
    /** in-order bytes not yet read */
    buffer: Uint8Array;
    /** bytes past a hole, in order of offset, not overlapping */
    outOfOrder: { offset: number; bytes: Uint8Array }[];
    /** the offset of the peer's FIN, once seen */
    fin: number | null;
    /** in-order bytes not yet acknowledged */
    unacked: number;
  };
  congestion: {
    cwnd: number;
    ssthresh: number;
    /** bytes acknowledged towards the next increase in congestion avoidance */
    avoidanceBytes: number;
    dupAcks: number;
    recovering: boolean;
    /** sndMax when the last loss was detected: no new recovery until it is acknowledged */
    recover: number;
    partialAcked: boolean;
    /** the end of the highest retransmission in this SACK recovery (RFC 6675's HighRxt) */
    highRxt: number;
  };
  rtt: {
    srtt: number | null;
    rttvar: number;
    rto: number;
    /** the lowest RTT sample: the path without a queue, which slow start's delay rule compares with */
    min: number | null;
    /** the segment being timed: its end offset and how long ago it was sent */
    timed: { end: number; ageMs: number } | null;
  };
  /** retransmission timeouts since the last progress */
  retries: number;
  /** zero-window probes unanswered, and probes since the window closed (their back-off) */
  probesOut: number;
  probeBackoff: number;
  /** ms from the save until each timer fires */
  timers: { retransmit: number | null; persist: number | null; delayedAck: number | null; timeWait: number | null };
  counters: TcpCounters;
}

/** the largest window field: the largest window without window scaling, and in every SYN */
const maxWindow = 65535;
/** the MSS assumed for a peer whose SYN has no MSS option (RFC 9293 3.7.1) */
const defaultPeerMss = 536;
/** RFC 6298 5.7: the RTO once data flows, when the handshake was retransmitted and gave no RTT sample */
const fallbackRtoMs = 3000;
/** what one IPv4 packet holds of a segment's data: 65535 less the IPv4 header and the longest TCP header */
const maxOffloadPayload = 65535 - 20 - 60;
/** Linux's HyStart: slow start ends once an RTT exceeds the lowest by an eighth, kept within 4..16 ms, from a window of 16 segments on */
const hystartMinMs = 4;
const hystartMaxMs = 16;
const hystartLowWindow = 16;
/** Linux's TCP_INFINITE_SSTHRESH: no slow-start threshold until the first loss */
const initialSsthresh = 0x7fffffff;
const noPayload = new Uint8Array(0);
/** what a buffer's array starts at: a few segments */
const initialRingBytes = 16 * 1024;

/** states that send data and FIN, and those that take the peer's data and FIN */
const sending = new Set<TcpStateName>(['ESTABLISHED', 'FIN_WAIT_1', 'CLOSE_WAIT', 'CLOSING', 'LAST_ACK']);
const receiving = new Set<TcpStateName>(['ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2']);
/** states in which the writer may still write */
const writing = new Set<TcpStateName>(['SYN_SENT', 'SYN_RECEIVED', 'ESTABLISHED', 'CLOSE_WAIT']);

/** a wire sequence number: 32 bits, wrapping */
const wire = (n: number) => n >>> 0;
/** how far wire number `a` is past `b`, negative when before it */
const seqDistance = (a: number, b: number) => (a - b) | 0;

const flagsOf = (set: Partial<TcpFlags>): TcpFlags => ({ syn: false, ack: false, fin: false, rst: false, psh: false, ...set });

/** The RST that answers a segment for no connection, such as a SYN to a closed port (RFC 9293 3.10.7.1). */
export function resetFor(segment: TcpSegment): TcpSegment | undefined {
  if (segment.flags.rst) return undefined;
  const reply = { srcPort: segment.dstPort, dstPort: segment.srcPort, window: 0, payload: noPayload };
  if (segment.flags.ack) return { ...reply, seq: segment.ack, ack: 0, flags: flagsOf({ rst: true }) };
  const length = segment.payload.length + (segment.flags.syn ? 1 : 0) + (segment.flags.fin ? 1 : 0);
  return { ...reply, seq: 0, ack: wire(segment.seq + length), flags: flagsOf({ rst: true, ack: true }) };
}

/**
 * A bounded FIFO of bytes in a ring: the send and receive buffers. Its array grows by doubling up to the
 * capacity as bytes wait, as a socket's memory is charged only for what it holds: buffers sized for a
 * bulk stream cost an idle connection little.
 */
class ByteRing {
  private bytes: Uint8Array;
  private head = 0;
  length = 0;

  constructor(readonly capacity: number, contents: Uint8Array = noPayload) {
    this.bytes = new Uint8Array(Math.min(capacity, Math.max(contents.length, initialRingBytes)));
    this.push(contents);
  }

  get free(): number {
    return this.capacity - this.length;
  }

  /** Appends what fits; returns how many bytes it took. */
  push(data: Uint8Array): number {
    const count = Math.min(data.length, this.free);
    if (this.length + count > this.bytes.length) this.grow(this.length + count);
    const size = this.bytes.length;
    const tail = (this.head + this.length) % size;
    const first = Math.min(count, size - tail);
    this.bytes.set(data.subarray(0, first), tail);
    this.bytes.set(data.subarray(first, count), 0);
    this.length += count;
    return count;
  }

  /** A copy of `count` bytes from `offset` past the head. */
  copy(offset: number, count: number): Uint8Array {
    const out = new Uint8Array(count);
    const size = this.bytes.length;
    const start = (this.head + offset) % size;
    const first = Math.min(count, size - start);
    out.set(this.bytes.subarray(start, start + first));
    out.set(this.bytes.subarray(0, count - first), first);
    return out;
  }

  drop(count: number): void {
    this.head = (this.head + count) % this.bytes.length;
    this.length -= count;
  }

  shift(count: number): Uint8Array {
    const out = this.copy(0, count);
    this.drop(count);
    return out;
  }

  /** A larger array, at least `needed` bytes, the waiting bytes moved to its start. */
  private grow(needed: number): void {
    const bytes = new Uint8Array(Math.min(this.capacity, Math.max(needed, 2 * this.bytes.length)));
    bytes.set(this.copy(0, this.length));
    this.bytes = bytes;
    this.head = 0;
  }
}

/**
 * The sender's SACK scoreboard (RFC 6675 2): what the peer holds above the cumulative ACK, as sorted,
 * disjoint [start, end) offsets. Every query walks the blocks, which stay few: one per hole.
 */
class Scoreboard {
  private blocks: Array<[number, number]>;

  constructor(saved: Array<[number, number]>) {
    this.blocks = saved.map(([start, end]) => [start, end]);
  }

  save(): Array<[number, number]> {
    return this.blocks.map(([start, end]) => [start, end]);
  }

  /** Merges a block in; returns how many of its bytes were not SACKed before. */
  add(start: number, end: number): number {
    let fresh = end - start;
    const kept: Array<[number, number]> = [];
    for (const block of this.blocks) {
      if (block[1] < start || block[0] > end) {
        kept.push(block);
        continue;
      }
      fresh -= Math.max(0, Math.min(end, block[1]) - Math.max(start, block[0]));
      start = Math.min(start, block[0]);
      end = Math.max(end, block[1]);
    }
    kept.push([start, end]);
    this.blocks = kept.sort((x, y) => x[0] - y[0]);
    return fresh;
  }

  /** Forgets what the cumulative ACK now covers. */
  trim(una: number): void {
    while (this.blocks.length > 0 && this.blocks[0]![1] <= una) this.blocks.shift();
    if (this.blocks.length > 0 && this.blocks[0]![0] < una) this.blocks[0]![0] = una;
  }

  sackedBetween(from: number, to: number): number {
    let bytes = 0;
    for (const [start, end] of this.blocks) bytes += Math.max(0, Math.min(end, to) - Math.max(start, from));
    return bytes;
  }

  /** The first range from `from` on that no block holds, up to the next block or `limit`; none if it would be empty. */
  holeAt(from: number, limit: number): [number, number] | undefined {
    for (const [start, end] of this.blocks) {
      if (end <= from) continue;
      if (start > from) return from < limit ? [from, Math.min(start, limit)] : undefined;
      from = end;
    }
    return from < limit ? [from, limit] : undefined;
  }

  /**
   * RFC 6675's IsLost: a hole is lost once three discontiguous blocks, or more than two segments' bytes,
   * were SACKed above it. Returns the offset below which every hole is lost (the start of the block at
   * which, counting down from the highest, either holds), 0 when none is.
   */
  lostBelow(mss: number): number {
    let bytes = 0;
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      const [start, end] = this.blocks[i]!;
      bytes += end - start;
      if (this.blocks.length - i >= 3 || bytes > 2 * mss) return start;
    }
    return 0;
  }
}

function resolveConfig(partial: Partial<TcpConfig> = {}): TcpConfig {
  const config = { ...defaultTcpConfig, ...partial };
  if (!(config.mss >= 64 && config.mss <= maxWindow)) throw new SlicelabError('EINVAL', `tcp: mss ${config.mss} out of range`);
  if (!(config.sendBuffer >= config.mss && config.receiveBuffer >= config.mss)) {
    throw new SlicelabError('EINVAL', 'tcp: buffers must hold at least one segment');
  }
  if (config.receiveBuffer > maxWindow * 2 ** maxWindowShift) {
    throw new SlicelabError('EINVAL', `tcp: receive buffer ${config.receiveBuffer} larger than the largest window, ${maxWindow * 2 ** maxWindowShift}`);
  }
  return config;
}

/**
 * RFC 7323 2.3: the shift count we announce, the smallest whose largest window covers the receive
 * buffer, as Linux's tcp_select_initial_window derives it from the buffer.
 */
function windowShiftFor(receiveBuffer: number): number {
  let shift = 0;
  while (maxWindow * 2 ** shift < receiveBuffer && shift < maxWindowShift) shift++;
  return shift;
}

/** A connection that has sent nothing yet. */
function openingState(config: TcpConfig, localPort: number, remotePort: number, iss: number, state: TcpStateName): TcpState {
  return {
    state, error: null, config, localPort, remotePort, iss: wire(iss), irs: 0, mss: config.mss, windowShift: null, sack: false,
    send: { una: 0, nxt: 0, max: 0, window: 0, wl1: 0, wl2: 0, written: 0, fin: false, buffer: noPayload, sacked: [] },
    receive: { nxt: 0, edge: 0, buffer: noPayload, outOfOrder: [], fin: null, unacked: 0 },
    congestion: {
      cwnd: config.initialWindow * config.mss, ssthresh: initialSsthresh, avoidanceBytes: 0, dupAcks: 0,
      recovering: false, recover: 0, partialAcked: false, highRxt: 0,
    },
    rtt: { srtt: null, rttvar: 0, rto: config.rtoInitialMs, min: null, timed: null },
    retries: 0, probesOut: 0, probeBackoff: 0,
    timers: { retransmit: null, persist: null, delayedAck: null, timeWait: null },
    counters: {
      bytesSent: 0, bytesAcked: 0, bytesReceived: 0, segmentsSent: 0, segmentsReceived: 0, retransmits: 0,
      fastRetransmits: 0, timeouts: 0, windowProbes: 0,
    },
  };
}

export class TcpConnection {
  readonly localPort: number;
  readonly remotePort: number;
  private readonly hooks: TcpHooks;
  private readonly config: TcpConfig;
  private readonly iss: number;
  private irs: number;
  private st: TcpStateName;
  private err: TcpErrno | undefined;
  private mss: number;
  /** undefined: no window scaling on this connection */
  private windowShift: { send: number; receive: number } | undefined;
  private sack: boolean;

  private sndUna: number;
  private sndNxt: number;
  private sndMax: number;
  private sndWnd: number;
  private sndWl1: number;
  private sndWl2: number;
  private written: number;
  private finQueued: boolean;
  private readonly sendQueue: ByteRing;
  private readonly scoreboard: Scoreboard;

  private rcvNxt: number;
  private advertisedEdge: number;
  private readonly receiveQueue: ByteRing;
  private outOfOrder: { offset: number; bytes: Uint8Array }[];
  /** the out-of-order bytes as [start, end) blocks, for SACK; and where the latest segment landed */
  private sackBlocks: Array<[number, number]> = [];
  private lastOutOfOrder: number | undefined;
  private peerFin: number | undefined;
  private unackedBytes: number;

  private cwnd: number;
  private ssthresh: number;
  private avoidanceBytes: number;
  private dupAcks: number;
  private recovering: boolean;
  private recover: number;
  private partialAcked: boolean;
  private highRxt: number;

  private srtt: number | undefined;
  private rttvar: number;
  private rto: number;
  private minRtt: number | undefined;
  private timed: { end: number; sentAt: number } | undefined;
  private retries: number;
  private probesOut: number;
  private probeBackoff: number;

  private retransmitAt: number | undefined;
  private persistAt: number | undefined;
  private delayedAckAt: number | undefined;
  private timeWaitEnd: number | undefined;

  private readonly counters: TcpCounters;
  private readonly pending = new Set<TcpEvent>();

  /** Every connection is made from a state, a fresh one or a saved one: save and restore cannot drift apart. */
  private constructor(s: TcpState, now: number, hooks: TcpHooks) {
    const at = (ms: number | null) => (ms === null ? undefined : now + ms);
    this.hooks = hooks;
    this.config = { ...s.config };
    this.localPort = s.localPort;
    this.remotePort = s.remotePort;
    this.iss = s.iss;
    this.irs = s.irs;
    this.st = s.state;
    this.err = s.error ?? undefined;
    this.mss = s.mss;
    // a connection saved before window scaling existed has no shifts, and none was negotiated
    this.windowShift = s.windowShift ? { ...s.windowShift } : undefined;
    this.sack = s.sack;

    this.sndUna = s.send.una;
    this.sndNxt = s.send.nxt;
    this.sndMax = s.send.max;
    this.sndWnd = s.send.window;
    this.sndWl1 = s.send.wl1;
    this.sndWl2 = s.send.wl2;
    this.written = s.send.written;
    this.finQueued = s.send.fin;
    this.sendQueue = new ByteRing(s.config.sendBuffer, s.send.buffer);
    this.scoreboard = new Scoreboard(s.send.sacked);

    this.rcvNxt = s.receive.nxt;
    this.advertisedEdge = s.receive.edge;
    this.receiveQueue = new ByteRing(s.config.receiveBuffer, s.receive.buffer);
    this.outOfOrder = s.receive.outOfOrder.map((piece) => ({ offset: piece.offset, bytes: new Uint8Array(piece.bytes) }));
    this.updateSackBlocks();
    this.peerFin = s.receive.fin ?? undefined;
    this.unackedBytes = s.receive.unacked;

    this.cwnd = s.congestion.cwnd;
    this.ssthresh = s.congestion.ssthresh;
    this.avoidanceBytes = s.congestion.avoidanceBytes;
    this.dupAcks = s.congestion.dupAcks;
    this.recovering = s.congestion.recovering;
    this.recover = s.congestion.recover;
    this.partialAcked = s.congestion.partialAcked;
    this.highRxt = s.congestion.highRxt;

    this.srtt = s.rtt.srtt ?? undefined;
    this.rttvar = s.rtt.rttvar;
    this.rto = s.rtt.rto;
    this.minRtt = s.rtt.min ?? undefined;
    this.timed = s.rtt.timed === null ? undefined : { end: s.rtt.timed.end, sentAt: now - s.rtt.timed.ageMs };
    this.retries = s.retries;
    this.probesOut = s.probesOut;
    this.probeBackoff = s.probeBackoff;

    this.retransmitAt = at(s.timers.retransmit);
    this.persistAt = at(s.timers.persist);
    this.delayedAckAt = at(s.timers.delayedAck);
    this.timeWaitEnd = at(s.timers.timeWait);
    this.counters = { ...s.counters };
  }

  /** Active open: sends a SYN and waits in SYN_SENT. */
  static connect(localPort: number, remotePort: number, options: TcpOptions): TcpConnection {
    const now = options.clock();
    const config = resolveConfig(options.config);
    const connection = new TcpConnection(openingState(config, localPort, remotePort, options.iss ?? clockIss(now), 'SYN_SENT'), now, options);
    connection.sendSyn(now);
    return connection;
  }

  /** Passive open from a SYN that reached a listening port: answers with a SYN-ACK, in SYN_RECEIVED. */
  static accept(syn: TcpSegment, options: TcpOptions): TcpConnection {
    if (!syn.flags.syn || syn.flags.ack || syn.flags.rst) throw new SlicelabError('EINVAL', 'tcp: accept needs a SYN');
    const now = options.clock();
    const config = resolveConfig(options.config);
    const connection = new TcpConnection(openingState(config, syn.dstPort, syn.srcPort, options.iss ?? clockIss(now), 'SYN_RECEIVED'), now, options);
    connection.irs = syn.seq;
    connection.rcvNxt = 1;
    connection.advertisedEdge = 1;
    connection.mss = Math.min(config.mss, syn.mss ?? defaultPeerMss);
    connection.negotiateOptions(syn);
    connection.sndWnd = syn.window;
    connection.sendSyn(now);
    return connection;
  }

  /** Continues a saved connection; `now` is the new clock's reading, its timers run on from where they were. */
  static restore(state: TcpState, now: number, hooks: TcpHooks): TcpConnection {
    return new TcpConnection(state, now, hooks);
  }

  save(now: number): TcpState {
    const after = (at: number | undefined) => (at === undefined ? null : at - now);
    return {
      state: this.st, error: this.err ?? null, config: { ...this.config }, localPort: this.localPort,
      remotePort: this.remotePort, iss: this.iss, irs: this.irs, mss: this.mss,
      windowShift: this.windowShift ? { ...this.windowShift } : null,
      sack: this.sack,
      send: {
        una: this.sndUna, nxt: this.sndNxt, max: this.sndMax, window: this.sndWnd, wl1: this.sndWl1,
        wl2: this.sndWl2, written: this.written, fin: this.finQueued, buffer: this.sendQueue.copy(0, this.sendQueue.length),
        sacked: this.scoreboard.save(),
      },
      receive: {
        nxt: this.rcvNxt, edge: this.advertisedEdge, buffer: this.receiveQueue.copy(0, this.receiveQueue.length),
        outOfOrder: this.outOfOrder.map((piece) => ({ offset: piece.offset, bytes: piece.bytes.slice() })),
        fin: this.peerFin ?? null, unacked: this.unackedBytes,
      },
      congestion: {
        cwnd: this.cwnd, ssthresh: this.ssthresh, avoidanceBytes: this.avoidanceBytes, dupAcks: this.dupAcks,
        recovering: this.recovering, recover: this.recover, partialAcked: this.partialAcked, highRxt: this.highRxt,
      },
      rtt: {
        srtt: this.srtt ?? null, rttvar: this.rttvar, rto: this.rto, min: this.minRtt ?? null,
        timed: this.timed === undefined ? null : { end: this.timed.end, ageMs: now - this.timed.sentAt },
      },
      retries: this.retries, probesOut: this.probesOut, probeBackoff: this.probeBackoff,
      timers: {
        retransmit: after(this.retransmitAt), persist: after(this.persistAt), delayedAck: after(this.delayedAckAt),
        timeWait: after(this.timeWaitEnd),
      },
      counters: { ...this.counters },
    };
  }

  get state(): TcpStateName {
    return this.st;
  }

  /** why the connection failed, if it did */
  get error(): TcpErrno | undefined {
    return this.err;
  }

  /** in-order bytes waiting to be read */
  get readable(): number {
    return this.receiveQueue.length;
  }

  /** the peer closed its direction and every byte it sent has been read */
  get eof(): boolean {
    return this.peerFin !== undefined && this.rcvNxt > this.peerFin && this.receiveQueue.length === 0;
  }

  /** bytes `write` would take now */
  get writable(): number {
    return writing.has(this.st) ? this.sendQueue.free : 0;
  }

  /** When `tick` must be called: the earliest timer (retransmission, persist, delayed ACK, TIME_WAIT end). */
  nextTimerAt(): number | undefined {
    const timers = [this.retransmitAt, this.persistAt, this.delayedAckAt, this.timeWaitEnd].filter((at) => at !== undefined);
    return timers.length === 0 ? undefined : Math.min(...timers);
  }

  info(): TcpInfo {
    return {
      ...this.counters, state: this.st, mss: this.mss, cwnd: this.cwnd, ssthresh: this.ssthresh, srtt: this.srtt,
      rttvar: this.rttvar, rto: this.rto, sendWindow: this.sndWnd,
      receiveWindow: Math.max(0, this.advertisedEdge - this.rcvNxt), inFlight: this.sndNxt - this.sndUna,
    };
  }

  /**
   * Takes up to the free send-buffer space (0 when full: wait for 'writable'). Data written before the
   * handshake completes goes out after it. Throws the connection's error, or EPIPE once it was closed.
   */
  write(bytes: Uint8Array): number {
    if (this.err) throw new SlicelabError(this.err, `tcp: connection failed (${this.err})`);
    if (!writing.has(this.st)) throw new SlicelabError('EPIPE', `tcp: cannot write in ${this.st}`);
    const taken = this.sendQueue.push(bytes);
    this.written += taken;
    this.output(this.hooks.clock());
    this.flushEvents();
    return taken;
  }

  /**
   * Up to `max` in-order bytes, empty when none (see `eof`). Reading opens the window; it is announced
   * at once only if it had shrunk to half or less and now at least doubles (Linux's tcp_cleanup_rbuf),
   * else the next ACK carries it: an eager reader must not cost an ACK per segment.
   */
  read(max: number): Uint8Array {
    const bytes = this.receiveQueue.shift(Math.min(max, this.receiveQueue.length));
    if (bytes.length > 0 && receiving.has(this.st)) {
      const advertised = Math.max(0, this.advertisedEdge - this.rcvNxt);
      const opened = this.receiveWindow(this.windowShift?.receive ?? 0);
      if (opened > advertised && 2 * advertised <= Math.min(this.config.receiveBuffer, this.largestWindow()) && opened >= 2 * advertised) {
        this.sendAck();
      }
    }
    this.flushEvents();
    return bytes;
  }

  /**
   * Closes the sending direction: a FIN follows the data already written; reading goes on until the
   * peer's FIN. Before the handshake completes there is nothing to close gracefully: it abandons it.
   */
  close(): void {
    switch (this.st) {
      case 'SYN_SENT':
      case 'SYN_RECEIVED':
        this.abort();
        return;
      case 'ESTABLISHED':
        this.st = 'FIN_WAIT_1';
        break;
      case 'CLOSE_WAIT':
        this.st = 'LAST_ACK';
        break;
      default:
        return;
    }
    this.finQueued = true;
    this.output(this.hooks.clock());
    this.flushEvents();
  }

  /** Drops the connection at once, telling the peer with a RST (none is owed before our SYN was answered). */
  abort(): void {
    if (this.st === 'CLOSED') return;
    if (this.st !== 'SYN_SENT' && this.st !== 'TIME_WAIT') this.emit(this.sndMax, { rst: true, ack: true });
    this.toClosed();
    this.flushEvents();
  }

  /** Runs the timers that are due. */
  tick(): void {
    const now = this.hooks.clock();
    if (this.timeWaitEnd !== undefined && now >= this.timeWaitEnd) this.toClosed();
    if (this.delayedAckAt !== undefined && now >= this.delayedAckAt) this.sendAck();
    if (this.retransmitAt !== undefined && now >= this.retransmitAt) this.retransmitTimeout(now);
    if (this.persistAt !== undefined && now >= this.persistAt) this.probe(now);
    this.flushEvents();
  }

  /** A segment of this connection's 4-tuple, off the wire. */
  receive(segment: TcpSegment): void {
    const now = this.hooks.clock();
    this.counters.segmentsReceived++;
    if (this.st === 'SYN_SENT') this.receiveInSynSent(segment, now);
    else if (this.st !== 'CLOSED') this.receiveSynchronized(segment, now);
    this.flushEvents();
  }

  /** RFC 9293 3.10.7.3 */
  private receiveInSynSent(segment: TcpSegment, now: number): void {
    const { flags } = segment;
    if (flags.ack && segment.ack !== wire(this.iss + 1)) {
      // acknowledges something we never sent: a segment of an older connection
      if (!flags.rst) this.reply(segment);
      return;
    }
    if (flags.rst) {
      if (flags.ack) this.fail('ECONNREFUSED');
      return;
    }
    // a SYN without ACK would be a simultaneous open, which is not supported
    if (!flags.syn || !flags.ack) return;
    this.irs = segment.seq;
    this.rcvNxt = 1;
    this.advertisedEdge = 1;
    this.mss = Math.min(this.config.mss, segment.mss ?? defaultPeerMss);
    this.negotiateOptions(segment);
    this.sndWnd = segment.window;
    this.sndWl1 = 0;
    this.sndWl2 = 1;
    this.synAcked(now);
    this.sendAck();
    this.output(now);
  }

  /** RFC 9293 3.10.7.4, for every state from SYN_RECEIVED on. */
  private receiveSynchronized(segment: TcpSegment, now: number): void {
    const { flags } = segment;
    if (this.st === 'SYN_RECEIVED' && flags.syn && !flags.ack && segment.seq === this.irs) {
      // the peer's SYN again: our SYN-ACK was lost; answer now rather than at our timer, as Linux does
      this.emitSyn();
      this.counters.retransmits++;
      return;
    }
    const start = this.rcvNxt + seqDistance(segment.seq, wire(this.irs + this.rcvNxt));
    const length = segment.payload.length + (flags.syn ? 1 : 0) + (flags.fin ? 1 : 0);
    const window = Math.min(this.receiveQueue.free, this.largestWindow());
    if (!this.acceptable(start, length, window)) {
      if (flags.rst) return;
      // a FIN again in TIME_WAIT: the peer did not hear our last ACK, so wait 2 MSL from now
      if (this.st === 'TIME_WAIT' && flags.fin) this.timeWaitEnd = now + 2 * this.config.mslMs;
      this.sendAck();
      return;
    }
    if (flags.rst) {
      if (this.st === 'CLOSING' || this.st === 'LAST_ACK' || this.st === 'TIME_WAIT') this.toClosed();
      else this.fail('ECONNRESET');
      return;
    }
    if (flags.syn) {
      // a SYN inside the window of a synchronized connection: a challenge ACK, not a reset (RFC 5961 4.2)
      this.sendAck();
      return;
    }
    if (!flags.ack) return;
    if (this.st === 'SYN_RECEIVED') {
      if (segment.ack !== wire(this.iss + 1)) {
        this.reply(segment);
        return;
      }
      this.synAcked(now);
    }
    if (!this.processAck(segment, start, now) || this.st === 'CLOSED') return;
    if (this.processText(segment, start, window, now)) this.sendAck();
    this.output(now);
    this.scheduleAck(now);
  }

  /**
   * RFC 9293's acceptability test, with two allowances. An empty segment may sit at the right edge, as
   * Linux allows: a peer that filled our window sends its ACKs from there. With a zero window a segment
   * at RCV.NXT still counts for its ACK and RST, its data dropped (the RFC's special allowance), or a
   * peer sending data could not hear ours.
   */
  private acceptable(start: number, length: number, window: number): boolean {
    if (length === 0) return start >= this.rcvNxt && start <= this.rcvNxt + window;
    if (window === 0) return start === this.rcvNxt;
    return start < this.rcvNxt + window && start + length > this.rcvNxt;
  }

  /** Our SYN is acknowledged. RFC 5681 3.1 and RFC 6298 5.7 when the handshake had to be retransmitted. */
  private synAcked(now: number): void {
    this.sndUna = 1;
    this.sampleIfTimed(1, now);
    if (this.retries > 0) {
      this.cwnd = this.mss;
      if (this.srtt === undefined) this.rto = fallbackRtoMs;
    } else {
      this.cwnd = this.config.initialWindow * this.mss;
    }
    this.retries = 0;
    this.retransmitAt = undefined;
    this.st = 'ESTABLISHED';
    this.pending.add('established');
  }

  /** The ACK field and the window; false when the segment is to be dropped. */
  private processAck(segment: TcpSegment, start: number, now: number): boolean {
    const ack = this.sndUna + seqDistance(segment.ack, wire(this.iss + this.sndUna));
    if (ack > this.sndMax) {
      // acknowledges what was never sent
      this.sendAck();
      return false;
    }
    this.probesOut = 0;
    if (ack < this.sndUna) return true;
    const windowBefore = this.sndWnd;
    const window = segment.window * 2 ** (this.windowShift?.send ?? 0);
    if (this.sndWl1 < start || (this.sndWl1 === start && this.sndWl2 <= ack)) {
      this.sndWnd = window;
      this.sndWl1 = start;
      this.sndWl2 = ack;
    }
    const newlySacked = this.sack && segment.sack ? this.takeSack(segment.sack) : 0;
    if (ack > this.sndUna) {
      this.newAck(ack, now);
    } else if (segment.payload.length === 0 && !segment.flags.fin && window === windowBefore && this.sndMax > this.sndUna
      // with SACK, a duplicate counts only if it tells of data newly arrived (RFC 6675's DupAck)
      && (!this.sack || newlySacked > 0)) {
      this.duplicateAck();
    }
    if (!this.recovering && this.sndUna > this.recover && this.lossDetected()) this.enterRecovery();
    return true;
  }

  /** The blocks of an ACK into the scoreboard; returns how many bytes they acknowledged for the first time. */
  private takeSack(blocks: Array<[number, number]>): number {
    let added = 0;
    for (const [left, right] of blocks) {
      const start = this.sndUna + seqDistance(left, wire(this.iss + this.sndUna));
      const end = start + seqDistance(right, left);
      // a block must lie in what was sent and not yet acknowledged (a D-SACK or a stale block does not)
      if (start > this.sndUna && end > start && end <= this.sndMax) added += this.scoreboard.add(start, end);
    }
    return added;
  }

  private newAck(ack: number, now: number): void {
    const acked = ack - this.sndUna;
    const flightBefore = this.sndNxt - this.sndUna;
    const dataAcked = Math.min(Math.max(ack - 1, 0), this.written) - (this.written - this.sendQueue.length);
    if (dataAcked > 0) {
      this.sendQueue.drop(dataAcked);
      this.counters.bytesAcked += dataAcked;
      if (writing.has(this.st)) this.pending.add('writable');
    }
    this.sndUna = ack;
    if (this.sndNxt < ack) this.sndNxt = ack;
    this.scoreboard.trim(ack);
    this.retries = 0;
    this.sampleIfTimed(ack, now);

    let restartTimer = true;
    if (!this.recovering) {
      this.dupAcks = 0;
      // only a window in use grows (RFC 7661), or an application-limited sender's cwnd would mean nothing
      if (flightBefore + this.mss > this.cwnd) this.growWindow(acked);
    } else if (ack >= this.recover) {
      // full ACK: leave fast recovery (RFC 6582 3.2 step 3, first option; with SACK, cwnd is ssthresh already)
      this.cwnd = Math.min(this.ssthresh, Math.max(this.sndMax - ack, this.mss) + this.mss);
      this.recovering = false;
      this.dupAcks = 0;
    } else if (this.sack) {
      // SACK recovery goes on: output() sends what the pipe allows
    } else {
      // partial ACK: the next hole is lost too; deflate by what left, stay in recovery (step 4)
      this.retransmitFrom(ack, true);
      this.cwnd = Math.max(this.cwnd - acked + (acked >= this.mss ? this.mss : 0), this.mss);
      restartTimer = !this.partialAcked;
      this.partialAcked = true;
    }
    if (this.sndUna === this.sndMax) this.retransmitAt = undefined;
    else if (restartTimer) this.retransmitAt = now + this.rto;

    if (this.finQueued && ack === this.written + 2) this.finAcked(now);
  }

  /**
   * Slow start by what each ACK covers, as Linux's tcp_slow_start counts every segment it acknowledges
   * (RFC 3465 without its limit L: an ACK for an offloaded 44-MSS segment must open the window by 44),
   * up to ssthresh; then congestion avoidance by byte counting (RFC 3465).
   */
  private growWindow(acked: number): void {
    if (this.cwnd < this.ssthresh) {
      this.cwnd = Math.min(this.cwnd + acked, Math.max(this.ssthresh, this.cwnd + this.mss));
      return;
    }
    this.avoidanceBytes += acked;
    if (this.avoidanceBytes >= this.cwnd) {
      this.avoidanceBytes -= this.cwnd;
      this.cwnd += this.mss;
    }
  }

  /** RFC 5681 3.2 and RFC 6582 3.2 step 2; with SACK the pipe, not an inflated window, paces recovery. */
  private duplicateAck(): void {
    this.dupAcks++;
    // a segment left the network: inflate, so new data keeps the ACK clock going
    if (this.recovering && !this.sack) this.cwnd += this.mss;
  }

  /**
   * Three duplicate ACKs (RFC 5681), or with SACK the oldest unacknowledged segment counted lost by the
   * scoreboard (RFC 6675's IsLost(HighACK + 1)), as Linux also does on an ACK that moves forward.
   */
  private lossDetected(): boolean {
    return this.dupAcks >= 3 || (this.sack && this.scoreboard.lostBelow(this.mss) > this.sndUna);
  }

  /**
   * Fast retransmit and fast recovery: RFC 6582 3.2 step 1, or RFC 6675 5 with SACK. A new recovery only
   * once the ACK covers more than all that was sent when the last loss was detected (the caller checks
   * RFC 6582's "ack - 1 > recover"): duplicates of our own retransmissions start none.
   */
  private enterRecovery(): void {
    this.ssthresh = Math.max(Math.floor((this.sndMax - this.sndUna) / 2), 2 * this.mss);
    this.recover = this.sndMax;
    this.recovering = true;
    this.partialAcked = false;
    this.timed = undefined;
    if (!this.sack) {
      this.retransmitFrom(this.sndUna, true);
      this.cwnd = this.ssthresh + 3 * this.mss;
      return;
    }
    this.cwnd = this.ssthresh;
    // the oldest hole was sent again already when the last recovery repaired data sent during it
    if (this.highRxt > this.sndUna) return;
    const hole = this.scoreboard.holeAt(this.sndUna, this.sndMax)!;
    this.highRxt = hole[0] + this.retransmitFrom(hole[0], true, hole[1]);
  }

  private finAcked(now: number): void {
    if (this.st === 'FIN_WAIT_1') this.st = 'FIN_WAIT_2';
    else if (this.st === 'CLOSING') this.enterTimeWait(now);
    else if (this.st === 'LAST_ACK') this.toClosed();
  }

  /** The segment's data and FIN (RFC 9293's seventh and eighth steps); true when an ACK is due at once. */
  private processText(segment: TcpSegment, start: number, window: number, now: number): boolean {
    if (!receiving.has(this.st)) return false;
    const edge = this.rcvNxt + window;
    const { payload } = segment;
    let ackNow = false;
    if (payload.length > 0) {
      const from = Math.max(start, this.rcvNxt);
      const to = Math.min(start + payload.length, edge);
      // bytes beyond the window, or none new: tell the peer where we are
      if (to < start + payload.length || to <= from) ackNow = true;
      if (to > from) {
        const bytes = payload.subarray(from - start, to - start);
        if (from === this.rcvNxt) {
          // RFC 5681 4.2: a segment that fills (part of) a hole is acknowledged at once
          if (this.outOfOrder.length > 0) ackNow = true;
          this.deliver(bytes);
        } else {
          // a hole: the duplicate ACK that fast retransmit counts goes at once
          this.storeOutOfOrder(from, bytes);
          ackNow = true;
        }
      }
    }
    const finAt = start + payload.length;
    if (segment.flags.fin && finAt < edge && this.peerFin === undefined) this.peerFin = finAt;
    if (this.peerFin === this.rcvNxt) {
      this.rcvNxt++;
      this.pending.add('readable');
      ackNow = true;
      if (this.st === 'ESTABLISHED') this.st = 'CLOSE_WAIT';
      else if (this.st === 'FIN_WAIT_1') this.st = 'CLOSING';
      else this.enterTimeWait(now);
    }
    return ackNow;
  }

  /** In-order bytes, then whatever out-of-order bytes they join. They fit: only the window is accepted. */
  private deliver(bytes: Uint8Array): void {
    this.append(bytes);
    const joined = this.outOfOrder.length;
    while (this.outOfOrder.length > 0 && this.outOfOrder[0]!.offset <= this.rcvNxt) {
      const piece = this.outOfOrder.shift()!;
      const skip = this.rcvNxt - piece.offset;
      if (skip < piece.bytes.length) this.append(piece.bytes.subarray(skip));
    }
    if (this.outOfOrder.length !== joined) this.updateSackBlocks();
    this.pending.add('readable');
  }

  private append(bytes: Uint8Array): void {
    this.receiveQueue.push(bytes);
    this.rcvNxt += bytes.length;
    this.unackedBytes += bytes.length;
    this.counters.bytesReceived += bytes.length;
  }

  /** Keeps the bytes no stored piece holds yet (retransmissions need not repeat the first boundaries). */
  private storeOutOfOrder(from: number, bytes: Uint8Array): void {
    const end = from + bytes.length;
    let at = from;
    const added: { offset: number; bytes: Uint8Array }[] = [];
    for (const piece of this.outOfOrder) {
      const pieceEnd = piece.offset + piece.bytes.length;
      if (pieceEnd <= at) continue;
      if (piece.offset >= end) break;
      if (piece.offset > at) added.push({ offset: at, bytes: bytes.slice(at - from, piece.offset - from) });
      at = pieceEnd;
    }
    if (at < end) added.push({ offset: at, bytes: bytes.slice(at - from) });
    this.outOfOrder.push(...added);
    this.outOfOrder.sort((x, y) => x.offset - y.offset);
    this.lastOutOfOrder = from;
    this.updateSackBlocks();
  }

  /** The out-of-order pieces as contiguous blocks, what SACK reports. */
  private updateSackBlocks(): void {
    const blocks: Array<[number, number]> = [];
    for (const { offset, bytes } of this.outOfOrder) {
      const last = blocks.at(-1);
      if (last && last[1] === offset) last[1] += bytes.length;
      else blocks.push([offset, offset + bytes.length]);
    }
    this.sackBlocks = blocks;
  }

  /**
   * RFC 2018 4: the block holding the latest out-of-order arrival first, then the others from the highest
   * down, as many as the option space beside `payload` bytes leaves (the segment stays within the MSS).
   */
  private sackOption(payload: number): Array<[number, number]> | undefined {
    if (this.sackBlocks.length === 0) return undefined;
    const room = payload === 0 ? maxSackBlocks : sackBlocksWithin(this.mss - payload);
    if (room <= 0) return undefined;
    const latest = this.sackBlocks.find(([start, end]) => this.lastOutOfOrder !== undefined && this.lastOutOfOrder >= start && this.lastOutOfOrder < end);
    const blocks = latest ? [latest] : [];
    for (let i = this.sackBlocks.length - 1; i >= 0 && blocks.length < room; i--) if (this.sackBlocks[i] !== latest) blocks.push(this.sackBlocks[i]!);
    return blocks.map(([start, end]) => [wire(this.irs + start), wire(this.irs + end)]);
  }

  /** RFC 5681 4.2: an ACK for at least every second full segment, the others within delayedAckMs. */
  private scheduleAck(now: number): void {
    if (this.unackedBytes === 0) return;
    if (this.unackedBytes >= 2 * this.mss || this.config.delayedAckMs === 0) this.sendAck();
    else this.delayedAckAt ??= now + this.config.delayedAckMs;
  }

  /**
   * The window to advertise in a field shifted by `shift`, with RFC 9293's receiver-side SWS avoidance:
   * the right edge moves only by at least min(half the buffer, one MSS), so a slow reader does not draw
   * tiny segments. A scaled field counts in units of 2^shift: the window is rounded up to one (as
   * Linux's tcp_select_window, so the edge does not retract) if the buffer has room for it, else down;
   * a retraction of less than a unit (RFC 7323 appendix F) costs nothing, since what arrives is taken
   * as far as the buffer has room.
   */
  private receiveWindow(shift: number): number {
    const unit = 2 ** shift;
    const free = Math.min(this.receiveQueue.free, maxWindow * unit);
    const current = Math.max(0, this.advertisedEdge - this.rcvNxt);
    const window = free - current >= Math.min(this.config.receiveBuffer / 2, this.mss) ? free : current;
    return Math.min(Math.ceil(window / unit), Math.floor(free / unit)) * unit;
  }

  /** the largest window our window field can announce */
  private largestWindow(): number {
    return maxWindow * 2 ** (this.windowShift?.receive ?? 0);
  }

  /**
   * RFC 7323 2.2: windows are scaled when both SYNs carry the option; RFC 2018: SACK is used when both
   * carry SACK-Permitted. Called with the peer's SYN (in accept, before our SYN-ACK, which then answers
   * in kind) or SYN-ACK (answering our SYN, which always offers both).
   */
  private negotiateOptions(syn: TcpSegment): void {
    this.sack = this.config.sack && syn.sackPermitted === true;
    if (syn.windowScale === undefined) return;
    this.windowShift = { send: Math.min(syn.windowScale, maxWindowShift), receive: windowShiftFor(this.config.receiveBuffer) };
  }

  /** The size of a new segment: one MSS, or with segment offload about 1 ms of the rate (Linux's tcp_tso_autosize). */
  private segmentSize(): number {
    if (!this.config.segmentOffload) return this.mss;
    const perMs = this.srtt ? this.cwnd / Math.max(this.srtt, 0.001) : 0;
    const most = Math.max(1, Math.floor(maxOffloadPayload / this.mss));
    return Math.min(Math.max(2, Math.floor(perMs / this.mss)), most) * this.mss;
  }

  /** Sends what the windows allow: new data, data again after a timeout, or a SACK recovery's holes. */
  private output(now: number): void {
    if (!sending.has(this.st)) return;
    if (this.recovering && this.sack) this.recoveryOutput(now);
    else while (this.sendNext(now, this.sndUna + Math.min(this.cwnd, this.sndWnd)));
    this.updatePersist(now);
  }

  /**
   * RFC 6675 5 (C): while the pipe leaves room for a segment, NextSeg: first a lost hole not yet
   * retransmitted, then new data. The pipe counts what is outstanding, less what was SACKed and what is
   * lost and not yet sent again.
   */
  private recoveryOutput(now: number): void {
    const lost = this.scoreboard.lostBelow(this.mss);
    for (;;) {
      const from = Math.max(this.highRxt, this.sndUna);
      const outstanding = this.sndMax - this.sndUna - this.scoreboard.sackedBetween(this.sndUna, this.sndMax);
      const lostUnsent = from < lost ? lost - from - this.scoreboard.sackedBetween(from, lost) : 0;
      const room = this.cwnd - (outstanding - lostUnsent);
      if (room < this.mss) return;
      const hole = this.scoreboard.holeAt(from, this.sndMax);
      if (hole && hole[0] < lost) {
        this.highRxt = hole[0] + this.retransmitFrom(hole[0], false, hole[1]);
      } else if (!this.sendNext(now, Math.min(this.sndUna + this.sndWnd, this.sndNxt + room))) {
        // new data as far as the pipe has room: an offloaded segment must not overfill it
        return;
      }
    }
  }

  /**
   * One segment from sndNxt on, if the window (ending at `windowEnd`) allows it. Sender-side SWS avoidance
   * (RFC 9293 3.8.6.2.1) without Nagle: a short segment goes only if it ends the queued data or nothing
   * is in flight. Below sndMax (going back over data after a timeout) what the peer SACKed is skipped.
   */
  private sendNext(now: number, windowEnd: number): boolean {
    if (this.sndNxt < this.sndMax && this.sack) {
      const hole = this.scoreboard.holeAt(this.sndNxt, this.sndMax);
      this.sndNxt = hole ? hole[0] : this.sndMax;
      if (hole) windowEnd = Math.min(windowEnd, hole[1]);
    }
    const dataEnd = this.written + 1;
    const unsent = dataEnd - this.sndNxt;
    // after a timeout, going back over data: one MSS at a time, as any retransmission
    const size = this.sndNxt < this.sndMax ? this.mss : this.segmentSize();
    let length = Math.max(0, Math.min(size, unsent, windowEnd - this.sndNxt));
    // an offloaded segment is whole MSSs, but for the end of the data (Linux's tcp_mss_split_point)
    if (length > this.mss && length < unsent) length -= length % this.mss;
    // the FIN takes a place in the window, as its sequence number does at the receiver
    const fin = this.finQueued && length === unsent && this.sndNxt + length < windowEnd;
    if (length === 0 && !fin) return false;
    if (length < this.mss && length < unsent && this.sndNxt > this.sndUna && this.sndNxt >= this.sndMax) return false;
    const at = this.sndNxt;
    const end = at + length + (fin ? 1 : 0);
    this.emit(at, { ack: true, fin, psh: length > 0 && length === unsent }, this.sendData(at, length));
    if (at < this.sndMax) this.counters.retransmits++;
    else this.timed ??= { end, sentAt: now };
    this.sndNxt = end;
    this.sndMax = Math.max(this.sndMax, end);
    this.retransmitAt ??= now + this.rto;
    return true;
  }

  /** The persist timer runs while a zero window holds queued data back and nothing in flight will bring an ACK. */
  private updatePersist(now: number): void {
    const queued = this.written + 1 + (this.finQueued ? 1 : 0) > this.sndNxt;
    if (queued && this.sndMax === this.sndUna && this.sndWnd === 0) {
      this.persistAt ??= now + this.probeInterval();
    } else {
      this.persistAt = undefined;
      this.probeBackoff = 0;
    }
  }

  private probeInterval(): number {
    return Math.min(this.rto * 2 ** this.probeBackoff, this.config.rtoMaxMs);
  }

  /**
   * A zero-window probe: an already acknowledged sequence number, which the peer must answer with an ACK
   * carrying its window (as Linux's tcp_xmit_probe_skb), so a lost window update cannot deadlock us.
   */
  private probe(now: number): void {
    this.persistAt = undefined;
    if (++this.probesOut > this.config.dataRetries) {
      this.fail('ETIMEDOUT');
      return;
    }
    this.emit(this.sndUna - 1, { ack: true });
    this.counters.windowProbes++;
    this.probeBackoff++;
    this.persistAt = now + this.probeInterval();
  }

  /**
   * RFC 6298 5.4–5.6, RFC 5681 (4) and go-back-N from the oldest unacknowledged segment. The scoreboard
   * stays (as Linux keeps it when the peer has not reneged; ours never discards out-of-order data), so
   * going back skips what was SACKed.
   */
  private retransmitTimeout(now: number): void {
    this.retransmitAt = undefined;
    const handshake = this.st === 'SYN_SENT' || this.st === 'SYN_RECEIVED';
    if (++this.retries > (handshake ? this.config.synRetries : this.config.dataRetries)) {
      this.fail('ETIMEDOUT');
      return;
    }
    this.counters.timeouts++;
    this.counters.retransmits++;
    this.rto = Math.min(this.rto * 2, this.config.rtoMaxMs);
    // Karn: nothing sent before a retransmission may give an RTT sample
    this.timed = undefined;
    if (handshake) {
      this.sendSyn(now);
      return;
    }
    // a segment lost again keeps the ssthresh of its first loss
    if (this.retries === 1) this.ssthresh = Math.max(Math.floor((this.sndMax - this.sndUna) / 2), 2 * this.mss);
    this.cwnd = this.mss;
    this.avoidanceBytes = 0;
    this.recovering = false;
    this.dupAcks = 0;
    this.recover = this.sndMax;
    this.sndNxt = this.sndUna + this.sendSegmentAt(this.sndUna, this.scoreboard.holeAt(this.sndUna, this.sndMax)?.[1]);
    this.retransmitAt = now + this.rto;
  }

  /**
   * Fast retransmit, a partial ACK's next hole or a SACK hole: the segment at `at` (not past `end`) again,
   * whatever the windows; returns the offsets it covers.
   */
  private retransmitFrom(at: number, fast: boolean, end = Infinity): number {
    const sent = this.sendSegmentAt(at, end);
    if (sent === 0) return 0;
    this.counters.retransmits++;
    if (fast) this.counters.fastRetransmits++;
    return sent;
  }

  /** Sends one segment starting at `at`, not past `end` (a FIN with it if it was sent before); returns the offsets it covers. */
  private sendSegmentAt(at: number, end = Infinity): number {
    const dataEnd = this.written + 1;
    const length = Math.min(this.mss, Math.max(dataEnd - at, 0), end - at);
    const fin = this.finQueued && at + length === dataEnd && this.sndMax > dataEnd;
    if (length === 0 && !fin) return 0;
    this.emit(at, { ack: true, fin, psh: length > 0 && at + length === dataEnd }, this.sendData(at, length));
    return length + (fin ? 1 : 0);
  }

  private sendData(at: number, length: number): Uint8Array {
    if (length === 0) return noPayload;
    return this.sendQueue.copy(at - 1 - (this.written - this.sendQueue.length), length);
  }

  /** The SYN, or the SYN-ACK in SYN_RECEIVED; only the first one is timed (Karn). */
  private sendSyn(now: number): void {
    this.emitSyn();
    this.sndNxt = 1;
    this.sndMax = 1;
    if (this.retries === 0) this.timed = { end: 1, sentAt: now };
    this.retransmitAt = now + this.rto;
  }

  /** RFC 6298 2.2–2.4, from an ACK that covers the timed segment. */
  private sampleIfTimed(ack: number, now: number): void {
    if (this.timed === undefined || ack < this.timed.end) return;
    const sample = now - this.timed.sentAt;
    this.timed = undefined;
    if (this.srtt === undefined) {
      this.srtt = sample;
      this.rttvar = sample / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sample);
      this.srtt = 0.875 * this.srtt + 0.125 * sample;
    }
    this.rto = Math.min(Math.max(this.srtt + 4 * this.rttvar, this.config.rtoMinMs), this.config.rtoMaxMs);
    this.minRtt = Math.min(this.minRtt ?? sample, sample);
    // HyStart's delay rule, as Linux's CUBIC: a queue building up on the path ends slow start before it
    // overflows (a window doubling into a deep tail-drop queue loses hundreds of segments at once)
    const queueing = Math.min(Math.max(this.minRtt / 8, hystartMinMs), hystartMaxMs);
    if (this.cwnd < this.ssthresh && this.cwnd >= hystartLowWindow * this.mss && sample >= this.minRtt + queueing) this.ssthresh = this.cwnd;
  }

  /** A pure ACK. Its sequence number is the highest sent, as BSD's: during go-back-N the peer would drop an older one. */
  private sendAck(): void {
    this.emit(this.sndMax, { ack: true });
  }

  /** Answers a segment that does not belong here with a RST. */
  private reply(segment: TcpSegment): void {
    const reset = resetFor(segment);
    if (!reset) return;
    this.counters.segmentsSent++;
    this.hooks.send(reset);
  }

  /**
   * The SYN with our MSS and shift count, or the SYN-ACK, which carries a shift count only if the peer's
   * SYN did (RFC 7323 2.2).
   */
  private emitSyn(): void {
    const synAck = this.st === 'SYN_RECEIVED';
    const windowScale = synAck ? this.windowShift?.receive : windowShiftFor(this.config.receiveBuffer);
    const sackPermitted = synAck ? this.sack : this.config.sack;
    this.emit(0, { syn: true, ack: synAck }, noPayload, {
      mss: this.config.mss, ...(sackPermitted ? { sackPermitted } : {}), ...(windowScale === undefined ? {} : { windowScale }),
    });
  }

  private emit(at: number, flags: Partial<TcpFlags>, payload: Uint8Array = noPayload, synOptions: Pick<TcpSegment, 'mss' | 'windowScale' | 'sackPermitted'> = {}): void {
    const ack = flags.ack ?? false;
    // a SYN's window is never scaled (RFC 7323 2.2)
    const shift = flags.syn ? 0 : (this.windowShift?.receive ?? 0);
    const window = this.receiveWindow(shift);
    const sack = ack && this.sack ? this.sackOption(payload.length) : undefined;
    const segment: TcpSegment = {
      srcPort: this.localPort, dstPort: this.remotePort, seq: wire(this.iss + at), ack: ack ? wire(this.irs + this.rcvNxt) : 0,
      flags: flagsOf(flags), window: window / 2 ** shift, ...synOptions, ...(sack ? { sack } : {}), payload,
    };
    if (ack) {
      this.advertisedEdge = this.rcvNxt + window;
      this.unackedBytes = 0;
      this.delayedAckAt = undefined;
    }
    this.counters.segmentsSent++;
    this.counters.bytesSent += payload.length;
    this.hooks.send(segment);
  }

  private enterTimeWait(now: number): void {
    this.st = 'TIME_WAIT';
    this.retransmitAt = undefined;
    this.persistAt = undefined;
    this.timeWaitEnd = now + 2 * this.config.mslMs;
  }

  private toClosed(): void {
    this.st = 'CLOSED';
    this.retransmitAt = undefined;
    this.persistAt = undefined;
    this.delayedAckAt = undefined;
    this.timeWaitEnd = undefined;
    this.pending.add('closed');
  }

  private fail(errno: TcpErrno): void {
    this.toClosed();
    this.err = errno;
    this.pending.delete('closed');
    this.pending.add('failed');
  }

  /** Events go out after the call that caused them, so the owner may call back in from its handler. */
  private flushEvents(): void {
    const events = [...this.pending];
    this.pending.clear();
    for (const event of events) this.hooks.onEvent?.(event);
  }
}

/** RFC 9293 3.4.1: the initial sequence number from a clock that steps every 4 µs. */
function clockIss(now: number): number {
  return wire(Math.floor(now * 250));
}
