/**
 * Wire formats against bytes written out here: the classic IPv4 header (checksum 0xb861), the RFC 1071
 * example, and an ARP request, an ICMP echo request, a UDP datagram, a TCP SYN with MSS and one with MSS
 * and Window Scale whose bytes and checksums were made by an independent Python script (struct,
 * socket.inet_aton, its own RFC 1071 sum); tcpdump read the latter as "options [mss 1460,nop,wscale 7]",
 * cksum correct. Then round trips, and every decoder refusing bad input with FrameError and nothing else.
 */
import test from 'ava';
import { SlicelabError } from '@slicelab/protocol';
import {
  FrameError, broadcastMac, decodeArp, decodeEthernet, decodeIcmp, decodeIpv4, decodeTcp, decodeUdp, describeFrame,
  encodeArp, encodeEthernet, encodeIcmp, encodeIpv4, encodeTcp, encodeUdp, etherTypes, internetChecksum, ipFromNumber,
  ipProtocols, ipToNumber, macFromBytes, macToBytes, onWire, segmentFrame, type TcpSegment,
} from '../../dist/net/frame.js';

const bytes = (hex: string) => Uint8Array.from(hex.replace(/\s/g, '').match(/../g) ?? [], (h) => parseInt(h, 16));
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const text = (s: string) => new TextEncoder().encode(s);

const a = { mac: '02:00:0a:00:00:01', ip: '10.0.0.1' };
const b = { mac: '02:00:0a:00:00:02', ip: '10.0.0.2' };
const noFlags = { syn: false, ack: false, fin: false, rst: false, psh: false };
const syn: TcpSegment = { srcPort: 40000, dstPort: 80, seq: 1000, ack: 0, flags: { ...noFlags, syn: true }, window: 65535, mss: 1460, payload: new Uint8Array(0) };

// Known bytes (see the header comment).
const arpRequestHex = '0001 0800 06 04 0001 02000a000001 0a000001 000000000000 0a000002';
const icmpRequestHex = '0800 5459 0007 0001 736c6963656c6162'; // id 7, seq 1, data "slicelab"
const ipv4IcmpHex = '4500 0024 0001 4000 4001 26d6 0a000001 0a000002'; // id 1, DF, TTL 64, ICMP
const udpHex = '1388 0035 000d 9442 68656c6c6f'; // 10.0.0.1:5000 -> 10.0.0.2:53 "hello"
const tcpSynHex = '9c40 0050 000003e8 00000000 6002 ffff e3ab 0000 020405b4'; // seq 1000, win 65535, mss 1460
// the same SYN offering window scaling by 7, as Linux lays it out: mss, nop, wscale (a 28-byte header)
const tcpSynScaledHex = '9c40 0050 000003e8 00000000 7002 ffff cf9d 0000 020405b4 01 030307';

/** The error `fn` throws, which must be a FrameError (code EPROTO) whose message matches. */
function refuses(t: import('ava').ExecutionContext, fn: () => unknown, message: RegExp): void {
  const error = t.throws(fn, { instanceOf: FrameError, message });
  t.is(error?.code, 'EPROTO');
}

/** A copy of `b` with the 16-bit field at `at` set to `value`. */
function withField(b: Uint8Array, at: number, value: number): Uint8Array {
  const copy = b.slice();
  copy[at] = value >> 8;
  copy[at + 1] = value & 0xff;
  return copy;
}

test('internet checksum: the RFC 1071 example, the classic IPv4 header, and bytes that carry theirs sum to 0', (t) => {
  t.is(internetChecksum(bytes('0001 f203 f4f5 f6f7')), 0x220d);
  t.is(internetChecksum(bytes('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7')), 0xb861);
  t.is(internetChecksum(bytes('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7')), 0);
  // an odd length pads the last byte with zero
  t.is(internetChecksum(bytes('0001 f203 f4f5 f6')), internetChecksum(bytes('0001 f203 f4f5 f600')));
});

