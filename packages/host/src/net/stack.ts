/**
 * A net namespace's IP stack: its nics, neighbour table (arp.ts), ports and sockets. Frames come in from
 * the host's bridge through a nic and go out the same way; everything between is the kernel's job as
 * programs expect it: ARP requests and replies (and gratuitous ARP), ICMP echo answered by the stack,
 * ping sockets (Linux's ICMP datagram sockets: the stack fills in the echo header), UDP datagram sockets
 * and TCP stream sockets (listen, accept, connect, read, write, close; the protocol itself is tcp.ts),
 * with the kernel's errnos. A segment for no connection and no listener is answered by a RST, so a
 * connect to a closed port fails with ECONNREFUSED.
 *
 * Division of labor:
 *   NetStack: addresses, ports, sockets, protocol dispatch (this file)
 *   frame.ts: bytes on the wire; arp.ts: the neighbour table; bridge.ts: the host's switch
 *   the machine (syscalls.ts): turns system calls into calls here and wakes the processes that wait
 *
 * The socket table belongs to the namespace, shared by its processes (a simplification of per-process
 * file descriptors, which fork would share anyway). Nothing here arms a timer: the owner asks
 * `nextTimerAt()` and calls `tick(now)`.
 */
import { SlicelabError } from '@slicelab/protocol';
import { ArpCache, type ArpEntry, type ArpState } from './arp.js';
import {
  FrameError, broadcastMac, decodeArp, decodeEthernet, decodeIcmp, decodeIpv4, decodeTcp, decodeUdp, encodeArp, encodeEthernet, encodeIcmp, encodeIpv4,
  encodeTcp, encodeUdp, etherTypes, ipProtocols, type Ipv4Packet, type TcpSegment,
} from './frame.js';
import { TcpConnection, resetFor, type TcpOptions, type TcpState } from './tcp.js';

export interface NicCounters {
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
  /** frames this nic could not take: bad headers or checksums, no socket, a full receive queue */
  rxDropped: number;
  txDropped: number;
}

/** A nic's class in its host's uplink shaper (bytes per second; ceil null: the link's), when set (`net set-nic`). */
export interface NicClass {
  rate: number;
  ceil: number | null;
  weight: number;
}

export interface Nic {
  /** eth0, eth1, … inside the namespace */
  name: string;
  ip: string;
  mac: string;
  counters: NicCounters;
  /** its class in the uplink's shaper, once set: it moves with the container */
  shaping?: NicClass;
}

export type SocketKind = 'dgram' | 'icmp' | 'stream';

export interface Endpoint {
  ip: string;
  port: number;
}

/** What a receive hands a process: the bytes and where they came from; for ping sockets the echo's sequence and TTL. */
export interface Datagram {
  from: Endpoint;
  bytes: Uint8Array;
  seq?: number;
  ttl?: number;
  /** when it reached the socket, on the host's clock (SO_TIMESTAMP); not saved: it means nothing on another host */
  at?: number;
}

/** A stream socket's connection as data: the peer and the protocol's own state (tcp.ts). */
export interface StreamState {
  remote: Endpoint;
  tcp: TcpState;
}

/** A namespace as data: its nics' addresses and counters, its sockets with what they hold, its neighbours; times relative. */
export interface NetState {
  nics: Array<{ name: string; ip: string; mac: string; counters: NicCounters; shaping: NicClass | null }>;
  sockets: Array<{
    fd: number; kind: SocketKind; port: number; queue: Datagram[]; error: string | null;
    /** a listening stream socket: its backlog, and the connections not accepted yet */
    backlog: number | null; pending: StreamState[];
    stream: StreamState | null;
  }>;
  /** streams whose sockets were closed, finishing their close (FIN, TIME_WAIT) */
  closing: StreamState[];
  arp: ArpState<Ipv4Packet>;
  nextFd: number;
  nextEphemeral: number;
  ipId: number;
}

interface Socket {
  fd: number;
  kind: SocketKind;
  /** the local port (UDP, TCP) or echo identifier (ping); 0 until bound */
  port: number;
  queue: Datagram[];
  queuedBytes: number;
  /** an error to report at the next call, as the kernel reports ICMP errors on a socket */
  error?: string;
  /** listening: how many connections may wait for accept, and those that do */
  backlog?: number;
  pending: Stream[];
  /** a connected (or connecting) stream socket's connection */
  stream?: Stream;
}

