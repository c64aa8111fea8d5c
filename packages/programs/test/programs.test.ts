/**
 * The program library against a small, real interpreter: guest memory over a plain ArrayBuffer (a bump
 * allocator hands out page-aligned regions), a fake clock that advances per step and jumps over sleeps,
 * and the system calls the programs use (spawn with a pids limit, alloc, io, sleep, exit). Like a core,
 * the interpreter hands each step a copy of the registers and throws it away when the step faults, so
 * the restartability promised in program.ts is checked here too, by injecting faults.
 */
import test from 'ava';
import { performance } from 'node:perf_hooks';
import {
  getProgram, luReference, luResidual, pageSize, pagesPerStep, programNames, programs,
  type MemoryAccess, type Program, type ProgramArgs, type Registers, type StepContext, type StepResult,
  type Syscall, type SyscallResult,
} from '../src/index.js';

/** What a core sees when a memory access cannot complete: the step runs again later. */
class TestFault extends Error {}

class TestMemory implements MemoryAccess {
  readonly bytes: Uint8Array;
  /** one byte per page, set by every write */
  readonly dirty: Uint8Array;
  /** throw a fault on every faultEvery-th access (0: never) */
  faultEvery = 0;
  faults = 0;
  private readonly view: DataView;
  private next = 0;
  private accesses = 0;

  constructor(readonly size: number) {
    this.bytes = new Uint8Array(size);
    this.dirty = new Uint8Array(Math.ceil(size / pageSize));
    this.view = new DataView(this.bytes.buffer);
  }

  alloc(bytes: number): number | undefined {
    const addr = this.next;
    const end = addr + Math.ceil(bytes / pageSize) * pageSize;
    if (end > this.size) return undefined;
    this.next = end;
    return addr;
  }

  read(addr: number, into: Uint8Array): void {
    this.check(addr, into.length, false);
    into.set(this.bytes.subarray(addr, addr + into.length));
  }

  write(addr: number, bytes: Uint8Array): void {
    this.check(addr, bytes.length, true);
    this.bytes.set(bytes, addr);
  }

  fill(addr: number, length: number, byte: number): void {
    this.check(addr, length, true);
    this.bytes.fill(byte, addr, addr + length);
  }

  readU32(addr: number): number {
    this.check(addr, 4, false);
    return this.view.getUint32(addr, true);
  }

  writeU32(addr: number, value: number): void {
    this.check(addr, 4, true);
    this.view.setUint32(addr, value, true);
  }

  readF64(addr: number): number {
    this.check(addr, 8, false);
    return this.view.getFloat64(addr, true);
  }

  writeF64(addr: number, value: number): void {
    this.check(addr, 8, true);
    this.view.setFloat64(addr, value, true);
  }

  f64(addr: number, count: number): Float64Array {
    if (addr % 8 !== 0) throw new RangeError(`f64 view at ${addr} is not 8-byte aligned`);
    this.check(addr, count * 8, true);
    return new Float64Array(this.bytes.buffer, addr, count);
  }

  private check(addr: number, length: number, write: boolean): void {
    if (!Number.isInteger(addr) || addr < 0 || length < 0 || addr + length > this.size) {
      throw new RangeError(`memory access at ${addr}+${length} outside ${this.size} bytes`);
    }
    if (this.faultEvery > 0 && ++this.accesses % this.faultEvery === 0) {
      this.faults++;
      throw new TestFault(`injected fault at ${addr}`);
    }
    if (!write) return;
    this.dirty.fill(1, Math.floor(addr / pageSize), Math.floor((addr + Math.max(length, 1) - 1) / pageSize) + 1);
  }
}

interface Proc {
  pid: number;
  program: Program;
  args: ProgramArgs;
  regs: Registers;
  ret: SyscallResult | undefined;
  state: 'runnable' | 'sleeping' | 'exited';
  wakeAt: number;
  exitCode: number | null;
  steps: number;
  sleeps: number[];
}

interface MachineOptions {
  memory?: number;
  pidsMax?: number;
  /** fake ms that pass before each step */
  stepMs?: number;
  /** fake ms that pass at every ctx.now() call (time "inside" a step) */
  callMs?: number;
  seed?: number;
}


