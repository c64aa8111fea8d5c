/**
 * iperf-udp: UDP at a set bitrate between two containers, as iperf3 -u measures it.
 *
 *   mode=server [port=5201]               receives datagrams until the client's last (or 2 s of silence
 *                                         after the first), then prints what iperf3's receiver line does:
 *                                         bytes, bitrate, jitter (RFC 3550's smoothed transit variation),
 *                                         lost/total datagrams and their share; exits
 *   mode=client target=IP [port=5201] [time=10s] [bitrate=1M] [len=1460]
 *                                         sends `len`-byte datagrams paced to `bitrate` (bits/s) for `time`,
 *                                         each with its sequence number and send time, then three end
 *                                         markers; prints the sender's line
 *
 * A datagram's first 12 bytes: its sequence number (u32) and its send time (f64 ms, the host's clock; a
 * transit's constant offset cancels out of the jitter, as in RFC 3550).
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type IperfUdpRegs = {
  mode: 'server' | 'client';
  target: string;
  port: number;
  timeMs: number;
  bitsPerSecond: number;
  len: number;
  fd: number;
  phase: 'socket' | 'bind' | 'receive' | 'send' | 'finish' | 'done';
  startedAt: number;
  lastAt: number;
  /** the client's datagrams sent, and end markers sent */
  sent: number;
  markers: number;
  /** the server's: datagrams, bytes, the highest sequence seen, RFC 3550 jitter and the last transit */
  metrics: { packets: number; bytes: number; maxSeq: number; jitterMs: number; transitMs: number };
};

const endMarker = 0xffffffff;
const headerBytes = 12;
const ipPattern = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