/** A TCP connection of this namespace, by its 4-tuple. */
interface Stream {
  remote: Endpoint;
  localPort: number;
  tcp: TcpConnection;
  /** the socket it belongs to; undefined while it waits in a listener's backlog, or after close */
  socket?: Socket;
  listener?: Socket;
}

/** Linux's ip_local_port_range */
const ephemeral = { first: 32768, last: 60999 };
/** Linux's default rmem: what a socket's receive queue holds before datagrams are dropped */
const receiveBufferBytes = 212_992;
const defaultTtl = 64;

export class NetStack {
  readonly nics: Nic[] = [];
  readonly arp: ArpCache<Ipv4Packet>;
  private readonly sockets = new Map<number, Socket>();
  private readonly ports = { dgram: new Map<number, Socket>(), icmp: new Map<number, Socket>(), stream: new Map<number, Socket>() };
  /** every TCP connection by `localPort remoteIp remotePort`, accepted or not, open or closing */
  private readonly streams = new Map<string, Stream>();
  private nextFd = 3;
  private nextEphemeral = ephemeral.first;
  private ipId = 0;

  /**
   * `transmit` hands a frame to the bridge from a nic; `readable` tells the owner a socket has something
   * to receive (or an error to report), so that a process waiting on it can be woken.
   */
  constructor(
    private readonly clock: () => number,
    private readonly transmit: (nic: Nic, frame: Uint8Array) => void,
    private readonly readable: (fd: number) => void,
  ) {
    this.arp = new ArpCache(clock);
  }

  addNic(name: string, ip: string, mac: string): Nic {
    const nic: Nic = { name, ip, mac, counters: { rxBytes: 0, rxPackets: 0, txBytes: 0, txPackets: 0, rxDropped: 0, txDropped: 0 } };
    this.nics.push(nic);
    return nic;
  }

  /** Tells the segment who holds `nic`'s address now (after a migration or a restore). */
  announce(nic: Nic): void {
    this.sendArp(nic, 1, broadcastMac, nic.ip);
  }

  /** A frame from the bridge for `nic`. Anything malformed is a counted drop. */
  receive(nic: Nic, bytes: Uint8Array): void {
    nic.counters.rxBytes += bytes.length;
    nic.counters.rxPackets += 1;
    try {
      const frame = decodeEthernet(bytes);
      if (frame.dst !== nic.mac && frame.dst !== broadcastMac) return this.dropRx(nic);
      if (frame.type === etherTypes.arp) return this.receiveArp(nic, decodeArp(frame.payload));
      if (frame.type === etherTypes.ipv4) return this.receiveIp(nic, decodeIpv4(frame.payload));
      this.dropRx(nic);
    } catch (error) {
      if (error instanceof FrameError) return this.dropRx(nic);
      throw error;
    }
  }

  // ---- sockets, as the system calls use them

  socket(kind: SocketKind): number {
    const fd = this.nextFd++;
    this.sockets.set(fd, { fd, kind, port: 0, queue: [], queuedBytes: 0, pending: [] });
    return fd;
  }

  bind(fd: number, port: number): void {
    const socket = this.socketOf(fd);
    if (socket.port !== 0) throw new SlicelabError('EINVAL', `socket ${fd} is bound already`);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SlicelabError('EINVAL', `port ${port} is not 0..65535`);
    const taken = this.ports[socket.kind];
    const chosen = port === 0 ? this.ephemeralPort(taken) : port;
    if (taken.has(chosen)) throw new SlicelabError('EADDRINUSE', `port ${chosen} is in use`);
    socket.port = chosen;
    taken.set(chosen, socket);
  }

