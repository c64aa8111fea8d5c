/**
 * The host's CPU scheduler: hands runnable processes to idle cores for one quantum each. Two levels:
 * the policy (wfq, lottery, credit) picks a group (a container's cgroup) among those allowed to run on
 * this core now; the group's processes take turns in FIFO order. A group may be held back by cpu.max
 * (bandwidth.ts), by its credit baseline, by cgroup.freeze, by memory.high throttling, by cpuset.cpus and
 * by how many cores it may use at once. Usage is what the core measured, never what was granted.
 *
 * A core need not wait on the main thread between quanta (core-protocol.ts). A running quantum is
 * renewed while its process is its group's only runnable one, nothing holds the group back, and the
 * policy would pick that group again for the core: the decision the pick would make when the quantum
 * ends, made ahead and taken back at once when anything changes (every event ends in `kick`, which
 * reviews each busy core). Only unlimited groups are renewed: a group under cpu.max or a credit baseline
 * gets each quantum sized to its runtime at dispatch. Otherwise the next pick for a busy core is made
 * `pickAheadMs` before its quantum ends and posted to follow it: a process of another group, or the
 * next of the same group's processes in turn. That pick sees the groups as the pick at the quantum's end
 * would (see `candidates`).
 */
import type { QuantumDone } from '../core-protocol.js';
import type { Core, RunTask } from '../cores.js';
import { Bandwidth } from './bandwidth.js';
import { CreditAccount } from './credit.js';
import { createPolicy, type Policy, type PolicyName, type Schedulable } from './policy.js';

export interface Runnable {
  readonly gpid: number;
  readonly group: SchedGroup;
  /** when it last became runnable: the wait is CPU pressure */
  runnableSince: number;
}

/** A group's place in the scheduler as data: its distance from the policy's reference, and its usage. */
export interface SchedGroupState {
  vtimeLead: number;
  usageMs: number;
  systemMs: number;
  waitedMs: number;
  /** ms it is still held back by memory.high throttling */
  holdForMs: number;
}

export class SchedGroup implements Schedulable {
  vtime = 0;
  /** quantum ms charged at dispatch and not yet settled: what a policy switch keeps of its virtual time */
  inFlightMs = 0;
  running = 0;
  readonly queue: Runnable[] = [];
  usageMs = 0;
  /** main-thread time spent carrying out this group's system calls */
  systemMs = 0;
  /** time its processes waited, runnable, for a core (cpu pressure "some") */
  waitedMs = 0;
  frozen = false;
  /** memory.high throttling: not dispatched before this time */
  holdUntil = 0;
  /** cpuset.cpus: allowed core indexes, or null for all */
  cpus: ReadonlySet<number> | null = null;
  /** how many cores it may use at once (a T2 size's vCPUs) */
  maxConcurrent = Infinity;
  cpuMax: Bandwidth | null = null;
  credit: CreditAccount | null = null;
  /** the baseline limiter of a credit group, applied while it is out of credits */
  baseline: Bandwidth | null = null;
  /**
   * Nothing runnable or running since its last quantum ended. Set only after the quantum's system call
   * was carried out, so a process that goes straight back to its run queue does not count as waking.
   */
  idle = true;

  constructor(readonly id: number, public weight: number) {}

  get active(): boolean {
    return this.queue.length > 0 || this.running > 0;
  }

  save(now: number, reference: number): SchedGroupState {
    return {
      vtimeLead: this.vtime - reference, usageMs: this.usageMs, systemMs: this.systemMs, waitedMs: this.waitedMs,
      holdForMs: Math.max(0, this.holdUntil - now),
    };
  }

  load(state: SchedGroupState, now: number, reference: number): void {
    this.vtime = reference + state.vtimeLead;
    this.usageMs = state.usageMs;
    this.systemMs = state.systemMs;
    this.waitedMs = state.waitedMs;
    this.holdUntil = state.holdForMs > 0 ? now + state.holdForMs : 0;
  }
}

/**
 * A record of what the scheduler did, for benchmarks that check fairness bounds exactly:
 * [ms since the trace began, group id, kind, value, the group's virtual time after the event];
 * kind 0 = a quantum charged (value: ms used), 1 = the group became runnable, 2 = it went idle (no
 * process runnable or running), 3 = a quantum dispatched (value: the core).
 */
export type TraceEvent = [number, number, 0 | 1 | 2 | 3, number, number];

export interface SchedulerHooks {
  task(process: Runnable, quantumMs: number): RunTask;
  /**
   * Carries out how the quantum ended; returns the main-thread ms that took, charged to the group. A
   * renewed report means the process is still on its core.
   */
  done(process: Runnable, report: QuantumDone): number;
}