class Machine {
  readonly mem: TestMemory;
  readonly procs: Proc[] = [];
  readonly spawns: Array<{ parent: number; program: string; args: ProgramArgs | undefined }> = [];
  readonly io: Array<{ op: string; bytes: number }> = [];
  readonly logs: string[] = [];
  readonly fsCalls: Array<Extract<Syscall, { sys: 'fs' }>> = [];
  readonly files = new Map<string, string>();
  /** how long each step of each program took (ms), faulted steps left out */
  readonly timing = new Map<string, number[]>();
  clock = 0;
  private readonly pidsMax: number;
  private readonly stepMs: number;
  private readonly callMs: number;
  private rand: number;
  private nextPid = 1;
  private turn = 0;

  constructor(options: MachineOptions = {}) {
    this.mem = new TestMemory(options.memory ?? 16 * 1024 * 1024);
    this.pidsMax = options.pidsMax ?? 64;
    this.stepMs = options.stepMs ?? 0.05;
    this.callMs = options.callMs ?? 0;
    this.rand = options.seed ?? 42;
  }

  start(name: string, args: ProgramArgs = {}): Proc {
    const program = getProgram(name);
    if (!program) throw new Error(`no program ${name}`);
    const proc: Proc = {
      pid: this.nextPid++, program, args, regs: program.init(args), ret: undefined,
      state: 'runnable', wakeAt: 0, exitCode: null, steps: 0, sleeps: [],
    };
    this.procs.push(proc);
    return proc;
  }

  get live(): Proc[] {
    return this.procs.filter((proc) => proc.state !== 'exited');
  }

  /** One step of `proc`, as a core runs it; false if it faulted (and must run again). */
  step(proc: Proc): boolean {
    this.clock += this.stepMs;
    const regs = structuredClone(proc.regs);
    const ctx: StepContext = {
      pid: proc.pid,
      args: proc.args,
      mem: this.mem,
      now: () => (this.clock += this.callMs),
      rand: () => {
        this.rand ^= this.rand << 13;
        this.rand ^= this.rand >>> 17;
        this.rand ^= this.rand << 5;
        return (this.rand >>> 0) / 0x1_0000_0000;
      },
      log: (line) => void this.logs.push(line),
      ret: proc.ret,
    };
    let result: StepResult;
    const began = performance.now();
    try {
      result = proc.program.step(regs, ctx);
    } catch (error) {
      if (error instanceof TestFault) return false;
      throw error;
    }
    this.record(proc.program.name, performance.now() - began);
    proc.regs = regs;
    proc.steps++;
    proc.ret = result === undefined ? undefined : this.syscall(proc, result);
    return true;
  }

  /** Steps the runnable processes round robin; with none runnable, the clock jumps to the next wake-up. */
  run(steps: number, until: () => boolean = () => false): void {
    for (let done = 0; done < steps && !until(); done++) {
      const proc = this.pick();
      if (!proc) return;
      this.step(proc);
    }
  }

  metrics(proc: Proc): Record<string, number> {
    return proc.regs.metrics as Record<string, number>;
  }

  private pick(): Proc | undefined {
    for (;;) {
      const runnable = this.procs.filter((proc) => proc.state === 'runnable');
      if (runnable.length > 0) return runnable[this.turn++ % runnable.length];
      const sleeping = this.procs.filter((proc) => proc.state === 'sleeping');
      if (sleeping.length === 0) return undefined;
      this.clock = Math.max(this.clock, Math.min(...sleeping.map((proc) => proc.wakeAt)));
      for (const proc of sleeping) if (proc.wakeAt <= this.clock) proc.state = 'runnable';
    }
  }

  private syscall(proc: Proc, call: NonNullable<StepResult>): SyscallResult | undefined {
    switch (call.sys) {
      case 'yield':
        return undefined;
      case 'exit':
        proc.state = 'exited';
        proc.exitCode = call.code;
        return { ok: true };
      case 'sleep':
        proc.sleeps.push(call.ms);
        proc.state = 'sleeping';
        proc.wakeAt = this.clock + call.ms;
        return { ok: true };
      case 'spawn': {
        this.spawns.push({ parent: proc.pid, program: call.program, args: call.args });
        if (this.live.length >= this.pidsMax) return { ok: false, errno: 'EAGAIN' };
        return { ok: true, value: this.start(call.program, call.args ?? {}).pid };
      }
      case 'alloc': {
        const addr = this.mem.alloc(call.bytes);
        return addr === undefined ? { ok: false, errno: 'ENOMEM' } : { ok: true, value: addr };
      }
      case 'free':
        return { ok: true };
      case 'io':
        this.io.push({ op: call.op, bytes: call.bytes });
        return { ok: true };
      case 'fs': {
        // a flat table of files is enough to drive the program; the rootfs itself is tested in the host
        this.fsCalls.push(call);
        if (call.op === 'write') this.files.set(call.path, call.data ?? '');
        if (call.op !== 'read') return { ok: true };
        const data = this.files.get(call.path);
        return data === undefined ? { ok: false, errno: 'ENOENT' } : { ok: true, data };
      }
    }
  }

