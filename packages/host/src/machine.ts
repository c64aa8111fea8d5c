/**
 * The inside of a host: its cores, CPU scheduler, virtual disk and containers. It carries out the system
 * calls processes return (fork, sleep, alloc, free, disk I/O, exit), enforces the cgroup limits (OOM
 * kills inside the container only, pids.max, memory.high throttling, freezing) and answers for every
 * container with the kernel's file names and units. The bus side (host.ts) only calls into this.
 *
 * Division of labor:
 *   Machine: containers and processes, system calls, cgroup files
 *   Scheduler: which process runs on which core, for how long (scheduler/)
 *   Core: runs steps (cores.ts, core-worker.ts)
 *   Disk: the virtual disk (disk.ts)
 */
import { SlicelabError, type ContainerInfo, type DiskSpec, type Logger, type ProcessInfo } from '@slicelab/protocol';
import { getProgram, pageSize, programNames, type FsOp, type ProgramArgs, type SyscallResult } from '@slicelab/programs';
import { cpuWeightRead, defaultLimits, readCgroupFile, writeCgroupFile, cgroupFiles, type CgroupCounters, type CgroupLimits } from './cgroup.js';
import { Container, exitCodes, type ContainerSpec, type Process } from './container.js';
import type { QuantumDone } from './core-protocol.js';
import { Core } from './cores.js';
import { Disk, IoGroup } from './disk.js';
import { GuestMemory, collectGarbage } from './memory.js';
import { UserNamespace } from './namespaces.js';
import { Bandwidth } from './scheduler/bandwidth.js';
import { CreditAccount, t2Sizes, type CreditMode } from './scheduler/credit.js';
import { policyNames, type PolicyName } from './scheduler/policy.js';
import { SchedGroup, Scheduler, type Runnable, type TraceEvent } from './scheduler/scheduler.js';

export interface MachineOptions {
  /** the host's name, reported with its containers */
  host: string;
  cores: number;
  /** bytes of host memory: each container's address space */
  memory: number;
  quantumMs: number;
  policy: PolicyName;
  seed: number;
  /** how much faster than real time the T2 credit clock runs */
  creditSpeed: number;
  disk: DiskSpec;
  log?: Logger;
}

export interface RunSpec extends ContainerSpec {
  /** cgroup files to write before the first process starts: {"cpu.weight": "200", "memory.max": "256M"} */
  cgroup?: Record<string, string>;
}

/** slicelab's own cgroup files for the credit scheduler; everything else is the kernel's. */
const creditFiles = {
  'cpu.credit.size': 'T2 size under the credit scheduler: t2.nano, t2.micro, t2.small, t2.medium',
  'cpu.credit.mode': 'standard (held to baseline at zero balance) or unlimited (surplus credits, charged when not repaid)',
  'cpu.credit.stat': 'balance launch earned spent surplus charged, in credits (read-only)',
} as const;

interface CreditSetting {
  size: string;
  mode: CreditMode;
}

const clock = () => performance.timeOrigin + performance.now();

export class Machine {
  readonly cores: Core[];
  readonly scheduler: Scheduler;
  readonly disk: Disk;
  private readonly containers = new Map<string, Container>();
  private readonly processes = new Map<number, Process>();
  private readonly credit = new Map<Container, CreditSetting>();
  private nextGpid = 100;
  private nextContainer = 1;
  private readonly samples = new Map<Container, { at: number; usage: number; percent: number }>();
  /** each container's stall counters at the last pressure tick */
  private readonly lastPressure = new Map<Container, { cpu: number; io: number }>();
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(readonly options: MachineOptions) {
    this.cores = Array.from({ length: options.cores }, (_, i) => new Core(i));
    this.disk = new Disk(options.disk, clock);
    this.scheduler = new Scheduler(this.cores, { quantumMs: options.quantumMs, policy: options.policy, seed: options.seed, now: clock }, {
      task: (process, quantumMs) => this.task(process as Process, quantumMs),
      done: (process, report) => this.quantumDone(process as Process, report),
    });
    this.timers.push(setInterval(() => this.sample(), 1000), setInterval(() => this.tickPressure(), 2000));
  }

