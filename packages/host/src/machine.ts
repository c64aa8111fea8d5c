/**
 * The inside of a host: its cores, CPU scheduler, virtual disk, physical memory and containers. It makes
 * and ends containers, answers for their cgroup files with the kernel's names and units, and writes a
 * container down (checkpoint) or brings one back (restore). The bus side (host.ts) only calls into this.
 *
 * Division of labor:
 *   Machine: containers, their lifecycle and cgroup files, checkpoint and restore (this file)
 *   Processes: the process table, waits and exits (processes.ts); system calls (syscalls.ts)
 *   OomKiller: who dies when memory runs out, in a container or on the host (oom.ts)
 *   Scheduler: which process runs on which core, for how long (scheduler/)
 *   Core: runs steps (cores.ts, core-worker.ts)
 *   Disk: the virtual disk (disk.ts)
 *   persist.ts: the container record every part saves into and restores from
 */
import { SlicelabError, addressSpaceDigest, type Resource, type ContainerInfo, type DiskSpec, type Logger, type ProcessInfo, type Uplink } from '@slicelab/protocol';
import { getProgram, pageSize, programNames, type ProgramArgs } from '@slicelab/programs';
import { cpuWeightRead, defaultLimits, readCgroupFile, writeCgroupFile, cgroupFiles, Pressure, type CgroupCounters, type CgroupLimits } from './cgroup.js';
import { Container, exitCodes, type ContainerSpec, type CreditSetting, type Process } from './container.js';
import type { QuantumDone } from './core-protocol.js';
import { Core } from './cores.js';
import { Disk, IoGroup } from './disk.js';
import { GuestMemory, HostMemory, collectGarbage, type PageSet } from './memory.js';
import { Rootfs, UserNamespace } from './namespaces.js';
import { OomKiller } from './oom.js';
import { saveContainer, type ContainerRecord } from './persist.js';
import { Processes } from './processes.js';
import { Bandwidth } from './scheduler/bandwidth.js';
import { CreditAccount, t2Sizes } from './scheduler/credit.js';
import { policyNames, type PolicyName } from './scheduler/policy.js';
import { SchedGroup, Scheduler, type Runnable, type TraceEvent } from './scheduler/scheduler.js';
import { attempt, carryOut, forkAllowed, type SyscallContext } from './syscalls.js';
import { HostNetwork } from './net/network.js';
import { defaultUplink } from './net/uplink.js';
import type { Lease } from './net/address.js';

export interface MachineOptions {
  /** the host's name, reported with its containers */
  host: string;
  cores: number;
  /** bytes of host memory: the physical memory all containers' touched pages share */
  memory: number;
  quantumMs: number;
  policy: PolicyName;
  seed: number;
  /** how much faster than real time the T2 credit clock runs */
  creditSpeed: number;
  disk: DiskSpec;
  /** the host's emulated NIC (default 1gbit, no delay or loss) */
  uplink?: Uplink;
  /** hands a frame leaving the uplink to the fabric, for host `to` (or every host) */
  send?: (to: string, frame: Uint8Array) => void;
  log?: Logger;
}

export interface RunSpec extends Omit<ContainerSpec, 'resources'> {
  /** resources it uses; they are on this host */
  resources?: Array<Omit<Resource, 'location'>>;
  /** cgroup files to write before the first process starts: {"cpu.weight": "200", "memory.max": "256M"} */
  cgroup?: Record<string, string>;
  /**
   * a number unique in the cluster (the name claim's revision), from which the container's range of
   * outside uids is chosen; without it, the host's own count
   */
  uidSlot?: number;
  /** the nics of its net namespace, addresses leased by the host: eth0, eth1, … */
  nics?: Lease[];
}

/** A container written down: the record and its touched pages. */
export interface Checkpoint {
  record: ContainerRecord;
  pages: PageSet;
  /** ms the container was held frozen for it */
  frozenMs: number;
}

