/**
 * Wire formats of the virtual network, as real tools read them: Ethernet II, ARP, IPv4, ICMP echo, UDP
 * and TCP headers with their checksums (REFERENCE.md, traffic control and wire formats). Frames are bytes
 * with a fixed binary layout, parsed and checked at the edge: a bad frame is a FrameError (a counted
 * drop), never a crash.
 *
 * MAC addresses are written "02:00:0a:00:00:01", IPv4 addresses "10.0.0.1".
 *
 * Division of labor: each layer encodes its own header in front of the payload it is given (encodeTcp's
 * segment is encodeIpv4's payload, whose packet is encodeEthernet's), and decodes only its own header,
 * returning its payload as a view of the bytes it was given, not a copy: a frame is decoded without
 * copying its data, and the caller keeps the frame's bytes unchanged while it uses the views. Decoders
 * throw FrameError for what arrives on the wire; encoders throw EINVAL for fields that do not fit,
 * which is a bug of the caller, not a bad frame.
 */
import { SlicelabError } from '@slicelab/protocol';

export interface TcpFlags {
  syn: boolean;
  ack: boolean;
  fin: boolean;
  rst: boolean;
  psh: boolean;
}

/** A TCP segment as the stream protocol (tcp.ts) sees it; encodeTcp/decodeTcp put it on the wire. */
export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  /** sequence and acknowledgement numbers, 32-bit unsigned, wrapping */
  seq: number;
  ack: number;
  flags: TcpFlags;
  /**
   * the window field as on the wire, 16 bits: the receive window is this shifted left by the sender's
   * window scale, except in a SYN, whose window is never scaled (RFC 7323 2.2)
   */
  window: number;
  /** the MSS option, on SYN segments */
  mss?: number;
  /** the Window Scale option (RFC 7323), on SYN segments: the sender's shift count, 0..14 */
  windowScale?: number;
  /** the SACK-Permitted option (RFC 2018), on SYN segments */
  sackPermitted?: boolean;
  /** SACK blocks (RFC 2018): [left, right) edges as wire sequence numbers, at most `maxSackBlocks` */
  sack?: Array<[number, number]>;
  payload: Uint8Array;
}

/** A frame that is not what its headers say: truncated, a bad checksum, a field out of range. */
export class FrameError extends SlicelabError {
  override readonly name = 'FrameError';
  constructor(message: string) {
    super('EPROTO', message);
  }
}

export const broadcastMac = 'ff:ff:ff:ff:ff:ff';
export const etherTypes = { ipv4: 0x0800, arp: 0x0806 } as const;
export const ipProtocols = { icmp: 1, tcp: 6, udp: 17 } as const;
/** RFC 7323 2.3: the largest window scale shift count, for windows of up to 1 GiB */
export const maxWindowShift = 14;

/** Ethernet II without the FCS; `encodeEthernet` pads to 60 bytes like a NIC, so `payload` may end in padding. */
export interface EthernetFrame {
  dst: string;
  src: string;
  type: number;
  payload: Uint8Array;
}

/** ARP for Ethernet and IPv4 (RFC 826): 1 request, 2 reply. A gratuitous ARP has senderIp = targetIp. */
export interface ArpPacket {
  op: 1 | 2;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

/** IPv4 (RFC 791), unfragmented. */
export interface Ipv4Packet {
  src: string;
  dst: string;
  protocol: number;
  ttl: number;
  id: number;
  dontFragment: boolean;
  payload: Uint8Array;
}

/** ICMP echo (RFC 792): 8 request, 0 reply. The only ICMP slicelab carries: other types are refused. */
export interface IcmpEcho {
  type: 0 | 8;
  code: number;
  id: number;
  seq: number;
  data: Uint8Array;
}

/** UDP (RFC 768). */
export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

const ethernetHeader = 14;
/** The shortest Ethernet frame without its 4-byte FCS: shorter ones are padded. */
const minFrame = 60;
const arpLength = 28;
const ipv4Header = 20;
const icmpHeader = 8;
const udpHeader = 8;
const tcpHeader = 20;
const tcpFlagBits = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 } as const;
const tcpOptionKinds = { eol: 0, nop: 1, mss: 2, windowScale: 3, sackPermitted: 4, sack: 5 } as const;
/** RFC 2018 3: 40 option bytes hold four SACK blocks (two NOPs, kind, length and 8 bytes a block) */
export const maxSackBlocks = 4;
/** the option bytes `blocks` SACK blocks take, NOPs included */
export const sackOptionBytes = (blocks: number): number => (blocks === 0 ? 0 : 4 + 8 * blocks);
/** the most SACK blocks whose option (4 bytes, then 8 a block) fits in `bytes`; 0 when not even one does */
export const sackBlocksWithin = (bytes: number): number => Math.max(0, Math.min(maxSackBlocks, Math.floor((bytes - 4) / 8)));