  get policy(): PolicyName {
    return this.scheduler.policy.name;
  }

  /** Processes ready to run or running: what the load average counts. */
  get runnable(): number {
    let count = 0;
    for (const container of this.containers.values()) count += container.group.queue.length + container.group.running;
    return count;
  }

  get containerCount(): number {
    return this.containers.size;
  }

  /** Creates a container and starts its first process; on any error nothing is left behind. */
  run(spec: RunSpec): ContainerInfo {
    if (this.containers.has(spec.name)) throw new SlicelabError('EEXIST', `a container named "${spec.name}" exists on this host`);
    const program = this.program(spec.program);
    let limits = defaultLimits();
    for (const [file, value] of Object.entries(spec.cgroup ?? {})) {
      if (file in creditFiles) continue;
      const result = writeCgroupFile(file, value, limits, this.options.cores);
      limits = result.limits;
    }
    const creditSetting = this.parseCredit(spec.cgroup ?? {});
    const initialRegs = this.init(program.name, spec.args);
    const id = this.nextContainer++;
    const group = new SchedGroup(id, limits.cpuWeight);
    const io = new IoGroup(id, limits.ioWeight);
    const memory = GuestMemory.create(this.options.memory);
    // each container gets its own range of host uids, so root in one is nobody in another
    const userns = new UserNamespace([{ inside: 0, outside: 100_000 + 65_536 * id, length: 65_536 }]);
    const container = new Container(id, { name: spec.name, program: program.name, args: spec.args, hostname: spec.hostname }, userns, memory, group, io, limits);
    this.credit.set(container, creditSetting);
    for (const core of this.cores) core.attach(id, memory.shared);
    this.containers.set(spec.name, container);
    this.scheduler.add(group);
    this.disk.add(io);
    this.apply(container, limits);
    this.startProcess(container, program.name, spec.args, 0, initialRegs);
    this.options.log?.info({ container: spec.name, program: program.name }, 'container started');
    return this.info(container);
  }

  /** A new process in the container's namespaces (like `docker exec`); returns its namespace pid. */
  exec(name: string, programName: string, args: ProgramArgs): ProcessInfo {
    const container = this.running(name);
    const program = this.program(programName);
    if (!this.checkPids(container)) throw new SlicelabError('EAGAIN', `container "${name}" is at pids.max (${container.limits.pidsMax})`);
    const process = this.startProcess(container, program.name, args, 1, this.init(program.name, args));
    return this.processInfo(process);
  }

  /** Docker's stop: every process ends (SIGTERM's exit code); the container stays, `start` runs it again. */
  stop(name: string): ContainerInfo {
    const container = this.get(name);
    if (container.state === 'running') this.end(container, exitCodes.sigterm, 'stopped');
    return this.info(container);
  }

  start(name: string): ContainerInfo {
    const container = this.get(name);
    if (container.state === 'running') throw new SlicelabError('EBUSY', `container "${name}" is already running`);
    const regs = this.init(container.spec.program, container.spec.args);
    container.state = 'running';
    container.exitCode = undefined;
    container.nextPid = 1;
    this.scheduler.add(container.group);
    this.startProcess(container, container.spec.program, container.spec.args, 0, regs);
    return this.info(container);
  }

  /** SIGKILL to every process (cgroup.kill). */
  kill(name: string): ContainerInfo {
    const container = this.get(name);
    if (container.state !== 'running') throw new SlicelabError('EINVAL', `container "${name}" is not running`);
    this.end(container, exitCodes.sigkill, 'killed');
    return this.info(container);
  }

  rm(name: string, force = false): void {
    const container = this.get(name);
    if (container.state === 'running') {
      if (!force) throw new SlicelabError('EBUSY', `container "${name}" is running; stop or kill it first, or remove it with --force`);
      this.end(container, exitCodes.sigkill, 'removed');
    }
    this.scheduler.remove(container.group);
    this.disk.remove(container.io);
    this.containers.delete(name);
    // once every core has let go (after the killed processes' last reports), no isolate holds the memory
    let holding = this.cores.length;
    for (const core of this.cores) core.detach(container.id, () => --holding === 0 && collectGarbage());
    this.credit.delete(container);
    this.samples.delete(container);
    this.lastPressure.delete(container);
  }

