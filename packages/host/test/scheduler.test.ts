/**
 * The scheduling rules, with exact numbers. The real Scheduler runs on simulated cores against a simulated
 * clock (SimHost below): every quantum lasts exactly its length, and the timers the scheduler sets (the pick
 * ahead of a quantum's end, the wake-up of a throttled group) fire at their simulated time, in order with
 * the quanta, and never on their own. Beside it: the policies alone (wfq, lottery, credit, and a compliance
 * suite run against each), the cpu.max bandwidth limiter and the T2 credit account.
 */
import test from 'ava';
import type { Outcome, QuantumDone } from '../src/core-protocol.js';
import type { Core, RunTask } from '../src/cores.js';
import { Bandwidth } from '../src/scheduler/bandwidth.js';
import { CreditAccount, t2Sizes } from '../src/scheduler/credit.js';
import { Credit, Lottery, Wfq, createPolicy, policyNames, type PolicyName, type Schedulable } from '../src/scheduler/policy.js';
import { SchedGroup, Scheduler, type Runnable } from '../src/scheduler/scheduler.js';

const q = 10;
const hour = 3_600_000;
const minute = 60_000;

// ---------------------------------------------------------------------------------------------------------
// SimHost: the real Scheduler, on cores and a clock the test steps. Division of labor:
//   SimClock  the simulated time and the scheduler's timers, which fire only when the simulation reaches them
//   SimCore   the core's side of core-protocol.ts, as cores.ts and core-worker.ts play it (tasks in order,
//             the start word that takes back a posted task unless it has begun, the renewal word), each
//             quantum running for exactly its length of simulated time
//   SimHost   groups of CPU-bound processes, run as the machine runs them: a process whose quantum ran out
//             goes straight back to its run queue; one told to sleep ends its next quantum with a sleep
//             system call and stays off the queue until it is woken

class SimClock {
  now = 0;
  private readonly timers = new Map<number, { at: number; fire: () => void }>();
  private lastTimer = 0;
  private installed = false;

  /**
   * Runs `body` with setTimeout and clearTimeout on this clock: the scheduler looks them up at each call.
   * Only for the length of a synchronous call, so that nothing else in the process ever sees them.
   */
  within<T>(body: () => T): T {
    if (this.installed) return body();
    const saved = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
    globalThis.setTimeout = ((fire: () => void, ms?: number) => {
      const id = ++this.lastTimer;
      // Node's rule: a delay under 1 ms is 1 ms
      this.timers.set(id, { at: this.now + (ms !== undefined && ms >= 1 ? ms : 1), fire });
      return id;
    }) as unknown as typeof setTimeout;
    globalThis.clearTimeout = ((id: unknown) => {
      if (typeof id === 'number') this.timers.delete(id);
    }) as typeof clearTimeout;
    this.installed = true;
    try {
      return body();
    } finally {
      Object.assign(globalThis, saved);
      this.installed = false;
    }
  }

  /** The timer due first; of timers due together, the one set first. */
  next(): { id: number; at: number } | undefined {
    let first: { id: number; at: number } | undefined;
    for (const [id, { at }] of this.timers) if (!first || at < first.at) first = { id, at };
    return first;
  }

  fire(id: number): void {
    const timer = this.timers.get(id)!;
    this.timers.delete(id);
    timer.fire();
  }
}

interface Posted {
  task: RunTask;
  quantum: number;
  report: (done: QuantumDone) => void;
}

function quantumDone(task: RunTask, quantum: number, usedMs: number, outcome: Outcome, renewedAs: number): QuantumDone {
  return {
    kind: 'done', gpid: task.gpid, regs: task.regs, rand: task.rand, usedMs, wallMs: usedMs, steps: usedMs > 0 ? 1 : 0, outcome, ret: undefined,
    logs: [], quantum, renewedAs,
  };
}

class SimCore {
  /** the quantum the core is running: its task, its id, when it began and when it ends */
  running?: { posted: Posted; quantum: number; began: number; endsAt: number };
  /** tasks posted and not reported done, as the main thread's Core keeps them: the first is on the core */
  private readonly posted: Posted[] = [];
  /** tasks sent to the core that it has not come to yet */
  private readonly inbox: Posted[] = [];
  private start = 0;
  private renewal: { of: number; as: number } | undefined;
  private lastQuantum = 0;

  constructor(readonly index: number, private readonly host: SimHost) {}

  run(task: RunTask, report: (done: QuantumDone) => void): void {
    const posted = { task, quantum: ++this.lastQuantum, report };
    this.posted.push(posted);
    this.inbox.push(posted);
    this.start = posted.quantum;
    // an idle core has come to every task sent before, so it begins this one at once and reports nothing
    if (!this.running) this.comeToNext();
  }

  withdraw(): void {
    this.start = 0;
  }

  renew(): void {
    const current = this.posted[0];
    if (current) this.renewal = { of: current.quantum, as: ++this.lastQuantum };
  }

  revoke(): void {
    this.renewal = undefined;
  }

  /** A freeze: the quantum of `gpid` ends now, as the real core ends it after the step it is in. */
  preempt(gpid: number): void {
    if (this.running?.posted.task.gpid === gpid) this.running.endsAt = this.host.clock.now;
  }

  /** The task on the core, and the one posted to follow it, as the main thread knows them. */
  get current(): RunTask | undefined {
    return this.posted[0]?.task;
  }

  get following(): RunTask | undefined {
    return this.posted[1]?.task;
  }

