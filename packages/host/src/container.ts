/**
 * A container: namespaces (pid, mnt, uts, user, net, time) + a cgroup + paged memory + processes, on one
 * host. This file holds the process table and the pid-namespace rules: the first process is pid 1;
 * orphans are re-parented to it; when it exits every process of the namespace is killed; each process
 * has a pid in the namespace and a global pid on the host. The machine (machine.ts) runs and schedules
 * them. What a process waits on is data (`Wait`), from which the host arms its timers, so that a
 * checkpoint can write it down and a restore arm it again.
 *
 * The time namespace: a container's monotonic clock (what programs see as ctx.now()) is the host's plus
 * `clockOffset`. A restore sets the offset so that the clock continues from its value at the checkpoint,
 * as Linux's time namespaces let CRIU do, whatever the new host's own clock says.
 */
import type { Resource } from '@slicelab/protocol';
import type { ProgramArgs, Registers, Syscall, SyscallResult } from '@slicelab/programs';
import type { CgroupLimits } from './cgroup.js';
import { Pressure } from './cgroup.js';
import type { IoGroup } from './disk.js';
import type { GuestMemory } from './memory.js';
import { Rootfs, UserNamespace } from './namespaces.js';
import type { NetStack } from './net/stack.js';
import type { CreditMode } from './scheduler/credit.js';
import type { Runnable, SchedGroup } from './scheduler/scheduler.js';

export type ProcessState = 'runnable' | 'running' | 'sleeping' | 'io' | 'exited';

/**
 * What a process off the run queue waits for: a sleep until a time on the host's clock, a disk request,
 * pages the OOM killer is freeing (killed processes still on a core give them back at their report),
 * a socket, or a page that has not arrived yet.
 */
export type Wait =
  /** `ret`: what the step sees on waking (a sleep call's is {ok: true}) */
  | { kind: 'sleep'; until: number; ret?: SyscallResult }
  | { kind: 'io'; op: 'read' | 'write'; bytes: number }
  | { kind: 'memory' }
  /** a socket call that would block (`call`), tried again when socket `fd` has news, until a time on the host's clock or for ever */
  | { kind: 'net'; fd: number; call: NetCall; until?: number }
  /** a page still on a migration's source (postcopy); the faulting step runs again with `ret` once it is here */
  | { kind: 'page'; page: number; ret?: SyscallResult };

/** the socket calls that may wait */
export type NetCall = Extract<Syscall, { sys: 'recvfrom' | 'accept' | 'connect' | 'send' | 'recv' }>;

export interface Process extends Runnable {
  readonly gpid: number;
  /** pid in the container's pid namespace */
  readonly pid: number;
  /** parent's pid in the namespace; 0 for init */
  ppid: number;
  readonly container: Container;
  readonly program: string;
  readonly args: ProgramArgs;
  regs: Registers;
  ret: SyscallResult | undefined;
  rand: number;
  state: ProcessState;
  /** uid inside the user namespace */
  readonly uid: number;
  cpuMs: number;
  readonly startedAt: number;
  exitCode?: number;
  /** the reason, when killed (oom, a crash, a signal) */
  killedBy?: string;
  wait?: Wait;
  /** the timer armed from a sleep wait */
  timer?: NodeJS.Timeout;
}

/** Exit codes as a shell reports a death by signal: 128 + signal number. */
export const exitCodes = { sigkill: 137, sigsegv: 139, sigterm: 143 } as const;

export type ContainerState = 'running' | 'exited';

export interface ContainerSpec {
  name: string;
  program: string;
  args: ProgramArgs;
  hostname?: string;
  /** what it uses and where each is (migration applies the binding table to them) */
  resources?: Resource[];
}

export interface Region {
  addr: number;
  bytes: number;
  /** the host pid of the process that allocated it */
  owner: number;
}

/** slicelab's T2 settings of a container under the credit scheduler (cpu.credit.size, cpu.credit.mode) */
export interface CreditSetting {
  size: string;
  mode: CreditMode;
}

export class Container {
  state: ContainerState = 'running';
  exitCode?: number;
  readonly processes = new Map<number, Process>();
  readonly regions = new Map<number, Region>();
  rootfs: Rootfs;
  readonly hostname: string;
  pressure = { cpu: new Pressure(Date.now()), memory: new Pressure(Date.now()), io: new Pressure(Date.now()) };
  /** the stall counters at the last pressure tick */
  lastStalls = { cpu: 0, io: 0 };
  readonly events = { low: 0, high: 0, oom: 0, oomKill: 0 };
  pidsPeak = 0;
  /** the last lines programs logged */
  readonly logs: string[] = [];
  nextPid = 1;
  createdAt = Date.now();
  /** the time namespace: the container's monotonic clock minus the host's, ms */
  clockOffset = 0;
  credit: CreditSetting = { size: 't2.micro', mode: 'standard' };
  /** CPU % over the last second, and what it was computed from */
  sample?: { at: number; usage: number; percent: number };
  /** killed processes still on a core: their pages come back at their last report */
  readonly dying = new Set<Process>();
  /** a checkpoint or a migration's stop-and-copy holds it frozen, whatever cgroup.freeze says */
  checkpointing = false;
  /** being taken off the host whole: its pages go back at once, not region by region (no zeroing) */
  evicting = false;
  /** the id of the migration moving it away from this host */
  migrating?: string;
  /** postcopy, on the destination: asks the source for a page a process faulted on */
  missing?: (page: number) => void;

  constructor(
    readonly id: number,
    readonly spec: ContainerSpec,
    readonly userns: UserNamespace,
    readonly memory: GuestMemory,
    readonly group: SchedGroup,
    readonly io: IoGroup,
    public limits: CgroupLimits,
    /** the net namespace: its nics, sockets and neighbours (net/stack.ts) */
    readonly net: NetStack,
  ) {
    this.hostname = spec.hostname ?? spec.name;
    this.rootfs = Rootfs.image(this.hostname);
  }

  get name(): string {
    return this.spec.name;
  }

  get init(): Process | undefined {
    return this.processes.get(1);
  }

  /** Live processes, by namespace pid. */
  live(): Process[] {
    return [...this.processes.values()].filter((p) => p.state !== 'exited').sort((a, b) => a.pid - b.pid);
  }

  log(line: string): void {
    this.logs.push(line);
    if (this.logs.length > 200) this.logs.shift();
  }

  /** Takes an exited process out of the table: its children now belong to init. */
  reap(process: Process): void {
    this.processes.delete(process.pid);
    for (const other of this.processes.values()) if (other.ppid === process.pid) other.ppid = 1;
  }

  /** The address for a new region of `bytes`: first fit among the gaps, page aligned, page 0 never used. */
  place(bytes: number, pageSize: number): number | undefined {
    const size = Math.ceil(bytes / pageSize) * pageSize;
    const taken = [...this.regions.values()].sort((a, b) => a.addr - b.addr);
    let addr = pageSize;
    for (const region of taken) {
      if (addr + size <= region.addr) break;
      addr = Math.max(addr, region.addr + Math.ceil(region.bytes / pageSize) * pageSize);
    }
    return addr + size <= this.memory.size ? addr : undefined;
  }
}
