/**
 * System calls: what a quantum ended with, carried out on the host's main thread. Each subsystem's calls
 * are handled by its own function below; the result becomes ctx.ret of the process's next step.
 *
 *   process  yield, exit, sleep, spawn (fork: EAGAIN at pids.max, as the kernel's)
 *   memory   alloc (a reservation, as mmap's: pages cost only when touched), free, faults (OOM)
 *   disk     io: the process waits for its request on the host's virtual disk
 *   mnt      fs: the container's own root filesystem
 *   net      socket, bind, listen, accept, connect, send, recv, sendto, recvfrom, tcpinfo, close: the
 *            container's net namespace (net/stack.ts)
 */
import { SlicelabError } from '@slicelab/protocol';
import { getProgram, pageSize, type FsOp, type Syscall, type SyscallResult } from '@slicelab/programs';
import { exitCodes, type Container, type NetCall, type Process } from './container.js';
import type { Outcome } from './core-protocol.js';
import type { HostMemory } from './memory.js';
import type { OomKiller } from './oom.js';
import type { Processes } from './processes.js';

export interface SyscallContext {
  processes: Processes;
  oom: OomKiller;
  hostMemory: HostMemory;
}

const clock = () => performance.timeOrigin + performance.now();

/** pids.max, checked again on the host: cores racing each other may both have seen room for one. */
export function forkAllowed(container: Container): boolean {
  container.memory.setPidsCurrent(container.live().length);
  return container.memory.forkAllowed();
}

/** Carries out `outcome`; `ret` is what the process's next step sees when the quantum simply ran out. */
export function carryOut(ctx: SyscallContext, process: Process, outcome: Outcome, ret: SyscallResult | undefined): void {
  if (outcome === undefined) return ctx.processes.ready(process, ret);
  switch (outcome.sys) {
    case 'yield':
    case 'exit':
    case 'sleep':
    case 'spawn':
      return processCall(ctx, process, outcome);
    case 'alloc':
    case 'free':
      return ctx.processes.ready(process, memoryCall(process, outcome));
    case 'fault':
      return fault(ctx, process, outcome.kind, outcome.page, ret);
    case 'io':
      return ctx.processes.wait(process, { kind: 'io', op: outcome.op, bytes: Math.max(0, outcome.bytes) });
    case 'fs':
      return ctx.processes.ready(process, fsCall(process.container, outcome.op, outcome.path, outcome.data ?? ''));
    case 'socket':
    case 'bind':
    case 'sendto':
    case 'recvfrom':
    case 'listen':
    case 'accept':
    case 'connect':
    case 'send':
    case 'recv':
    case 'tcpinfo':
    case 'close':
      return netCall(ctx, process, outcome);
    case 'crash':
      process.container.log(`[${process.pid}] ${process.program} crashed: ${outcome.message}`);
      process.killedBy = `crash: ${outcome.message}`;
      return ctx.processes.exit(process, exitCodes.sigsegv);
  }
}

function processCall(ctx: SyscallContext, process: Process, call: Extract<Syscall, { sys: 'yield' | 'exit' | 'sleep' | 'spawn' }>): void {
  const { processes } = ctx;
  switch (call.sys) {
    case 'yield':
      return processes.ready(process);
    case 'exit':
      return processes.exit(process, call.code);
    case 'sleep':
      return processes.wait(process, { kind: 'sleep', until: clock() + Math.max(0, call.ms) });
    case 'spawn': {
      const program = getProgram(call.program);
      if (!program) return processes.ready(process, { ok: false, errno: 'ENOENT' });
      if (!forkAllowed(process.container)) return processes.ready(process, { ok: false, errno: 'EAGAIN' });
      let regs;
      try {
        regs = program.init(call.args ?? {});
      } catch {
        return processes.ready(process, { ok: false, errno: 'EINVAL' });
      }
      const child = processes.start(process.container, program.name, call.args ?? {}, process.pid, regs);
      return processes.ready(process, { ok: true, value: child.pid });
    }
  }
}

/**
 * alloc reserves address space only, as mmap does: a reservation larger than memory.max succeeds, and
 * touching pages past the limit is what OOM-kills. ENOMEM only when the address space has no gap.
 */
function memoryCall(process: Process, call: Extract<Syscall, { sys: 'alloc' | 'free' }>): SyscallResult {
  const container = process.container;
  if (call.sys === 'alloc') {
    const addr = call.bytes > 0 ? container.place(call.bytes, pageSize) : undefined;
    if (addr === undefined) return { ok: false, errno: 'ENOMEM' };
    container.regions.set(addr, { addr, bytes: call.bytes, owner: process.gpid });
    return { ok: true, value: addr };
  }
  const region = container.regions.get(call.addr);
  // a region is its process's own: another process of the container cannot free it
  if (!region || region.owner !== process.gpid) return { ok: false, errno: 'EINVAL' };
  container.memory.release(region.addr, region.bytes);
  container.regions.delete(region.addr);
  return { ok: true };
}

function fault(ctx: SyscallContext, process: Process, kind: 'oom' | 'host-oom' | 'missing', page: number, ret: SyscallResult | undefined): void {
  // the faulting step runs again with the input it had
  process.ret = ret;
  if (kind === 'oom') return ctx.oom.containerOom(process);
  if (kind === 'host-oom') return ctx.oom.hostOom(process, ctx.hostMemory.freeBytes, ctx.hostMemory.limitBytes);
  // postcopy: this process alone waits, off the cores, until the page is pulled from the source
  const container = process.container;
  if (container.memory.isPresent(page)) return ctx.processes.ready(process, ret);
  ctx.processes.wait(process, { kind: 'page', page, ret });
  container.missing?.(page);
}