  /** Sends a datagram (UDP) or an echo request with `seq` (ping socket); binds an unbound socket first, as the kernel does. */
  sendTo(fd: number, to: Endpoint, payload: Uint8Array, seq = 0): number {
    const socket = this.socketOf(fd);
    this.raise(socket);
    if (socket.port === 0) this.bind(fd, 0);
    const nic = this.nics[0];
    if (!nic) throw new SlicelabError('ENETUNREACH', 'the namespace has no nic');
    if (socket.kind === 'icmp') {
      this.sendIp(nic, { src: nic.ip, dst: to.ip, protocol: ipProtocols.icmp, ttl: defaultTtl, id: this.nextIpId(), dontFragment: true, payload: encodeIcmp({ type: 8, code: 0, id: socket.port, seq, data: payload }) });
    } else {
      const datagram = encodeUdp({ srcPort: socket.port, dstPort: to.port, payload }, nic.ip, to.ip);
      this.sendIp(nic, { src: nic.ip, dst: to.ip, protocol: ipProtocols.udp, ttl: defaultTtl, id: this.nextIpId(), dontFragment: true, payload: datagram });
    }
    return payload.length;
  }

  /** The next datagram for `fd`, or undefined when a receive would block; a pending error is thrown once. */
  recv(fd: number): Datagram | undefined {
    const socket = this.socketOf(fd);
    this.raise(socket);
    const datagram = socket.queue.shift();
    if (datagram) socket.queuedBytes -= datagram.bytes.length;
    return datagram;
  }

  /**
   * Closes a socket. A stream goes on closing without it (FIN after the data written, TIME_WAIT); a
   * listener resets the connections nobody accepted.
   */
  close(fd: number): void {
    const socket = this.socketOf(fd);
    if (socket.port !== 0 && this.ports[socket.kind].get(socket.port) === socket) this.ports[socket.kind].delete(socket.port);
    this.sockets.delete(fd);
    for (const pending of socket.pending) pending.tcp.abort();
    const stream = socket.stream;
    if (stream) {
      stream.socket = undefined;
      stream.tcp.close();
      // one that had already failed or ended leaves the table with its socket
      const key = streamKey(stream.localPort, stream.remote.ip, stream.remote.port);
      if (stream.tcp.state === 'CLOSED' && this.streams.get(key) === stream) this.streams.delete(key);
    }
  }

  // ---- streams (TCP)

  listen(fd: number, backlog: number): void {
    const socket = this.socketOf(fd);
    if (socket.kind !== 'stream' || socket.stream) throw new SlicelabError('EINVAL', `socket ${fd} cannot listen`);
    if (socket.port === 0) this.bind(fd, 0);
    socket.backlog = Math.max(1, Math.min(backlog, 4096));
  }

  /** A connection that completed its handshake on listener `fd`, as a new socket; undefined when none waits yet. */
  accept(fd: number): { fd: number; from: Endpoint } | undefined {
    const socket = this.socketOf(fd);
    if (socket.backlog === undefined) throw new SlicelabError('EINVAL', `socket ${fd} is not listening`);
    const ready = socket.pending.findIndex((stream) => stream.tcp.state !== 'SYN_RECEIVED');
    if (ready < 0) return undefined;
    const [stream] = socket.pending.splice(ready, 1);
    const accepted: Socket = { fd: this.nextFd++, kind: 'stream', port: socket.port, queue: [], queuedBytes: 0, pending: [], stream: stream! };
    stream!.socket = accepted;
    stream!.listener = undefined;
    this.sockets.set(accepted.fd, accepted);
    return { fd: accepted.fd, from: stream!.remote };
  }

  /**
   * Connects stream socket `fd`: the first call sends the SYN; later calls say how it went: true once
   * established, undefined while the handshake runs, or the error thrown (ECONNREFUSED, ETIMEDOUT).
   */
  connect(fd: number, to: Endpoint): true | undefined {
    const socket = this.socketOf(fd);
    if (socket.kind !== 'stream' || socket.backlog !== undefined) throw new SlicelabError('EINVAL', `socket ${fd} cannot connect`);
    const stream = socket.stream;
    if (!stream) {
      if (!this.nics[0]) throw new SlicelabError('ENETUNREACH', 'the namespace has no nic');
      if (socket.port === 0) this.bind(fd, 0);
      socket.stream = this.open(socket.port, to, (hooks) => TcpConnection.connect(socket.port, to.port, hooks), socket);
      return undefined;
    }
    if (stream.tcp.error) throw new SlicelabError(stream.tcp.error, `connect to ${to.ip}:${to.port}: ${stream.tcp.error}`);
    return stream.tcp.state === 'SYN_SENT' || stream.tcp.state === 'SYN_RECEIVED' ? undefined : true;
  }

