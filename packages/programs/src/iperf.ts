/**
 * iperf: TCP throughput between two containers, printed as iperf3 prints it.
 *
 *   mode=server port=5201 [streams=1]   accepts `streams` connections and reads them in turn to their
 *                                       ends, then closes its port and exits (iperf3 -s -1); it reads
 *                                       them itself, for as pid 1 its exit would end the container
 *   mode=client target=IP [port=5201] [time=10s] [omit=0s] [interval=1s] [parallel=1] [len=128K] [json=0]
 *                                       connects `parallel` streams and writes to them in turn for
 *                                       `omit` then `time`: as iperf3 -O, the first `omit` (slow start,
 *                                       a filling queue) has its interval lines marked "(omitted)" and
 *                                       counts in no total. One line per stream and a SUM per interval (bytes
 *                                       written, retransmits and cwnd from tcp_info), then the totals:
 *                                       `sender` (bytes written) and `receiver` (bytes the peer's stack
 *                                       acknowledged, which it received in order). With json=1, as
 *                                       iperf3 -J, the figures instead, exact: one `json {…}` line per
 *                                       connection, interval and at the end, which `slicelab net iperf
 *                                       --json` puts together under iperf3's field names
 */
import { ArgReader } from './args.js';
import { defineProgram } from './define.js';

/** `base`: the stack's counters when the omitted seconds ended, which the figures are taken from */
type Stream = {
  fd: number; written: number; intervalWritten: number; retransmits: number; intervalRetransmits: number; acked: number; cwnd: number;
  base: { acked: number; retransmits: number };
};

type IperfRegs = {
  mode: 'server' | 'client';
  target: string;
  port: number;
  timeMs: number;
  omitMs: number;
  /** still in the omitted seconds */
  omitting: boolean;
  intervalMs: number;
  parallel: number;
  len: number;
  json: boolean;
  phase: 'socket' | 'bind' | 'listen' | 'accept' | 'connect' | 'connected' | 'send' | 'info' | 'report' | 'close' | 'read' | 'done';
  fd: number;
  streams: Stream[];
  /** the server's accepted streams still open */
  reading: number[];
  /** which stream the next step works on */
  turn: number;
  startedAt: number;
  intervalAt: number;
  accepted: number;
  metrics: { bytes: number; retransmits: number };
};

const ipPattern = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** iperf3's units: MBytes (2^20) for transfers, Mbits/sec (10^6) for rates */
function transfer(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GBytes`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(bytes >= 100 * 1024 ** 2 ? 0 : 1)} MBytes`;
  return `${(bytes / 1024).toFixed(1)} KBytes`;
}

function bitrate(bitsPerSecond: number): string {
  if (bitsPerSecond >= 1e9) return `${(bitsPerSecond / 1e9).toFixed(2)} Gbits/sec`;
  if (bitsPerSecond >= 1e6) return `${(bitsPerSecond / 1e6).toFixed(1)} Mbits/sec`;
  return `${(bitsPerSecond / 1e3).toFixed(0)} Kbits/sec`;
}

const interval = (from: number, to: number) => `${from.toFixed(2).padStart(6)}-${to.toFixed(2).padEnd(6)} sec`;
const id = (fd: number | 'SUM') => (fd === 'SUM' ? '[SUM]' : `[${String(fd).padStart(3)}]`);

