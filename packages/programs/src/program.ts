/**
 * The contract between a core and a program: the only code that runs inside the emulation.
 *
 * A process is data: a program name, its registers (a plain msgpack-able object) and pids. A core calls
 * `step(regs, ctx)` again and again until its quantum is used up or the step returns a system call.
 * Every step must be short (well under a millisecond) and restartable. A memory access can fault (a
 * first touch over `memory.max`, later a page not yet migrated): the step stops at that access, the
 * process keeps its registers exactly as the step left them, and the step runs again later. So a step
 * either records its progress in its registers as it goes (mem-writer bumps its counter after each page),
 * or touches all the memory it will write before it changes anything (lu takes its `f64` view first).
 *
 * Everything that needs the host (fork, sleep, disk, memory allocation, exit) is a system call: the step
 * returns it, the process leaves the core, the host carries it out, and the result is `ctx.ret` in the
 * process's next step.
 */

/** A program's arguments, from `container run --arg k=v` (values arrive as strings or numbers). */
export type ProgramArgs = Record<string, string | number>;

/** A process's registers: plain data only (numbers, strings, booleans, arrays, objects). */
export type Registers = Record<string, unknown>;

/** The container's guest memory as a program sees it. Addresses come from the `alloc` system call. */
export interface MemoryAccess {
  /** bytes of address space */
  readonly size: number;
  /** copies `into.length` bytes at `addr` into `into` (a program's own buffer: reading allocates nothing) */
  read(addr: number, into: Uint8Array): void;
  write(addr: number, bytes: Uint8Array): void;
  fill(addr: number, length: number, byte: number): void;
  readU32(addr: number): number;
  writeU32(addr: number, value: number): void;
  readF64(addr: number): number;
  writeF64(addr: number, value: number): void;
  /**
   * A Float64Array over `count` doubles at `addr` (8-byte aligned), valid only during this step; its pages
   * count as written (dirty, and charged to memory.current) when the view is made.
   */
  f64(addr: number, count: number): Float64Array;
}

export interface StepContext {
  /** the process's pid in its container's pid namespace */
  readonly pid: number;
  readonly args: ProgramArgs;
  readonly mem: MemoryAccess;
  /** monotonic milliseconds (fractional), the host's clock */
  now(): number;
  /** a seeded pseudo-random number in [0, 1): the same seed replays the same run */
  rand(): number;
  /** a line for the container's log */
  log(message: string): void;
  /** the result of the system call the previous step returned; undefined after a plain yield */
  readonly ret: SyscallResult | undefined;
}

export type Syscall =
  /** give up the core; runnable again at once */
  | { sys: 'yield' }
  | { sys: 'exit'; code: number }
  | { sys: 'sleep'; ms: number }
  /** fork: a new process of `program` in the same container; ret.value is its pid, or errno EAGAIN at pids.max */
  | { sys: 'spawn'; program: string; args?: ProgramArgs }
  /** reserve `bytes` of address space; ret.value is the address (page aligned), or errno ENOMEM */
  | { sys: 'alloc'; bytes: number }
  /** give back a region from alloc: its pages are uncharged and read as zero again */
  | { sys: 'free'; addr: number }
  /** a disk request on the host's virtual disk; the process sleeps until it completes */
  | { sys: 'io'; op: 'read' | 'write'; bytes: number }
  /**
   * the container's own root filesystem (mount namespace): read gives ret.data, list the names in a
   * directory, one per line; errno ENOENT, EEXIST, EISDIR, ENOTDIR, ENOTEMPTY, ENOSPC
   */
  | { sys: 'fs'; op: FsOp; path: string; data?: string }
  /**
   * a socket in the container's net namespace, shared by its processes: ret.value is its descriptor.
   * `dgram` is UDP; `icmp` is a ping socket (Linux's ICMP datagram socket: the stack writes the echo header)
   */
  | { sys: 'socket'; kind: SocketKind }
  /** a local port (0: any free one); errno EADDRINUSE, EINVAL, EBADF */
  | { sys: 'bind'; fd: number; port: number }
  /**
   * one datagram to ip:port (`port` 0 on a ping socket); `data`, or `bytes` of a pattern when no data is
   * given; `seq`: the echo's sequence number on a ping socket. ret.value is the bytes sent
   */
  | { sys: 'sendto'; fd: number; ip: string; port: number; data?: Uint8Array; bytes?: number; seq?: number }
  /**
   * waits for one datagram, at most `timeoutMs` (absent: for ever): ret.bytes, ret.from, and on a ping
   * socket ret.seq and ret.ttl; errno EAGAIN when the time ran out, EHOSTUNREACH when an earlier send
   * found no host
   */
  | { sys: 'recvfrom'; fd: number; timeoutMs?: number }
  /** a stream socket (TCP) takes connections on its port: accept gives them as new sockets */
  | { sys: 'listen'; fd: number; backlog?: number }
  /** waits for a connection: ret.value is its socket, ret.from the peer; errno EAGAIN when `timeoutMs` ran out */
  | { sys: 'accept'; fd: number; timeoutMs?: number }
  /** connects a stream socket and waits for the handshake: errno ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH */
  | { sys: 'connect'; fd: number; ip: string; port: number; timeoutMs?: number }
  /** writes `data` (or `bytes` of a pattern) to a stream; waits until some fits; ret.value is how much was taken. EPIPE, ECONNRESET */
  | { sys: 'send'; fd: number; data?: Uint8Array; bytes?: number }
  /** reads up to `max` bytes of a stream (ret.bytes); waits until some came; an empty read is the end of the stream */
  | { sys: 'recv'; fd: number; max?: number; timeoutMs?: number }
  /** a stream's protocol figures, as tcp_info gives them: ret.info (retransmits, cwnd, srtt, …) */
  | { sys: 'tcpinfo'; fd: number }
  | { sys: 'close'; fd: number };

export type SocketKind = 'dgram' | 'icmp' | 'stream';

export const fsOps = ['list', 'read', 'write', 'append', 'mkdir', 'remove'] as const;
export type FsOp = (typeof fsOps)[number];

export type SyscallResult =
  | {
    ok: true; value?: number; data?: string; bytes?: Uint8Array; from?: { ip: string; port: number }; seq?: number; ttl?: number;
    /** recvfrom: when the datagram reached the socket, on ctx.now()'s clock (SO_TIMESTAMP) */
    at?: number;
    info?: Record<string, number>;
  }
  | { ok: false; errno: string };

/** undefined: keep going (the core runs the next step while the quantum lasts) */
export type StepResult = Syscall | undefined;

export interface Program {
  readonly name: string;
  /** one line for `--help` and errors */
  readonly description: string;
  /** the initial registers; throws an Error with a one-line message for bad args */
  init(args: ProgramArgs): Registers;
  step(regs: Registers, ctx: StepContext): StepResult;
}

/**
 * By convention a program keeps what it wants to report (pages written, work units, pauses seen) in
 * `regs.metrics`; the host shows these with the process (`container ps --json`).
 */
export type Metrics = Record<string, number>;

export const pageSize = 4096;