test('addresses: MAC and IPv4 text to bytes and back; malformed text is EINVAL', (t) => {
  t.is(hex(macToBytes('02:00:0A:00:00:ff')), '02000a0000ff');
  t.is(macFromBytes(bytes('99 02000a0000ff'), 1), '02:00:0a:00:00:ff');
  t.is(macFromBytes(macToBytes(broadcastMac)), broadcastMac);
  t.is(ipToNumber('10.0.0.1'), 0x0a000001);
  t.is(ipToNumber('255.255.255.255'), 0xffffffff);
  t.is(ipFromNumber(0xc0a800c7), '192.168.0.199');
  t.is(ipFromNumber(ipToNumber('0.0.0.0')), '0.0.0.0');
  for (const mac of ['02:00:0a:00:00', '02-00-0a-00-00-01', '02:00:0a:00:00:0g', '02:00:0a:00:00:01:']) {
    t.is(t.throws(() => macToBytes(mac), { instanceOf: SlicelabError })?.code, 'EINVAL', mac);
  }
  for (const ip of ['10.0.0', '10.0.0.256', '10.0.0.01', ' 10.0.0.1', '10.0.0.1.2', '']) {
    t.is(t.throws(() => ipToNumber(ip), { instanceOf: SlicelabError })?.code, 'EINVAL', ip);
  }
  for (const n of [-1, 2 ** 32, 1.5]) t.is(t.throws(() => ipFromNumber(n), { instanceOf: SlicelabError })?.code, 'EINVAL');
  refuses(t, () => macFromBytes(new Uint8Array(5)), /MAC address truncated: 5 bytes, needs 6/);
});

test('IPv4: the classic header with checksum 0xb861, decoded back; options skipped by IHL', (t) => {
  const packet = { src: '192.168.0.1', dst: '192.168.0.199', protocol: ipProtocols.udp, ttl: 64, id: 0, dontFragment: true, payload: new Uint8Array(95).fill(7) };
  const encoded = encodeIpv4(packet);
  t.is(hex(encoded.subarray(0, 20)), hex(bytes('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7')));
  t.deepEqual(decodeIpv4(encoded), packet);
  // a header of 6 words (a NOP option and padding) as another stack may send; the payload follows it
  const withOptions = bytes('4600 0019 1234 0000 0106 0000 0a000001 0a000002 01000000 2a');
  withOptions.set(bytes(internetChecksum(withOptions.subarray(0, 24)).toString(16).padStart(4, '0')), 10);
  const decoded = decodeIpv4(withOptions);
  t.like(decoded, { src: a.ip, dst: b.ip, protocol: ipProtocols.tcp, ttl: 1, id: 0x1234, dontFragment: false });
  t.is(hex(decoded.payload), '2a');
});

test('Ethernet + ARP: a request is the known bytes, padded to 60 like a NIC, and decodes back', (t) => {
  const request = { op: 1, senderMac: a.mac, senderIp: a.ip, targetMac: '00:00:00:00:00:00', targetIp: b.ip } as const;
  const frame = encodeEthernet({ dst: broadcastMac, src: a.mac, type: etherTypes.arp, payload: encodeArp(request) });
  t.is(hex(frame), hex(bytes(`ffffffffffff 02000a000001 0806 ${arpRequestHex} ${'00'.repeat(18)}`)));
  const ethernet = decodeEthernet(frame);
  t.like(ethernet, { dst: broadcastMac, src: a.mac, type: etherTypes.arp });
  t.is(ethernet.payload.length, 46);
  t.deepEqual(decodeArp(ethernet.payload), request);
  const reply = { op: 2, senderMac: b.mac, senderIp: b.ip, targetMac: a.mac, targetIp: a.ip } as const;
  t.deepEqual(decodeArp(encodeArp(reply)), reply);
  t.is(describeFrame(frame), 'ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 46');
  // a frame longer than the minimum is not padded
  t.is(encodeEthernet({ dst: b.mac, src: a.mac, type: 0x0800, payload: new Uint8Array(100) }).length, 114);
});