  ps(): ContainerInfo[] {
    return [...this.containers.values()].map((c) => this.info(c));
  }

  inspect(name: string): ContainerInfo {
    return this.info(this.get(name));
  }

  /** The container's log: what its processes wrote with ctx.log, crashes and OOM kills; the last 200 lines. */
  logs(name: string): string[] {
    return [...this.get(name).logs];
  }

  /** Every cgroup file of a container, or one. */
  cgroupGet(name: string, file?: string): Record<string, string> {
    const container = this.get(name);
    const files = file ? [file] : [...Object.keys(cgroupFiles).filter((f) => cgroupFiles[f as keyof typeof cgroupFiles].readable), ...Object.keys(creditFiles)];
    const result: Record<string, string> = {};
    for (const f of files) result[f] = this.readFile(container, f);
    return result;
  }

  cgroupSet(name: string, file: string, value: string): string {
    const container = this.get(name);
    if (file === 'cpu.credit.stat') throw new SlicelabError('EACCES', `${file} is read-only`);
    if (file in creditFiles) {
      const setting = this.parseCredit({ ...this.creditFileValues(container), [file]: value });
      this.credit.set(container, setting);
      this.applyCredit(container);
      return this.readFile(container, file);
    }
    const result = writeCgroupFile(file, value, container.limits, this.options.cores);
    container.limits = result.limits;
    this.apply(container, result.limits);
    if (result.kill && container.state === 'running') this.end(container, exitCodes.sigkill, 'cgroup.kill');
    return file === 'cgroup.kill' ? '' : this.readFile(container, file);
  }

  setPolicy(name: string, seed?: number): void {
    if (!policyNames.includes(name as PolicyName)) throw new SlicelabError('EINVAL', `unknown scheduler "${name}" (use ${policyNames.join(', ')})`);
    this.scheduler.setPolicy(name as PolicyName, seed ?? this.options.seed);
    for (const container of this.containers.values()) this.applyCredit(container);
    this.options.log?.info({ policy: name }, 'scheduler changed');
  }

  /** Starts or stops the scheduler trace; stopping returns it with the containers' names by group id. */
  trace(action: 'start' | 'stop'): { events: TraceEvent[]; groups: Record<string, { name: string; peakPeriodMs: number }> } {
    if (action === 'start') {
      this.scheduler.startTrace();
      return { events: [], groups: {} };
    }
    const groups: Record<string, { name: string; peakPeriodMs: number }> = {};
    for (const container of this.containers.values()) {
      groups[container.id] = { name: container.name, peakPeriodMs: container.group.cpuMax?.stats.peakPeriodMs ?? 0 };
    }
    return { events: this.scheduler.stopTrace(), groups };
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    for (const container of this.containers.values()) if (container.state === 'running') this.end(container, exitCodes.sigkill, 'host stopping');
    this.scheduler.close();
    this.disk.close();
    await Promise.all(this.cores.map((core) => core.close()));
  }

  private program(name: string) {
    const program = getProgram(name);
    if (!program) throw new SlicelabError('ENOENT', `unknown program "${name}" (known: ${programNames().join(', ')})`);
    return program;
  }

  private init(programName: string, args: ProgramArgs) {
    try {
      return this.program(programName).init(args);
    } catch (error) {
      throw new SlicelabError('EINVAL', error instanceof Error ? error.message : String(error));
    }
  }

  private get(name: string): Container {
    const container = this.containers.get(name);
    if (!container) throw new SlicelabError('ENOENT', `no container "${name}" on this host`);
    return container;
  }

  private running(name: string): Container {
    const container = this.get(name);
    if (container.state !== 'running') throw new SlicelabError('EINVAL', `container "${name}" is not running`);
    return container;
  }

  /** pids.max, checked again on the host: cores racing each other may both have seen room for one. */
  private checkPids(container: Container): boolean {
    container.memory.setPidsCurrent(container.live().length);
    return container.memory.forkAllowed();
  }