  private record(name: string, ms: number): void {
    const times = this.timing.get(name) ?? [];
    times.push(ms);
    this.timing.set(name, times);
  }
}

/** "avg, p99 and max" of step times in µs, with the number of steps. */
function stepSummary(times: number[]): { avgMs: number; text: string } {
  const sorted = [...times].sort((a, b) => a - b);
  const avgMs = sorted.reduce((sum, ms) => sum + ms, 0) / sorted.length;
  const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
  const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
  return { avgMs, text: `${sorted.length} steps, avg ${us(avgMs)}, p99 ${us(p99)}, max ${us(sorted.at(-1)!)}` };
}

function readF64s(mem: TestMemory, addr: number, count: number): Float64Array {
  return new Float64Array(mem.bytes.buffer.slice(addr, addr + count * 8));
}

const allNames = ['cpu-burn', 'crasher', 'echo', 'fork-bomb', 'fork-exit', 'fs', 'heartbeat', 'io-stress', 'iperf', 'iperf-udp', 'lu', 'mem-writer', 'net-heartbeat', 'ping', 'sleeper'];
/** the args a program cannot do without: the address it talks to */
const needed: Record<string, ProgramArgs> = { ping: { target: '10.0.0.2' }, 'net-heartbeat': { peer: '10.0.0.2' } };

test('the registry holds every program under its own name', (t) => {
  t.deepEqual(programNames(), allNames);
  for (const [name, program] of programs) {
    t.is(program.name, name);
    t.is(getProgram(name), program);
    t.false(program.description.includes('\n'));
  }
  t.is(getProgram('no-such-program'), undefined);
});

test('default registers are plain data that survive a msgpack-like round trip', (t) => {
  for (const name of allNames) {
    const regs = getProgram(name)!.init(needed[name] ?? {});
    t.deepEqual(JSON.parse(JSON.stringify(regs)), regs, name);
    t.is(typeof regs.metrics, 'object', name);
  }
});

test('args arrive as strings or numbers and are parsed', (t) => {
  t.is(getProgram('mem-writer')!.init({ wss: '1MiB', rate: '250', pattern: 'random' }).wssPages, 256);
  t.is(getProgram('mem-writer')!.init({ wss: 8192, rate: 2.5 }).rate, 2.5);
  t.is(getProgram('lu')!.init({ n: '16' }).n, 16);
  t.is(getProgram('cpu-burn')!.init({ procs: 3 }).toSpawn, 2);
  t.is(getProgram('heartbeat')!.init({ interval: '500us' }).intervalMs, 0.5);
  t.is(getProgram('sleeper')!.init({ run: '1s', sleep: '2s' }).sleepMs, 2000);
  t.is(getProgram('io-stress')!.init({ bytes: '4K', op: 'mixed' }).bytes, 4096);
});

