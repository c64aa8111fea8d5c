/**
 * Captures: the file and record headers against known bytes, the writer's frame limit, and a capture of
 * ARP, ICMP echo, UDP and a TCP connection read back by the real tcpdump, which must name each frame
 * as describeFrame does and find every checksum correct.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SlicelabError } from '@slicelab/protocol';
import {
  broadcastMac, describeFrame, encodeArp, encodeEthernet, encodeIcmp, encodeIpv4, encodeTcp, encodeUdp, etherTypes, ipProtocols,
  type TcpSegment,
} from '../../dist/net/frame.js';
import { PcapWriter, pcapHeader, pcapRecord } from '../../dist/net/pcap.js';

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const text = (s: string) => new TextEncoder().encode(s);

test('pcap: the file header and a record are the known bytes', (t) => {
  // magic a1b2c3d4 little-endian, version 2.4, thiszone 0, sigfigs 0, snaplen 262144 (tcpdump's), linktype 1
  t.is(hex(pcapHeader()), 'd4c3b2a1' + '0200' + '0400' + '00000000' + '00000000' + '00000400' + '01000000');
  // 1700000000 s = 0x6553f100, 123456 us = 0x0001e240
  t.is(hex(pcapRecord(Uint8Array.of(1, 2, 3), 1_700_000_000_123.456)), '00f15365' + '40e20100' + '03000000' + '03000000' + '010203');
  // a microsecond that rounds up carries into the second
  t.is(hex(pcapRecord(new Uint8Array(0), 1999.9999).subarray(0, 8)), '02000000' + '00000000');
  // a frame past the snaplen is cut, its original length kept
  const long = pcapRecord(new Uint8Array(300_000), 0);
  t.is(hex(long.subarray(8, 16)), '00000400' + 'e0930400');
  t.is(long.length, 16 + 262144);
  for (const atMs of [-1, NaN, 2 ** 32 * 1000]) t.is(t.throws(() => pcapRecord(new Uint8Array(1), atMs), { instanceOf: SlicelabError })?.code, 'EINVAL');
});

test('PcapWriter: keeps copies of the first maxFrames frames, counts the rest', (t) => {
  const writer = new PcapWriter(2);
  const frame = Uint8Array.of(0xaa, 0xbb);
  t.true(writer.add(frame, 1000));
  frame[0] = 0xcc; // the nic reuses its buffer: the capture keeps what was seen
  t.true(writer.add(frame, 2000));
  t.false(writer.add(frame, 3000));
  t.is(writer.frames, 2);
  t.is(writer.dropped, 1);
  const expected = [pcapHeader(), pcapRecord(Uint8Array.of(0xaa, 0xbb), 1000), pcapRecord(Uint8Array.of(0xcc, 0xbb), 2000)];
  t.is(hex(writer.bytes()), expected.map(hex).join(''));
  t.is(hex(new PcapWriter().bytes()), hex(pcapHeader()));
});

/** The tcpdump binary, installed from Debian's packages when missing; a string says why it cannot be had. */
function ensureTcpdump(): string | undefined {
  const present = () => spawnSync('tcpdump', ['--version']).error === undefined;
  if (present()) return undefined;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', 'tcpdump'], { env, encoding: 'utf8' });
  let result = install();
  if (result.status !== 0) {
    spawnSync('apt-get', ['update'], { env, encoding: 'utf8' });
    result = install();
  }
  if (present()) return undefined;
  const why = result.error?.message ?? result.stderr.trim().split('\n').at(-1);
  return `tcpdump is not installed and "apt-get install -y tcpdump" failed (it needs root and Debian's package lists): ${why}`;
}