  private startProcess(container: Container, program: string, args: ProgramArgs, ppid: number, regs: Record<string, unknown>): Process {
    const process: Process = {
      gpid: this.nextGpid++, pid: container.nextPid++, ppid, container, group: container.group, program, args, regs,
      ret: undefined, rand: (this.options.seed * 2654435761 + container.id * 40503 + container.nextPid * 97) >>> 0,
      state: 'runnable', uid: 0, cpuMs: 0, startedAt: Date.now(), runnableSince: clock(),
    };
    container.processes.set(process.pid, process);
    this.processes.set(process.gpid, process);
    container.pidsPeak = Math.max(container.pidsPeak, container.live().length);
    container.memory.setPidsCurrent(container.live().length);
    this.scheduler.enqueue(process);
    return process;
  }

  private task(process: Process, quantumMs: number) {
    process.state = 'running';
    return {
      kind: 'run' as const, gpid: process.gpid, pid: process.pid, container: process.container.id, program: process.program,
      args: process.args, regs: process.regs, ret: process.ret, rand: process.rand, quantumMs,
    };
  }

  /** Carries out what a quantum ended with; returns the main-thread ms it took (charged as system time). */
  private quantumDone(process: Process, report: QuantumDone): number {
    const container = process.container;
    process.cpuMs += report.usedMs;
    for (const line of report.logs) container.log(`[${process.pid}] ${line}`);
    if (report.renewedAs) {
      // still on its core: the registers are a snapshot, for ps and top; a kill takes effect at the next report
      if (process.state === 'running') {
        process.regs = report.regs;
        process.rand = report.rand;
        process.ret = undefined;
      }
      this.throttleHigh(container);
      return 0;
    }
    if (process.state === 'exited') {
      // killed while it was on a core: only now has the core stopped writing its memory
      this.releaseRegions(process);
      return 0;
    }
    // off the core: from here on, killing it releases its memory at once
    process.state = 'runnable';
    process.regs = report.regs;
    process.rand = report.rand;
    // a step that faulted before it ran, or a task taken back before it began, keeps the result it has not seen yet
    if (report.steps > 0) process.ret = undefined;
    this.throttleHigh(container);
    const began = performance.now();
    this.syscall(process, report);
    const systemMs = performance.now() - began;
    container.group.systemMs += systemMs;
    return systemMs;
  }

  private syscall(process: Process, report: QuantumDone): void {
    const container = process.container;
    const outcome = report.outcome;
    const ready = (ret?: Process['ret']) => {
      if (process.state === 'exited') return;
      process.ret = ret;
      process.state = 'runnable';
      this.scheduler.enqueue(process);
    };
    if (outcome === undefined) return ready();
    switch (outcome.sys) {
      case 'yield':
        return ready();
      case 'exit':
        return this.exit(process, outcome.code);
      case 'sleep':
        process.state = 'sleeping';
        process.wake = setTimeout(() => ready({ ok: true }), Math.max(0, outcome.ms));
        return;
      case 'spawn': {
        const program = getProgram(outcome.program);
        if (!program) return ready({ ok: false, errno: 'ENOENT' });
        if (!this.checkPids(container)) return ready({ ok: false, errno: 'EAGAIN' });
        let regs;
        try {
          regs = program.init(outcome.args ?? {});
        } catch {
          return ready({ ok: false, errno: 'EINVAL' });
        }
        const child = this.startProcess(container, program.name, outcome.args ?? {}, process.pid, regs);
        return ready({ ok: true, value: child.pid });
      }
      case 'alloc': {
        const max = container.limits.memoryMax;
        if (max !== null && outcome.bytes > max) {
          // more than memory.max could ever hold: refused at the limit, and counted there
          container.memory.countMaxEvent();
          return ready({ ok: false, errno: 'ENOMEM' });
        }
        const addr = outcome.bytes > 0 ? container.place(outcome.bytes, pageSize) : undefined;
        if (addr === undefined) return ready({ ok: false, errno: 'ENOMEM' });
        container.regions.set(addr, { addr, bytes: outcome.bytes, owner: process.gpid });
        return ready({ ok: true, value: addr });
      }
      case 'free': {
        const region = container.regions.get(outcome.addr);
        if (!region) return ready({ ok: false, errno: 'EINVAL' });
        container.memory.release(region.addr, region.bytes);
        container.regions.delete(region.addr);
        return ready({ ok: true });
      }
      case 'io':
        process.state = 'io';
        this.disk.submit(container.io, outcome.op, Math.max(0, outcome.bytes), () => ready({ ok: true, value: outcome.bytes }));
        return;
      case 'fs':
        return ready(this.fs(container, outcome.op, outcome.path, outcome.data ?? ''));
      case 'fault':
        if (outcome.kind === 'oom') return this.oom(process, ready);
        // postcopy: the page is on its way; try again shortly
        process.state = 'sleeping';
        process.wake = setTimeout(() => ready(process.ret), 1);
        return;
      case 'crash':
        container.log(`[${process.pid}] ${process.program} crashed: ${outcome.message}`);
        process.killedBy = `crash: ${outcome.message}`;
        return this.exit(process, exitCodes.sigsegv);
    }
  }