const badArgs: Array<[string, ProgramArgs, string | RegExp]> = [
  ['mem-writer', { wss: 'lots' }, 'mem-writer: wss: not a size: "lots"'],
  ['mem-writer', { wss: '100' }, /^mem-writer: wss: at least 4096 bytes/],
  ['mem-writer', { wss: -5 }, /^mem-writer: wss: /],
  ['mem-writer', { wss: 'a\nb' }, /^mem-writer: wss: not a size/],
  ['mem-writer', { rate: 'fast' }, /^mem-writer: rate: pages per second/],
  ['mem-writer', { rate: -1 }, /^mem-writer: rate: /],
  ['mem-writer', { pattern: 'zigzag' }, 'mem-writer: pattern: one of seq, random, got "zigzag"'],
  ['mem-writer', { size: '1MiB' }, 'mem-writer: unknown arg "size" (accepted: wss, rate, pattern, fill)'],
  ['cpu-burn', { procs: 0 }, /^cpu-burn: procs: an integer from 1 to/],
  ['cpu-burn', { procs: 'two' }, /^cpu-burn: procs: /],
  ['cpu-burn', { procs: 1.5 }, /^cpu-burn: procs: /],
  ['cpu-burn', { threads: 2 }, 'cpu-burn: unknown arg "threads" (accepted: procs)'],
  ['io-stress', { op: 'erase' }, 'io-stress: op: one of write, read, mixed, got "erase"'],
  ['io-stress', { bytes: '0' }, /^io-stress: bytes: at least 1 bytes/],
  ['io-stress', { bytes: '1Q' }, /^io-stress: bytes: unknown size unit/],
  ['io-stress', { size: 1 }, /^io-stress: unknown arg "size" \(accepted: op, bytes\)/],
  ['fork-bomb', { depth: 3 }, 'fork-bomb: unknown arg "depth" (takes no args)'],
  ['sleeper', { run: '20' }, /^sleeper: run: duration "20" needs a unit/],
  ['sleeper', { sleep: 50 }, /^sleeper: sleep: duration 50 needs a unit/],
  ['sleeper', { run: '0ms' }, /^sleeper: run: must be more than zero/],
  ['sleeper', { burst: '1ms' }, /^sleeper: unknown arg "burst" \(accepted: run, sleep\)/],
  ['lu', { n: 7 }, 'lu: n: an integer from 8 to 512, got 7'],
  ['lu', { n: '513' }, 'lu: n: an integer from 8 to 512, got "513"'],
  ['lu', { n: 'big' }, /^lu: n: /],
  ['lu', { n: 9.5 }, /^lu: n: /],
  ['lu', { size: 9 }, /^lu: unknown arg "size" \(accepted: n\)/],
  ['heartbeat', { interval: '0ms' }, /^heartbeat: interval: must be more than zero/],
  ['heartbeat', { interval: '1' }, /^heartbeat: interval: duration "1" needs a unit/],
  ['heartbeat', { period: '1ms' }, /^heartbeat: unknown arg "period" \(accepted: interval\)/],
  ['fs', { op: 'chmod' }, 'fs: op: one of list, read, write, append, mkdir, remove, got "chmod"'],
  ['fs', { path: 'etc/hostname' }, 'fs: path: an absolute path, got "etc/hostname"'],
  ['fs', { op: 'read', path: '/x', data: 'y' }, 'fs: data: only for op=write or op=append'],
  ['fs', { op: 'write', path: '/x', data: 'y'.repeat(64 * 1024 + 1) }, 'fs: data: at most 65536 characters, got 65537'],
  ['fs', { mode: '600' }, /^fs: unknown arg "mode" \(accepted: op, path, data\)/],
  ['ping', {}, 'ping: target: an IPv4 address, got ""'],
  ['ping', { target: '10.0.0.300' }, 'ping: target: an IPv4 address, got "10.0.0.300"'],
  ['ping', { target: '10.0.0.1', size: 9000 }, /^ping: size: an integer from 0 to 1472/],
  ['iperf', { mode: 'client' }, 'iperf: target: an IPv4 address, got ""'],
  ['iperf', { mode: 'both' }, 'iperf: mode: one of server, client, got "both"'],
  ['iperf', { mode: 'client', target: '10.0.0.1', parallel: 0 }, /^iperf: parallel: an integer from 1 to 128/],
  ['echo', { mode: 'client', target: 'db' }, 'echo: target: an IPv4 address, got "db"'],
  ['net-heartbeat', {}, 'net-heartbeat: peer: an IPv4 address, got ""'],
  ['iperf-udp', { mode: 'client', target: '10.0.0.2', bitrate: 'fast' }, /^iperf-udp: bitrate: bits per second/],
  ['iperf-udp', { mode: 'client', target: '10.0.0.2', len: 2000 }, /^iperf-udp: len: an integer from 12 to 1472/],
];

test('init refuses bad args with one line naming the program and the arg', (t) => {
  for (const [name, args, expected] of badArgs) {
    const error = t.throws(() => getProgram(name)!.init(args), undefined, `${name} ${JSON.stringify(args)}`);
    if (!error) continue;
    t.false(/[\n\r]/.test(error.message), error.message);
    if (typeof expected === 'string') t.is(error.message, expected);
    else t.regex(error.message, expected);
  }
});

