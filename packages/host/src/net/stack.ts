/**
 * A net namespace's IP stack: its nics, neighbour table (arp.ts), ports and sockets. Frames come in from
 * the host's bridge through a nic and go out the same way; everything between is the kernel's job as
 * programs expect it: ARP requests and replies (and gratuitous ARP), ICMP echo answered by the stack,
 * ping sockets (Linux's ICMP datagram sockets: the stack fills in the echo header), UDP datagram sockets
 * with the kernel's errnos, and, later in this file's life, TCP streams (tcp.ts).
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
  FrameError, broadcastMac, decodeArp, decodeEthernet, decodeIcmp, decodeIpv4, decodeUdp, encodeArp, encodeEthernet, encodeIcmp, encodeIpv4, encodeUdp,
  etherTypes, ipProtocols, type Ipv4Packet,
} from './frame.js';

export interface NicCounters {
  rxBytes: number;
  rxPackets: number;
  txBytes: number;
  txPackets: number;
  /** frames this nic could not take: bad headers or checksums, no socket, a full receive queue */
  rxDropped: number;
  txDropped: number;
}

export interface Nic {
  /** eth0, eth1, … inside the namespace */
  name: string;
  ip: string;
  mac: string;
  counters: NicCounters;
}

export type SocketKind = 'dgram' | 'icmp';

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
}

/** A namespace as data: its nics' addresses and counters, its sockets with what they hold, its neighbours; times relative. */
export interface NetState {
  nics: Array<{ name: string; ip: string; mac: string; counters: NicCounters }>;
  sockets: Array<{ fd: number; kind: SocketKind; port: number; queue: Datagram[]; error: string | null }>;
  arp: ArpState<Ipv4Packet>;
  nextFd: number;
  nextEphemeral: number;
  ipId: number;
}

interface Socket {
  fd: number;
  kind: SocketKind;
  /** the local port (UDP) or echo identifier (ping); 0 until bound */
  port: number;
  queue: Datagram[];
  queuedBytes: number;
  /** an error to report at the next call, as the kernel reports ICMP errors on a socket */
  error?: string;
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
  private readonly ports = { dgram: new Map<number, Socket>(), icmp: new Map<number, Socket>() };
  private nextFd = 3;
  private nextEphemeral = ephemeral.first;
  private ipId = 0;

  /**
   * `transmit` hands a frame to the bridge from a nic; `readable` tells the owner a socket has something
   * to receive (or an error to report), so that a process waiting on it can be woken.
   */
  constructor(
    clock: () => number,
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
    this.sockets.set(fd, { fd, kind, port: 0, queue: [], queuedBytes: 0 });
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

  close(fd: number): void {
    const socket = this.socketOf(fd);
    if (socket.port !== 0 && this.ports[socket.kind].get(socket.port) === socket) this.ports[socket.kind].delete(socket.port);
    this.sockets.delete(fd);
  }

  has(fd: number): boolean {
    return this.sockets.has(fd);
  }

  neighbours(): ArpEntry[] {
    return this.arp.table();
  }

  nextTimerAt(): number | undefined {
    return this.arp.nextTimerAt();
  }

  tick(now: number): void {
    const { ask, failed } = this.arp.due(now);
    for (const ip of ask) if (this.nics[0]) this.sendArp(this.nics[0], 1, broadcastMac, ip);
    for (const { packets } of failed) {
      for (const packet of packets) this.unreachable(packet);
    }
  }

  save(now: number): NetState {
    return {
      nics: this.nics.map((nic) => ({ name: nic.name, ip: nic.ip, mac: nic.mac, counters: { ...nic.counters } })),
      sockets: [...this.sockets.values()].map((socket) => ({ fd: socket.fd, kind: socket.kind, port: socket.port, queue: socket.queue, error: socket.error ?? null })),
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
    for (const saved of state.sockets) {
      const socket: Socket = { fd: saved.fd, kind: saved.kind, port: saved.port, queue: saved.queue, queuedBytes: saved.queue.reduce((sum, d) => sum + d.bytes.length, 0), error: saved.error ?? undefined };
      this.sockets.set(socket.fd, socket);
      if (socket.port !== 0) this.ports[socket.kind].set(socket.port, socket);
    }
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

  private enqueue(nic: Nic, socket: Socket, datagram: Datagram): void {
    if (socket.queuedBytes + datagram.bytes.length > receiveBufferBytes) return this.dropRx(nic);
    socket.queue.push(datagram);
    socket.queuedBytes += datagram.bytes.length;
    this.readable(socket.fd);
  }

  private sendIp(nic: Nic, packet: Ipv4Packet): void {
    if (packet.dst === nic.ip) {
      // to itself: through the loopback, never on the wire
      queueMicrotask(() => this.receiveIp(nic, packet));
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