/** slicelab's own cgroup files for the credit scheduler; everything else is the kernel's. */
const creditFiles = {
  'cpu.credit.size': 'T2 size under the credit scheduler: t2.nano, t2.micro, t2.small, t2.medium',
  'cpu.credit.mode': 'standard (held to baseline at zero balance) or unlimited (surplus credits, charged when not repaid)',
  'cpu.credit.stat': 'balance launch earned spent surplus charged, in credits (read-only)',
} as const;

/** A container made from a record but not yet running (Machine.stage). */
export interface StagedContainer {
  container: Container;
  record: ContainerRecord;
  /** record pid → this host's pid */
  gpids: Map<number, number>;
}

/** How long a checkpoint waits for the container's quanta to end before it gives up. */
const freezeTimeoutMs = 5000;

const clock = () => performance.timeOrigin + performance.now();
/** 65536 uids per container from 100000 on, as many as fit below 2^32 */
const uidSlots = Math.floor((0x1_0000_0000 - 100_000) / 65_536);

function digestOf(memory: GuestMemory): { digest: string; pages: number } {
  const pageNumbers = memory.touchedPageNumbers();
  return { digest: addressSpaceDigest(pageNumbers, new Uint8Array(memory.shared.data), pageSize), pages: pageNumbers.length };
}

export class Machine {
  readonly cores: Core[];
  readonly scheduler: Scheduler;
  readonly disk: Disk;
  readonly hostMemory: HostMemory;
  private readonly processes: Processes;
  private readonly oom: OomKiller;
  private readonly syscalls: SyscallContext;
  private readonly containers = new Map<string, Container>();
  private nextContainer = 1;
  private readonly timers: NodeJS.Timeout[] = [];
  /** the bridge, the uplink and the containers' net namespaces */
  readonly network: HostNetwork;