/** The `fs` system call, on the container's own rootfs (its mount namespace). */
function fsCall(container: Container, op: FsOp, path: string, data: string): SyscallResult {
  const fs = container.rootfs;
  try {
    switch (op) {
      case 'read':
        return { ok: true, data: new TextDecoder().decode(fs.read(path)) };
      case 'list':
        return { ok: true, data: fs.list(path).map((name) => `${name}\n`).join('') };
      case 'write':
        fs.write(path, data);
        return { ok: true };
      case 'append':
        fs.append(path, data);
        return { ok: true };
      case 'mkdir':
        fs.mkdir(path);
        return { ok: true };
      case 'remove':
        fs.remove(path);
        return { ok: true };
      default:
        return { ok: false, errno: 'EINVAL' };
    }
  } catch (error) {
    if (error instanceof SlicelabError) return { ok: false, errno: error.code };
    throw error;
  }
}

/** the largest datagram payload: 1500 bytes of IP, less its header and UDP's */
const maxDatagram = 1472;
/** what one send of `bytes` may carry: a process writes in pieces, as into a kernel's socket buffer */
const maxSendBytes = 1 << 20;

type SocketCall = Extract<Syscall, { sys: 'socket' | 'bind' | 'sendto' | 'recvfrom' | 'listen' | 'accept' | 'connect' | 'send' | 'recv' | 'tcpinfo' | 'close' }>;

/**
 * Socket calls on the container's net namespace, with the kernel's errnos. A call that would block
 * (a receive with nothing queued, an accept with no connection, a connect during its handshake, a send
 * into a full buffer) leaves the core: the process waits on the socket, and `attempt` runs the call
 * again when the socket has news (`Processes.netReadable`), or its timeout ends the wait with EAGAIN.
 */
function netCall(ctx: SyscallContext, process: Process, call: SocketCall): void {
  const stack = process.container.net;
  const done = (result: SyscallResult) => ctx.processes.ready(process, result);
  try {
    switch (call.sys) {
      case 'socket':
        return done({ ok: true, value: stack.socket(call.kind) });
      case 'bind':
        stack.bind(call.fd, call.port);
        return done({ ok: true });
      case 'listen':
        stack.listen(call.fd, call.backlog ?? 128);
        return done({ ok: true });
      case 'sendto': {
        const data = call.data ?? pattern(Math.min(call.bytes ?? 0, 65_535));
        if (data.length > maxDatagram) return done({ ok: false, errno: 'EMSGSIZE' });
        return done({ ok: true, value: stack.sendTo(call.fd, { ip: call.ip, port: call.port }, data, call.seq) });
      }
      case 'tcpinfo': {
        // the figures, as numbers (srtt is 0 before the first sample)
        const info = Object.entries(stack.tcpInfo(call.fd)).filter((entry): entry is [string, number] => typeof entry[1] === 'number');
        return done({ ok: true, info: Object.fromEntries(info) });
      }
      case 'close':
        stack.close(call.fd);
        return done({ ok: true });
      default: {
        const result = attempt(process.container, call);
        if (result) return done(result);
        const timeoutMs = 'timeoutMs' in call ? call.timeoutMs : undefined;
        return ctx.processes.wait(process, { kind: 'net', fd: call.fd, call, until: timeoutMs === undefined ? undefined : clock() + Math.max(0, timeoutMs) });
      }
    }
  } catch (error) {
    if (error instanceof SlicelabError) return done({ ok: false, errno: error.code });
    throw error;
  }
}

/**
 * A call of `container`'s that may block, tried once: its result, or undefined when it would block. A
 * datagram comes with the time it reached the socket on the container's clock, as SO_TIMESTAMP gives
 * it: what ping times its replies by, so the wake-up of the process is not counted as the network's.
 */
export function attempt(container: Container, call: NetCall): SyscallResult | undefined {
  const stack = container.net;
  try {
    switch (call.sys) {
      case 'recvfrom': {
        const datagram = stack.recv(call.fd);
        const at = datagram?.at === undefined ? undefined : datagram.at + container.clockOffset;
        return datagram && { ok: true, value: datagram.bytes.length, bytes: datagram.bytes, from: datagram.from, seq: datagram.seq, ttl: datagram.ttl, at };
      }
      case 'accept': {
        const accepted = stack.accept(call.fd);
        return accepted && { ok: true, value: accepted.fd, from: accepted.from };
      }
      case 'connect':
        return stack.connect(call.fd, { ip: call.ip, port: call.port }) && { ok: true };
      case 'send': {
        const data = call.data ?? pattern(Math.min(call.bytes ?? 0, maxSendBytes));
        const taken = stack.write(call.fd, data);
        // nothing fitted: wait until the buffer has room (an empty send returns at once)
        return taken > 0 || data.length === 0 ? { ok: true, value: taken } : undefined;
      }
      case 'recv': {
        const bytes = stack.read(call.fd, call.max ?? 65_536);
        return bytes && { ok: true, value: bytes.length, bytes };
      }
    }
  } catch (error) {
    if (error instanceof SlicelabError) return { ok: false, errno: error.code };
    throw error;
  }
}

/** what a send of a byte count carries: 'a's, as ping's and iperf's patterns are filler too */
function pattern(bytes: number): Uint8Array {
  return new Uint8Array(Math.max(0, bytes)).fill(0x61);
}