export const iperf = defineProgram<IperfRegs>({
  name: 'iperf',
  description: 'TCP throughput, printed as iperf3 prints it (args: mode=server|client, target=IP, port=5201, time=10s, omit=0s, interval=1s, parallel=1, len=128K, streams=1)',
  init(args) {
    const reader = new ArgReader('iperf', args, ['mode', 'target', 'port', 'time', 'omit', 'interval', 'parallel', 'len', 'streams', 'json']);
    const mode = reader.choice('mode', 'server', ['server', 'client'] as const);
    const target = String(args['target'] ?? '');
    if (mode === 'client') {
      const octets = ipPattern.exec(target);
      if (!octets || octets.slice(1).some((o) => Number(o) > 255)) throw reader.error(`target: an IPv4 address, got ${JSON.stringify(target)}`);
    }
    const parallel = mode === 'server' ? reader.integer('streams', 1, 1, 128) : reader.integer('parallel', 1, 1, 128);
    return {
      mode, target, port: reader.integer('port', 5201, 1, 65535), timeMs: reader.duration('time', '10s'), omitMs: reader.duration('omit', '0s', true), omitting: false, intervalMs: reader.duration('interval', '1s'),
      parallel, len: reader.size('len', '128K', 1), json: reader.integer('json', 0, 0, 1) === 1, phase: 'socket', fd: -1, streams: [], reading: [], turn: 0, startedAt: 0, intervalAt: 0, accepted: 0, metrics: { bytes: 0, retransmits: 0 },
    };
  },
  step(regs, ctx) {
    const ret = ctx.ret;
    // iperf3's lines, or with json=1 only the exact figures
    const say = (line: string) => !regs.json && ctx.log(line);
    const figures = (value: unknown) => regs.json && ctx.log(`json ${JSON.stringify(value)}`);
    if (ret && !ret.ok) {
      ctx.log(`iperf3: error - ${regs.phase}: ${ret.errno}`);
      return { sys: 'exit', code: 1 };
    }
    switch (regs.phase) {
      case 'socket':
        if (ret?.ok && ret.value !== undefined) {
          regs.fd = ret.value;
          regs.phase = regs.mode === 'server' ? 'bind' : 'connect';
          return undefined;
        }
        if (regs.mode === 'client' && regs.streams.length === 0) say(`Connecting to host ${regs.target}, port ${regs.port}`);
        return { sys: 'socket', kind: 'stream' };
      case 'bind':
        regs.phase = 'listen';
        return { sys: 'bind', fd: regs.fd, port: regs.port };
      case 'listen':
        regs.phase = 'accept';
        ctx.log(`Server listening on ${regs.port}`);
        return { sys: 'listen', fd: regs.fd };
      case 'accept':
        if (ret?.ok && ret.value !== undefined && ret.from) {
          regs.accepted += 1;
          regs.reading.push(ret.value);
          ctx.log(`Accepted connection from ${ret.from.ip}, port ${ret.from.port}`);
          if (regs.accepted >= regs.parallel) {
            regs.phase = 'read';
            regs.turn = 0;
            regs.startedAt = ctx.now();
            return { sys: 'recv', fd: regs.reading[0]!, max: 1 << 20 };
          }
        }
        return { sys: 'accept', fd: regs.fd };
      case 'connect':
        regs.phase = 'connected';
        return { sys: 'connect', fd: regs.fd, ip: regs.target, port: regs.port };
      case 'connected':
        regs.streams.push({ fd: regs.fd, written: 0, intervalWritten: 0, retransmits: 0, intervalRetransmits: 0, acked: 0, cwnd: 0, base: { acked: 0, retransmits: 0 } });
        say(`${id(regs.fd)} connected to ${regs.target} port ${regs.port}`);
        figures({ connected: { socket: regs.fd, host: regs.target, port: regs.port } });
        if (regs.streams.length < regs.parallel) {
          regs.phase = 'socket';
          return undefined;
        }
        say('[ ID] Interval           Transfer     Bitrate         Retr  Cwnd');
        regs.startedAt = ctx.now();
        regs.intervalAt = regs.startedAt;
        regs.omitting = regs.omitMs > 0;
        regs.turn = 0;
        regs.phase = 'send';
        return undefined;
      case 'send': {
        // the result of the previous send (the step after `connected` or `info` sees none)
        if (ret?.ok && ret.value !== undefined) {
          const stream = regs.streams[regs.turn]!;
          stream.written += ret.value;
          stream.intervalWritten += ret.value;
          regs.metrics.bytes += ret.value;
          regs.turn = (regs.turn + 1) % regs.streams.length;
        }
        const now = ctx.now();
        if (now - regs.intervalAt >= regs.intervalMs || now - regs.startedAt >= (regs.omitting ? regs.omitMs : regs.timeMs)) {
          regs.phase = 'info';
          regs.turn = 0;
          return { sys: 'tcpinfo', fd: regs.streams[0]!.fd };
        }
        return { sys: 'send', fd: regs.streams[regs.turn]!.fd, bytes: regs.len };
      }
      case 'info': {
        const stream = regs.streams[regs.turn]!;
        const info = ret?.ok ? ret.info ?? {} : {};
        stream.intervalRetransmits = (info['retransmits'] ?? 0) - stream.base.retransmits - stream.retransmits;
        stream.retransmits = (info['retransmits'] ?? 0) - stream.base.retransmits;
        stream.acked = (info['bytesAcked'] ?? 0) - stream.base.acked;
        stream.cwnd = info['cwnd'] ?? 0;
        regs.turn += 1;
        if (regs.turn < regs.streams.length) return { sys: 'tcpinfo', fd: regs.streams[regs.turn]!.fd };
        const now = ctx.now();
        const from = (regs.intervalAt - regs.startedAt) / 1000;
        const to = (now - regs.startedAt) / 1000;
        const seconds = Math.max(1e-9, (now - regs.intervalAt) / 1000);
        let bytes = 0;
        let retransmits = 0;
        const omitted = regs.omitting ? '  (omitted)' : '';
        figures({ interval: { start: from, end: to, omitted: regs.omitting, streams: regs.streams.map((s) => ({ socket: s.fd, bytes: s.intervalWritten, retransmits: s.intervalRetransmits, snd_cwnd: s.cwnd })) } });
        for (const s of regs.streams) {
          say(`${id(s.fd)} ${interval(from, to)}  ${transfer(s.intervalWritten).padStart(12)}  ${bitrate((s.intervalWritten * 8) / seconds).padStart(15)}  ${String(s.intervalRetransmits).padStart(3)}   ${transfer(s.cwnd)}${omitted}`);
          bytes += s.intervalWritten;
          retransmits += s.intervalRetransmits;
          s.intervalWritten = 0;
        }
        if (regs.streams.length > 1) say(`${id('SUM')} ${interval(from, to)}  ${transfer(bytes).padStart(12)}  ${bitrate((bytes * 8) / seconds).padStart(15)}  ${String(retransmits).padStart(3)}${omitted}`);
        regs.intervalAt = now;
        regs.turn = 0;
        if (regs.omitting && now - regs.startedAt >= regs.omitMs) {
          // the omitted seconds are over: figures count from here, and time starts again at 0
          for (const s of regs.streams) {
            s.base = { acked: s.base.acked + s.acked, retransmits: s.base.retransmits + s.retransmits };
            s.written = 0;
            s.acked = 0;
            s.retransmits = 0;
          }
          regs.omitting = false;
          regs.startedAt = now;
        }
        regs.metrics.retransmits = regs.streams.reduce((sum, s) => sum + s.retransmits, 0);
        if (regs.omitting || now - regs.startedAt < regs.timeMs) {
          regs.phase = 'send';
          return undefined;
        }
        regs.phase = 'report';
        return undefined;
      }
      case 'report': {
        const seconds = (regs.intervalAt - regs.startedAt) / 1000;
        figures({ end: { seconds, streams: regs.streams.map((s) => ({ socket: s.fd, sent: s.written, received: s.acked, retransmits: s.retransmits })) } });
        say('- - - - - - - - - - - - - - - - - - - - - - - - -');
        say('[ ID] Interval           Transfer     Bitrate         Retr');
        const sum = { written: 0, acked: 0, retransmits: 0 };
        for (const s of regs.streams) {
          say(`${id(s.fd)} ${interval(0, seconds)}  ${transfer(s.written).padStart(12)}  ${bitrate((s.written * 8) / seconds).padStart(15)}  ${String(s.retransmits).padStart(3)}             sender`);
          say(`${id(s.fd)} ${interval(0, seconds)}  ${transfer(s.acked).padStart(12)}  ${bitrate((s.acked * 8) / seconds).padStart(15)}                  receiver`);
          sum.written += s.written;
          sum.acked += s.acked;
          sum.retransmits += s.retransmits;
        }
        if (regs.streams.length > 1) {
          say(`${id('SUM')} ${interval(0, seconds)}  ${transfer(sum.written).padStart(12)}  ${bitrate((sum.written * 8) / seconds).padStart(15)}  ${String(sum.retransmits).padStart(3)}             sender`);
          say(`${id('SUM')} ${interval(0, seconds)}  ${transfer(sum.acked).padStart(12)}  ${bitrate((sum.acked * 8) / seconds).padStart(15)}                  receiver`);
        }
        regs.phase = 'close';
        regs.turn = 0;
        return undefined;
      }
      case 'close':
        if (regs.mode === 'server') return regs.reading.length > 0 ? { sys: 'close', fd: regs.reading.shift()! } : { sys: 'exit', code: 0 };
        if (regs.turn < regs.streams.length) return { sys: 'close', fd: regs.streams[regs.turn++]!.fd };
        say('');
        say('iperf Done.');
        figures({ done: true });
        return { sys: 'exit', code: 0 };
      case 'read': {
        // the streams in turn, each read taking what has come (a blocked one holds the others back only by a window)
        if (ret?.ok && ret.bytes) {
          if (ret.bytes.length === 0) {
            const [ended] = regs.reading.splice(regs.turn, 1);
            if (regs.reading.length === 0) {
              const seconds = (ctx.now() - regs.startedAt) / 1000;
              ctx.log(`${id('SUM')} ${interval(0, seconds)}  ${transfer(regs.metrics.bytes).padStart(12)}  ${bitrate((regs.metrics.bytes * 8) / seconds).padStart(15)}                  receiver`);
              // the last stream, then the port
              regs.phase = 'close';
              regs.streams = [];
              regs.turn = 0;
              regs.reading = [ended!, regs.fd];
              return undefined;
            }
            regs.turn %= regs.reading.length;
            return { sys: 'close', fd: ended! };
          }
          regs.metrics.bytes += ret.bytes.length;
          regs.turn = (regs.turn + 1) % regs.reading.length;
        }
        return { sys: 'recv', fd: regs.reading[regs.turn]!, max: 1 << 20 };
      }
      case 'done':
        return { sys: 'exit', code: 0 };
    }
  },
});