  /** Writes what fits in the send buffer (0 when full: wait to write); EPIPE once closed, the error once failed. */
  write(fd: number, bytes: Uint8Array): number {
    return this.connected(fd).tcp.write(bytes);
  }

  /** Reads up to `max` bytes: some, an empty array at the end of the stream, or undefined when it would block. */
  read(fd: number, max: number): Uint8Array | undefined {
    const { tcp } = this.connected(fd);
    const bytes = tcp.read(max);
    if (bytes.length > 0 || tcp.eof) return bytes;
    if (tcp.error) throw new SlicelabError(tcp.error, `recv: ${tcp.error}`);
    return undefined;
  }

  /** The stream's protocol figures (retransmits, cwnd, rtt) for tools such as iperf. */
  tcpInfo(fd: number) {
    return this.connected(fd).tcp.info();
  }

  has(fd: number): boolean {
    return this.sockets.has(fd);
  }

  neighbours(): ArpEntry[] {
    return this.arp.table();
  }

  nextTimerAt(): number | undefined {
    let next = this.arp.nextTimerAt() ?? Infinity;
    for (const stream of this.streams.values()) next = Math.min(next, stream.tcp.nextTimerAt() ?? Infinity);
    return next === Infinity ? undefined : next;
  }

  tick(now: number): void {
    for (const stream of [...this.streams.values()]) if ((stream.tcp.nextTimerAt() ?? Infinity) <= now) stream.tcp.tick();
    const { ask, failed } = this.arp.due(now);
    for (const ip of ask) if (this.nics[0]) this.sendArp(this.nics[0], 1, broadcastMac, ip);
    for (const { packets } of failed) {
      for (const packet of packets) this.unreachable(packet);
    }
  }

  save(now: number): NetState {
    const saveStream = (stream: Stream): StreamState => ({ remote: stream.remote, tcp: stream.tcp.save(now) });
    return {
      nics: this.nics.map((nic) => ({ name: nic.name, ip: nic.ip, mac: nic.mac, counters: { ...nic.counters }, shaping: nic.shaping ? { ...nic.shaping } : null })),
      sockets: [...this.sockets.values()].map((socket) => ({
        fd: socket.fd, kind: socket.kind, port: socket.port, queue: socket.queue.map(({ at: _at, ...datagram }) => datagram), error: socket.error ?? null,
        backlog: socket.backlog ?? null, pending: socket.pending.map(saveStream), stream: socket.stream ? saveStream(socket.stream) : null,
      })),
      closing: [...this.streams.values()].filter((stream) => !stream.socket && !stream.listener).map(saveStream),
      arp: this.arp.save(now),
      nextFd: this.nextFd,
      nextEphemeral: this.nextEphemeral,
      ipId: this.ipId,
    };
  }

  /**
   * Takes on a saved namespace's sockets and neighbours; its nics are attached again by the network,
   * with the addresses the host leased (the same ones, unless it was restored under another name).
   */
  load(state: NetState, now: number): void {
    const revive = (saved: StreamState, socket?: Socket, listener?: Socket) =>
      this.open(saved.tcp.localPort, saved.remote, (hooks) => TcpConnection.restore(saved.tcp, now, hooks), socket, listener);
    for (const saved of state.sockets) {
      const socket: Socket = {
        fd: saved.fd, kind: saved.kind, port: saved.port, queue: saved.queue, queuedBytes: saved.queue.reduce((sum, d) => sum + d.bytes.length, 0),
        error: saved.error ?? undefined, backlog: saved.backlog ?? undefined, pending: [],
      };
      this.sockets.set(socket.fd, socket);
      // an accepted stream shares its listener's port: the port belongs to the listener
      if (socket.port !== 0 && !(saved.stream && state.sockets.some((other) => other.backlog !== null && other.port === socket.port))) this.ports[socket.kind].set(socket.port, socket);
      socket.pending = saved.pending.map((pending) => revive(pending, undefined, socket));
      if (saved.stream) socket.stream = revive(saved.stream, socket);
    }
    for (const closing of state.closing) revive(closing);
    this.arp.load(state.arp, now);
    this.nextFd = state.nextFd;
    this.nextEphemeral = state.nextEphemeral;
    this.ipId = state.ipId;
  }

  // ---- inside