test('tcpdump reads the capture: ARP, ICMP echo, UDP and a TCP connection, by the same names and with correct checksums', (t) => {
  t.timeout(300_000, 'installing tcpdump');
  const missing = ensureTcpdump();
  if (missing) return t.fail(missing);

  const a = { mac: '02:00:0a:00:00:01', ip: '10.0.0.1' };
  const b = { mac: '02:00:0a:00:00:02', ip: '10.0.0.2' };
  let id = 0;
  const ipFrame = (from: typeof a, to: typeof a, protocol: number, payload: Uint8Array) => encodeEthernet({
    dst: to.mac, src: from.mac, type: etherTypes.ipv4,
    payload: encodeIpv4({ src: from.ip, dst: to.ip, protocol, ttl: 64, id: ++id, dontFragment: true, payload }),
  });
  const tcp = (from: typeof a, to: typeof a, segment: Omit<TcpSegment, 'window'>) =>
    ipFrame(from, to, ipProtocols.tcp, encodeTcp({ window: 64240, ...segment }, from.ip, to.ip));
  const flags = { syn: false, ack: false, fin: false, rst: false, psh: false };
  const none = new Uint8Array(0);
  const echo = { code: 0, id: 7, seq: 1, data: text('slicelab ping payload') };
  const frames = [
    encodeEthernet({ dst: broadcastMac, src: a.mac, type: etherTypes.arp, payload: encodeArp({ op: 1, senderMac: a.mac, senderIp: a.ip, targetMac: '00:00:00:00:00:00', targetIp: b.ip }) }),
    encodeEthernet({ dst: a.mac, src: b.mac, type: etherTypes.arp, payload: encodeArp({ op: 2, senderMac: b.mac, senderIp: b.ip, targetMac: a.mac, targetIp: a.ip }) }),
    ipFrame(a, b, ipProtocols.icmp, encodeIcmp({ type: 8, ...echo })),
    ipFrame(b, a, ipProtocols.icmp, encodeIcmp({ type: 0, ...echo })),
    ipFrame(a, b, ipProtocols.udp, encodeUdp({ srcPort: 40001, dstPort: 40002, payload: text('hello') }, a.ip, b.ip)),
    tcp(a, b, { srcPort: 40000, dstPort: 5201, seq: 1000, ack: 0, flags: { ...flags, syn: true }, mss: 1460, payload: none }),
    tcp(b, a, { srcPort: 5201, dstPort: 40000, seq: 5000, ack: 1001, flags: { ...flags, syn: true, ack: true }, mss: 1460, payload: none }),
    tcp(a, b, { srcPort: 40000, dstPort: 5201, seq: 1001, ack: 5001, flags: { ...flags, ack: true }, payload: none }),
    tcp(a, b, { srcPort: 40000, dstPort: 5201, seq: 1001, ack: 5001, flags: { ...flags, psh: true, ack: true }, payload: text('eighteen bytes ok!') }),
    tcp(b, a, { srcPort: 5201, dstPort: 40000, seq: 5001, ack: 1019, flags: { ...flags, fin: true, ack: true }, payload: none }),
    tcp(b, a, { srcPort: 5201, dstPort: 40000, seq: 5002, ack: 0, flags: { ...flags, rst: true }, payload: none }),
  ];
  const start = 1_700_000_000_000;
  const writer = new PcapWriter();
  frames.forEach((frame, i) => writer.add(frame, start + i * 1.5));
  const dir = mkdtempSync(join(tmpdir(), 'slicelab-pcap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'capture.pcap');
  writeFileSync(file, writer.bytes());

  const read = (...args: string[]) => {
    const result = spawnSync('tcpdump', ['-r', file, ...args], { encoding: 'utf8' });
    t.is(result.status, 0, result.stderr);
    t.regex(result.stderr, /link-type EN10MB \(Ethernet\), snapshot length 262144/);
    return result.stdout;
  };

  // -v checks the IPv4, ICMP and TCP checksums, -vv the UDP one too
  const verbose = read('-nn', '-vv');
  t.notRegex(verbose, /bad (udp )?cksum|incorrect|wrong/i);
  for (const summary of [
    'Request who-has 10.0.0.2 tell 10.0.0.1', 'Reply 10.0.0.2 is-at 02:00:0a:00:00:02', 'ICMP echo request, id 7, seq 1',
    'ICMP echo reply, id 7, seq 1', 'UDP, length 5', 'Flags [S]', 'Flags [S.]', 'options [mss 1460]', '[udp sum ok]',
  ]) t.true(verbose.includes(summary), `"${summary}" is not in tcpdump's output:\n${verbose}`);
  t.is(verbose.match(/cksum 0x[0-9a-f]{4} \(correct\)/g)?.length, 6, 'one correct checksum per TCP segment');
  t.is(verbose.match(/flags \[DF\]/g)?.length, 9, 'DF on every IPv4 packet');

  // the plain summary, with absolute sequence numbers and epoch timestamps, is describeFrame's line
  const lines = read('-nn', '-S', '-tt').trimEnd().split('\n');
  t.deepEqual(lines, frames.map((frame, i) => `${((start + i * 1.5) / 1000).toFixed(6)} ${describeFrame(frame)}`));
});