  /**
   * The running quantum ends. The core takes its renewal, or comes to the tasks sent after it (reporting
   * unrun those taken back), and only then does the main thread hear the reports, in order.
   */
  end(): void {
    const { posted, quantum, began } = this.running!;
    const now = this.host.clock.now;
    this.running = undefined;
    const outcome = this.host.outcomeOf(posted.task);
    const renewedAs = outcome === undefined && this.renewal?.of === quantum ? this.renewal.as : 0;
    const ended = quantumDone(posted.task, quantum, now - began, outcome, renewedAs);
    this.host.ran(posted.task, now - began);
    if (renewedAs) {
      this.renewal = undefined;
      this.begin(posted, renewedAs);
    }
    for (const done of [ended, ...this.comeToNext()]) this.hear(done);
  }

  /** The core takes the tasks sent to it in order: each runs if the start word still names it, else is reported unrun. */
  private comeToNext(): QuantumDone[] {
    const unrun: QuantumDone[] = [];
    for (let next: Posted | undefined; !this.running && (next = this.inbox.shift());) {
      if (this.start === next.quantum) {
        this.start = 0;
        this.begin(next, next.quantum);
      } else {
        unrun.push(quantumDone(next.task, next.quantum, 0, undefined, 0));
      }
    }
    return unrun;
  }

  private begin(posted: Posted, quantum: number): void {
    const now = this.host.clock.now;
    this.running = { posted, quantum, began: now, endsAt: now + posted.task.quantumMs };
    this.host.began(this.index, posted.task);
  }

  /** A report reaches the main thread: cores.ts's listener. */
  private hear(done: QuantumDone): void {
    const current = this.posted[0];
    if (current?.quantum !== done.quantum) return;
    if (done.renewedAs) current.quantum = done.renewedAs;
    else this.posted.shift();
    current.report(done);
  }
}

class SimHost {
  readonly clock = new SimClock();
  readonly cores: SimCore[];
  readonly scheduler: Scheduler;
  /** every quantum a core began (dispatched or renewed), in order */
  readonly quanta: Array<{ core: number; group: SchedGroup; at: number }> = [];
  /** called at every quantum boundary, once the core has gone on */
  onBoundary?: () => void;
  private readonly processes = new Map<number, Runnable>();
  /** CPU time of the quanta that ended, by group */
  private readonly completed = new Map<SchedGroup, number>();
  /** processes that sleep when their quantum ends, and those asleep */
  private readonly drowsy = new Set<Runnable>();
  private readonly asleep = new Set<Runnable>();
  private nextGpid = 100;

  constructor(policy: PolicyName, cores: number, seed?: number) {
    this.cores = Array.from({ length: cores }, (_, i) => new SimCore(i, this));
    this.scheduler = new Scheduler(this.cores as unknown as Core[], { quantumMs: q, policy, seed, now: () => this.clock.now }, {
      task: (process, quantumMs) => ({
        kind: 'run', gpid: process.gpid, pid: process.gpid, container: process.group.id, program: 'cpu-burn', args: {}, regs: {},
        ret: undefined, rand: 1, clockOffset: 0, quantumMs,
      }),
      done: (process, done) => {
        if (done.renewedAs) return 0;
        if (done.outcome?.sys === 'sleep') this.asleep.add(process);
        else this.scheduler.enqueue(process);
        return 0;
      },
    });
  }

  get now(): number {
    return this.clock.now;
  }

  /** A group of `procs` CPU-bound processes, runnable from now. */
  add(id: number, weight: number, procs = 1, limits: { cpuMax?: Bandwidth } = {}): SchedGroup {
    const group = new SchedGroup(id, weight);
    group.cpuMax = limits.cpuMax ?? null;
    this.clock.within(() => {
      this.scheduler.add(group);
      for (let i = 0; i < procs; i++) {
        const process: Runnable = { gpid: this.nextGpid++, group, runnableSince: this.now };
        this.processes.set(process.gpid, process);
        this.scheduler.enqueue(process);
      }
    });
    return group;
  }

  /** Every process of the group sleeps at the end of its next quantum, until it is woken. */
  sleep(group: SchedGroup): void {
    for (const process of this.processes.values()) if (process.group === group) this.drowsy.add(process);
  }

  /** The group's sleeping processes are runnable again. */
  wake(group: SchedGroup): void {
    this.clock.within(() => {
      for (const process of [...this.asleep]) {
        if (process.group !== group) continue;
        this.asleep.delete(process);
        this.scheduler.enqueue(process);
      }
    });
  }

  /** cgroup.freeze */
  setFrozen(group: SchedGroup, frozen: boolean): void {
    this.clock.within(() => this.scheduler.setFrozen(group, frozen));
  }

  /** CPU time the group has had: its quanta that ended, and what those on a core now have run so far. */
  served(group: SchedGroup): number {
    let ms = this.completed.get(group) ?? 0;
    for (const core of this.cores) if (core.running && this.groupOf(core.running.posted.task) === group) ms += this.now - core.running.began;
    return ms;
  }

  /** Runs to simulated time `until`: the cores' quantum ends and the scheduler's timers, in time order. */
  runUntil(until: number): void {
    this.clock.within(() => {
      for (;;) {
        let first: SimCore | undefined;
        for (const core of this.cores) if (core.running && (!first || core.running.endsAt < first.running!.endsAt)) first = core;
        const timer = this.clock.next();
        const at = Math.min(first?.running!.endsAt ?? Infinity, timer?.at ?? Infinity);
        if (at > until) break;
        this.clock.now = at;
        if (first && first.running!.endsAt === at) {
          first.end();
          this.onBoundary?.();
        } else {
          this.clock.fire(timer!.id);
        }
      }
      this.clock.now = until;
    });
  }

  outcomeOf(task: RunTask): Outcome {
    const process = this.processes.get(task.gpid)!;
    return this.drowsy.delete(process) ? { sys: 'sleep', ms: Infinity } : undefined;
  }

  began(core: number, task: RunTask): void {
    this.quanta.push({ core, group: this.groupOf(task), at: this.now });
  }