// Big-endian fields, read and written in place: no DataView per header on the hot path.
const u16 = (b: Uint8Array, i: number): number => (b[i]! << 8) | b[i + 1]!;
const u32 = (b: Uint8Array, i: number): number => ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
function put16(b: Uint8Array, i: number, v: number): void {
  b[i] = v >>> 8;
  b[i + 1] = v;
}
function put32(b: Uint8Array, i: number, v: number): void {
  b[i] = v >>> 24;
  b[i + 1] = v >>> 16;
  b[i + 2] = v >>> 8;
  b[i + 3] = v;
}
const hex16 = (v: number): string => `0x${v.toString(16).padStart(4, '0')}`;

/** A field given to an encoder: a Uint8Array would silently keep only its low bits. */
function uint(value: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new SlicelabError('EINVAL', `${what} ${value} is not an integer in 0..${max}`);
  return value;
}

function need(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length < length) throw new FrameError(`${what} truncated: ${bytes.length} bytes, needs ${length}`);
}

/**
 * The internet checksum (RFC 1071): the one's complement of the one's complement sum of the 16-bit
 * big-endian words, an odd last byte padded with zero. `seed` adds a pseudo-header's sum. Bytes that
 * carry a correct checksum sum to 0, which is how every decoder verifies.
 */