test('ICMP echo request: the known bytes and checksum, inside the known IPv4 header; the reply round-trips', (t) => {
  const request = { type: 8, code: 0, id: 7, seq: 1, data: text('slicelab') } as const;
  t.is(hex(encodeIcmp(request)), hex(bytes(icmpRequestHex)));
  const packet = { src: a.ip, dst: b.ip, protocol: ipProtocols.icmp, ttl: 64, id: 1, dontFragment: true, payload: encodeIcmp(request) };
  t.is(hex(encodeIpv4(packet)), hex(bytes(ipv4IcmpHex + icmpRequestHex)));
  // a 50-byte frame, padded to 60: decoding goes by the IPv4 total length, not the frame's
  const frame = encodeEthernet({ dst: b.mac, src: a.mac, type: etherTypes.ipv4, payload: encodeIpv4(packet) });
  t.is(frame.length, 60);
  const ip = decodeIpv4(decodeEthernet(frame).payload);
  t.is(ip.payload.length, 16);
  t.deepEqual(decodeIcmp(ip.payload), request);
  const reply = { ...request, type: 0 } as const;
  t.deepEqual(decodeIcmp(encodeIcmp(reply)), reply);
  t.is(describeFrame(frame), 'IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7, seq 1, length 16');
});

test('UDP: the known bytes with the pseudo-header checksum; no checksum (0) accepted; a computed 0 is sent as 0xffff', (t) => {
  const datagram = { srcPort: 5000, dstPort: 53, payload: text('hello') };
  const encoded = encodeUdp(datagram, a.ip, b.ip);
  t.is(hex(encoded), hex(bytes(udpHex)));
  t.deepEqual(decodeUdp(encoded, a.ip, b.ip), datagram);
  t.deepEqual(decodeUdp(withField(encoded, 6, 0), a.ip, b.ip), datagram);
  // the pseudo-header counts: the same bytes between other addresses do not check
  refuses(t, () => decodeUdp(encoded, a.ip, '10.0.0.3'), /^UDP checksum 0x9442, computed 0x9441$/);
  // make the sum come out 0: a payload word equal to the checksum computed with that word at 0
  const zeroSum = { srcPort: 5000, dstPort: 53, payload: new Uint8Array(4) };
  const c = encodeUdp(zeroSum, a.ip, b.ip);
  zeroSum.payload.set(c.subarray(6, 8));
  const sentAsOnes = encodeUdp(zeroSum, a.ip, b.ip);
  t.is(hex(sentAsOnes.subarray(6, 8)), 'ffff');
  t.deepEqual(decodeUdp(sentAsOnes, a.ip, b.ip), zeroSum);
  // the UDP length, not the bytes at hand, ends the payload
  t.deepEqual(decodeUdp(Uint8Array.from([...encoded, 0, 0]), a.ip, b.ip), datagram);
});

test('TCP: a SYN with MSS is the known bytes; flags, window, seq/ack and payload round-trip', (t) => {
  const encoded = encodeTcp(syn, a.ip, b.ip);
  t.is(hex(encoded), hex(bytes(tcpSynHex)));
  t.deepEqual(decodeTcp(encoded, a.ip, b.ip), syn);
  const data: TcpSegment = {
    srcPort: 80, dstPort: 40000, seq: 0xfffffffe, ack: 0xffffffff, flags: { syn: false, ack: true, fin: true, rst: false, psh: true },
    window: 1234, payload: text('bytes that wrap the sequence space'),
  };
  const decoded = decodeTcp(encodeTcp(data, b.ip, a.ip), b.ip, a.ip);
  t.deepEqual(decoded, data);
  t.false('mss' in decoded);
  const rst = { ...data, flags: { ...noFlags, rst: true }, payload: new Uint8Array(0) };
  t.deepEqual(decodeTcp(encodeTcp(rst, b.ip, a.ip), b.ip, a.ip), rst);
});

