/**
 * The host's process table: host pids, starting processes, what they wait on, and their exit. A process is
 * data (container.ts); here it is put on a run queue, made to wait (a sleep is a timer armed from its
 * `until`, a disk request is submitted from its op and size), woken, and ended.
 *
 * Division of labor:
 *   Processes: the life of a process, its waits and its exit (this file)
 *   syscalls.ts: what each system call does, per subsystem
 *   oom.ts: who dies when memory runs out
 *   machine.ts: containers, their cgroup files and their lifecycle
 */
import type { Logger } from '@slicelab/protocol';
import type { ProgramArgs, Registers, SyscallResult } from '@slicelab/programs';
import { exitCodes, type Container, type NetCall, type Process, type Wait } from './container.js';
import type { Disk } from './disk.js';
import type { Scheduler } from './scheduler/scheduler.js';

const clock = () => performance.timeOrigin + performance.now();

export class Processes {
  private nextGpid = 100;

  constructor(private readonly scheduler: Scheduler, private readonly disk: Disk, private readonly seed: number, private readonly log?: Logger) {}

  /** A new runnable process in `container`; `pid` is given on a restore, else the namespace's next. */
  start(container: Container, program: string, args: ProgramArgs, ppid: number, regs: Registers, pid = container.nextPid++): Process {
    const process: Process = {
      gpid: this.nextGpid++, pid, ppid, container, group: container.group, program, args, regs,
      ret: undefined, rand: (this.seed * 2654435761 + container.id * 40503 + container.nextPid * 97) >>> 0,
      state: 'runnable', uid: 0, cpuMs: 0, startedAt: Date.now(), runnableSince: clock(),
    };
    this.add(process);
    this.scheduler.enqueue(process);
    return process;
  }

  /** Enters a process into its container's table (a restored one comes with its own state). */
  add(process: Process): void {
    const container = process.container;
    container.processes.set(process.pid, process);
    container.pidsPeak = Math.max(container.pidsPeak, container.live().length);
    container.memory.setPidsCurrent(container.live().length);
  }

  newGpid(): number {
    return this.nextGpid++;
  }

  /** Back on the run queue with `ret` for its next step. */
  ready(process: Process, ret?: SyscallResult): void {
    if (process.state === 'exited') return;
    clearTimeout(process.timer);
    process.timer = undefined;
    process.wait = undefined;
    process.ret = ret;
    process.state = 'runnable';
    this.scheduler.enqueue(process);
  }

  /** Off the run queue until what it waits for happens; the timer or the disk request is armed from the data. */
  wait(process: Process, wait: Wait): void {
    process.wait = wait;
    switch (wait.kind) {
      case 'sleep':
        process.state = 'sleeping';
        process.timer = setTimeout(() => this.ready(process, wait.ret ?? { ok: true }), Math.max(0, wait.until - clock()));
        return;
      case 'io':
        process.state = 'io';
        this.disk.submit(process.container.io, wait.op, wait.bytes, process.gpid, () => this.ready(process, { ok: true, value: wait.bytes }));
        return;
      case 'memory':
        // woken by the OOM killer once the pages it freed are back
        process.state = 'sleeping';
        return;
      case 'page':
        // woken when the page arrives (pageArrived)
        process.state = 'sleeping';
        return;
      case 'net':
        // woken by the socket (netReadable), or by the time running out
        process.state = 'sleeping';
        if (wait.until !== undefined) process.timer = setTimeout(() => this.ready(process, { ok: false, errno: 'EAGAIN' }), Math.max(0, wait.until - clock()));
        return;
    }
  }

  /**
   * Socket `fd` of `container` has news: each process waiting on it tries its call again (`attempt` gives
   * the call's result, or undefined when it would still block), in turn.
   */
  netReadable(container: Container, fd: number, attempt: (call: NetCall) => SyscallResult | undefined): void {
    for (const process of container.live()) {
      if (process.wait?.kind !== 'net' || process.wait.fd !== fd) continue;
      const result = attempt(process.wait.call);
      if (result) this.ready(process, result);
    }
  }

  /** Page `page` of `container` is here: the processes that faulted on it run again. */
  pageArrived(container: Container, page: number): void {
    for (const process of container.processes.values()) {
      if (process.wait?.kind === 'page' && process.wait.page === page) this.ready(process, process.wait.ret);
    }
  }

  exit(process: Process, code: number): void {
    if (process.state === 'exited') return;
    const container = process.container;
    clearTimeout(process.timer);
    if (process.wait?.kind === 'io') this.disk.cancel(container.io, process.gpid);
    process.wait = undefined;
    this.scheduler.dequeue(process);
    const onCore = process.state === 'running';
    process.state = 'exited';
    process.exitCode = code;
    // a process still on a core keeps writing until its quantum ends: its memory goes back then
    if (onCore) container.dying.add(process);
    else if (!container.evicting) this.releaseRegions(process);
    container.reap(process);
    container.memory.setPidsCurrent(container.live().length);
    if (process.pid === 1) {
      // init is gone: the kernel kills every process of the namespace
      for (const other of container.live()) this.exit(other, exitCodes.sigkill);
      container.state = 'exited';
      container.exitCode = code;
    }
  }

  /** Every process of the container ends with `code`. */
  end(container: Container, code: number, why: string): void {
    for (const process of container.live()) {
      process.killedBy ??= why;
      this.exit(process, code);
    }
    container.state = 'exited';
    container.exitCode = code;
    this.log?.info({ container: container.name, code, why }, 'container ended');
  }

  /** Touched pages of the process's regions. */
  heldPages(process: Process): number {
    let pages = 0;
    for (const region of process.container.regions.values()) {
      if (region.owner === process.gpid) pages += process.container.memory.touchedPages(region.addr, region.bytes);
    }
    return pages;
  }

  /** Gives back the process's memory; returns the pages that were touched. */
  releaseRegions(process: Process): number {
    const container = process.container;
    let pages = 0;
    for (const region of [...container.regions.values()]) {
      if (region.owner !== process.gpid) continue;
      pages += container.memory.touchedPages(region.addr, region.bytes);
      container.memory.release(region.addr, region.bytes);
      container.regions.delete(region.addr);
    }
    return pages;
  }
}
