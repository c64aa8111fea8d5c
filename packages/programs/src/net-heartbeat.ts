/**
 * net-heartbeat: one side of a pair of containers that watch each other over the network. Every
 * `interval` it sends the peer a datagram with its sequence number, and it counts the gaps between the
 * peer's datagrams as the peer's pauses (seen from outside, as a migration's downtime is by a client):
 * a gap over two intervals is a pause, the time beyond one interval its length. Run it in both
 * containers, each with the other's address.
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

type NetHeartbeatRegs = {
  peer: string;
  port: number;
  intervalMs: number;
  fd: number;
  phase: 'socket' | 'bind' | 'beat' | 'listen';
  nextSendAt: number;
  lastHeardMs: number;
  metrics: { sent: number; heard: number; maxGapMs: number; pauses: number; pausedMs: number };
};

const ipPattern = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

export const netHeartbeat = defineProgram<NetHeartbeatRegs>({
  name: 'net-heartbeat',
  description: 'exchange a datagram with a peer every interval and report the pauses seen in its (args: peer=IP, port=9999, interval=10ms)',
  init(args) {
    const reader = new ArgReader('net-heartbeat', args, ['peer', 'port', 'interval']);
    const peer = String(args['peer'] ?? '');
    if (!ipPattern.test(peer)) throw reader.error(`peer: an IPv4 address, got ${JSON.stringify(peer)}`);
    return {
      peer, port: reader.integer('port', 9999, 1, 65535), intervalMs: reader.duration('interval', '10ms'), fd: -1, phase: 'socket', nextSendAt: 0,
      lastHeardMs: 0, metrics: { sent: 0, heard: 0, maxGapMs: 0, pauses: 0, pausedMs: 0 },
    };
  },
  step(regs, ctx) {
    const ret = ctx.ret;
    const m = regs.metrics;
    switch (regs.phase) {
      case 'socket':
        if (ret?.ok && ret.value !== undefined) {
          regs.fd = ret.value;
          regs.phase = 'bind';
          return { sys: 'bind', fd: regs.fd, port: regs.port };
        }
        return { sys: 'socket', kind: 'dgram' };
      case 'bind':
        if (ret && !ret.ok) {
          ctx.log(`net-heartbeat: bind ${regs.port}: ${ret.errno}`);
          return { sys: 'exit', code: 1 };
        }
        regs.phase = 'beat';
        return undefined;
      case 'beat': {
        regs.phase = 'listen';
        regs.nextSendAt = ctx.now() + regs.intervalMs;
        m.sent += 1;
        return { sys: 'sendto', fd: regs.fd, ip: regs.peer, port: regs.port, bytes: 8 };
      }
      case 'listen': {
        const now = ctx.now();
        if (ret?.ok && ret.from?.ip === regs.peer) {
          if (m.heard > 0) {
            const gap = now - regs.lastHeardMs;
            m.maxGapMs = Math.max(m.maxGapMs, gap);
            if (gap > 2 * regs.intervalMs) {
              m.pauses += 1;
              m.pausedMs += gap - regs.intervalMs;
            }
          }
          m.heard += 1;
          regs.lastHeardMs = now;
        }
        if (now >= regs.nextSendAt) {
          regs.phase = 'beat';
          return undefined;
        }
        return { sys: 'recvfrom', fd: regs.fd, timeoutMs: regs.nextSendAt - now };
      }
    }
  },
});