  private receiveArp(nic: Nic, arp: ReturnType<typeof decodeArp>): void {
    // every ARP packet teaches the sender's address: requests, replies and gratuitous ones
    for (const packet of this.arp.learn(arp.senderIp, arp.senderMac)) this.sendFrame(nic, arp.senderMac, packet);
    if (arp.op === 1 && arp.targetIp === nic.ip && arp.senderIp !== nic.ip) this.sendArp(nic, 2, arp.senderMac, arp.senderIp);
  }

  private receiveIp(nic: Nic, packet: Ipv4Packet): void {
    if (packet.dst !== nic.ip) return this.dropRx(nic);
    if (packet.protocol === ipProtocols.icmp) return this.receiveIcmp(nic, packet);
    if (packet.protocol === ipProtocols.tcp) return this.receiveTcp(nic, packet);
    if (packet.protocol === ipProtocols.udp) {
      const datagram = decodeUdp(packet.payload, packet.src, packet.dst);
      const socket = this.ports.dgram.get(datagram.dstPort);
      if (!socket) return this.dropRx(nic);
      return this.enqueue(nic, socket, { from: { ip: packet.src, port: datagram.srcPort }, bytes: datagram.payload });
    }
    this.dropRx(nic);
  }

  private receiveIcmp(nic: Nic, packet: Ipv4Packet): void {
    const icmp = decodeIcmp(packet.payload);
    if (icmp.type === 8) {
      // the kernel answers echo requests itself
      const reply = encodeIcmp({ type: 0, code: 0, id: icmp.id, seq: icmp.seq, data: icmp.data });
      return this.sendIp(nic, { src: nic.ip, dst: packet.src, protocol: ipProtocols.icmp, ttl: defaultTtl, id: this.nextIpId(), dontFragment: false, payload: reply });
    }
    if (icmp.type === 0) {
      const socket = this.ports.icmp.get(icmp.id);
      if (!socket) return this.dropRx(nic);
      return this.enqueue(nic, socket, { from: { ip: packet.src, port: 0 }, bytes: icmp.data, seq: icmp.seq, ttl: packet.ttl });
    }
    this.dropRx(nic);
  }

  /** A segment: to its connection, a SYN to a listener with room, anything else answered by a RST (a closed port). */
  private receiveTcp(nic: Nic, packet: Ipv4Packet): void {
    const segment = decodeTcp(packet.payload, packet.src, packet.dst);
    const stream = this.streams.get(streamKey(segment.dstPort, packet.src, segment.srcPort));
    if (stream) return stream.tcp.receive(segment);
    const listener = this.ports.stream.get(segment.dstPort);
    if (listener?.backlog !== undefined && segment.flags.syn && !segment.flags.ack && !segment.flags.rst) {
      // a full backlog drops the SYN, as Linux does: the client retries
      if (listener.pending.length >= listener.backlog) return this.dropRx(nic);
      listener.pending.push(this.open(segment.dstPort, { ip: packet.src, port: segment.srcPort }, (hooks) => TcpConnection.accept(segment, hooks), undefined, listener));
      return;
    }
    const reset = resetFor(segment);
    if (reset) this.sendTcp(nic, packet.src, reset);
  }

  /** A connection in the table, its segments going out through the nic and its events waking its socket (or listener). */
  private open(localPort: number, remote: Endpoint, make: (hooks: TcpOptions) => TcpConnection, socket?: Socket, listener?: Socket): Stream {
    const key = streamKey(localPort, remote.ip, remote.port);
    const stream = { remote, localPort, socket, listener } as Stream;
    // what it sends while being made (a SYN) goes out once it is in the table, where the answer will look for it
    let early: TcpSegment[] | undefined = [];
    const send = (segment: TcpSegment) => this.nics[0] && this.sendTcp(this.nics[0], remote.ip, segment);
    stream.tcp = make({
      // a nic offloads segmentation (TSO/GRO): the connection hands it segments of up to 64 KiB
      config: { segmentOffload: true },
      clock: this.clock,
      send: (segment) => (early ? early.push(segment) : send(segment)),
      onEvent: (event) => {
        if (event === 'closed' || (event === 'failed' && !stream.socket)) {
          if (this.streams.get(key) === stream && stream.tcp.state === 'CLOSED') this.streams.delete(key);
        }
        const owner = stream.socket ?? stream.listener;
        if (owner && this.sockets.get(owner.fd) === owner) this.readable(owner.fd);
      },
    });
    this.streams.set(key, stream);
    const made = early;
    early = undefined;
    for (const segment of made) send(segment);
    return stream;
  }