export interface SchedulerOptions {
  quantumMs: number;
  policy: PolicyName;
  seed?: number;
  now?: () => number;
}

/** A quantum shorter than this is not worth a dispatch. */
const minQuantumMs = 0.05;
/**
 * How long before a busy core's quantum ends the scheduler picks what follows it: enough for the pick
 * to reach the core in time, little enough that the pick sees nearly the state it would see at the end.
 */
const pickAheadMs = 2;

export class Scheduler {
  policy: Policy;
  quantumMs: number;
  readonly groups = new Set<SchedGroup>();
  /** main-thread milliseconds spent scheduling (the dispatch cost) */
  busyMs = 0;
  /** quanta handed to a core */
  dispatches = 0;
  /** quanta renewed on the core they ran on */
  renewals = 0;
  private trace?: { began: number; events: TraceEvent[] };
  private readonly now: () => number;
  private wakeTimer?: NodeJS.Timeout;
  private wakeAt = Infinity;
  private closed = false;
  /** the process on each core, by core index */
  private readonly onCore: Array<Runnable | undefined> = [];
  /** the process posted to follow it, with its quantum */
  private readonly queued: Array<{ process: Runnable; quantum: number } | undefined> = [];
  /** when each core's current quantum ends, and the timer for the pick ahead of that */
  private readonly quantumEnds: number[] = [];
  private readonly pickTimers: Array<NodeJS.Timeout | undefined> = [];
  /** the renewal of the core's quantum was a draw's (lottery): kept, not drawn again, while it may go on */
  private readonly drawn: boolean[] = [];
  /** processes taken out while on a core (killed, stopped): never renewed, gone at their last report */
  private readonly leaving = new Set<Runnable>();
  /** while a quantum is settled, processes it makes runnable wait here: they join their queues after it */
  private deferred?: Runnable[];

  constructor(readonly cores: readonly Core[], options: SchedulerOptions, private readonly hooks: SchedulerHooks) {
    this.quantumMs = options.quantumMs;
    this.policy = createPolicy(options.policy, options.seed, options.quantumMs);
    this.now = options.now ?? (() => performance.timeOrigin + performance.now());
  }

  setPolicy(name: PolicyName, seed?: number): void {
    this.policy = createPolicy(name, seed, this.quantumMs);
    // virtual times of one policy mean nothing to the next: everyone starts level, but for the quanta
    // still on cores, which were charged at dispatch and are corrected when they end
    for (const group of this.groups) group.vtime = group.inFlightMs / group.weight;
    this.kick();
  }

  add(group: SchedGroup): void {
    this.groups.add(group);
  }

  remove(group: SchedGroup): void {
    this.groups.delete(group);
  }

  /** Starts recording a trace (at most `limit` events), dropping any earlier one. */
  startTrace(limit = 200_000): void {
    this.trace = { began: this.now(), events: [] };
    this.traceLimit = limit;
    for (const group of this.groups) if (group.active) this.record(group, 1, 0);
  }

  /** Stops recording and returns what was recorded. */
  stopTrace(): TraceEvent[] {
    const events = this.trace?.events ?? [];
    this.trace = undefined;
    return events;
  }

  private traceLimit = 0;

  private record(group: SchedGroup, kind: TraceEvent[2], value: number): void {
    if (!this.trace || this.trace.events.length >= this.traceLimit) return;
    this.trace.events.push([this.now() - this.trace.began, group.id, kind, value, group.vtime]);
  }

  /** The virtual time saved groups are placed from (see Policy.reference). */
  get reference(): number {
    return this.policy.reference();
  }

  enqueue(process: Runnable): void {
    if (this.deferred) {
      this.deferred.push(process);
      return;
    }
    const group = process.group;
    process.runnableSince = this.now();
    if (group.idle) {
      group.idle = false;
      this.policy.wake(group, [...this.groups].filter((g) => g.active));
      this.record(group, 1, 0);
    }
    group.queue.push(process);
    this.kick();
  }

  /**
   * cgroup.freeze. A frozen group's processes are not runnable, as in the kernel, so a thawed group
   * comes back the way a waking one does, under the s_min rule: time spent frozen earns no credit
   * over the groups that kept running.
   */
  setFrozen(group: SchedGroup, frozen: boolean): void {
    if (group.frozen === frozen) return;
    group.frozen = frozen;
    if (!frozen && group.queue.length > 0) {
      this.policy.wake(group, [...this.groups].filter((g) => g.active && !g.frozen));
      this.record(group, 1, 0);
    }
    if (frozen) {
      for (const core of this.cores) {
        if (this.queued[core.index]?.process.group === group) this.withdraw(core);
        const running = this.onCore[core.index];
        if (running?.group === group) core.preempt(running.gpid);
      }
    }
    this.kick();
  }