  ran(task: RunTask, usedMs: number): void {
    const group = this.groupOf(task);
    this.completed.set(group, (this.completed.get(group) ?? 0) + usedMs);
  }

  private groupOf(task: RunTask): SchedGroup {
    return this.processes.get(task.gpid)!.group;
  }
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/** The WF²Q pick, written out from its definition: the policy's choice must match it. */
function wf2q(candidates: ReadonlyArray<{ id: number; weight: number; vtime: number }>): number {
  const mean = sum(candidates.map((g) => g.weight * g.vtime)) / sum(candidates.map((g) => g.weight));
  const eligible = candidates.filter((g) => g.vtime <= mean + 1e-9);
  const finish = (g: { vtime: number; weight: number }) => g.vtime + q / g.weight;
  const best = Math.min(...eligible.map(finish));
  return Math.min(...eligible.filter((g) => finish(g) === best).map((g) => g.id));
}

/**
 * Starts groups at time 0 one after another, as a machine starts containers, and runs one quantum. The
 * first group is on the core before the others exist, and they join at s_min, which already counts that
 * quantum (charged at dispatch): only once it has run do all stand level, and the fairness bounds are
 * about the service from then on. `joinedAt` is each group's virtual time once all had joined.
 */
function startLevel(host: SimHost, weights: readonly number[], procs: number) {
  const groups = weights.map((w, i) => host.add(i + 1, w, procs));
  const joinedAt = groups.map((g) => g.vtime);
  host.runUntil(q);
  const level = new Map(groups.map((g) => [g, host.served(g)]));
  return { groups, joinedAt, served: (group: SchedGroup) => host.served(group) - level.get(group)! };
}

/** The longest row of quanta one group ran back to back on `core`. */
function longestRow(quanta: SimHost['quanta'], group: SchedGroup, core = 0): number {
  let longest = 0;
  let row = 0;
  for (const quantum of quanta) {
    if (quantum.core !== core) continue;
    row = quantum.group === group ? row + 1 : 0;
    longest = Math.max(longest, row);
  }
  return longest;
}

// ---------------------------------------------------------------------------------------------------------
// wfq

for (const procs of [1, 2]) {
  test(`wfq on one core, ${procs} process(es) per group: weights 1,2,3 over 10 s get their shares within 1%, and are charged what they ran`, (t) => {
    const host = new SimHost('wfq', 1);
    const groups = [1, 2, 3].map((w, i) => host.add(i + 1, w, procs));
    host.runUntil(10_000);
    t.is(sum(groups.map((g) => host.served(g))), 10_000, 'the core never idled');
    for (const g of groups) {
      const share = host.served(g) / 10_000;
      const expected = g.weight / 6;
      t.true(Math.abs(share - expected) <= 0.01 * expected, `weight ${g.weight}: share ${share}, expected ${expected}`);
      t.is(g.usageMs, host.served(g), `weight ${g.weight}: the scheduler's usage against the core's`);
    }
  });
}

test('wfq keeps the start-time fair queueing bound |W_i/w_i − W_j/w_j| ≤ q/w_i + q/w_j at every quantum boundary', (t) => {
  const host = new SimHost('wfq', 1);
  const { groups, served } = startLevel(host, [1, 2, 3, 5], 2);
  let worst = -Infinity;
  let points = 0;
  host.onBoundary = () => {
    points++;
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue;
        const gap = Math.abs(served(a) / a.weight - served(b) / b.weight) - (q / a.weight + q / b.weight);
        worst = Math.max(worst, gap);
      }
    }
  };
  host.runUntil(10_000);
  t.is(points, 999);
  t.true(worst <= 1e-9, `the bound was exceeded by ${worst} ms`);
});

test('wfq on two cores: every pick and renewal is WF2Q\'s (among candidates at or below the weighted mean virtual time, the smallest finish s_i + q/w_i), and the cores run what was decided', (t) => {
  const host = new SimHost('wfq', 2);
  type Seen = { id: number; weight: number; vtime: number };
  const decisions: Array<{ kind: 'pick' | 'peek'; candidates: Seen[]; chosen: number | undefined }> = [];
  const decide = <T extends Schedulable | undefined>(kind: 'pick' | 'peek', candidates: readonly Schedulable[], chosen: () => T): T => {
    const seen = candidates.map((g) => ({ id: g.id, weight: g.weight, vtime: g.vtime }));
    const group = chosen();
    decisions.push({ kind, candidates: seen, chosen: group?.id });
    return group;
  };
  // the scheduler's own policy object, each decision recorded on its way out
  const policy = host.scheduler.policy;
  const pick = policy.pick.bind(policy);
  const peek = policy.peek.bind(policy);
  policy.pick = (candidates) => decide('pick', candidates, () => pick(candidates));
  policy.peek = (candidates) => decide('peek', candidates, () => peek(candidates));
  // a task posted to a core is the group of the pick just made; a renewal, the running group, just peeked
  const undecided: string[] = [];
  let dispatched = 0;
  let renewed = 0;
  for (const core of host.cores) {
    const run = core.run.bind(core);
    const renew = core.renew.bind(core);
    core.run = (task, done) => {
      dispatched++;
      const last = decisions.at(-1);
      if (last?.kind !== 'pick' || last.chosen !== task.container) undecided.push(`core ${core.index} given group ${task.container} after ${JSON.stringify(last)}`);
      run(task, done);
    };
    core.renew = () => {
      renewed++;
      const last = decisions.at(-1);
      if (last?.kind !== 'peek' || last.chosen !== core.current?.container) undecided.push(`core ${core.index} renewed for group ${core.current?.container} after ${JSON.stringify(last)}`);
      renew();
    };
  }
  [3, 1, 7, 2].forEach((w, i) => host.add(i + 1, w, 1 + (i % 3)));
  host.runUntil(2000);
  t.deepEqual(undecided, []);
  t.true(dispatched > 100 && renewed > 0, `${dispatched} dispatched, ${renewed} renewals: both paths taken`);
  for (const d of decisions) t.is(d.chosen, wf2q(d.candidates), `${d.kind} among ${JSON.stringify(d.candidates)}`);
});