test('TCP: a SYN with MSS and Window Scale is the known bytes (MSS, NOP, WS) and decodes back; tcpdump\'s summary', (t) => {
  const scaled: TcpSegment = { ...syn, windowScale: 7 };
  const encoded = encodeTcp(scaled, a.ip, b.ip);
  t.is(hex(encoded), hex(bytes(tcpSynScaledHex)));
  t.deepEqual(decodeTcp(encoded, a.ip, b.ip), scaled);
  // the window stays the raw 16-bit field: scaling is the stream protocol's business
  t.is(decodeTcp(encodeTcp({ ...scaled, flags: { ...noFlags, ack: true }, window: 3, mss: undefined, windowScale: undefined }, a.ip, b.ip), a.ip, b.ip).window, 3);
  // without MSS the option still takes one word, a NOP in front
  const alone = encodeTcp({ ...syn, mss: undefined, windowScale: 0 }, a.ip, b.ip);
  t.is(hex(alone.subarray(12, 13)), '60');
  t.is(hex(alone.subarray(20)), '01030300');
  t.like(decodeTcp(alone, a.ip, b.ip), { windowScale: 0 });
  t.false('mss' in decodeTcp(alone, a.ip, b.ip));
  const frame = encodeEthernet({ dst: b.mac, src: a.mac, type: etherTypes.ipv4, payload: encodeIpv4({ src: a.ip, dst: b.ip, protocol: ipProtocols.tcp, ttl: 64, id: 1, dontFragment: true, payload: encoded }) });
  t.is(describeFrame(frame), 'IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1000, win 65535, options [mss 1460,nop,wscale 7], length 0');
});

test('TCP: SACK-Permitted on a SYN and SACK blocks on an ACK are the known bytes in Linux\'s layout; tcpdump\'s summary', (t) => {
  const offered: TcpSegment = { ...syn, sackPermitted: true, windowScale: 7 };
  const encoded = encodeTcp(offered, a.ip, b.ip);
  // data offset 8 words: MSS, NOP NOP SACK-Permitted, NOP Window Scale
  t.is(hex(encoded.subarray(12, 13)), '80');
  t.is(hex(encoded.subarray(20)), '020405b4 01010402 01030307'.replaceAll(' ', ''));
  t.deepEqual(decodeTcp(encoded, a.ip, b.ip), offered);
  const { mss: _, ...noMss } = syn;
  const ack: TcpSegment = { ...noMss, flags: { ...noFlags, ack: true }, ack: 5000, sack: [[6460, 7920], [0xfffffff0, 0x10]] };
  const acked = encodeTcp(ack, a.ip, b.ip);
  t.is(hex(acked.subarray(12, 13)), 'a0');
  t.is(hex(acked.subarray(20)), '01010512 0000193c 00001ef0 fffffff0 00000010'.replaceAll(' ', ''));
  t.deepEqual(decodeTcp(acked, a.ip, b.ip), ack);
  const ip = (segment: Uint8Array) => encodeEthernet({ dst: b.mac, src: a.mac, type: etherTypes.ipv4, payload: encodeIpv4({ src: a.ip, dst: b.ip, protocol: ipProtocols.tcp, ttl: 64, id: 1, dontFragment: true, payload: segment }) });
  t.is(describeFrame(ip(encoded)), 'IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1000, win 65535, options [mss 1460,nop,nop,sackOK,nop,wscale 7], length 0');
  t.is(describeFrame(ip(acked)), 'IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [.], ack 5000, win 65535, options [nop,nop,sack 2 {6460:7920}{4294967280:16}], length 0');
  refuses(t, () => encodeTcp({ ...ack, sack: Array.from({ length: 5 }, () => [1, 2] as [number, number]) }, a.ip, b.ip), /^5 TCP SACK blocks, at most 4 fit$/);
});