  /**
   * Takes a process out of its run queue (killed, stopped); true if it was there. A process on a core
   * loses any renewal: its current quantum is its last.
   */
  dequeue(process: Runnable): boolean {
    const core = this.onCore.indexOf(process);
    if (core >= 0) {
      this.leaving.add(process);
      this.cores[core]!.revoke();
    }
    for (const other of this.cores) {
      if (this.queued[other.index]?.process !== process) continue;
      this.leaving.add(process);
      this.withdraw(other);
    }
    const index = process.group.queue.indexOf(process);
    if (index < 0) return false;
    process.group.queue.splice(index, 1);
    return true;
  }

  /** Fills idle cores, then reviews the renewals of busy ones against what is left waiting. */
  kick(): void {
    if (this.closed) return;
    const began = performance.now();
    const now = this.now();
    for (const core of this.cores) {
      if (this.onCore[core.index]) continue;
      const candidates = this.candidates(core.index, now);
      if (candidates.length === 0) continue;
      const group = this.policy.pick(candidates) as SchedGroup;
      const { process, quantum } = this.dispatch(core, group, now);
      this.onCore[core.index] = process;
      this.quantumEnds[core.index] = now + quantum;
    }
    for (const core of this.cores) this.review(core, now);
    this.busyMs += performance.now() - began;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.wakeTimer);
    for (const timer of this.pickTimers) clearTimeout(timer);
  }

  /** A busy core's process keeps it, or the pick of what follows it is timed for just before its quantum ends. */
  private review(core: Core, now: number): void {
    const i = core.index;
    const running = this.onCore[i];
    if (running && !this.queued[i] && ((this.drawn[i] && this.continuable(core, running, now)) || this.renewable(core, running, now))) {
      core.renew();
      this.cancelPickAhead(i);
      return;
    }
    this.drawn[i] = false;
    core.revoke();
    if (running && !this.queued[i] && !this.pickTimers[i]) {
      this.pickTimers[i] = setTimeout(() => this.pickAhead(core), Math.max(0, this.quantumEnds[i]! - pickAheadMs - now));
    }
  }

  /** Picks what follows the quantum on `core` and posts it there, unless the process on it keeps it. */
  private pickAhead(core: Core): void {
    const i = core.index;
    this.pickTimers[i] = undefined;
    const running = this.onCore[i];
    if (this.closed || !running || this.queued[i]) return;
    const began = performance.now();
    const now = this.now();
    if (this.renewable(core, running, now)) {
      core.renew();
    } else {
      // the pick sees the groups as they will be when this quantum ends: the running process back in its
      // group's queue (so a lottery draw can give its group the core again), and so is any process whose
      // quantum on another core ends sooner with a follower posted there
      const candidates = this.candidates(i, now, running);
      const group = candidates.length > 0 ? this.policy.pick(candidates) as SchedGroup : undefined;
      if (group && group.queue.length > 0) this.queued[i] = this.dispatch(core, group, now);
      else if (group === running.group && this.continuable(core, running, now)) {
        this.drawn[i] = true;
        core.renew();
      }
      // else the group's process is still on a core: this quantum runs out, and the pick when the core
      // is idle finds it back in its queue
    }
    this.busyMs += performance.now() - began;
  }

  private cancelPickAhead(core: number): void {
    clearTimeout(this.pickTimers[core]);
    this.pickTimers[core] = undefined;
  }

  /**
   * Takes back the process posted to follow `core`'s quantum: the core reports it unrun, or, if it had
   * begun, when its quantum ends. Either way it stays the core's next until that report, so that nothing
   * else is posted or renewed on the core meanwhile.
   */
  private withdraw(core: Core): void {
    core.withdraw();
  }

  /**
   * The groups that may have `core` now. With `ending`, the process whose quantum on this core is about to
   * end, the pick is made ahead, and sees what the pick at the quantum's end would: `ending` back in its
   * group's queue and off the core, and so every process that leaves another core before then.
   */
  private candidates(core: number, now: number, ending?: Runnable): SchedGroup[] {
    const back = new Map<SchedGroup, number>();
    if (ending) {
      const end = this.quantumEnds[core]!;
      for (const other of this.cores) {
        const process = this.onCore[other.index];
        if (!process || this.leaving.has(process)) continue;
        const leaves = other.index === core || (this.queued[other.index] !== undefined && this.quantumEnds[other.index]! <= end);
        if (leaves) back.set(process.group, (back.get(process.group) ?? 0) + 1);
      }
    }
    const result: SchedGroup[] = [];
    for (const group of this.groups) {
      const returning = back.get(group) ?? 0;
      if (group.queue.length + returning === 0 || group.frozen || group.running - returning >= group.maxConcurrent) continue;
      if (group.cpus && !group.cpus.has(core)) continue;
      // a group whose processes are all still on cores is only counted: it is not throttled or woken
      // from here, which would start its throttled time before its runtime is spent
      const waiting = group.queue.length > 0;
      if (group.holdUntil > now) {
        if (waiting) this.wakeLater(group.holdUntil);
        continue;
      }
      const limiter = this.limiter(group, now);
      if (limiter && limiter.available(now) < minQuantumMs) {
        if (waiting) {
          limiter.throttle(now);
          this.wakeLater(limiter.nextPeriod);
        }
        continue;
      }
      result.push(group);
    }
    return result;
  }

  /** The tighter of cpu.max and (when out of credits) the credit baseline. */
  private limiter(group: SchedGroup, now: number): Bandwidth | null {
    const baseline = group.credit && group.baseline && group.credit.atBaseline(now, this.quantumMs) ? group.baseline : null;
    if (!baseline) return group.cpuMax;
    if (!group.cpuMax) return baseline;
    return baseline.available(now) < group.cpuMax.available(now) ? baseline : group.cpuMax;
  }

  /** Whether `process`, on `core`, should keep it when its quantum ends (see the head of this file). */
  private renewable(core: Core, process: Runnable, now: number): boolean {
    return this.continuable(core, process, now) && this.policy.peek(this.candidates(core.index, now, process)) === process.group;
  }

  /** Whether `process` may go on on `core` past its quantum without a dispatch, whatever the policy picks. */
  private continuable(core: Core, process: Runnable, now: number): boolean {
    const group = process.group;
    if (this.leaving.has(process) || this.queued[core.index] || group.queue.length > 0 || group.frozen || group.holdUntil > now || (group.cpus && !group.cpus.has(core.index))) return false;
    return !group.cpuMax && !group.credit;
  }

  /** Posts the group's next process to `core`, to run now if the core is idle or else after its current quantum. */
  private dispatch(core: Core, group: SchedGroup, now: number): { process: Runnable; quantum: number } {
    const process = group.queue.shift()!;
    const limiter = this.limiter(group, now);
    const quantum = Math.max(minQuantumMs, Math.min(this.quantumMs, limiter ? limiter.available(now) : Infinity));
    limiter?.reserve(quantum);
    group.running++;
    group.waitedMs += now - process.runnableSince;
    this.dispatches++;
    // charged when it starts and corrected when it ends, so the next core's pick sees this one running
    this.policy.charge(group, quantum);
    group.inFlightMs += quantum;
    this.record(group, 3, core.index);
    core.run(this.hooks.task(process, quantum), (report) => this.settle(core, process, quantum, limiter, report));
    return { process, quantum };
  }

  private settle(core: Core, process: Runnable, quantum: number, limiter: Bandwidth | null, report: QuantumDone): void {
    const began = performance.now();
    const group = process.group;
    const used = Math.max(0, report.usedMs);
    group.usageMs += used;
    limiter?.settle(quantum, used);
    group.credit?.spend(used, this.now());
    this.busyMs += performance.now() - began;
    // the quantum is settled whole before anything it woke joins a queue: the charge is corrected first,
    // so a process that goes straight back is queued against its group's true virtual time
    this.deferred = [];
    const systemMs = this.hooks.done(process, report);
    const woken = this.deferred;
    this.deferred = undefined;
    this.policy.charge(group, used + systemMs - quantum);
    group.inFlightMs -= quantum;
    this.record(group, 0, used);
    const i = core.index;
    const current = this.onCore[i] === process;
    if (current) {
      this.cancelPickAhead(i);
      this.drawn[i] = false;
    }
    if (report.renewedAs) {
      // the core went on with the same process: the next quantum began when this one ended
      this.renewals++;
      this.policy.charge(group, quantum);
      group.inFlightMs += quantum;
      this.record(group, 3, i);
      this.quantumEnds[i] = this.now() + quantum;
    } else {
      group.running--;
      this.leaving.delete(process);
      if (current) {
        // the process posted to follow, if any, is on the core now
        const next = this.queued[i];
        this.onCore[i] = next?.process;
        this.queued[i] = undefined;
        if (next) this.quantumEnds[i] = this.now() + next.quantum;
      }
      if (!group.active && !woken.some((p) => p.group === group)) {
        group.idle = true;
        this.record(group, 2, 0);
      }
    }
    for (const next of woken) this.enqueue(next);
    this.kick();
  }

  private wakeLater(at: number): void {
    if (at >= this.wakeAt) return;
    clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeAt = Infinity;
      this.kick();
    }, Math.max(0, at - this.now()));
  }
}