export const iperfUdp = defineProgram<IperfUdpRegs>({
  name: 'iperf-udp',
  description: 'UDP at a set bitrate, with jitter and loss as iperf3 -u reports them (args: mode=server|client, target=IP, port=5201, time=10s, bitrate=1M, len=1460)',
  init(args) {
    const reader = new ArgReader('iperf-udp', args, ['mode', 'target', 'port', 'time', 'bitrate', 'len']);
    const mode = reader.choice('mode', 'server', ['server', 'client'] as const);
    const target = String(args['target'] ?? '');
    if (mode === 'client' && !ipPattern.test(target)) throw reader.error(`target: an IPv4 address, got ${JSON.stringify(target)}`);
    return {
      mode, target, port: reader.integer('port', 5201, 1, 65535), timeMs: reader.duration('time', '10s'),
      bitsPerSecond: reader.number('bitrate', 1e6, 1, 'bits per second'), len: reader.integer('len', 1460, headerBytes, 1472),
      fd: -1, phase: 'socket', startedAt: 0, lastAt: 0, sent: 0, markers: 0, metrics: { packets: 0, bytes: 0, maxSeq: -1, jitterMs: 0, transitMs: 0 },
    };
  },
  step(regs, ctx) {
    const ret = ctx.ret;
    if (ret && !ret.ok && !(regs.phase === 'receive' && ret.errno === 'EAGAIN')) {
      ctx.log(`iperf3: error - ${regs.phase}: ${ret.errno}`);
      return { sys: 'exit', code: 1 };
    }
    const m = regs.metrics;
    switch (regs.phase) {
      case 'socket':
        if (ret?.ok && ret.value !== undefined) {
          regs.fd = ret.value;
          regs.phase = regs.mode === 'server' ? 'bind' : 'send';
          regs.startedAt = ctx.now();
          if (regs.mode === 'server') return { sys: 'bind', fd: regs.fd, port: regs.port };
          ctx.log(`Connecting to host ${regs.target}, port ${regs.port}`);
          return undefined;
        }
        return { sys: 'socket', kind: 'dgram' };
      case 'bind':
        ctx.log(`Server listening on ${regs.port}`);
        regs.phase = 'receive';
        return { sys: 'recvfrom', fd: regs.fd };
      case 'receive': {
        const now = ctx.now();
        if (ret?.ok && ret.bytes && ret.bytes.length >= headerBytes) {
          const view = new DataView(ret.bytes.buffer, ret.bytes.byteOffset, headerBytes);
          const seq = view.getUint32(0);
          if (seq === endMarker) return finishServer(regs, ctx);
          if (m.packets === 0) regs.startedAt = now;
          const transit = now - view.getFloat64(4);
          if (m.packets > 0) m.jitterMs += (Math.abs(transit - m.transitMs) - m.jitterMs) / 16;
          m.transitMs = transit;
          m.packets += 1;
          m.bytes += ret.bytes.length;
          m.maxSeq = Math.max(m.maxSeq, seq);
          regs.lastAt = now;
        } else if (m.packets > 0 && now - regs.lastAt >= 2000) {
          return finishServer(regs, ctx);
        }
        return { sys: 'recvfrom', fd: regs.fd, timeoutMs: 2000 };
      }
      case 'send': {
        const now = ctx.now();
        const elapsed = now - regs.startedAt;
        if (elapsed >= regs.timeMs) {
          regs.phase = 'finish';
          return undefined;
        }
        // paced: the datagrams due by now at the bitrate, one per call; ahead of time, wait for the next
        const due = Math.floor((elapsed / 1000) * regs.bitsPerSecond / (regs.len * 8)) + 1;
        if (regs.sent >= due) return { sys: 'sleep', ms: Math.max(0.05, ((regs.sent * regs.len * 8) / regs.bitsPerSecond) * 1000 - elapsed) };
        const data = new Uint8Array(regs.len);
        const view = new DataView(data.buffer);
        view.setUint32(0, regs.sent);
        view.setFloat64(4, now);
        regs.sent += 1;
        return { sys: 'sendto', fd: regs.fd, ip: regs.target, port: regs.port, data };
      }
      case 'finish': {
        // the end markers, three times, as a lost one would leave the server waiting for its silence
        if (regs.markers < 3) {
          regs.markers += 1;
          const data = new Uint8Array(headerBytes);
          new DataView(data.buffer).setUint32(0, endMarker);
          return { sys: 'sendto', fd: regs.fd, ip: regs.target, port: regs.port, data };
        }
        const seconds = (ctx.now() - regs.startedAt) / 1000;
        const bytes = regs.sent * regs.len;
        ctx.log(`[SUM]   0.00-${seconds.toFixed(2)} sec  ${(bytes / 2 ** 20).toFixed(2)} MBytes  ${((bytes * 8) / seconds / 1e6).toFixed(2)} Mbits/sec  0.000 ms  0/${regs.sent} (0%)  sender`);
        ctx.log(`json ${JSON.stringify({ udpSender: { seconds, bytes, packets: regs.sent } })}`);
        regs.phase = 'done';
        return { sys: 'close', fd: regs.fd };
      }
      case 'done':
        return { sys: 'exit', code: 0 };
    }
  },
});

/** The receiver's line, as iperf3 -u prints it, and its figures; then the port goes back. */
function finishServer(regs: IperfUdpRegs, ctx: { now(): number; log(line: string): void }) {
  const m = regs.metrics;
  const seconds = Math.max(1e-9, (regs.lastAt - regs.startedAt) / 1000);
  const total = m.maxSeq + 1;
  const lost = Math.max(0, total - m.packets);
  const percent = total > 0 ? (lost / total) * 100 : 0;
  ctx.log(`[SUM]   0.00-${seconds.toFixed(2)} sec  ${(m.bytes / 2 ** 20).toFixed(2)} MBytes  ${((m.bytes * 8) / seconds / 1e6).toFixed(2)} Mbits/sec  ${m.jitterMs.toFixed(3)} ms  ${lost}/${total} (${+percent.toFixed(2)}%)  receiver`);
  ctx.log(`json ${JSON.stringify({ udpReceiver: { seconds, bytes: m.bytes, packets: total, lost, lostPercent: percent, jitterMs: m.jitterMs } })}`);
  regs.phase = 'done';
  return { sys: 'close' as const, fd: regs.fd };
}