  private sendTcp(nic: Nic, to: string, segment: TcpSegment): void {
    this.sendIp(nic, { src: nic.ip, dst: to, protocol: ipProtocols.tcp, ttl: defaultTtl, id: this.nextIpId(), dontFragment: true, payload: encodeTcp(segment, nic.ip, to) });
  }

  private connected(fd: number): Stream {
    const socket = this.socketOf(fd);
    if (!socket.stream) throw new SlicelabError('ENOTCONN', `socket ${fd} is not connected`);
    return socket.stream;
  }

  private enqueue(nic: Nic, socket: Socket, datagram: Datagram): void {
    if (socket.queuedBytes + datagram.bytes.length > receiveBufferBytes) return this.dropRx(nic);
    socket.queue.push({ ...datagram, at: this.clock() });
    socket.queuedBytes += datagram.bytes.length;
    this.readable(socket.fd);
  }

  private sendIp(nic: Nic, packet: Ipv4Packet): void {
    if (packet.dst === nic.ip) {
      // to itself: through the loopback, never on the wire, on the next turn (a stream to itself must not spin)
      setImmediate(() => this.receiveIp(nic, packet));
      return;
    }
    const mac = this.arp.lookup(packet.dst);
    if (mac) return this.sendFrame(nic, mac, packet);
    if (this.arp.hold(packet.dst, packet)) this.sendArp(nic, 1, broadcastMac, packet.dst);
  }

  private sendFrame(nic: Nic, dst: string, packet: Ipv4Packet): void {
    this.put(nic, encodeEthernet({ dst, src: nic.mac, type: etherTypes.ipv4, payload: encodeIpv4(packet) }));
  }

  private sendArp(nic: Nic, op: 1 | 2, dst: string, targetIp: string): void {
    const targetMac = op === 1 ? '00:00:00:00:00:00' : dst;
    this.put(nic, encodeEthernet({ dst, src: nic.mac, type: etherTypes.arp, payload: encodeArp({ op, senderMac: nic.mac, senderIp: nic.ip, targetMac, targetIp }) }));
  }

  private put(nic: Nic, frame: Uint8Array): void {
    nic.counters.txBytes += frame.length;
    nic.counters.txPackets += 1;
    this.transmit(nic, frame);
  }

  /** An address that never answered ARP: its senders learn EHOSTUNREACH at their next call. */
  private unreachable(packet: Ipv4Packet): void {
    for (const socket of this.sockets.values()) {
      const mine = packet.protocol === ipProtocols.icmp ? socket.kind === 'icmp' : socket.kind === 'dgram';
      if (!mine || socket.port === 0) continue;
      const port = packet.protocol === ipProtocols.icmp ? decodeIcmp(packet.payload).id : decodeUdp(packet.payload, packet.src, packet.dst).srcPort;
      if (port !== socket.port) continue;
      socket.error = 'EHOSTUNREACH';
      this.readable(socket.fd);
    }
  }

  private raise(socket: Socket): void {
    const error = socket.error;
    if (!error) return;
    socket.error = undefined;
    throw new SlicelabError(error as 'EHOSTUNREACH', `${error}: no host answers ARP for the destination`);
  }

  private socketOf(fd: number): Socket {
    const socket = this.sockets.get(fd);
    if (!socket) throw new SlicelabError('EBADF', `no socket ${fd}`);
    return socket;
  }

  private ephemeralPort(taken: Map<number, Socket>): number {
    for (let i = 0; i <= ephemeral.last - ephemeral.first; i++) {
      const port = this.nextEphemeral;
      this.nextEphemeral = port === ephemeral.last ? ephemeral.first : port + 1;
      if (!taken.has(port)) return port;
    }
    throw new SlicelabError('EADDRINUSE', 'no ephemeral port is free');
  }

  private nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    return this.ipId;
  }

  private dropRx(nic: Nic): void {
    nic.counters.rxDropped += 1;
  }
}

function streamKey(localPort: number, remoteIp: string, remotePort: number): string {
  return `${localPort} ${remoteIp} ${remotePort}`;
}