test('segment offload: a 64 KiB TCP segment is 44 packets on the wire, and GSO cuts it into them with the next sequence numbers and their own checksums', (t) => {
  const data = Uint8Array.from({ length: 44 * 1460 }, (_, i) => (i * 7) % 256);
  const segment: TcpSegment = { ...syn, flags: { ...noFlags, ack: true, psh: true, fin: true }, mss: undefined, seq: 0xffffff00, ack: 77, payload: data };
  delete segment.mss;
  const frame = encodeEthernet({ dst: b.mac, src: a.mac, type: etherTypes.ipv4, payload: encodeIpv4({ src: a.ip, dst: b.ip, protocol: ipProtocols.tcp, ttl: 64, id: 0xfffe, dontFragment: true, payload: encodeTcp(segment, a.ip, b.ip) }) });
  t.deepEqual(onWire(frame), { packets: 44, bytes: 44 * (1460 + 54) });
  const small = encodeEthernet({ dst: b.mac, src: a.mac, type: etherTypes.arp, payload: encodeArp({ op: 1, senderMac: a.mac, senderIp: a.ip, targetMac: '00:00:00:00:00:00', targetIp: b.ip }) });
  t.deepEqual(onWire(small), { packets: 1, bytes: 60 });
  t.deepEqual(segmentFrame(small), [small]);
  const pieces = segmentFrame(frame);
  t.is(pieces.length, 44);
  const decoded = pieces.map((piece) => {
    t.true(piece.length <= 1514);
    const ip = decodeIpv4(decodeEthernet(piece).payload);
    return { id: ip.id, tcp: decodeTcp(ip.payload, ip.src, ip.dst) };
  });
  t.deepEqual(decoded.map((d) => d.tcp.seq), decoded.map((_, i) => (0xffffff00 + i * 1460) >>> 0), 'sequence numbers run on, wrapping');
  t.deepEqual(decoded.slice(0, 3).map((d) => d.id), [0xfffe, 0xffff, 0], 'IPv4 ids run on, wrapping');
  t.deepEqual(Buffer.concat(decoded.map((d) => d.tcp.payload)), Buffer.from(data));
  t.deepEqual(decoded.map((d) => d.tcp.flags.fin || d.tcp.flags.psh), decoded.map((_, i) => i === 43), 'FIN and PSH on the last only');
  t.true(decoded.every((d) => d.tcp.flags.ack && d.tcp.ack === 77));
  const udp = encodeEthernet({ dst: b.mac, src: a.mac, type: etherTypes.ipv4, payload: encodeIpv4({ src: a.ip, dst: b.ip, protocol: ipProtocols.udp, ttl: 64, id: 1, dontFragment: true, payload: encodeUdp({ srcPort: 1, dstPort: 2, payload: new Uint8Array(3000) }, a.ip, b.ip) }) });
  t.throws(() => onWire(udp), { instanceOf: FrameError, message: /a frame of 3042 bytes that is not a TCP segment, above the MTU/ });
  t.throws(() => segmentFrame(udp), { instanceOf: FrameError });
});