  /** The `fs` system call, on the container's own rootfs (its mount namespace). */
  private fs(container: Container, op: FsOp, path: string, data: string): SyscallResult {
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

  /**
   * memory.max was hit: the OOM killer picks the container's process holding the most memory and kills
   * it, in this container only. If the faulting process survives, its step runs again.
   */
  private oom(faulting: Process, retry: (ret?: Process['ret']) => void): void {
    const container = faulting.container;
    container.events.oom++;
    const victim = this.biggest(container, this.heldPages(container), faulting) ?? faulting;
    this.oomKill(victim);
    if (victim !== faulting) retry(faulting.ret);
  }

  /**
   * memory.max written below memory.current: with nothing to reclaim (no page cache, no swap), the kernel's
   * memory_max_write goes straight to the OOM killer, once per process, biggest first, until usage fits.
   * A process killed on a core gives its pages back when its quantum ends, so what it held is counted
   * off at once.
   */
  private shrinkTo(container: Container, maxBytes: number | null): void {
    if (maxBytes === null) return;
    const held = this.heldPages(container);
    let current = container.memory.currentBytes;
    while (current > maxBytes) {
      const victim = this.biggest(container, held);
      const pages = victim ? held.get(victim.gpid) ?? 0 : 0;
      // what is left over belongs to processes already killed, whose cores give it back at their reports
      if (!victim || pages === 0) return;
      container.events.oom++;
      this.oomKill(victim);
      current -= pages * pageSize;
    }
  }

  /** The OOM killer's choice: the live process holding the most pages; ties go to `first`, else the lowest pid. */
  private biggest(container: Container, held: Map<number, number>, first?: Process): Process | undefined {
    let victim = first;
    for (const process of container.live()) if (!victim || (held.get(process.gpid) ?? 0) > (held.get(victim.gpid) ?? 0)) victim = process;
    return victim;
  }

  /** Touched pages of each process's regions, by global pid. */
  private heldPages(container: Container): Map<number, number> {
    const held = new Map<number, number>();
    for (const region of container.regions.values()) {
      held.set(region.owner, (held.get(region.owner) ?? 0) + container.memory.touchedPages(region.addr, region.bytes));
    }
    return held;
  }

  private oomKill(victim: Process): void {
    const container = victim.container;
    container.events.oomKill++;
    victim.killedBy = 'oom';
    container.log(`[${victim.pid}] ${victim.program} killed by the OOM killer (memory.max ${container.limits.memoryMax})`);
    this.options.log?.warn({ container: container.name, pid: victim.pid }, 'oom kill');
    this.exit(victim, exitCodes.sigkill);
  }

  /** memory.high: above it the container is slowed down, never killed. */
  private throttleHigh(container: Container): void {
    const high = container.limits.memoryHigh;
    const current = container.memory.currentBytes;
    if (high === null || current <= high) return;
    container.events.high++;
    const over = (current - high) / Math.max(high, pageSize);
    const penalty = Math.min(2000, this.scheduler.quantumMs * (1 + 20 * over));
    container.group.holdUntil = clock() + penalty;
    container.pressure.memory.stall('some', penalty * 1000);
  }

  private exit(process: Process, code: number): void {
    if (process.state === 'exited') return;
    const container = process.container;
    clearTimeout(process.wake);
    this.scheduler.dequeue(process);
    const onCore = process.state === 'running';
    process.state = 'exited';
    process.exitCode = code;
    // a process still on a core keeps writing until its quantum ends: its memory goes back then
    if (!onCore) this.releaseRegions(process);
    this.processes.delete(process.gpid);
    container.reap(process);
    container.memory.setPidsCurrent(container.live().length);
    if (process.pid === 1) {
      // init is gone: the kernel kills every process of the namespace
      for (const other of container.live()) this.exit(other, exitCodes.sigkill);
      container.state = 'exited';
      container.exitCode = code;
    }
  }

  private releaseRegions(process: Process): void {
    const container = process.container;
    for (const region of [...container.regions.values()]) {
      if (region.owner !== process.gpid) continue;
      container.memory.release(region.addr, region.bytes);
      container.regions.delete(region.addr);
    }
  }

  private end(container: Container, code: number, why: string): void {
    for (const process of container.live()) {
      process.killedBy ??= why;
      this.exit(process, code);
    }
    container.state = 'exited';
    container.exitCode = code;
  }

  /** Makes the runtime follow the limits: weights, bandwidth, cpuset, memory.max, io, freezing. */
  private apply(container: Container, limits: CgroupLimits): void {
    const group = container.group;
    group.weight = limits.cpuWeight;
    const now = clock();
    if (limits.cpuMax.quota === null) group.cpuMax = null;
    else if (group.cpuMax) group.cpuMax.update(limits.cpuMax.quota / 1000, limits.cpuMax.period / 1000, limits.cpuMaxBurst / 1000);
    else group.cpuMax = new Bandwidth(limits.cpuMax.quota / 1000, limits.cpuMax.period / 1000, limits.cpuMaxBurst / 1000, now);
    group.cpus = limits.cpus ? new Set(limits.cpus) : null;
    this.scheduler.setFrozen(group, limits.frozen);
    container.memory.setMax(limits.memoryMax);
    this.shrinkTo(container, limits.memoryMax);
    container.memory.setPidsMax(limits.pidsMax);
    container.io.weight = limits.ioWeight;
    container.io.limits = { ...limits.ioMax };
    this.applyCredit(container);
    this.scheduler.kick();
  }

  /** Under the credit scheduler a container has a T2 account, its size's vCPUs and baseline. */
  private applyCredit(container: Container): void {
    const group = container.group;
    const setting = this.credit.get(container)!;
    if (this.policy !== 'credit') {
      group.credit = null;
      group.baseline = null;
      group.maxConcurrent = Infinity;
      return;
    }
    const size = t2Sizes[setting.size]!;
    const now = clock();
    if (!group.credit || group.credit.size !== size) group.credit = new CreditAccount(size, setting.mode, this.options.creditSpeed, now);
    group.credit.mode = setting.mode;
    group.maxConcurrent = size.vcpus;
    group.baseline = new Bandwidth(size.baseline * size.vcpus * 100, 100, 0, now);
  }

  private parseCredit(files: Record<string, string>): CreditSetting {
    const size = files['cpu.credit.size']?.trim() ?? 't2.micro';
    const mode = files['cpu.credit.mode']?.trim() ?? 'standard';
    if (!(size in t2Sizes)) throw new SlicelabError('EINVAL', `cpu.credit.size: unknown size "${size}" (use ${Object.keys(t2Sizes).join(', ')})`);
    if (mode !== 'standard' && mode !== 'unlimited') throw new SlicelabError('EINVAL', `cpu.credit.mode: "${mode}" is not standard or unlimited`);
    return { size, mode };
  }

  private creditFileValues(container: Container): Record<string, string> {
    const setting = this.credit.get(container)!;
    return { 'cpu.credit.size': setting.size, 'cpu.credit.mode': setting.mode };
  }

  private readFile(container: Container, file: string): string {
    if (file === 'cpu.credit.size' || file === 'cpu.credit.mode') return this.creditFileValues(container)[file]!;
    if (file === 'cpu.credit.stat') {
      const stat = container.group.credit?.stat(clock(), this.scheduler.quantumMs);
      if (!stat) return `size ${this.credit.get(container)!.size}\nactive 0`;
      const f = (n: number) => n.toFixed(3);
      return [`size ${stat.size}`, 'active 1', `mode ${stat.mode}`, `balance ${f(stat.balance)}`, `launch ${f(stat.launch)}`, `earned ${f(stat.earned)}`,
        `spent ${f(stat.spent)}`, `surplus ${f(stat.surplus)}`, `charged ${f(stat.charged)}`, `at_baseline ${stat.atBaseline ? 1 : 0}`].join('\n');
    }
    return readCgroupFile(file, container.limits, this.counters(container), this.options.cores);
  }

  private counters(container: Container): CgroupCounters {
    const group = container.group;
    const bw = group.cpuMax?.stats;
    const usec = (ms: number) => Math.round(ms * 1000);
    const live = container.live();
    return {
      cpu: {
        usageUsec: usec(group.usageMs + group.systemMs), userUsec: usec(group.usageMs), systemUsec: usec(group.systemMs),
        nrPeriods: bw?.nrPeriods ?? 0, nrThrottled: bw?.nrThrottled ?? 0, throttledUsec: usec(bw?.throttledMs ?? 0),
        nrBursts: bw?.nrBursts ?? 0, burstUsec: usec(bw?.burstMs ?? 0),
      },
      memory: {
        current: container.memory.currentBytes, peak: container.memory.peakBytes,
        events: { low: container.events.low, high: container.events.high, max: container.memory.maxEvents, oom: container.events.oom, oomKill: container.events.oomKill },
      },
      pids: { current: live.length, peak: container.pidsPeak, eventsMax: container.memory.pidsEvents },
      io: { rbytes: container.io.stat.rbytes, wbytes: container.io.stat.wbytes, rios: container.io.stat.rios, wios: container.io.stat.wios },
      pressure: { cpu: container.pressure.cpu.snapshot(), memory: container.pressure.memory.snapshot(), io: container.pressure.io.snapshot() },
      procs: live.map((p) => p.gpid),
      populated: live.length > 0,
      onCores: group.running,
    };
  }

  private info(container: Container): ContainerInfo {
    const live = container.live();
    return {
      name: container.name, host: this.options.host, id: container.id, program: container.spec.program, state: container.state, exitCode: container.exitCode,
      frozen: container.limits.frozen, hostname: container.hostname, createdAt: container.createdAt, cpuWeight: cpuWeightRead(container.limits),
      cpuUsageMs: container.group.usageMs, cpuPercent: this.samples.get(container)?.percent ?? 0,
      memoryCurrent: container.memory.currentBytes, memoryMax: container.limits.memoryMax,
      pids: live.length, pidsMax: container.limits.pidsMax, uidMap: container.userns.toString(),
      processes: live.map((p) => this.processInfo(p)),
    };
  }

  private processInfo(process: Process): ProcessInfo {
    const metrics = (process.regs['metrics'] ?? {}) as Record<string, number>;
    return {
      pid: process.pid, gpid: process.gpid, ppid: process.ppid, program: process.program, state: process.state, uid: process.uid,
      hostUid: process.container.userns.toOutside(process.uid), cpuMs: process.cpuMs, exitCode: process.exitCode, metrics,
    };
  }

  /** CPU % per container over the last second (above 100 when it uses several cores, as docker stats). */
  private sample(): void {
    const now = clock();
    for (const container of this.containers.values()) {
      const last = this.samples.get(container);
      const usage = container.group.usageMs;
      const percent = last ? ((usage - last.usage) / (now - last.at)) * 100 : 0;
      this.samples.set(container, { at: now, usage, percent });
    }
  }

  private tickPressure(): void {
    const now = Date.now();
    for (const container of this.containers.values()) {
      const last = this.lastPressure.get(container) ?? { cpu: 0, io: 0 };
      const waited = { cpu: container.group.waitedMs, io: container.io.stat.waitedMs };
      container.pressure.cpu.stall('some', (waited.cpu - last.cpu) * 1000);
      container.pressure.io.stall('some', (waited.io - last.io) * 1000);
      this.lastPressure.set(container, waited);
      for (const pressure of Object.values(container.pressure)) pressure.tick(now);
    }
  }
}

export type { Runnable };