export function internetChecksum(bytes: Uint8Array, seed = 0): number {
  let sum = seed;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (even < bytes.length) sum += bytes[even]! << 8;
  // division, not >>> 16, which would wrap a sum past 2^32 (over 128 KiB of bytes)
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** The sum of the TCP/UDP pseudo-header: source and destination address, protocol, segment length. */
const pseudoHeader = (src: string, dst: string, protocol: number, length: number): number => {
  const s = ipToNumber(src);
  const d = ipToNumber(dst);
  return (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + protocol + length;
};

/** Refuses bytes whose checksum (the field at `field`) is wrong, naming the one they should carry. */
function verify(what: string, bytes: Uint8Array, field: number, seed: number): void {
  if (internetChecksum(bytes, seed) === 0) return;
  const zeroed = bytes.slice();
  put16(zeroed, field, 0);
  throw new FrameError(`${what} checksum ${hex16(u16(bytes, field))}, computed ${hex16(internetChecksum(zeroed, seed))}`);
}

const macPattern = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;
const octet = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const ipPattern = new RegExp(`^${octet}\\.${octet}\\.${octet}\\.${octet}$`);
const hexByte = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function putMac(bytes: Uint8Array, offset: number, mac: string): void {
  if (!macPattern.test(mac)) throw new SlicelabError('EINVAL', `not a MAC address: ${JSON.stringify(mac)}`);
  for (let i = 0; i < 6; i++) bytes[offset + i] = parseInt(mac.slice(3 * i, 3 * i + 2), 16);
}

export function macToBytes(mac: string): Uint8Array {
  const bytes = new Uint8Array(6);
  putMac(bytes, 0, mac);
  return bytes;
}

export function macFromBytes(bytes: Uint8Array, offset = 0): string {
  need(bytes, offset + 6, 'MAC address');
  const h = (i: number) => hexByte[bytes[offset + i]!];
  return `${h(0)}:${h(1)}:${h(2)}:${h(3)}:${h(4)}:${h(5)}`;
}

/** addresses already read: every header encoded reads two, and a host talks to few */
const parsedIps = new Map<string, number>();

/** "10.0.0.1" as a uint32; leading zeros are refused (inet_aton would read them as octal). */
export function ipToNumber(ip: string): number {
  const known = parsedIps.get(ip);
  if (known !== undefined) return known;
  const m = ipPattern.exec(ip);
  if (!m) throw new SlicelabError('EINVAL', `not an IPv4 address: ${JSON.stringify(ip)}`);
  const n = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
  if (parsedIps.size >= 4096) parsedIps.clear();
  parsedIps.set(ip, n);
  return n;
}

export function ipFromNumber(n: number): string {
  uint(n, 0xffffffff, 'IPv4 address');
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

export function encodeEthernet(frame: EthernetFrame): Uint8Array {
  const bytes = new Uint8Array(Math.max(minFrame, ethernetHeader + frame.payload.length));
  putMac(bytes, 0, frame.dst);
  putMac(bytes, 6, frame.src);
  put16(bytes, 12, uint(frame.type, 0xffff, 'EtherType'));
  bytes.set(frame.payload, ethernetHeader);
  return bytes;
}

/** The payload is a view of `bytes`, padding included: the layer above knows its own length. */
export function decodeEthernet(bytes: Uint8Array): EthernetFrame {
  need(bytes, ethernetHeader, 'Ethernet frame');
  return { dst: macFromBytes(bytes, 0), src: macFromBytes(bytes, 6), type: u16(bytes, 12), payload: bytes.subarray(ethernetHeader) };
}

export function encodeArp(packet: ArpPacket): Uint8Array {
  const bytes = new Uint8Array(arpLength);
  put16(bytes, 0, 1); // hardware: Ethernet
  put16(bytes, 2, etherTypes.ipv4);
  bytes[4] = 6;
  bytes[5] = 4;
  put16(bytes, 6, packet.op);
  putMac(bytes, 8, packet.senderMac);
  put32(bytes, 14, ipToNumber(packet.senderIp));
  putMac(bytes, 18, packet.targetMac);
  put32(bytes, 24, ipToNumber(packet.targetIp));
  return bytes;
}

export function decodeArp(bytes: Uint8Array): ArpPacket {
  need(bytes, arpLength, 'ARP packet');
  const hardware = u16(bytes, 0);
  const protocol = u16(bytes, 2);
  if (hardware !== 1 || protocol !== etherTypes.ipv4 || bytes[4] !== 6 || bytes[5] !== 4) {
    throw new FrameError(`ARP for hardware ${hardware} (length ${bytes[4]}), protocol ${hex16(protocol)} (length ${bytes[5]}): only Ethernet/IPv4`);
  }
  const op = u16(bytes, 6);
  if (op !== 1 && op !== 2) throw new FrameError(`ARP opcode ${op}, neither request (1) nor reply (2)`);
  return {
    op,
    senderMac: macFromBytes(bytes, 8),
    senderIp: ipFromNumber(u32(bytes, 14)),
    targetMac: macFromBytes(bytes, 18),
    targetIp: ipFromNumber(u32(bytes, 24)),
  };
}

/** A 20-byte header, no options; the checksum is computed. */
export function encodeIpv4(packet: Ipv4Packet): Uint8Array {
  const length = uint(ipv4Header + packet.payload.length, 0xffff, 'IPv4 total length');
  const bytes = new Uint8Array(length);
  bytes[0] = 0x45; // version 4, IHL 5 words
  put16(bytes, 2, length);
  put16(bytes, 4, uint(packet.id, 0xffff, 'IPv4 id'));
  if (packet.dontFragment) bytes[6] = 0x40;
  bytes[8] = uint(packet.ttl, 0xff, 'TTL');
  bytes[9] = uint(packet.protocol, 0xff, 'IP protocol');
  put32(bytes, 12, ipToNumber(packet.src));
  put32(bytes, 16, ipToNumber(packet.dst));
  put16(bytes, 10, internetChecksum(bytes.subarray(0, ipv4Header)));
  bytes.set(packet.payload, ipv4Header);
  return bytes;
}

/** Skips options (IHL > 5) and trailing Ethernet padding; refuses fragments, since slicelab never fragments. */
export function decodeIpv4(bytes: Uint8Array): Ipv4Packet {
  need(bytes, ipv4Header, 'IPv4 header');
  const version = bytes[0]! >> 4;
  const headerLength = (bytes[0]! & 0x0f) * 4;
  const length = u16(bytes, 2);
  if (version !== 4) throw new FrameError(`IP version ${version}, not 4`);
  if (headerLength < ipv4Header) throw new FrameError(`IPv4 header length ${headerLength}, less than ${ipv4Header}`);
  if (length < headerLength || length > bytes.length) {
    throw new FrameError(`IPv4 total length ${length} with a ${headerLength}-byte header, ${bytes.length} bytes at hand`);
  }
  verify('IPv4 header', bytes.subarray(0, headerLength), 10, 0);
  const fragment = u16(bytes, 6);
  if (fragment & 0x3fff) {
    throw new FrameError(`IPv4 fragment (offset ${(fragment & 0x1fff) * 8}${fragment & 0x2000 ? ', more fragments' : ''}): not reassembled`);
  }
  return {
    src: ipFromNumber(u32(bytes, 12)),
    dst: ipFromNumber(u32(bytes, 16)),
    protocol: bytes[9]!,
    ttl: bytes[8]!,
    id: u16(bytes, 4),
    dontFragment: (fragment & 0x4000) !== 0,
    payload: bytes.subarray(headerLength, length),
  };
}

export function encodeIcmp(echo: IcmpEcho): Uint8Array {
  const bytes = new Uint8Array(icmpHeader + echo.data.length);
  bytes[0] = echo.type;
  bytes[1] = uint(echo.code, 0xff, 'ICMP code');
  put16(bytes, 4, uint(echo.id, 0xffff, 'ICMP echo id'));
  put16(bytes, 6, uint(echo.seq, 0xffff, 'ICMP echo seq'));
  bytes.set(echo.data, icmpHeader);
  put16(bytes, 2, internetChecksum(bytes));
  return bytes;
}

/** `bytes` is the whole ICMP message (an IPv4 payload). Types other than echo are refused. */
export function decodeIcmp(bytes: Uint8Array): IcmpEcho {
  need(bytes, icmpHeader, 'ICMP message');
  verify('ICMP', bytes, 2, 0);
  const type = bytes[0]!;
  if (type !== 0 && type !== 8) throw new FrameError(`ICMP type ${type}: only echo request (8) and reply (0) are carried`);
  return { type, code: bytes[1]!, id: u16(bytes, 4), seq: u16(bytes, 6), data: bytes.subarray(icmpHeader) };
}

/** The addresses are those of the IPv4 packet that carries the datagram, for the pseudo-header. */
export function encodeUdp(datagram: UdpDatagram, srcIp: string, dstIp: string): Uint8Array {
  const length = uint(udpHeader + datagram.payload.length, 0xffff, 'UDP length');
  const bytes = new Uint8Array(length);
  put16(bytes, 0, uint(datagram.srcPort, 0xffff, 'UDP source port'));
  put16(bytes, 2, uint(datagram.dstPort, 0xffff, 'UDP destination port'));
  put16(bytes, 4, length);
  bytes.set(datagram.payload, udpHeader);
  // 0 on the wire means "no checksum": a computed 0 goes as 0xffff, its other one's complement form
  put16(bytes, 6, internetChecksum(bytes, pseudoHeader(srcIp, dstIp, ipProtocols.udp, length)) || 0xffff);
  return bytes;
}

/** A zero checksum means the sender computed none, and is accepted. */
export function decodeUdp(bytes: Uint8Array, srcIp: string, dstIp: string): UdpDatagram {
  need(bytes, udpHeader, 'UDP header');
  const length = u16(bytes, 4);
  if (length < udpHeader || length > bytes.length) throw new FrameError(`UDP length ${length}, ${bytes.length} bytes at hand`);
  if (u16(bytes, 6) !== 0) verify('UDP', bytes.subarray(0, length), 6, pseudoHeader(srcIp, dstIp, ipProtocols.udp, length));
  return { srcPort: u16(bytes, 0), dstPort: u16(bytes, 2), payload: bytes.subarray(udpHeader, length) };
}

/**
 * The addresses are those of the IPv4 packet that carries the segment, for the pseudo-header. Options in
 * Linux's order and padding (without timestamps): MSS, NOP NOP SACK-Permitted, NOP Window Scale, and
 * NOP NOP SACK, so each fills whole 32-bit words.
 */
export function encodeTcp(segment: TcpSegment, srcIp: string, dstIp: string): Uint8Array {
  const { mss, windowScale, sackPermitted, sack = [] } = segment;
  if (sack.length > maxSackBlocks) throw new FrameError(`${sack.length} TCP SACK blocks, at most ${maxSackBlocks} fit`);
  const headerLength = tcpHeader + (mss === undefined ? 0 : 4) + (sackPermitted ? 4 : 0) + (windowScale === undefined ? 0 : 4) + sackOptionBytes(sack.length);
  const length = uint(headerLength + segment.payload.length, 0xffff, 'TCP segment length');
  const bytes = new Uint8Array(length);
  const { flags } = segment;
  put16(bytes, 0, uint(segment.srcPort, 0xffff, 'TCP source port'));
  put16(bytes, 2, uint(segment.dstPort, 0xffff, 'TCP destination port'));
  put32(bytes, 4, uint(segment.seq, 0xffffffff, 'TCP seq'));
  put32(bytes, 8, uint(segment.ack, 0xffffffff, 'TCP ack'));
  bytes[12] = (headerLength / 4) << 4;
  bytes[13] = (flags.fin ? tcpFlagBits.fin : 0) | (flags.syn ? tcpFlagBits.syn : 0) | (flags.rst ? tcpFlagBits.rst : 0)
    | (flags.psh ? tcpFlagBits.psh : 0) | (flags.ack ? tcpFlagBits.ack : 0);
  put16(bytes, 14, uint(segment.window, 0xffff, 'TCP window'));
  let option = tcpHeader;
  if (mss !== undefined) {
    bytes[option] = tcpOptionKinds.mss;
    bytes[option + 1] = 4;
    put16(bytes, option + 2, uint(mss, 0xffff, 'TCP MSS'));
    option += 4;
  }
  if (sackPermitted) {
    bytes.set([tcpOptionKinds.nop, tcpOptionKinds.nop, tcpOptionKinds.sackPermitted, 2], option);
    option += 4;
  }
  if (windowScale !== undefined) {
    bytes.set([tcpOptionKinds.nop, tcpOptionKinds.windowScale, 3, uint(windowScale, maxWindowShift, 'TCP window scale')], option);
    option += 4;
  }
  if (sack.length > 0) {
    bytes.set([tcpOptionKinds.nop, tcpOptionKinds.nop, tcpOptionKinds.sack, 2 + 8 * sack.length], option);
    option += 4;
    for (const [left, right] of sack) {
      put32(bytes, option, uint(left, 0xffffffff, 'TCP SACK left edge'));
      put32(bytes, option + 4, uint(right, 0xffffffff, 'TCP SACK right edge'));
      option += 8;
    }
  }
  bytes.set(segment.payload, headerLength);
  put16(bytes, 16, internetChecksum(bytes, pseudoHeader(srcIp, dstIp, ipProtocols.tcp, length)));
  return bytes;
}

/** `bytes` is the whole segment (an IPv4 payload). Flags other than SYN/ACK/FIN/RST/PSH are ignored. */
export function decodeTcp(bytes: Uint8Array, srcIp: string, dstIp: string): TcpSegment {
  need(bytes, tcpHeader, 'TCP header');
  const headerLength = (bytes[12]! >> 4) * 4;
  if (headerLength < tcpHeader || headerLength > bytes.length) {
    throw new FrameError(`TCP data offset ${headerLength} bytes, ${bytes.length} bytes at hand`);
  }
  verify('TCP', bytes, 16, pseudoHeader(srcIp, dstIp, ipProtocols.tcp, bytes.length));
  const bits = bytes[13]!;
  const options = tcpOptions(bytes, headerLength);
  return {
    srcPort: u16(bytes, 0),
    dstPort: u16(bytes, 2),
    seq: u32(bytes, 4),
    ack: u32(bytes, 8),
    flags: {
      syn: (bits & tcpFlagBits.syn) !== 0,
      ack: (bits & tcpFlagBits.ack) !== 0,
      fin: (bits & tcpFlagBits.fin) !== 0,
      rst: (bits & tcpFlagBits.rst) !== 0,
      psh: (bits & tcpFlagBits.psh) !== 0,
    },
    window: u16(bytes, 14),
    ...options,
    payload: bytes.subarray(headerLength),
  };
}

type TcpOptions = Pick<TcpSegment, 'mss' | 'windowScale' | 'sackPermitted' | 'sack'>;

/**
 * The MSS, Window Scale, SACK-Permitted and SACK options among the options in bytes[20, end): NOP and
 * unknown kinds are skipped, EOL ends the list. A shift count above 14 is taken as 14, as RFC 7323 2.3 says.
 */
function tcpOptions(bytes: Uint8Array, end: number): TcpOptions {
  const options: TcpOptions = {};
  for (let i = tcpHeader; i < end;) {
    const kind = bytes[i]!;
    if (kind === tcpOptionKinds.eol) break;
    if (kind === tcpOptionKinds.nop) {
      i += 1;
      continue;
    }
    const length = i + 1 < end ? bytes[i + 1]! : 0;
    if (length < 2 || i + length > end) throw new FrameError(`TCP option ${kind} of length ${length} with ${end - i} option bytes left`);
    if (kind === tcpOptionKinds.mss) {
      if (length !== 4) throw new FrameError(`TCP MSS option of length ${length}, not 4`);
      options.mss = u16(bytes, i + 2);
    } else if (kind === tcpOptionKinds.windowScale) {
      if (length !== 3) throw new FrameError(`TCP window scale option of length ${length}, not 3`);
      options.windowScale = Math.min(bytes[i + 2]!, maxWindowShift);
    } else if (kind === tcpOptionKinds.sackPermitted) {
      if (length !== 2) throw new FrameError(`TCP SACK-permitted option of length ${length}, not 2`);
      options.sackPermitted = true;
    } else if (kind === tcpOptionKinds.sack) {
      if ((length - 2) % 8 !== 0 || length === 2) throw new FrameError(`TCP SACK option of length ${length}, not 2 + 8n`);
      options.sack = [];
      for (let at = i + 2; at < i + length; at += 8) options.sack.push([u32(bytes, at), u32(bytes, at + 4)]);
    }
    i += length;
  }
  return options;
}

/** Ethernet's MTU: the largest IPv4 packet one frame carries on the wire. */
export const mtu = 1500;

/**
 * What a frame is on a wire of MTU 1500: its packets and their bytes. A TCP segment larger than the MTU
 * (one its nic offloads, as Linux's TSO and GRO hand 64 KiB segments between stack and nic) is as many
 * packets as it cuts into, each with its own Ethernet, IPv4 and TCP headers; anything else larger than
 * the MTU is no frame at all.
 */
export function onWire(frame: Uint8Array): { packets: number; bytes: number } {
  if (frame.length <= ethernetHeader + mtu) return { packets: 1, bytes: frame.length };
  const ipHeader = ((frame[ethernetHeader] ?? 0) & 0x0f) * 4;
  const tcpAt = ethernetHeader + ipHeader;
  if (u16(frame, 12) !== etherTypes.ipv4 || frame[ethernetHeader + 9] !== ipProtocols.tcp || ipHeader < ipv4Header || frame.length < tcpAt + tcpHeader) {
    throw new FrameError(`a frame of ${frame.length} bytes that is not a TCP segment, above the MTU`);
  }
  const headers = tcpAt + ((frame[tcpAt + 12]! >> 4) * 4);
  const packets = Math.max(1, Math.ceil((frame.length - headers) / (ethernetHeader + mtu - headers)));
  return { packets, bytes: frame.length + (packets - 1) * headers };
}

/**
 * Software segmentation (Linux's GSO): a TCP segment larger than the MTU as the packets a nic would send,
 * each with the next sequence numbers, its own IPv4 id and checksums, FIN and PSH on the last only. A
 * frame within the MTU is itself.
 */
export function segmentFrame(frame: Uint8Array): Uint8Array[] {
  if (frame.length <= ethernetHeader + mtu) return [frame];
  const ethernet = decodeEthernet(frame);
  const ip = decodeIpv4(ethernet.payload);
  if (ip.protocol !== ipProtocols.tcp) throw new FrameError(`a frame of ${frame.length} bytes that is not a TCP segment, above the MTU`);
  const segment = decodeTcp(ip.payload, ip.src, ip.dst);
  const room = mtu - ipv4Header - (ip.payload.length - segment.payload.length);
  const frames: Uint8Array[] = [];
  for (let offset = 0; offset < segment.payload.length; offset += room) {
    const last = offset + room >= segment.payload.length;
    const piece = encodeTcp({
      ...segment, seq: (segment.seq + offset) >>> 0, flags: { ...segment.flags, fin: segment.flags.fin && last, psh: segment.flags.psh && last },
      payload: segment.payload.subarray(offset, offset + room),
    }, ip.src, ip.dst);
    const packet = encodeIpv4({ ...ip, id: (ip.id + frames.length) & 0xffff, payload: piece });
    frames.push(encodeEthernet({ dst: ethernet.dst, src: ethernet.src, type: ethernet.type, payload: packet }));
  }
  return frames;
}

/**
 * A one-line summary for logs, in the words of `tcpdump -nn -S` (absolute sequence numbers), so a log
 * line and a capture read alike. It never throws: a frame that does not decode says why.
 */
export function describeFrame(bytes: Uint8Array): string {
  try {
    const frame = decodeEthernet(bytes);
    if (frame.type === etherTypes.arp) return describeArp(decodeArp(frame.payload), frame.payload.length);
    if (frame.type !== etherTypes.ipv4) return `ethertype ${hex16(frame.type)}, length ${bytes.length}`;
    const ip = decodeIpv4(frame.payload);
    if (ip.protocol === ipProtocols.icmp) {
      const echo = decodeIcmp(ip.payload);
      return `IP ${ip.src} > ${ip.dst}: ICMP echo ${echo.type === 8 ? 'request' : 'reply'}, id ${echo.id}, seq ${echo.seq}, length ${ip.payload.length}`;
    }
    if (ip.protocol === ipProtocols.udp) {
      const datagram = decodeUdp(ip.payload, ip.src, ip.dst);
      return `IP ${ip.src}.${datagram.srcPort} > ${ip.dst}.${datagram.dstPort}: UDP, length ${datagram.payload.length}`;
    }
    if (ip.protocol === ipProtocols.tcp) return describeTcp(ip, decodeTcp(ip.payload, ip.src, ip.dst));
    return `IP ${ip.src} > ${ip.dst}: ip-proto-${ip.protocol} ${ip.payload.length}`;
  } catch (error) {
    if (error instanceof FrameError) return `bad frame: ${error.message}`;
    throw error;
  }
}

function describeArp(arp: ArpPacket, length: number): string {
  const asked = arp.targetMac === '00:00:00:00:00:00' ? '' : ` (${arp.targetMac})`;
  const what = arp.op === 1 ? `Request who-has ${arp.targetIp}${asked} tell ${arp.senderIp}` : `Reply ${arp.senderIp} is-at ${arp.senderMac}`;
  return `ARP, ${what}, length ${length}`;
}

function describeTcp(ip: Ipv4Packet, s: TcpSegment): string {
  const { flags } = s;
  const letters = `${flags.fin ? 'F' : ''}${flags.syn ? 'S' : ''}${flags.rst ? 'R' : ''}${flags.psh ? 'P' : ''}${flags.ack ? '.' : ''}`;
  const length = s.payload.length;
  const seq = length > 0 || flags.syn || flags.fin || flags.rst ? `, seq ${s.seq}${length > 0 ? `:${(s.seq + length) >>> 0}` : ''}` : '';
  const ack = flags.ack ? `, ack ${s.ack}` : '';
  // as tcpdump names the options encodeTcp writes
  const named = [
    ...(s.mss === undefined ? [] : [`mss ${s.mss}`]),
    ...(s.sackPermitted ? ['nop', 'nop', 'sackOK'] : []),
    ...(s.windowScale === undefined ? [] : ['nop', `wscale ${s.windowScale}`]),
    ...(s.sack === undefined ? [] : ['nop', 'nop', `sack ${s.sack.length} ${s.sack.map(([l, r]) => `{${l}:${r}}`).join('')}`]),
  ];
  const options = named.length === 0 ? '' : `, options [${named.join(',')}]`;
  return `IP ${ip.src}.${s.srcPort} > ${ip.dst}.${s.dstPort}: Flags [${letters || 'none'}]${seq}${ack}, win ${s.window}${options}, length ${length}`;
}
