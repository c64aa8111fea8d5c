/**
 * echo: a TCP echo server and a client that checks every byte comes back in order.
 *
 *   mode=server [port=7]                  accepts connections for ever; a child echoes each to its end
 *   mode=client target=IP [port=7] [bytes=1M] [chunk=16K] [seed=1]
 *                                         sends `bytes` of a seeded sequence, reads them back and compares
 *                                         each byte; logs "verified N bytes" (exit 0) or the first offset
 *                                         that differs (exit 1)
 *   mode=session fd=N                     echoes socket N to its end (started by the server)
 *
 * The client keeps one chunk in flight: it sends a chunk, reads until that chunk is back, then the next,
 * so its registers hold only counters and the generator's state, and a checkpoint in the middle resumes.
 */
import { ArgReader } from './args.js';
import { defineProgram, xorshift32 } from './define.js';

type EchoRegs = {
  mode: 'server' | 'client' | 'session';
  target: string;
  port: number;
  bytes: number;
  chunk: number;
  phase: 'socket' | 'bind' | 'listen' | 'accept' | 'connect' | 'send' | 'receive' | 'close' | 'done' | 'echo-read' | 'echo-write';
  fd: number;
  /** generator states: of the next byte to send, and of the next byte expected back */
  sendState: number;
  checkState: number;
  /** the chunk being sent: how much of it went out */
  chunkSent: number;
  chunkLength: number;
  pending: Uint8Array | null;
  metrics: { sent: number; verified: number };
};

const ipPattern = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** `length` bytes of the sequence from generator state `state`; returns them and the state after */
function sequence(state: number, length: number): { bytes: Uint8Array; state: number } {
  const bytes = new Uint8Array(length);
  let s = state;
  for (let i = 0; i < length; i++) {
    s = xorshift32(s);
    bytes[i] = s & 0xff;
  }
  return { bytes, state: s };
}

export const echo = defineProgram<EchoRegs>({
  name: 'echo',
  description: 'TCP echo server, and a client that checks every byte comes back in order (args: mode=server|client, target=IP, port=7, bytes=1M, chunk=16K, seed=1)',
  init(args) {
    const reader = new ArgReader('echo', args, ['mode', 'target', 'port', 'bytes', 'chunk', 'seed', 'fd']);
    const mode = reader.choice('mode', 'server', ['server', 'client', 'session'] as const);
    const target = String(args['target'] ?? '');
    if (mode === 'client' && !ipPattern.test(target)) throw reader.error(`target: an IPv4 address, got ${JSON.stringify(target)}`);
    const seed = reader.integer('seed', 1, 1, 2 ** 31);
    return {
      mode, target, port: reader.integer('port', 7, 1, 65535), bytes: reader.size('bytes', '1M', 1), chunk: reader.size('chunk', '16K', 1),
      phase: mode === 'session' ? 'echo-read' : 'socket', fd: mode === 'session' ? reader.integer('fd', 0, 0, 1 << 30) : -1,
      sendState: seed, checkState: seed, chunkSent: 0, chunkLength: 0, pending: null, metrics: { sent: 0, verified: 0 },
    };
  },
  step(regs, ctx) {
    const ret = ctx.ret;
    if (ret && !ret.ok) {
      ctx.log(`echo: ${regs.phase}: ${ret.errno}`);
      return { sys: 'exit', code: 1 };
    }
    switch (regs.phase) {
      case 'socket':
        if (ret?.ok && ret.value !== undefined) {
          regs.fd = ret.value;
          regs.phase = regs.mode === 'server' ? 'bind' : 'connect';
          return undefined;
        }
        return { sys: 'socket', kind: 'stream' };
      case 'bind':
        regs.phase = 'listen';
        return { sys: 'bind', fd: regs.fd, port: regs.port };
      case 'listen':
        regs.phase = 'accept';
        return { sys: 'listen', fd: regs.fd };
      case 'accept':
        if (ret?.ok && ret.value !== undefined && ret.from) return { sys: 'spawn', program: 'echo', args: { mode: 'session', fd: ret.value } };
        return { sys: 'accept', fd: regs.fd };
      case 'echo-read':
        if (ret?.ok && ret.bytes) {
          if (ret.bytes.length === 0) {
            regs.phase = 'done';
            return { sys: 'close', fd: regs.fd };
          }
          regs.pending = ret.bytes;
          regs.phase = 'echo-write';
          return { sys: 'send', fd: regs.fd, data: ret.bytes };
        }
        return { sys: 'recv', fd: regs.fd };
      case 'echo-write': {
        // a send takes what fits: the rest goes again
        const rest = regs.pending!.subarray(ret?.value ?? 0);
        if (rest.length > 0) {
          regs.pending = rest;
          return { sys: 'send', fd: regs.fd, data: rest };
        }
        regs.pending = null;
        regs.phase = 'echo-read';
        return { sys: 'recv', fd: regs.fd };
      }
      case 'connect':
        regs.phase = 'send';
        return { sys: 'connect', fd: regs.fd, ip: regs.target, port: regs.port };
      case 'send': {
        if (ret?.ok && ret.value !== undefined && regs.chunkLength > 0) regs.chunkSent += ret.value;
        if (regs.chunkLength === 0) regs.chunkLength = Math.min(regs.chunk, regs.bytes - regs.metrics.sent);
        if (regs.chunkSent < regs.chunkLength) {
          // the chunk again from the generator: registers hold its state, not the bytes
          const { bytes } = sequence(regs.sendState, regs.chunkLength);
          return { sys: 'send', fd: regs.fd, data: bytes.subarray(regs.chunkSent) };
        }
        regs.sendState = sequence(regs.sendState, regs.chunkLength).state;
        regs.metrics.sent += regs.chunkLength;
        regs.phase = 'receive';
        return { sys: 'recv', fd: regs.fd, max: regs.metrics.sent - regs.metrics.verified };
      }
      case 'receive': {
        if (ret?.ok && ret.bytes) {
          if (ret.bytes.length === 0) {
            ctx.log(`echo: the server closed after ${regs.metrics.verified} of ${regs.bytes} bytes`);
            return { sys: 'exit', code: 1 };
          }
          const expected = sequence(regs.checkState, ret.bytes.length);
          for (let i = 0; i < ret.bytes.length; i++) {
            if (ret.bytes[i] !== expected.bytes[i]) {
              ctx.log(`echo: byte ${regs.metrics.verified + i} came back as ${ret.bytes[i]}, expected ${expected.bytes[i]}`);
              return { sys: 'exit', code: 1 };
            }
          }
          regs.checkState = expected.state;
          regs.metrics.verified += ret.bytes.length;
        }
        if (regs.metrics.verified < regs.metrics.sent) return { sys: 'recv', fd: regs.fd, max: regs.metrics.sent - regs.metrics.verified };
        if (regs.metrics.sent < regs.bytes) {
          regs.chunkSent = 0;
          regs.chunkLength = 0;
          regs.phase = 'send';
          return undefined;
        }
        ctx.log(`echo: verified ${regs.metrics.verified} bytes`);
        regs.phase = 'done';
        return { sys: 'close', fd: regs.fd };
      }
      case 'close':
      case 'done':
        return { sys: 'exit', code: 0 };
    }
  },
});