test('wfq wake rule: a group that slept 2 s wakes at max(own, s_min) and its catch-up is bounded by one quantum', (t) => {
  const host = new SimHost('wfq', 1);
  const [a, b, c] = [1, 2, 3].map((w, i) => host.add(i + 1, w, 2)) as [SchedGroup, SchedGroup, SchedGroup];
  host.runUntil(1000);
  host.sleep(c);
  host.runUntil(3000);
  t.is(c.running, 0);
  t.false(c.active, 'both its processes went to sleep');
  t.true(c.idle);
  const own = c.vtime;
  const sMin = Math.min(a.vtime, b.vtime);
  t.true(sMin > own, 'the others ran on while it slept');
  const servedAtWake = { a: host.served(a), b: host.served(b), c: host.served(c) };
  const wokeAt = host.now;
  const before = host.quanta.length;
  host.wake(c);
  t.is(c.vtime, Math.max(own, sMin));
  // from the wake on, c may not take more than its share w_c/W plus one quantum at any quantum boundary
  let worstExcess = -Infinity;
  host.onBoundary = () => {
    worstExcess = Math.max(worstExcess, host.served(c) - servedAtWake.c - ((host.now - wokeAt) * c.weight) / 6);
  };
  host.runUntil(5000);
  t.true(worstExcess <= q, `c ran ${worstExcess} ms ahead of its share after waking`);
  t.true(worstExcess > -q, `c got ${-worstExcess} ms less than its share after waking`);
  // weight 3 of 6: fair is every other quantum, so it never runs more than two in a row
  const longest = longestRow(host.quanta.slice(before), c);
  t.true(longest <= 2, `c ran ${longest} quanta in a row after waking`);
  // and the others were not starved: over 2 s each got its share within one quantum
  const elapsed = host.now - wokeAt;
  t.true(Math.abs(host.served(a) - servedAtWake.a - elapsed / 6) <= q);
  t.true(Math.abs(host.served(b) - servedAtWake.b - (elapsed * 2) / 6) <= q);
});

test('wfq wake rule: a group that ran ahead keeps its own, larger virtual time when it wakes', (t) => {
  const policy = new Wfq();
  const others: Schedulable[] = [{ id: 1, weight: 1, vtime: 5 }, { id: 2, weight: 1, vtime: 7 }];
  const group: Schedulable = { id: 3, weight: 1, vtime: 40 };
  policy.wake(group, others);
  t.is(group.vtime, 40);
  const behind: Schedulable = { id: 4, weight: 1, vtime: 1 };
  policy.wake(behind, others);
  t.is(behind.vtime, 5);
});

test('wfq: s_min never decreases, even when the only groups left runnable are behind it', (t) => {
  const policy = new Wfq();
  const a: Schedulable = { id: 1, weight: 1, vtime: 100 };
  const b: Schedulable = { id: 2, weight: 1, vtime: 0 };
  policy.wake(b, [a]);
  t.is(b.vtime, 100);
  const late: Schedulable = { id: 3, weight: 1, vtime: 0 };
  // nothing else runnable: it still starts at the s_min reached so far
  policy.wake(late, []);
  t.is(late.vtime, 100);
});

test('wfq: a group arriving midway starts at s_min and does not monopolise the core', (t) => {
  const host = new SimHost('wfq', 1);
  const [a, b] = [1, 2].map((w, i) => host.add(i + 1, w, 2)) as [SchedGroup, SchedGroup];
  host.runUntil(5000);
  const sMin = Math.min(a.vtime, b.vtime);
  t.true(sMin > 100);
  const arrivedAt = host.now;
  const servedBefore = { a: host.served(a), b: host.served(b) };
  const c = host.add(3, 3, 2);
  t.is(c.vtime, sMin);
  let worstExcess = -Infinity;
  host.onBoundary = () => {
    worstExcess = Math.max(worstExcess, host.served(c) - ((host.now - arrivedAt) * 3) / 6);
  };
  host.runUntil(10_000);
  t.true(worstExcess <= q, `the newcomer ran ${worstExcess} ms ahead of its share`);
  const elapsed = host.now - arrivedAt;
  t.true(Math.abs(host.served(c) / elapsed - 0.5) <= 0.01, `the newcomer's share ${host.served(c) / elapsed}`);
  // the other two share the rest 1:2
  t.true(Math.abs((host.served(a) - servedBefore.a) / elapsed - 1 / 6) <= 0.01);
  t.true(Math.abs((host.served(b) - servedBefore.b) / elapsed - 2 / 6) <= 0.01);
});

test('cgroup.freeze: a frozen group runs nothing, not even the quantum already posted to follow, and thaws under the s_min rule', (t) => {
  const host = new SimHost('wfq', 1);
  const [a, b] = [1, 1].map((w, i) => host.add(i + 1, w, 2)) as [SchedGroup, SchedGroup];
  // equal weights take turns: while a runs, the pick made ahead of its quantum's end has posted b to follow
  host.runUntil(1000);
  const core = host.cores[0]!;
  if (core.current?.container !== a.id) host.runUntil(1010);
  host.runUntil(host.now + q - 1);
  t.is(core.current?.container, a.id);
  t.is(core.following?.container, b.id);
  host.setFrozen(b, true);
  const frozenAt = host.now;
  const servedFrozen = host.served(b);
  host.runUntil(frozenAt + 500);
  t.is(host.served(b), servedFrozen, 'b ran while frozen');
  t.is(host.served(a) + host.served(b), host.now, 'the core never idled');
  const own = b.vtime;
  t.true(a.vtime > own, 'a ran on while b was frozen');
  const thawedAt = host.now;
  const servedAtThaw = { a: host.served(a), b: host.served(b) };
  host.setFrozen(b, false);
  t.is(b.vtime, a.vtime, 'b comes back at s_min, with no credit for the time it was frozen');
  host.runUntil(thawedAt + 1000);
  t.true(Math.abs(host.served(b) - servedAtThaw.b - 500) <= q, `b got ${host.served(b) - servedAtThaw.b} ms of 1000 after thawing`);
  t.true(Math.abs(host.served(a) - servedAtThaw.a - 500) <= q);
});