test('every program takes its defaults', (t) => {
  for (const name of allNames) t.notThrows(() => getProgram(name)!.init(needed[name] ?? {}), name);
});

test('lu: after a unit, memory holds L and U whose product is the original matrix (n = 16)', (t) => {
  const machine = new Machine();
  const proc = machine.start('lu', { n: 16 });
  machine.run(10_000, () => machine.metrics(proc).units >= 1);
  t.is(machine.metrics(proc).units, 1);
  const factors = readF64s(machine.mem, proc.regs.addr as number, 16 * 16);
  const reference = luReference(16, 0);
  t.deepEqual(factors, reference.factors);
  t.true(luResidual(reference.original, factors, 16) < 1e-12);
  t.true(luResidual(reference.original, reference.original, 16) > 0.1, 'the residual check is not vacuous');

  machine.run(10_000, () => machine.metrics(proc).units >= 2);
  const second = luReference(16, 1);
  t.deepEqual(readF64s(machine.mem, proc.regs.addr as number, 16 * 16), second.factors);
  t.notDeepEqual(second.original, reference.original, 'each unit has its own matrix');
  t.true(luResidual(second.original, second.factors, 16) < 1e-12);
  t.true(machine.metrics(proc).unitsPerSecond > 0);
});

test('lu: one pivot column per step at the default order, and the same result for n = 512 in row blocks', (t) => {
  const small = new Machine();
  const proc96 = small.start('lu');
  small.run(10_000, () => small.metrics(proc96).units >= 1);
  // alloc, its result, one fill step, then one step for each of the 95 pivot columns
  t.is(proc96.steps, 2 + 1 + 95);
  t.true(luResidual(luReference(96, 0).original, readF64s(small.mem, proc96.regs.addr as number, 96 * 96), 96) < 1e-9);

  const big = new Machine({ memory: 4 * 1024 * 1024 });
  const proc512 = big.start('lu', { n: 512 });
  big.run(100_000, () => big.metrics(proc512).units >= 1);
  t.is(big.metrics(proc512).units, 1);
  t.true(proc512.steps > 511, 'big pivot columns are split over several steps');
  t.deepEqual(readF64s(big.mem, proc512.regs.addr as number, 512 * 512), luReference(512, 0).factors);
  t.log(`lu n=512: ${stepSummary(big.timing.get('lu')!).text}`);
});

test('lu: a step that faults runs again from its registers and the factors stay right', (t) => {
  const machine = new Machine();
  machine.mem.faultEvery = 7;
  const proc = machine.start('lu', { n: 40 });
  machine.run(100_000, () => machine.metrics(proc).units >= 1);
  t.true(machine.mem.faults > 10);
  machine.mem.faultEvery = 0;
  t.deepEqual(readF64s(machine.mem, proc.regs.addr as number, 40 * 40), luReference(40, 0).factors);
});

test('lu: unitsPerSecond is units over the seconds since the first unit began', (t) => {
  const machine = new Machine({ stepMs: 1 });
  const proc = machine.start('lu', { n: 8 });
  machine.run(1000, () => machine.metrics(proc).units >= 3);
  // per unit: one fill step and 7 pivot columns = 8 steps of 1 ms; the clock started at the alloc result
  t.is(machine.metrics(proc).unitsPerSecond, 3 / 0.024);
});

test('lu: ENOMEM on alloc exits with code 12', (t) => {
  const machine = new Machine({ memory: 64 * 1024 });
  const proc = machine.start('lu', { n: 512 });
  machine.run(10);
  t.is(proc.state, 'exited');
  t.is(proc.exitCode, 12);
  t.regex(machine.logs[0]!, /ENOMEM/);
});

/** The stamp page p holds after `written` sequential writes over `pages` pages: the last write to it. */
function expectedStamp(page: number, written: number, pages: number): number {
  if (page >= written) return 0;
  return page + 1 + Math.floor((written - 1 - page) / pages) * pages;
}