test('TCP options: NOP and unknown kinds skipped, EOL ends the list, malformed ones refused', (t) => {
  /** The SYN with these option bytes (a multiple of 4) and a correct checksum. */
  const withOptions = (options: string) => {
    const o = bytes(options);
    const segment = new Uint8Array(20 + o.length);
    segment.set(encodeTcp({ ...syn, mss: undefined }, a.ip, b.ip));
    segment[12] = ((20 + o.length) / 4) << 4;
    segment.set(o, 20);
    const sum = internetChecksum(withField(segment, 16, 0), (0x0a00 + 0x0001) + (0x0a00 + 0x0002) + 6 + segment.length);
    return withField(segment, 16, sum);
  };
  // Linux's SYN: mss, sackOK, timestamps, nop, window scale
  t.like(decodeTcp(withOptions('020405b4 0402 080a00000001 00000000 01 030307'), a.ip, b.ip), { mss: 1460, windowScale: 7 });
  // a shift count above 14 is taken as 14 (RFC 7323 2.3), not refused
  t.is(decodeTcp(withOptions('01 03030f'), a.ip, b.ip).windowScale, 14);
  t.is(decodeTcp(withOptions('01 0303ff'), a.ip, b.ip).windowScale, 14);
  refuses(t, () => decodeTcp(withOptions('0302 0000'), a.ip, b.ip), /^TCP window scale option of length 2, not 3$/);
  refuses(t, () => decodeTcp(withOptions('0304 0700'), a.ip, b.ip), /^TCP window scale option of length 4, not 3$/);
  refuses(t, () => decodeTcp(withOptions('0101 0103'), a.ip, b.ip), /^TCP option 3 of length 0 with 1 option bytes left$/);
  t.is(decodeTcp(withOptions('0101 0204 0218 0000'), a.ip, b.ip).mss, 0x0218);
  // after EOL come only padding bytes, even if they look like an option
  t.false('mss' in decodeTcp(withOptions('00 020405b4 000000'), a.ip, b.ip));
  refuses(t, () => decodeTcp(withOptions('0203 0500'), a.ip, b.ip), /^TCP MSS option of length 3, not 4$/);
  refuses(t, () => decodeTcp(withOptions('0101 0801'), a.ip, b.ip), /^TCP option 8 of length 1 with 2 option bytes left$/);
  refuses(t, () => decodeTcp(withOptions('0101 0109'), a.ip, b.ip), /^TCP option 9 of length 0 with 1 option bytes left$/);
  refuses(t, () => decodeTcp(withOptions('0101 0805'), a.ip, b.ip), /^TCP option 8 of length 5 with 2 option bytes left$/);
  t.true(decodeTcp(withOptions('0101 0402'), a.ip, b.ip).sackPermitted);
  refuses(t, () => decodeTcp(withOptions('0403 0000'), a.ip, b.ip), /^TCP SACK-permitted option of length 3, not 2$/);
  refuses(t, () => decodeTcp(withOptions('0101 0502'), a.ip, b.ip), /^TCP SACK option of length 2, not 2 \+ 8n$/);
  refuses(t, () => decodeTcp(withOptions('0101 0506 00000001 0000'), a.ip, b.ip), /^TCP SACK option of length 6, not 2 \+ 8n$/);
});