test('wfq on two cores: weights 1 and 3 with two processes each share 1:3', (t) => {
  const host = new SimHost('wfq', 2);
  const light = host.add(1, 1, 2);
  const heavy = host.add(2, 3, 2);
  host.runUntil(10_000);
  t.is(host.served(light) + host.served(heavy), 20_000);
  t.true(Math.abs(host.served(heavy) / host.served(light) - 3) <= 0.03, `ratio ${host.served(heavy) / host.served(light)}`);
});

test('wfq lag bound: |W_i − T·w_i/W| < q at every quantum boundary (weights 1,2,3 and 1,1,1,1,10; one and two processes per group)', (t) => {
  for (const procs of [1, 2]) {
    for (const weights of [[1, 2, 3], [1, 1, 1, 1, 10]]) {
      const host = new SimHost('wfq', 1);
      const { groups, joinedAt, served } = startLevel(host, weights, procs);
      t.deepEqual(joinedAt, weights.map(() => q / weights[0]!), 'the later groups joined level with the first after its quantum');
      const total = sum(weights);
      let worst = 0;
      host.onBoundary = () => {
        for (const g of groups) worst = Math.max(worst, Math.abs(served(g) - ((host.now - q) * g.weight) / total));
      };
      host.runUntil(10_000);
      t.true(worst < q, `weights ${weights}, ${procs} per group: lag ${worst}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------------------
// lottery

test('lottery: the same seed repeats the same picks, another seed does not', (t) => {
  const groups: Schedulable[] = [1, 2, 3, 4].map((w, i) => ({ id: i + 1, weight: w, vtime: 0 }));
  const draws = (seed: number) => {
    const policy = new Lottery(seed);
    return Array.from({ length: 2000 }, () => policy.pick(groups).id);
  };
  t.deepEqual(draws(7), draws(7));
  t.deepEqual(createPolicy('lottery', 99) instanceof Lottery, true);
  t.notDeepEqual(draws(7), draws(8));
  // and what the scheduler made of them on two cores
  const run = (seed: number) => {
    const host = new SimHost('lottery', 2, seed);
    [1, 2, 3].forEach((w, i) => host.add(i + 1, w, 2));
    host.runUntil(3000);
    return host.quanta.map((quantum) => `${quantum.core}:${quantum.group.id}`);
  };
  t.deepEqual(run(3), run(3));
  t.notDeepEqual(run(3), run(4));
});

// Known bug (issue 14): on two cores the draw made ahead of a quantum's end is thrown away when it picks a
// group whose processes are all on other cores, so heavy groups lose share. Marked failing until fixed.
for (const cores of [1, 2]) {
  (cores === 2 ? test.failing : test)(`lottery on ${cores} core(s): over 20000 quanta each share lands within 3·sqrt(p(1−p)/n) of p`, (t) => {
    const n = 20_000;
    const until = (n / cores) * q;
    const host = new SimHost('lottery', cores, 1);
    // two processes per group, so that each group can use every core
    const groups = [1, 2, 3].map((w, i) => host.add(i + 1, w, 2));
    host.runUntil(until);
    t.is(host.quanta.filter((quantum) => quantum.at < until).length, n);
    for (const g of groups) {
      const p = g.weight / 6;
      const share = host.served(g) / (n * q);
      const bound = 3 * Math.sqrt((p * (1 - p)) / n);
      t.true(Math.abs(share - p) <= bound, `weight ${g.weight}: share ${share}, p ${p}, bound ${bound}`);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// The compliance block: the shared rules, run against every policy.

for (const name of policyNames) {
  test(`compliance ${name}: pick returns one of the candidates, whatever subset is offered`, (t) => {
    const policy = createPolicy(name, 5);
    t.is(policy.name, name);
    const groups: Schedulable[] = [1, 5, 100, 10_000, 3, 1].map((w, i) => ({ id: i + 1, weight: w, vtime: 0 }));
    for (const g of groups) policy.wake(g, groups.filter((o) => o !== g));
    let state = 12345;
    for (let k = 0; k < 5000; k++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const subset = groups.filter((_, i) => state & (1 << (i + 3)));
      if (subset.length === 0) continue;
      const picked = policy.pick(subset);
      t.true(subset.includes(picked));
      policy.charge(picked, q);
      t.true(groups.every((g) => Number.isFinite(g.vtime) && g.vtime >= 0));
    }
  });

  test(`compliance ${name}: a single candidate is always picked`, (t) => {
    const policy = createPolicy(name, 9);
    const groups: Schedulable[] = [1, 2, 10_000].map((w, i) => ({ id: i + 1, weight: w, vtime: i * 1000 }));
    for (let k = 0; k < 300; k++) {
      const only = groups[k % 3]!;
      t.is(policy.pick([only]), only);
      policy.charge(only, q);
    }
  });

  test(`compliance ${name}: the weight bounds 1 and 10000 keep virtual times finite and the light group to its share`, (t) => {
    const host = new SimHost(name, 1, 2);
    const [light, heavy] = [1, 10_000].map((w, i) => host.add(i + 1, w, 2)) as [SchedGroup, SchedGroup];
    host.runUntil(200_000);
    t.true(Number.isFinite(light.vtime) && Number.isFinite(heavy.vtime));
    t.is(host.served(light) + host.served(heavy), 200_000);
    // the weight-1 group gets about 1 quantum in 10001, not more than a few times that
    t.true(host.served(light) <= (200_000 / 10_001) * 4 + q, `the light group ran ${host.served(light)} ms`);
    // a virtual-time policy never starves it (a lottery only makes that unlikely)
    if (name !== 'lottery') t.true(host.served(light) >= q, 'the light group never ran');
  });

  (name === 'lottery' ? test.failing : test)(`compliance ${name}: long-run shares on two cores converge to the weights within 5%`, (t) => {
    const host = new SimHost(name, 2, 11);
    const weights = [1, 2, 3, 4];
    const groups = weights.map((w, i) => host.add(i + 1, w, 2));
    host.runUntil(500_000);
    const total = sum(groups.map((g) => host.served(g)));
    t.is(total, 2 * 500_000);
    for (const g of groups) {
      const share = host.served(g) / total;
      const expected = g.weight / sum(weights);
      t.true(Math.abs(share - expected) <= 0.05 * expected, `${name} weight ${g.weight}: share ${share}, expected ${expected}`);
    }
  });
}

test('createPolicy hands out each policy by name; credit orders like wfq', (t) => {
  t.true(createPolicy('wfq') instanceof Wfq);
  t.true(createPolicy('credit') instanceof Credit);
  t.true(createPolicy('lottery') instanceof Lottery);
  const order = (policy: PolicyName) => {
    const host = new SimHost(policy, 1);
    [2, 5, 1].forEach((w, i) => host.add(i + 1, w, 2));
    host.runUntil(2000);
    return host.quanta.map((quantum) => quantum.group.id);
  };
  const wfq = order('wfq');
  t.deepEqual(new Set(wfq), new Set([1, 2, 3]));
  t.deepEqual(order('credit'), wfq);
  t.notDeepEqual(order('lottery'), wfq);
});

// ---------------------------------------------------------------------------------------------------------
// cpu.max: bandwidth control with fake times

/** Runs `cores` cores flat out against a limiter from `from` to `until`, as the scheduler does. */
function drive(bw: Bandwidth, cores: number, from: number, until: number, usedFraction = 1): void {
  const busyUntil = Array.from({ length: cores }, () => from);
  const pending: Array<{ core: number; end: number; reserved: number }> = [];
  for (let now = from; now < until; now += 0.5) {
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i]!;
      if (p.end > now) continue;
      bw.settle(p.reserved, p.reserved * usedFraction);
      pending.splice(i, 1);
    }
    for (let core = 0; core < cores; core++) {
      if (busyUntil[core]! > now) continue;
      const available = bw.available(now);
      if (available < 0.05) {
        bw.throttle(now);
        continue;
      }
      const quantum = Math.min(q, available);
      bw.reserve(quantum);
      pending.push({ core, end: now + quantum, reserved: quantum });
      busyUntil[core] = now + quantum;
    }
  }
  for (const p of pending) bw.settle(p.reserved, p.reserved * usedFraction);
}

test('cpu.max 20ms/100ms on one core: 10 periods, each throttled, exact counters', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  let now = 0;
  while (now < 1000) {
    const available = bw.available(now);
    if (available >= 0.05) {
      const quantum = Math.min(q, available);
      bw.reserve(quantum);
      now += quantum;
      bw.settle(quantum, quantum);
    } else {
      bw.throttle(now);
      now = bw.nextPeriod;
    }
  }
  bw.available(1000);
  t.deepEqual(bw.stats, { nrPeriods: 10, nrThrottled: 10, throttledMs: 800, nrBursts: 0, burstMs: 0, peakPeriodMs: 20 });
});

test('cpu.max: reserve/settle on four concurrent cores never lets a period use more than the quota', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  drive(bw, 4, 0, 2000);
  bw.available(2000);
  t.true(bw.stats.peakPeriodMs <= 20 + 1e-9, `peak ${bw.stats.peakPeriodMs}`);
  t.true(bw.stats.peakPeriodMs >= 20 - 1e-9);
  t.is(bw.stats.nrPeriods, 20);
  t.is(bw.stats.nrThrottled, 20);
  t.is(bw.stats.nrBursts, 0);
  // two cores reserve the whole quota at the period start, the other two are throttled from then on
  t.is(bw.stats.throttledMs, 20 * 100);
});

test('cpu.max: a quantum that uses less than it reserved gives the rest back', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(10);
  t.is(bw.available(1), 10);
  bw.settle(10, 4);
  t.is(bw.available(5), 16);
  drive(bw, 2, 10, 1000, 0.5);
  bw.available(1000);
  t.true(bw.stats.peakPeriodMs <= 20 + 1e-9);
});

test('cpu.max: a period with no work is not counted in nr_periods and not throttled', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(5);
  bw.settle(5, 5);
  t.is(bw.available(350), 20);
  t.is(bw.stats.nrPeriods, 1);
  t.is(bw.stats.nrThrottled, 0);
  t.is(bw.stats.throttledMs, 0);
  t.is(bw.stats.peakPeriodMs, 5);
});

test('cpu.max: throttling is counted once per period, for the time until the next refill', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(20);
  bw.settle(20, 20);
  t.is(bw.available(30), 0);
  bw.throttle(30);
  bw.throttle(50);
  bw.throttle(99);
  t.is(bw.nextPeriod, 100);
  t.is(bw.available(100), 20);
  t.is(bw.stats.nrThrottled, 1);
  t.is(bw.stats.throttledMs, 70);
  t.is(bw.stats.nrPeriods, 1);
  bw.reserve(20);
  bw.settle(20, 20);
  bw.throttle(120);
  t.is(bw.available(200), 20);
  t.is(bw.stats.nrThrottled, 2);
  t.is(bw.stats.nrPeriods, 2);
  t.is(bw.stats.throttledMs, 150);
});

test('cpu.max.burst: runtime refills to min(runtime + quota, quota + burst) and bursts are counted', (t) => {
  const bw = new Bandwidth(20, 100, 15, 0);
  t.is(bw.available(0), 20);
  bw.reserve(5);
  bw.settle(5, 5);
  // 15 left + 20 = 35, capped at 20 + 15
  t.is(bw.available(100), 35);
  // an idle period: min(35 + 20, 35)
  t.is(bw.available(200), 35);
  bw.reserve(35);
  bw.settle(35, 35);
  t.is(bw.available(250), 0);
  t.is(bw.available(300), 20);
  t.is(bw.stats.nrBursts, 1);
  t.is(bw.stats.burstMs, 15);
  t.is(bw.stats.peakPeriodMs, 35);
  // without burst the runtime never carries over
  const plain = new Bandwidth(20, 100, 0, 0);
  t.is(plain.available(500), 20);
});

test('cpu.max: a quantum that overruns its reservation is paid back next period and is not a burst', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(20);
  // the core noticed its deadline 0.3 ms late
  bw.settle(20, 20.3);
  t.is(bw.available(100), 19.7);
  t.is(bw.stats.nrBursts, 0);
  t.is(bw.stats.burstMs, 0);
  t.is(bw.stats.peakPeriodMs, 20.3);
  // with burst, only what the carried-over runtime paid for is a burst
  const bursting = new Bandwidth(20, 100, 10, 0);
  t.is(bursting.available(100), 30);
  bursting.reserve(30);
  bursting.settle(30, 31);
  t.is(bursting.available(200), 19);
  t.is(bursting.stats.nrBursts, 1);
  t.is(bursting.stats.burstMs, 10);
});

test('cpu.max: update() changes the limits in place and keeps the counters', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  drive(bw, 1, 0, 500);
  bw.available(500);
  const before = { ...bw.stats };
  t.is(before.nrPeriods, 5);
  t.is(before.nrThrottled, 5);
  bw.update(50, 100, 0);
  t.deepEqual(bw.stats, before);
  t.is(bw.quotaMs, 50);
  drive(bw, 1, 500, 1000);
  bw.available(1000);
  t.is(bw.stats.nrPeriods, 10);
  t.is(bw.stats.nrThrottled, 10);
  t.is(bw.stats.peakPeriodMs, 50);
  // a lower quota cuts the runtime already granted
  const cut = new Bandwidth(80, 100, 0, 0);
  cut.update(30, 100, 0);
  t.is(cut.available(0), 30);
  // a longer period moves the next refill
  const longer = new Bandwidth(20, 100, 0, 0);
  longer.update(20, 250, 0);
  t.is(longer.nextPeriod, 250);
});

test('cpu.max: a long idle stretch is skipped without looping and lands on the period grid', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(10);
  bw.settle(10, 10);
  t.is(bw.available(1_000_000_050), 20);
  t.is(bw.nextPeriod, 1_000_000_100);
  t.is(bw.stats.nrPeriods, 1);
});

test('cpu.max burst: after any long idle stretch runtime = quota + burst', (t) => {
  for (const idle of [500, 1500, 5000]) {
    const bw = new Bandwidth(20, 100, 20, 0);
    bw.reserve(20);
    bw.settle(20, 20);
    t.is(bw.available(idle), 40, `after ${idle} ms idle`);
  }
});

test('cpu.stat: nr_throttled never exceeds nr_periods, even mid-period', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(20);
  bw.settle(20, 20);
  bw.available(30);
  bw.throttle(30);
  t.true(bw.stats.nrThrottled <= bw.stats.nrPeriods);
  bw.available(120);
  t.is(bw.stats.nrThrottled, 1);
  t.is(bw.stats.nrPeriods, 1);
});

test('cpu.max 20ms/100ms through the scheduler on four cores: exactly the quota each period, woken at each refill by the scheduler\'s own timer', (t) => {
  const host = new SimHost('wfq', 4);
  const bw = new Bandwidth(20, 100, 0, 0);
  const capped = host.add(1, 1, 4, { cpuMax: bw });
  host.runUntil(2000);
  // alone on the host, only the wake-up timer at each period's start brings it back
  t.is(host.served(capped), 20 * 20);
  t.deepEqual([...new Set(host.quanta.map((quantum) => quantum.at))], Array.from({ length: 21 }, (_, i) => i * 100));
  t.deepEqual(bw.stats, { nrPeriods: 20, nrThrottled: 20, throttledMs: 20 * 100, nrBursts: 0, burstMs: 0, peakPeriodMs: 20 });
  // beside a group without a limit, the cores stay busy and the capped group still gets exactly its quota
  const shared = new SimHost('wfq', 4);
  const limited = shared.add(1, 1, 4, { cpuMax: new Bandwidth(20, 100, 0, 0) });
  const free = shared.add(2, 1, 4);
  shared.runUntil(2000);
  t.is(shared.served(limited), 20 * 20);
  t.is(shared.served(free), 4 * 2000 - 20 * 20);
});

// ---------------------------------------------------------------------------------------------------------
// T2 credits

const micro = t2Sizes['t2.micro']!;

test('t2 sizes carry the published rates, caps and baselines', (t) => {
  t.like(t2Sizes['t2.micro'], { vcpus: 1, earnPerHour: 6, maxBalance: 144, baseline: 0.1 });
  t.like(t2Sizes['t2.small'], { vcpus: 1, earnPerHour: 12, maxBalance: 288, baseline: 0.2 });
  t.like(t2Sizes['t2.medium'], { vcpus: 2, earnPerHour: 24, maxBalance: 576, baseline: 0.2 });
  for (const size of Object.values(t2Sizes)) t.is(size.maxBalance, size.earnPerHour * 24);
});

test('t2.micro earns 6 credits in a simulated hour', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  account.earn(hour);
  t.true(Math.abs(account.earned - 6) < 1e-9);
  t.true(Math.abs(account.balance - 6) < 1e-9);
  // earning is continuous: half an hour more is 3 more
  account.earn(1.5 * hour);
  t.true(Math.abs(account.balance - 9) < 1e-9);
});

test('t2 balance never exceeds maxBalance, even after 30 simulated hours idle', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  for (let h = 1; h <= 30; h++) {
    account.earn(h * hour);
    t.true(account.balance <= micro.maxBalance + 1e-9);
  }
  t.is(account.balance, 144);
  t.true(Math.abs(account.earned - 180) < 1e-9);
  // the launch credits are apart from the cap
  t.is(account.launch, 30);
  t.is(account.stat(30 * hour, q).balance + account.stat(30 * hour, q).launch, 174);
});

test('t2 launch credits (30 per vCPU) are spent first', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  account.earn(2 * hour);
  t.true(Math.abs(account.balance - 12) < 1e-9);
  account.spend(minute, 2 * hour);
  t.true(Math.abs(account.launch - 29) < 1e-9);
  t.true(Math.abs(account.balance - 12) < 1e-9);
  account.spend(29.5 * minute, 2 * hour);
  t.is(account.launch, 0);
  t.true(Math.abs(account.balance - 11.5) < 1e-9);
  t.is(new CreditAccount(t2Sizes['t2.medium']!, 'standard', 1, 0).launch, 60);
});

test('t2: 100% of one core for one minute is one credit', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  account.spend(minute, 0);
  t.true(Math.abs(account.spent - 1) < 1e-12);
  // accounting at ms resolution: 60000 quanta of 1 ms spend the same
  const fine = new CreditAccount(micro, 'standard', 1, 0);
  for (let i = 0; i < 60_000; i++) fine.spend(1, 0);
  t.true(Math.abs(fine.spent - 1) < 1e-9);
  t.true(Math.abs(fine.launch - 29) < 1e-9);
});

test('t2 standard mode is held to baseline once out of credits, and released by what it earns', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  t.false(account.atBaseline(0, q));
  account.spend(30 * minute, 0);
  t.is(account.launch, 0);
  t.is(account.balance, 0);
  t.true(account.atBaseline(0, q));
  t.true(account.stat(0, q).atBaseline);
  // standard mode never goes below zero
  account.spend(minute, 0);
  t.is(account.balance, 0);
  t.is(account.surplus, 0);
  // 10 simulated minutes earn one credit: enough for a quantum
  t.false(account.atBaseline(10 * minute, q));
  t.is(new CreditAccount(micro, 'unlimited', 1, 0).atBaseline(0, q), false);
});

test('t2 unlimited mode accrues surplus, repaid from later earnings before the balance grows', (t) => {
  const account = new CreditAccount(micro, 'unlimited', 1, 0);
  account.spend(40 * minute, 0);
  t.is(account.launch, 0);
  t.is(account.balance, 0);
  t.true(Math.abs(account.surplus - 10) < 1e-9);
  t.false(account.atBaseline(0, q));
  account.earn(hour);
  t.true(Math.abs(account.surplus - 4) < 1e-9);
  t.is(account.balance, 0);
  account.earn(2 * hour);
  t.is(account.surplus, 0);
  t.true(Math.abs(account.balance - 2) < 1e-9);
  t.is(account.charged, 0);
});

test('t2 unlimited: surplus beyond maxBalance is charged', (t) => {
  const account = new CreditAccount(micro, 'unlimited', 1, 0);
  account.spend((30 + 144 + 10) * minute, 0);
  t.is(account.surplus, 144);
  t.true(Math.abs(account.charged - 10) < 1e-9);
  account.spend(5 * minute, 0);
  t.true(Math.abs(account.charged - 15) < 1e-9);
  const stat = account.stat(0, q);
  t.like(stat, { size: 't2.micro', mode: 'unlimited', surplus: 144, atBaseline: false });
});

test('t2 speed scales earning and spending alike', (t) => {
  const fast = new CreditAccount(micro, 'standard', 60, 0);
  // one real minute at speed 60 is one credit hour
  fast.earn(minute);
  t.true(Math.abs(fast.earned - 6) < 1e-9);
  // one real second at 100% at speed 60 is one credit minute
  fast.spend(1000, minute);
  t.true(Math.abs(fast.spent - 1) < 1e-9);
  t.true(Math.abs(fast.launch - 29) < 1e-9);
  // the baseline is unchanged: at 10% of a core, spending matches earning at every speed
  for (const speed of [1, 60, 3600]) {
    const account = new CreditAccount(micro, 'standard', speed, 0);
    account.spend(30 * minute / speed, 0);
    t.is(account.launch, 0);
    for (let s = 1; s <= 100; s++) account.spend(100, s * 1000);
    t.true(Math.abs(account.balance) < 1e-9, `speed ${speed}: balance ${account.balance}`);
    t.true(Math.abs(account.earned - account.spent + 30) < 1e-9);
  }
});

test('a policy switch while a quantum is on a core keeps that quantum charged: it is not a free one', (t) => {
  const host = new SimHost('wfq', 1);
  const a = host.add(1, 100);
  const b = host.add(2, 100);
  host.runUntil(q / 2);
  t.deepEqual(host.quanta.map((x) => x.group), [a], 'a is on the core, b waits');
  host.clock.within(() => host.scheduler.setPolicy('wfq'));
  host.runUntil(q + 1);
  t.is(a.vtime, q / 100, 'a is charged the quantum it ran across the switch');
  t.deepEqual(host.quanta.map((x) => x.group), [a, b], 'so b, which has had nothing, runs next');
});