test('mem-writer: keeps to its rate under the fake clock and stamps every page it writes', (t) => {
  const machine = new Machine({ stepMs: 0.01 });
  const proc = machine.start('mem-writer', { wss: '1MiB', rate: 1000 });
  machine.run(3);
  const startMs = proc.regs.startMs as number;
  while (machine.clock - startMs < 2000) {
    machine.run(1);
    const due = Math.floor((1000 * (machine.clock - startMs)) / 1000);
    t.true(machine.metrics(proc).pagesWritten <= due, 'never ahead of the rate');
  }
  const written = machine.metrics(proc).pagesWritten;
  t.true(written >= 1990 && written <= 2000, `wrote ${written} pages in 2 s at 1000 pages/s`);
  t.true(proc.sleeps.length > 100);
  t.true(proc.sleeps.every((ms) => ms >= 1));
  t.is(machine.metrics(proc).wssPages, 256);
  t.is(machine.metrics(proc).passes, Math.floor(written / 256));
  const addr = proc.regs.addr as number;
  for (let page = 0; page < 256; page++) {
    t.is(machine.mem.readU32(addr + page * pageSize), expectedStamp(page, written, 256), `page ${page}`);
  }
});

test('mem-writer: catches up at most 64 pages per step after a pause, then sleeps', (t) => {
  const machine = new Machine({ stepMs: 0.01 });
  const proc = machine.start('mem-writer', { wss: '1MiB', rate: 10_000 });
  machine.run(3);
  machine.clock += 100;
  const before = machine.metrics(proc).pagesWritten;
  machine.run(1);
  t.is(machine.metrics(proc).pagesWritten - before, pagesPerStep);
  t.is(proc.ret, undefined, 'behind: keeps running');
});

test('mem-writer: flat out, 64 pages a step, full passes counted, every page dirty', (t) => {
  const machine = new Machine();
  const proc = machine.start('mem-writer', { wss: '256KiB' });
  machine.run(2 + 10);
  t.is(machine.metrics(proc).pagesWritten, 640);
  t.is(machine.metrics(proc).passes, 10);
  t.is(machine.mem.dirty.reduce((sum, page) => sum + page, 0), 64);
  t.deepEqual(proc.sleeps, []);
});

test('mem-writer: random pages are reproducible, and faulted steps repeat exactly', (t) => {
  const run = (faultEvery: number): Uint8Array => {
    const machine = new Machine({ seed: 7 });
    machine.mem.faultEvery = faultEvery;
    const proc = machine.start('mem-writer', { wss: '1MiB', pattern: 'random' });
    machine.run(10_000, () => machine.metrics(proc).pagesWritten >= 2000);
    t.is(machine.metrics(proc).pagesWritten, 2048);
    if (faultEvery > 0) t.true(machine.mem.faults > 10);
    return machine.mem.bytes.slice(0, 1024 * 1024);
  };
  const clean = run(0);
  t.deepEqual(run(97), clean);
  const stamps = new Set<number>();
  for (let page = 0; page < 256; page++) stamps.add(new DataView(clean.buffer).getUint32(page * pageSize, true));
  t.true(stamps.size > 200, 'random writes reach most pages');
  t.true([...stamps].every((stamp) => stamp <= 2048));
});

test('mem-writer: ENOMEM on alloc exits with code 12', (t) => {
  const machine = new Machine({ memory: 1024 * 1024 });
  const proc = machine.start('mem-writer');
  machine.run(10);
  t.is(proc.exitCode, 12);
});

test('fork-bomb: forks up to pids.max, then counts EAGAIN and keeps trying', (t) => {
  const machine = new Machine({ pidsMax: 8 });
  machine.start('fork-bomb');
  machine.run(400);
  t.is(machine.live.length, 8);
  const total = (key: string) => machine.procs.reduce((sum, proc) => sum + machine.metrics(proc)[key], 0);
  t.is(total('forks'), 7);
  t.true(total('eagain') > 300);
  t.is(total('errors'), 0);
  t.true(machine.spawns.every((spawn) => spawn.program === 'fork-bomb'));
});

test('heartbeat: records a pause when the clock jumps, and stamps its page', (t) => {
  const machine = new Machine({ stepMs: 0.01 });
  const proc = machine.start('heartbeat', { interval: '1ms' });
  machine.run(1 + 10);
  t.is(machine.metrics(proc).stamps, 10);
  t.is(machine.metrics(proc).pauses, 0);
  t.true(machine.metrics(proc).maxGapMs < 1.1);
  machine.clock += 500;
  machine.run(5);
  const metrics = machine.metrics(proc);
  t.is(metrics.pauses, 1);
  t.true(metrics.maxGapMs > 500 && metrics.maxGapMs < 502);
  t.true(Math.abs(metrics.pausedMs - 500) < 1, `pausedMs ${metrics.pausedMs}`);
  t.is(machine.mem.readF64(proc.regs.addr as number), proc.regs.lastMs as number);
  t.true(proc.sleeps.every((ms) => ms === 1));
});