test('decoders refuse truncated input, bad checksums, wrong versions and types, and fragments with FrameError', (t) => {
  const ip = bytes(ipv4IcmpHex + icmpRequestHex);
  const arp = bytes(arpRequestHex);
  const icmp = bytes(icmpRequestHex);
  const udp = bytes(udpHex);
  const tcp = bytes(tcpSynHex);

  refuses(t, () => decodeEthernet(new Uint8Array(13)), /^Ethernet frame truncated: 13 bytes, needs 14$/);
  refuses(t, () => decodeArp(arp.subarray(0, 27)), /^ARP packet truncated/);
  refuses(t, () => decodeArp(withField(arp, 0, 6)), /^ARP for hardware 6 .*only Ethernet\/IPv4$/);
  refuses(t, () => decodeArp(withField(arp, 2, 0x86dd)), /protocol 0x86dd/);
  refuses(t, () => decodeArp(withField(arp, 4, 0x0804)), /length 8/);
  refuses(t, () => decodeArp(withField(arp, 6, 3)), /^ARP opcode 3/);

  refuses(t, () => decodeIpv4(ip.subarray(0, 19)), /^IPv4 header truncated/);
  refuses(t, () => decodeIpv4(withField(ip, 0, 0x6500)), /^IP version 6, not 4$/);
  refuses(t, () => decodeIpv4(withField(ip, 0, 0x4400)), /^IPv4 header length 16, less than 20$/);
  refuses(t, () => decodeIpv4(ip.subarray(0, 35)), /^IPv4 total length 36 with a 20-byte header, 35 bytes at hand$/);
  refuses(t, () => decodeIpv4(withField(ip, 2, 19)), /^IPv4 total length 19/);
  refuses(t, () => decodeIpv4(withField(ip, 10, 0x1234)), /^IPv4 header checksum 0x1234, computed 0x26d6$/);
  const fragment = (flags: number) => {
    const p = withField(ip, 6, flags);
    return withField(p, 10, internetChecksum(withField(p, 10, 0).subarray(0, 20)));
  };
  refuses(t, () => decodeIpv4(fragment(0x2000)), /^IPv4 fragment \(offset 0, more fragments\)/);
  refuses(t, () => decodeIpv4(fragment(0x0003)), /^IPv4 fragment \(offset 24\)/);
  t.false(decodeIpv4(fragment(0x0000)).dontFragment);

  refuses(t, () => decodeIcmp(icmp.subarray(0, 7)), /^ICMP message truncated/);
  refuses(t, () => decodeIcmp(icmp.subarray(0, 15)), /^ICMP checksum 0x5459, computed/);
  refuses(t, () => decodeIcmp(withField(icmp, 2, 0x5458)), /^ICMP checksum 0x5458, computed 0x5459$/);
  const unreachable = withField(withField(icmp, 0, 0x0303), 2, 0);
  refuses(t, () => decodeIcmp(withField(unreachable, 2, internetChecksum(unreachable))), /^ICMP type 3: only echo/);

  refuses(t, () => decodeUdp(udp.subarray(0, 7), a.ip, b.ip), /^UDP header truncated/);
  refuses(t, () => decodeUdp(udp.subarray(0, 12), a.ip, b.ip), /^UDP length 13, 12 bytes at hand$/);
  refuses(t, () => decodeUdp(withField(udp, 4, 7), a.ip, b.ip), /^UDP length 7/);
  refuses(t, () => decodeUdp(withField(udp, 6, 0x9443), a.ip, b.ip), /^UDP checksum 0x9443, computed 0x9442$/);

  refuses(t, () => decodeTcp(tcp.subarray(0, 19), a.ip, b.ip), /^TCP header truncated/);
  refuses(t, () => decodeTcp(withField(tcp, 12, 0x4002), a.ip, b.ip), /^TCP data offset 16 bytes/);
  refuses(t, () => decodeTcp(withField(tcp, 12, 0x7002), a.ip, b.ip), /^TCP data offset 28 bytes, 24 bytes at hand$/);
  refuses(t, () => decodeTcp(withField(tcp, 16, 0), a.ip, b.ip), /^TCP checksum 0x0000, computed 0xe3ab$/);
  // the pseudo-header counts (swapped addresses would not tell: the sum commutes)
  refuses(t, () => decodeTcp(tcp, a.ip, '10.0.0.3'), /^TCP checksum 0xe3ab, computed 0xe3aa$/);

  t.regex(describeFrame(bytes(`ffffffffffff 02000a000001 0800 ${ipv4IcmpHex}`)), /^bad frame: IPv4 total length 36/);
});

test('encoders refuse fields that do not fit with EINVAL', (t) => {
  const einval = (fn: () => unknown) => t.is(t.throws(fn, { instanceOf: SlicelabError })?.code, 'EINVAL');
  einval(() => encodeTcp({ ...syn, srcPort: 65536 }, a.ip, b.ip));
  einval(() => encodeTcp({ ...syn, seq: -1 }, a.ip, b.ip));
  einval(() => encodeTcp({ ...syn, window: 70000 }, a.ip, b.ip));
  einval(() => encodeTcp({ ...syn, windowScale: 15 }, a.ip, b.ip));
  einval(() => encodeTcp({ ...syn, windowScale: -1 }, a.ip, b.ip));
  einval(() => encodeTcp(syn, a.ip, '10.0.0'));
  einval(() => encodeUdp({ srcPort: 1, dstPort: 2, payload: new Uint8Array(65528) }, a.ip, b.ip));
  einval(() => encodeIpv4({ src: a.ip, dst: b.ip, protocol: 6, ttl: 256, id: 0, dontFragment: true, payload: new Uint8Array(0) }));
  einval(() => encodeIcmp({ type: 8, code: 0, id: 0.5, seq: 0, data: new Uint8Array(0) }));
  einval(() => encodeEthernet({ dst: 'broadcast', src: a.mac, type: 0x0800, payload: new Uint8Array(0) }));
});

