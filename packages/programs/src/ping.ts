/**
 * ping: ICMP echo requests to `target` through a ping socket, and the lines iputils' ping prints, to the
 * container's log: the banner, one line per reply, and the statistics with rtt min/avg/max/mdev. It sends
 * one request every `interval`, `count` of them, then waits up to `wait` for the last replies (ping -W).
 * Exit 0 when any reply came, 1 when none did (as ping).
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type PingRegs = {
  target: string;
  count: number;
  intervalMs: number;
  waitMs: number;
  size: number;
  fd: number;
  phase: 'open' | 'send' | 'receive' | 'done';
  startedAt: number;
  nextSendAt: number;
  /** when each outstanding request left, by its sequence number */
  sentAt: Record<string, number>;
  metrics: { transmitted: number; received: number; minMs: number; maxMs: number; sumMs: number; sumSquaresMs: number };
};

/** iputils' precision: three significant digits for small times */
export function rttText(ms: number): string {
  if (ms < 1) return ms.toFixed(3);
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return ms.toFixed(0);
}

const ipPattern = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export const ping = defineProgram<PingRegs>({
  name: 'ping',
  description: 'ICMP echo to an address, printed as ping prints it (args: target=IP, count=4, interval=1s, wait=1s, size=56)',
  init(args) {
    const reader = new ArgReader('ping', args, ['target', 'count', 'interval', 'wait', 'size']);
    const target = String(args['target'] ?? '');
    const octets = ipPattern.exec(target);
    if (!octets || octets.slice(1).some((o) => Number(o) > 255)) throw reader.error(`target: an IPv4 address, got ${JSON.stringify(target)}`);
    return {
      target, count: reader.integer('count', 4, 1, 1_000_000), intervalMs: reader.duration('interval', '1s'), waitMs: reader.duration('wait', '1s'),
      size: reader.integer('size', 56, 0, 1472), fd: -1, phase: 'open', startedAt: 0, nextSendAt: 0, sentAt: {},
      metrics: { transmitted: 0, received: 0, minMs: 0, maxMs: 0, sumMs: 0, sumSquaresMs: 0 },
    };
  },
  step(regs, ctx) {
    const ret = ctx.ret;
    const m = regs.metrics;
    switch (regs.phase) {
      case 'open':
        if (ret?.ok && ret.value !== undefined) {
          regs.fd = ret.value;
          regs.phase = 'send';
          regs.startedAt = ctx.now();
          return undefined;
        }
        if (ret && !ret.ok) {
          ctx.log(`ping: socket: ${ret.errno}`);
          return { sys: 'exit', code: 2 };
        }
        ctx.log(`PING ${regs.target} (${regs.target}) ${regs.size}(${regs.size + 28}) bytes of data.`);
        return { sys: 'socket', kind: 'icmp' };
      case 'send': {
        const seq = m.transmitted + 1;
        m.transmitted = seq;
        const now = ctx.now();
        regs.sentAt[seq] = now;
        regs.nextSendAt = now + regs.intervalMs;
        regs.phase = 'receive';
        return { sys: 'sendto', fd: regs.fd, ip: regs.target, port: 0, bytes: regs.size, seq };
      }
      case 'receive': {
        const now = ctx.now();
        if (ret?.ok && ret.seq !== undefined && regs.sentAt[ret.seq] !== undefined) {
          // the reply's arrival at the socket, as ping reads SO_TIMESTAMP, not this step's wake-up
          const rtt = (ret.at ?? now) - regs.sentAt[ret.seq]!;
          delete regs.sentAt[ret.seq];
          m.received += 1;
          m.minMs = m.received === 1 ? rtt : Math.min(m.minMs, rtt);
          m.maxMs = Math.max(m.maxMs, rtt);
          m.sumMs += rtt;
          m.sumSquaresMs += rtt * rtt;
          ctx.log(`${(ret.bytes?.length ?? regs.size) + 8} bytes from ${ret.from?.ip ?? regs.target}: icmp_seq=${ret.seq} ttl=${ret.ttl ?? 64} time=${rttText(rtt)} ms`);
        } else if (ret && !ret.ok && ret.errno !== 'EAGAIN') {
          ctx.log(`From ${regs.target} icmp_seq=${m.transmitted} Destination Host Unreachable`);
        }
        const allSent = m.transmitted >= regs.count;
        const until = allSent ? regs.nextSendAt - regs.intervalMs + regs.waitMs : regs.nextSendAt;
        if (allSent && (m.received === m.transmitted || now >= until)) {
          regs.phase = 'done';
          return undefined;
        }
        if (!allSent && now >= regs.nextSendAt) {
          regs.phase = 'send';
          return undefined;
        }
        return { sys: 'recvfrom', fd: regs.fd, timeoutMs: Math.max(0.1, until - now) };
      }
      case 'done': {
        const lost = m.transmitted - m.received;
        ctx.log(`--- ${regs.target} ping statistics ---`);
        ctx.log(`${m.transmitted} packets transmitted, ${m.received} received, ${+((lost / m.transmitted) * 100).toFixed(4)}% packet loss, time ${Math.round(ctx.now() - regs.startedAt)}ms`);
        if (m.received > 0) {
          const avg = m.sumMs / m.received;
          const mdev = Math.sqrt(Math.max(0, m.sumSquaresMs / m.received - avg * avg));
          ctx.log(`rtt min/avg/max/mdev = ${[m.minMs, avg, m.maxMs, mdev].map((v) => v.toFixed(3)).join('/')} ms`);
        }
        return { sys: 'exit', code: m.received > 0 ? 0 : 1 };
      }
    }
  },
});