test('cpu-burn: spawns procs − 1 single-process children, then burns', (t) => {
  const machine = new Machine();
  const parent = machine.start('cpu-burn', { procs: 4 });
  machine.run(40);
  t.deepEqual(machine.spawns, [1, 2, 3].map(() => ({ parent: parent.pid, program: 'cpu-burn', args: { procs: 1 } })));
  t.is(machine.procs.length, 4);
  t.is(machine.metrics(parent).children, 3);
  for (const proc of machine.procs) t.true(machine.metrics(proc).loops > 0);
});

test('cpu-burn: a refused fork is skipped', (t) => {
  const machine = new Machine({ pidsMax: 2 });
  const parent = machine.start('cpu-burn', { procs: 4 });
  machine.run(20);
  t.is(machine.spawns.length, 3);
  t.is(machine.metrics(parent).children, 1);
  t.is(machine.metrics(parent).spawnFailed, 2);
  t.true(machine.metrics(parent).loops > 0);
});

test('io-stress: mixed alternates writes and reads and counts completed requests', (t) => {
  const machine = new Machine();
  const proc = machine.start('io-stress', { op: 'mixed', bytes: '4K' });
  machine.run(6);
  t.deepEqual(machine.io.map((request) => request.op), ['write', 'read', 'write', 'read', 'write', 'read']);
  t.is(machine.metrics(proc).requests, 5, 'the sixth completes at the next step');
  t.is(machine.metrics(proc).bytes, 5 * 4096);
});

test('sleeper: runs `run` ms inside its steps, then sleeps `sleep` ms', (t) => {
  const machine = new Machine({ stepMs: 0.25, callMs: 0.5 });
  const proc = machine.start('sleeper', { run: '2ms', sleep: '5ms' });
  machine.run(40);
  const metrics = machine.metrics(proc);
  // each step counts the 0.5 ms its second ctx.now() call advanced: 4 steps per burst, 10 bursts
  t.is(metrics.wakeups, 9);
  t.is(metrics.ranMs, 20);
  t.deepEqual(proc.sleeps, new Array(10).fill(5));
});

test('fs: one file call, what it read logged line by line, exit 0; a failed call logged with its errno, exit 1', (t) => {
  const machine = new Machine();
  const write = machine.start('fs', { op: 'write', path: '/tmp/notes', data: 'one\ntwo\n' });
  machine.run(10);
  t.is(write.exitCode, 0);
  t.is(machine.metrics(write).bytes, 8);
  const read = machine.start('fs', { op: 'read', path: '/tmp/notes' });
  machine.run(10);
  t.is(read.exitCode, 0);
  t.is(machine.metrics(read).bytes, 8);
  t.deepEqual(machine.logs, ['one', 'two']);
  const missing = machine.start('fs', { op: 'read', path: '/nowhere' });
  machine.run(10);
  t.is(missing.exitCode, 1);
  t.is(machine.logs.at(-1), 'fs: /nowhere: ENOENT');
  t.deepEqual(machine.fsCalls.map((c) => `${c.op} ${c.path}`), ['write /tmp/notes', 'read /tmp/notes', 'read /nowhere']);
});

test('each step is short at default args', (t) => {
  const summary: string[] = [];
  // fork-exit, crasher and fs end by design after a few steps; the network's programs need sockets, which
  // this machine has not (test/network.test.ts runs them on real hosts)
  const networked = ['echo', 'iperf', 'iperf-udp', 'net-heartbeat', 'ping'];
  for (const name of allNames.filter((n) => n !== 'fork-exit' && n !== 'crasher' && n !== 'fs' && !networked.includes(n))) {
    const machine = new Machine({ memory: 80 * 1024 * 1024, pidsMax: 32 });
    machine.start(name);
    machine.run(50);
    machine.timing.clear();
    machine.run(name === 'lu' ? 2000 : 1000);
    const { avgMs, text } = stepSummary(machine.timing.get(name)!);
    summary.push(`${name}: ${text}`);
    t.true(avgMs < 2, `${name} averages ${avgMs} ms per step`);
  }
  t.log(`after 50 warm-up steps:\n${summary.join('\n')}`);
});