test('garbage: random and corrupted bytes decode to a value or a FrameError, never anything else', (t) => {
  let state = 0x5eed;
  /** mulberry32: reproducible, so a failure can be replayed */
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let r = Math.imul(state ^ (state >>> 15), 1 | state);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 2 ** 32;
  };
  const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
  /** Headers that pass their checksum, so the fields behind it are exercised too. */
  const checked = (b: Uint8Array, field: number, seed: number) => withField(b, field, internetChecksum(withField(b, field, 0), seed));
  /** Version 4, an IHL and total length that fit, no fragment, the header checksum right: options and payload are garbage. */
  function ipv4Shaped(x: Uint8Array): Uint8Array {
    if (x.length < 20) return x;
    x[0] = 0x40 | (5 + (x[0]! % 11));
    const headerLength = (x[0] & 15) * 4;
    if (headerLength > x.length) return x;
    x[2] = 0;
    x[3] = headerLength + Math.floor(random() * (x.length - headerLength + 1));
    x[6]! &= 0x40;
    x[7] = 0;
    x.set(checked(x.subarray(0, headerLength), 10, 0).subarray(10, 12), 10);
    return x;
  }
  const tcpSeed = (0x0a00 + 0x0001) + (0x0a00 + 0x0002) + 6;
  const decoders: Array<[string, (b: Uint8Array) => Uint8Array, (b: Uint8Array) => unknown]> = [
    ['ethernet', (x) => x, decodeEthernet],
    ['arp', (x) => x, decodeArp],
    ['arp-shaped', (x) => { if (x.length >= 8) x.set(bytes(`0001 0800 0604 000${x[7]! % 3}`)); return x; }, decodeArp],
    ['ipv4', (x) => x, decodeIpv4],
    ['ipv4-checked', ipv4Shaped, decodeIpv4],
    ['icmp-checked', (x) => (x.length >= 4 ? checked(x, 2, 0) : x), decodeIcmp],
    ['udp', (x) => x, (x) => decodeUdp(x, a.ip, b.ip)],
    ['tcp-checked', (x) => (x.length >= 18 ? checked(x, 16, tcpSeed + x.length) : x), (x) => decodeTcp(x, a.ip, b.ip)],
    ['frame', (x) => x, describeFrame],
  ];
  const decoded = new Map<string, number>();
  for (let i = 0; i < 20_000; i++) {
    const [name, shape, decode] = decoders[i % decoders.length]!;
    const input = shape(randomBytes(Math.floor(random() * 80)));
    try {
      decode(input);
      decoded.set(name, (decoded.get(name) ?? 0) + 1);
    } catch (error) {
      if (!(error instanceof FrameError)) t.fail(`${name} threw ${String(error)} on ${hex(input)}`);
    }
  }
  // valid frames with one byte changed: decoded down to the transport, never a crash
  const valid = [
    encodeEthernet({ dst: b.mac, src: a.mac, type: etherTypes.ipv4, payload: encodeIpv4({ src: a.ip, dst: b.ip, protocol: 6, ttl: 64, id: 9, dontFragment: true, payload: encodeTcp(syn, a.ip, b.ip) }) }),
    encodeEthernet({ dst: broadcastMac, src: a.mac, type: etherTypes.arp, payload: bytes(arpRequestHex) }),
    encodeEthernet({ dst: b.mac, src: a.mac, type: etherTypes.ipv4, payload: encodeIpv4({ src: a.ip, dst: b.ip, protocol: 6, ttl: 64, id: 9, dontFragment: true, payload: bytes(tcpSynScaledHex) }) }),
  ];
  for (let i = 0; i < 5_000; i++) {
    const frame = valid[i % valid.length]!.slice();
    frame[Math.floor(random() * frame.length)] ^= 1 + Math.floor(random() * 255);
    t.is(typeof describeFrame(frame), 'string');
  }
  // the shaped inputs did reach past the first checks
  for (const name of ['arp-shaped', 'ipv4-checked', 'icmp-checked', 'tcp-checked']) t.true((decoded.get(name) ?? 0) > 0, name);
});