  constructor(readonly options: MachineOptions) {
    this.cores = Array.from({ length: options.cores }, (_, i) => new Core(i));
    this.disk = new Disk(options.disk, clock);
    this.hostMemory = HostMemory.create(options.memory);
    this.scheduler = new Scheduler(this.cores, { quantumMs: options.quantumMs, policy: options.policy, seed: options.seed, now: clock }, {
      task: (process, quantumMs) => this.task(process as Process, quantumMs),
      done: (process, report) => this.quantumDone(process as Process, report),
    });
    this.processes = new Processes(this.scheduler, this.disk, options.seed, options.log);
    this.oom = new OomKiller(this.processes, () => this.containers.values(), options.log);
    this.syscalls = { processes: this.processes, oom: this.oom, hostMemory: this.hostMemory };
    this.network = new HostNetwork(clock, options.uplink ?? defaultUplink, options.seed, (to, frame) => options.send?.(to, frame));
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

  has(name: string): boolean {
    return this.containers.has(name);
  }

  /** Creates a container and starts its first process; on any error nothing is left behind. */
  run(spec: RunSpec): ContainerInfo {
    if (this.containers.has(spec.name)) throw new SlicelabError('EEXIST', `a container named "${spec.name}" exists on this host`);
    const program = this.program(spec.program);
    let limits = defaultLimits();
    for (const [file, value] of Object.entries(spec.cgroup ?? {})) {
      if (file in creditFiles) continue;
      limits = writeCgroupFile(file, value, limits, this.options.cores).limits;
    }
    this.checkFits(limits.memoryMax, 0);
    const credit = this.parseCredit(spec.cgroup ?? {});
    const initialRegs = this.init(program.name, spec.args);
    const id = this.nextContainer++;
    // each container gets its own range of outside uids, so root in one is nobody in another
    const slot = (spec.uidSlot ?? id) % uidSlots;
    const userns = new UserNamespace([{ inside: 0, outside: 100_000 + 65_536 * slot, length: 65_536 }]);
    const memory = GuestMemory.create(this.options.memory, this.hostMemory);
    const resources = spec.resources?.map((r) => ({ ...r, location: this.options.host }));
    const container: Container = new Container(id, { name: spec.name, program: program.name, args: spec.args, hostname: spec.hostname, resources }, userns, memory,
      new SchedGroup(id, limits.cpuWeight), new IoGroup(id, limits.ioWeight), limits, this.netns(spec.name, () => container));
    container.credit = credit;
    this.admit(container);
    (spec.nics ?? []).forEach((lease, i) => this.network.attach(container.net, `eth${i}`, lease.ip, lease.mac));
    this.processes.start(container, program.name, spec.args, 0, initialRegs);
    this.options.log?.info({ container: spec.name, program: program.name }, 'container started');
    return this.info(container);
  }

  /** A new process in the container's namespaces (like `docker exec`); returns its namespace pid. */
  exec(name: string, programName: string, args: ProgramArgs): ProcessInfo {
    const container = this.running(name);
    const program = this.program(programName);
    if (!forkAllowed(container)) throw new SlicelabError('EAGAIN', `container "${name}" is at pids.max (${container.limits.pidsMax})`);
    return this.processInfo(this.processes.start(container, program.name, args, 1, this.init(program.name, args)));
  }

  /** Docker's stop: every process ends (SIGTERM's exit code); the container stays, `start` runs it again. */
  stop(name: string): ContainerInfo {
    const container = this.get(name);
    if (container.state === 'running') this.processes.end(container, exitCodes.sigterm, 'stopped');
    return this.info(container);
  }

  start(name: string): ContainerInfo {
    const container = this.get(name);
    if (container.state === 'running') throw new SlicelabError('EBUSY', `container "${name}" is already running`);
    const regs = this.init(container.spec.program, container.spec.args);
    container.state = 'running';
    container.exitCode = undefined;
    container.nextPid = 1;
    this.processes.start(container, container.spec.program, container.spec.args, 0, regs);
    return this.info(container);
  }

  /** SIGKILL to every process (cgroup.kill). */
  kill(name: string): ContainerInfo {
    const container = this.get(name);
    if (container.state !== 'running') throw new SlicelabError('EINVAL', `container "${name}" is not running`);
    this.processes.end(container, exitCodes.sigkill, 'killed');
    return this.info(container);
  }

  rm(name: string, force = false): void {
    const container = this.get(name);
    if (container.migrating) throw new SlicelabError('EBUSY', `container "${name}" is being migrated (migration ${container.migrating}); cancel it first`);
    if (container.state === 'running') {
      if (!force) throw new SlicelabError('EBUSY', `container "${name}" is running; stop or kill it first, or remove it with --force`);
      container.evicting = true;
      this.processes.end(container, exitCodes.sigkill, 'removed');
    }
    this.evict(container);
  }

  ps(): ContainerInfo[] {
    return [...this.containers.values()].map((c) => this.info(c));
  }

  inspect(name: string): ContainerInfo {
    return this.info(this.get(name));
  }

  /** The digest of the container's touched memory (what an image's header carries), read in place. */
  digest(name: string): { digest: string; pages: number } {
    return digestOf(this.get(name).memory);
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
      container.credit = this.parseCredit({ ...this.creditFileValues(container), [file]: value });
      this.applyCredit(container);
      return this.readFile(container, file);
    }
    const result = writeCgroupFile(file, value, container.limits, this.options.cores);
    if (file === 'memory.max') this.checkFits(result.limits.memoryMax, container.memory.currentBytes);
    container.limits = result.limits;
    this.apply(container);
    if (result.kill && container.state === 'running') this.processes.end(container, exitCodes.sigkill, 'cgroup.kill');
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

  /**
   * Writes a running container down, as `criu dump` does: it is frozen (its processes finish the quantum
   * they are in, then none runs), its record and touched pages are copied, and it runs on (`thaw`) or
   * stays frozen for the caller to end once the image is safe (`end`).
   */
  async checkpoint(name: string): Promise<Checkpoint> {
    const began = clock();
    await this.freeze(name);
    const record = this.save(name);
    const pages = this.get(name).memory.touchedCopy();
    return { record, pages, frozenMs: clock() - began };
  }

  /**
   * Holds a running container still for a checkpoint or a migration's stop-and-copy: no process of it
   * runs once the quanta on the cores have ended, and its network is locked (`HostNetwork.lock`, as
   * CRIU's dump does: frames for it are dropped, it sends nothing, its TCP timers wait, so no peer hears
   * of bytes the saved streams never got). `thaw` lets it go on.
   */
  async freeze(name: string, migration?: string): Promise<void> {
    const container = this.get(name);
    if (container.migrating !== migration) throw new SlicelabError('EBUSY', `container "${name}" is being migrated (migration ${container.migrating})`);
    if (container.state !== 'running') throw new SlicelabError('EINVAL', `container "${name}" is not running (${container.state}); only a running container can be checkpointed or migrated`);
    if (container.checkpointing) throw new SlicelabError('EBUSY', `container "${name}" is being checkpointed or migrated already`);
    if (container.missing) throw new SlicelabError('EBUSY', `container "${name}" is still receiving its pages (postcopy)`);
    container.checkpointing = true;
    this.scheduler.setFrozen(container.group, true);
    const deadline = clock() + freezeTimeoutMs;
    while (container.group.running > 0 || container.dying.size > 0) {
      if (clock() > deadline) {
        this.thaw(name);
        throw new SlicelabError('ETIMEDOUT', `container "${name}" did not stop within ${freezeTimeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    this.network.lock(container.net);
  }

  /** The record of a frozen container (its pages are taken apart from it). */
  save(name: string): ContainerRecord {
    const container = this.get(name);
    if (!container.checkpointing) throw new SlicelabError('EINVAL', `container "${name}" is not frozen`);
    return saveContainer(container, { now: clock(), wallMs: Date.now(), reference: this.scheduler.reference, deviceVtime: this.disk.vtime });
  }

  /** The container's memory and control for a migration's source side (it stays on this host meanwhile). */
  container(name: string): Container {
    return this.get(name);
  }

  /** Lets a checkpointed container run on (leave-running, or an image that could not be delivered). */
  thaw(name: string): void {
    const container = this.containers.get(name);
    if (!container?.checkpointing) return;
    container.checkpointing = false;
    this.network.unlock(container.net);
    this.scheduler.setFrozen(container.group, container.limits.frozen);
  }

  /**
   * Brings a container back from its record and pages, under `name` (default: its own), exactly where it
   * stopped: registers, pids inside, memory byte for byte, counters, the time left on each sleep, and
   * its clock (the time namespace), which continues from its value at the checkpoint. All or nothing: any
   * problem leaves this host as it was.
   */
  restore(record: ContainerRecord, pageSet: PageSet, name = record.name, digest?: string, nics: Lease[] = []): ContainerInfo {
    this.checkRecord(record, name);
    const lastPage = pageSet.pageNumbers.at(-1);
    if (lastPage !== undefined && (lastPage + 1) * pageSize > record.memory.size) throw new SlicelabError('EINVAL', 'checkpoint image: a page lies outside the container\'s memory');
    this.checkFits((record.limits as CgroupLimits).memoryMax, pageSet.pageNumbers.length * pageSize);
    const memory = GuestMemory.restore(record.memory, pageSet, this.hostMemory);
    if (!memory) throw this.noRoom(name, pageSet.pageNumbers.length * pageSize);
    // the memory as restored, read before any process runs, must be the image's byte for byte
    if (digest !== undefined && digestOf(memory).digest !== digest) {
      memory.releaseHost();
      throw new SlicelabError('EINVAL', `restored memory of "${name}" does not match the image's digest`);
    }
    const staged = this.stage(record, memory, name);
    this.startStaged(staged, nics);
    this.options.log?.info({ container: name, processes: record.processes.length, pages: pageSet.pageNumbers.length }, 'container restored');
    return this.info(staged.container);
  }

  /**
   * What a restore checks before it makes anything: programs, bitmaps, room for the address space (not
   * for a migration, whose destination sized the memory it arrives in), the name.
   */
  checkRecord(record: ContainerRecord, name: string, addressSpace = true): void {
    if (this.containers.has(name)) throw new SlicelabError('EEXIST', `a container named "${name}" exists on this host`);
    for (const p of record.processes) this.program(p.program);
    const words = Math.ceil(Math.ceil(record.memory.size / pageSize) / 32) * 4;
    if (record.memory.dirty.length !== words || record.memory.present.length !== words) throw new SlicelabError('EINVAL', 'container record: memory bitmaps do not match its size');
    if (addressSpace && record.memory.size > this.options.memory) {
      throw new SlicelabError('ENOMEM', `container "${name}" has ${record.memory.size} bytes of address space; this host has ${this.options.memory}`);
    }
  }

  /** A memory for a container arriving page by page (a migration's destination), on this host's memory. */
  arrivingMemory(size: number): GuestMemory {
    if (size > this.options.memory) throw new SlicelabError('ENOMEM', `the container has ${size} bytes of address space; this host has ${this.options.memory}`);
    // a core thread takes tens of ms to start: not during the downtime
    for (const core of this.cores) core.warm();
    return GuestMemory.create(size, this.hostMemory);
  }

  /**
   * Makes the container of `record` around `memory`, not yet running and not yet on the host: its
   * network is locked and none of its processes is queued until `startStaged`; `discard` takes it back.
   * On any error nothing is left and the memory is given back.
   */
  stage(record: ContainerRecord, memory: GuestMemory, name = record.name): StagedContainer {
    const limits = record.limits as CgroupLimits;
    const now = clock();
    const id = this.nextContainer++;
    let made: Container | undefined;
    try {
      const spec = { ...record.spec, name, hostname: record.hostname };
      const container: Container = new Container(id, spec, new UserNamespace(record.uidMap), memory, new SchedGroup(id, limits.cpuWeight), new IoGroup(id, limits.ioWeight), limits,
        this.netns(name, () => container));
      made = container;
      this.network.lock(container.net);
      container.rootfs = Rootfs.restore(record.rootfs);
      container.createdAt = record.createdAt;
      container.nextPid = record.nextPid;
      container.pidsPeak = record.pidsPeak;
      container.credit = this.parseCredit({ 'cpu.credit.size': record.credit.size, 'cpu.credit.mode': record.credit.mode });
      Object.assign(container.events, record.events);
      const wallMs = Date.now();
      container.pressure = {
        cpu: Pressure.restore(record.pressure.cpu, wallMs), memory: Pressure.restore(record.pressure.memory, wallMs), io: Pressure.restore(record.pressure.io, wallMs),
      };
      container.lastStalls = { ...record.lastStalls };
      for (const line of record.logs) container.log(line);
      const group = container.group;
      group.load(record.sched, now, this.scheduler.reference);
      if (record.cpuMax) group.cpuMax = Bandwidth.restore(record.cpuMax, now);
      if (record.baseline) group.baseline = Bandwidth.restore(record.baseline, now);
      if (record.credit.account) group.credit = CreditAccount.restore(record.credit.account, now);
      container.io.load(record.io, now, this.disk.vtime);
      container.net.load(record.net, now);
      // host pids are this host's: each process gets a new one, and its regions follow it
      const gpids = new Map(record.processes.map((p) => [p.pid, this.processes.newGpid()]));
      if (gpids.size !== record.processes.length) throw new SlicelabError('EINVAL', 'container record: two processes have one pid');
      for (const region of record.regions) {
        const owner = gpids.get(region.ownerPid);
        if (owner === undefined || region.addr % pageSize !== 0 || region.addr + region.bytes > memory.size) {
          throw new SlicelabError('EINVAL', `container record: region at ${region.addr} is not valid`);
        }
        container.regions.set(region.addr, { addr: region.addr, bytes: region.bytes, owner });
      }
      return { container, record, gpids };
    } catch (error) {
      if (made) this.network.detach(made.net);
      memory.releaseHost();
      throw error instanceof SlicelabError ? error : new SlicelabError('EINVAL', `container record: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /**
   * Puts a staged container on the host and runs it: its nics come back with the addresses the host
   * leased (their counters with them when it is the same one) and announce themselves (gratuitous ARP).
   * `savedAt` (Date.now() when the record was saved) is for a live move: the container's clock and its
   * sleeps go on through the downtime, as a machine's do; without it the clock continues from its value
   * at the checkpoint (CRIU's time namespace).
   */
  startStaged(staged: StagedContainer, nics: Lease[], savedAt?: number): void {
    const { container, record } = staged;
    if (this.containers.has(container.name)) throw new SlicelabError('EEXIST', `a container named "${container.name}" exists on this host`);
    const now = clock();
    const elapsed = savedAt === undefined ? 0 : Math.max(0, Date.now() - savedAt);
    container.clockOffset = record.clockMs + elapsed - now;
    this.admit(container);
    nics.forEach((lease, i) => {
      const saved = record.net.nics[i];
      const nic = this.network.attach(container.net, `eth${i}`, lease.ip, lease.mac, saved?.shaping ?? undefined);
      if (saved?.ip === lease.ip) Object.assign(nic.counters, saved.counters);
    });
    this.network.unlock(container.net);
    this.revive(container, record, staged.gpids, now, elapsed);
  }

  /** Gives back what a staged container held. */
  discard(staged: StagedContainer): void {
    this.network.detach(staged.container.net);
    staged.container.memory.releaseHost();
  }

  /** A page a process of `container` waited for has arrived (postcopy): it runs again. */
  pageArrived(container: Container, page: number): void {
    this.processes.pageArrived(container, page);
  }

  /** Ends a container whose name and addresses went to another host (a migration's source, after commit). */
  release(name: string): void {
    const container = this.get(name);
    container.checkpointing = false;
    container.evicting = true;
    if (container.state === 'running') this.processes.end(container, exitCodes.sigkill, 'migrated');
    this.evict(container);
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    for (const container of this.containers.values()) if (container.state === 'running') this.processes.end(container, exitCodes.sigkill, 'host stopping');
    this.scheduler.close();
    this.disk.close();
    this.network.close();
    await Promise.all(this.cores.map((core) => core.close()));
  }

  /** Puts the restored processes back where they were: on the run queue, asleep for what was left, on the disk or on a socket. */
  private revive(container: Container, record: ContainerRecord, gpids: Map<number, number>, now: number, elapsed: number): void {
    for (const saved of record.processes) {
      const ret = saved.ret ?? undefined;
      const process: Process = {
        gpid: gpids.get(saved.pid)!, pid: saved.pid, ppid: saved.ppid, container, group: container.group, program: saved.program,
        args: saved.args, regs: saved.regs, ret, rand: saved.rand, state: 'runnable', uid: saved.uid, cpuMs: saved.cpuMs,
        startedAt: saved.startedAt, runnableSince: now,
      };
      this.processes.add(process);
      const wait = saved.wait;
      if (wait?.kind === 'sleep') this.processes.wait(process, { kind: 'sleep', until: now + wait.remainingMs - elapsed, ret: wait.ret ?? undefined });
      else if (wait?.kind === 'io') this.processes.wait(process, { kind: 'io', op: wait.op, bytes: wait.bytes });
      else if (wait?.kind === 'net') {
        this.processes.wait(process, { kind: 'net', fd: wait.fd, call: wait.call, until: wait.remainingMs === null ? undefined : now + wait.remainingMs - elapsed });
        // what its socket held at the checkpoint is there to take at once
        this.processes.netReadable(container, wait.fd, (call) => attempt(container, call));
      }
      else this.processes.ready(process, ret);
    }
  }

  /** A net namespace for container `name`: a socket with something to receive wakes the processes waiting on it. */
  private netns(name: string, container: () => Container) {
    return this.network.stack(name, (fd) => {
      const owner = container();
      this.processes.netReadable(owner, fd, (call) => attempt(owner, call));
    });
  }

  /** Makes a container part of the host: its memory on every core, its groups in the scheduler and the disk, its limits applied. */
  private admit(container: Container): void {
    for (const core of this.cores) core.attach(container.id, container.memory.shared);
    this.containers.set(container.name, container);
    this.scheduler.add(container.group);
    this.disk.add(container.io);
    this.apply(container);
  }

  /** Takes an ended container off the host and gives its memory back. */
  private evict(container: Container): void {
    this.network.detach(container.net);
    this.scheduler.remove(container.group);
    this.disk.remove(container.io);
    this.containers.delete(container.name);
    container.memory.releaseHost();
    // once every core has let go (after the killed processes' last reports), no isolate holds the memory
    let holding = this.cores.length;
    for (const core of this.cores) core.detach(container.id, () => --holding === 0 && collectGarbage());
  }

  /** memory.max (or what a restore brings) must fit in the host's physical memory. */
  private checkFits(memoryMax: number | null, bytesNow: number): void {
    if (memoryMax !== null && memoryMax > this.options.memory) {
      throw new SlicelabError('ENOMEM', `memory.max ${memoryMax} is more than this host's memory (${this.options.memory} bytes)`);
    }
    if (bytesNow > this.hostMemory.limitBytes) throw this.noRoom('the container', bytesNow);
  }

  private noRoom(name: string, bytes: number): SlicelabError {
    return new SlicelabError('ENOMEM', `${name === 'the container' ? name : `container "${name}"`} needs ${bytes} bytes of memory; this host has ${this.hostMemory.freeBytes} free of ${this.hostMemory.limitBytes}`);
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

  private task(process: Process, quantumMs: number) {
    process.state = 'running';
    return {
      kind: 'run' as const, gpid: process.gpid, pid: process.pid, container: process.container.id, program: process.program,
      args: process.args, regs: process.regs, ret: process.ret, rand: process.rand, clockOffset: process.container.clockOffset, quantumMs,
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
      // killed while it was on a core: only now has the core stopped writing its memory (a container
      // removed meanwhile gave all of it back to the host already)
      container.dying.delete(process);
      if (this.containers.get(container.name) === container) this.processes.releaseRegions(process);
      this.oom.freed();
      return 0;
    }
    // off the core: from here on, killing it releases its memory at once
    process.state = 'runnable';
    process.regs = report.regs;
    process.rand = report.rand;
    this.throttleHigh(container);
    const began = performance.now();
    carryOut(this.syscalls, process, report.outcome, report.ret);
    const systemMs = performance.now() - began;
    container.group.systemMs += systemMs;
    return systemMs;
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

  /** Makes the runtime follow the limits: weights, bandwidth, cpuset, memory.max, io, freezing. */
  private apply(container: Container): void {
    const { group, limits } = container;
    group.weight = limits.cpuWeight;
    const now = clock();
    if (limits.cpuMax.quota === null) group.cpuMax = null;
    else if (group.cpuMax) group.cpuMax.update(limits.cpuMax.quota / 1000, limits.cpuMax.period / 1000, limits.cpuMaxBurst / 1000);
    else group.cpuMax = new Bandwidth(limits.cpuMax.quota / 1000, limits.cpuMax.period / 1000, limits.cpuMaxBurst / 1000, now);
    group.cpus = limits.cpus ? new Set(limits.cpus) : null;
    this.scheduler.setFrozen(group, limits.frozen || container.checkpointing);
    container.memory.setMax(limits.memoryMax);
    this.oom.shrinkTo(container, limits.memoryMax);
    container.memory.setPidsMax(limits.pidsMax);
    container.io.weight = limits.ioWeight;
    container.io.limits = { ...limits.ioMax };
    this.applyCredit(container);
    this.scheduler.kick();
  }

  /**
   * Under the credit scheduler a container has a T2 account, its size's vCPUs and baseline. The account
   * and the baseline limiter are made once per size: a cgroup write must not refill them.
   */
  private applyCredit(container: Container): void {
    const group = container.group;
    if (this.policy !== 'credit') {
      group.credit = null;
      group.baseline = null;
      group.maxConcurrent = Infinity;
      return;
    }
    const size = t2Sizes[container.credit.size]!;
    const now = clock();
    if (!group.credit || group.credit.size !== size) {
      group.credit = new CreditAccount(size, container.credit.mode, this.options.creditSpeed, now);
      group.baseline = null;
    }
    group.credit.mode = container.credit.mode;
    group.maxConcurrent = size.vcpus;
    group.baseline ??= new Bandwidth(size.baseline * size.vcpus * 100, 100, 0, now);
  }

  private parseCredit(files: Record<string, string>): CreditSetting {
    const size = files['cpu.credit.size']?.trim() ?? 't2.micro';
    const mode = files['cpu.credit.mode']?.trim() ?? 'standard';
    if (!(size in t2Sizes)) throw new SlicelabError('EINVAL', `cpu.credit.size: unknown size "${size}" (use ${Object.keys(t2Sizes).join(', ')})`);
    if (mode !== 'standard' && mode !== 'unlimited') throw new SlicelabError('EINVAL', `cpu.credit.mode: "${mode}" is not standard or unlimited`);
    return { size, mode };
  }

  private creditFileValues(container: Container): Record<string, string> {
    return { 'cpu.credit.size': container.credit.size, 'cpu.credit.mode': container.credit.mode };
  }

  private readFile(container: Container, file: string): string {
    if (file === 'cpu.credit.size' || file === 'cpu.credit.mode') return this.creditFileValues(container)[file]!;
    if (file === 'cpu.credit.stat') {
      const stat = container.group.credit?.stat(clock(), this.scheduler.quantumMs);
      if (!stat) return `size ${container.credit.size}\nactive 0`;
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
      cpuUsageMs: container.group.usageMs, cpuPercent: container.sample?.percent ?? 0,
      memoryCurrent: container.memory.currentBytes, memoryMax: container.limits.memoryMax,
      pids: live.length, pidsMax: container.limits.pidsMax, uidMap: container.userns.toString(),
      nics: container.net.nics.map((nic) => ({ name: nic.name, ip: nic.ip, mac: nic.mac })),
      processes: live.map((p) => this.processInfo(p)),
      resources: container.spec.resources ?? [], migrating: container.migrating,
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
      const last = container.sample;
      const usage = container.group.usageMs;
      const percent = last ? ((usage - last.usage) / (now - last.at)) * 100 : 0;
      container.sample = { at: now, usage, percent };
    }
  }

  private tickPressure(): void {
    const now = Date.now();
    for (const container of this.containers.values()) {
      const last = container.lastStalls;
      const waited = { cpu: container.group.waitedMs, io: container.io.stat.waitedMs };
      container.pressure.cpu.stall('some', (waited.cpu - last.cpu) * 1000);
      container.pressure.io.stall('some', (waited.io - last.io) * 1000);
      container.lastStalls = waited;
      for (const pressure of Object.values(container.pressure)) pressure.tick(now);
    }
  }
}

export type { Runnable };
