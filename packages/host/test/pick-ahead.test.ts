/**
 * The scheduler's pick ahead against a core whose timing the test decides: a real implementation of the
 * core's side of the protocol (tasks in order, the start word that takes back a posted task unless it has
 * begun, the renewal word), stepped by hand, so that the races between a core and the main thread can
 * be played in the order that breaks them.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { QuantumDone } from '../src/core-protocol.js';
import type { Core, RunTask } from '../src/cores.js';
import { SchedGroup, Scheduler, type Runnable } from '../src/scheduler/scheduler.js';

class SteppedCore {
  readonly posted: Array<{ task: RunTask; id: number; report: (done: QuantumDone) => void }> = [];
  /** the task the core runs now, or undefined */
  running?: { task: RunTask; id: number; report: (done: QuantumDone) => void };
  start = 0;
  renewal: { of: number; as: number } | undefined;
  readonly renewedGpids: number[] = [];
  private lastId = 0;

  constructor(readonly index: number) {}

  get busy(): boolean {
    return this.running !== undefined || this.posted.length > 0;
  }

  run(task: RunTask, report: (done: QuantumDone) => void): void {
    const id = ++this.lastId;
    this.posted.push({ task, id, report });
    this.start = id;
  }

  withdraw(): void {
    this.start = 0;
  }

  renew(): void {
    const current = this.running ?? this.posted[0];
    if (current) {
      this.renewal = { of: current.id, as: ++this.lastId };
      this.renewedGpids.push(current.task.gpid);
    }
  }

  revoke(): void {
    this.renewal = undefined;
  }

  /** The core takes the next posted task: it runs if its start word still names it, else it is reported unrun. */
  begin(): void {
    const next = this.posted.shift();
    if (!next) return;
    if (this.start !== next.id) {
      next.report(report(next.task.gpid, next.id, 0, 0));
      return;
    }
    this.start = 0;
    this.running = next;
  }

  /** The running quantum ends: renewed if the renewal word names it, else the task is done. */
  end(): void {
    const current = this.running!;
    const renewed = this.renewal?.of === current.id ? this.renewal.as : 0;
    this.renewal = undefined;
    if (renewed) {
      current.report(report(current.task.gpid, current.id, 10, renewed));
      current.id = renewed;
    } else {
      this.running = undefined;
      current.report(report(current.task.gpid, current.id, 10, 0));
    }
  }
}

function report(gpid: number, quantum: number, usedMs: number, renewedAs: number): QuantumDone {
  return { kind: 'done', gpid, regs: {}, rand: 1, usedMs, wallMs: usedMs, steps: usedMs > 0 ? 100 : 0, outcome: undefined, logs: [], quantum, renewedAs };
}

test('a follower taken back after the core began it stays the core\'s until its report: nothing is renewed or posted for it meanwhile', async (t) => {
  const core = new SteppedCore(0);
  const scheduler: Scheduler = new Scheduler([core as unknown as Core], { quantumMs: 10, policy: 'wfq', now: () => performance.now() }, {
    task: (process, quantumMs) => ({ kind: 'run', gpid: process.gpid, pid: 1, container: 1, program: 'cpu-burn', args: {}, regs: {}, ret: undefined, rand: 1, quantumMs }),
    done: (process, done) => {
      // a CPU-bound process goes straight back to its run queue, as the machine's yield does
      if (!done.renewedAs) scheduler.enqueue(process);
      return 0;
    },
  });
  const spawn = (id: number, weight = 100) => {
    const group = new SchedGroup(id, weight);
    scheduler.add(group);
    const process: Runnable = { gpid: 100 + id, group, runnableSince: 0 };
    return process;
  };
  const a = spawn(1);
  // b weighs more, so that the policy gives it the core after a's quantum (not a tie a would win)
  const b = spawn(2, 1000);
  scheduler.enqueue(a);
  core.begin();
  t.is(core.running?.task.gpid, a.gpid);
  scheduler.enqueue(b);
  // the pick ahead fires 2 ms before a's quantum ends and posts b to follow it
  await sleep(15);
  t.is(core.posted[0]?.task.gpid, b.gpid, 'b is posted to follow a');
  // the core ends a and begins b before the main thread hears of it; then b's group is frozen
  const aReport = core.running!;
  core.running = undefined;
  core.begin();
  t.is(core.running?.task.gpid, b.gpid);
  scheduler.setFrozen(b.group, true);
  aReport.report(report(a.gpid, aReport.id, 10, 0));
  // a newcomer must not be posted behind b, and b, frozen, must never be renewed
  const x = spawn(3);
  scheduler.enqueue(x);
  await sleep(15);
  t.false(core.renewedGpids.includes(b.gpid), 'the frozen process was renewed');
  core.end();
  t.is(core.running, undefined, 'b left the core at the end of its quantum');
  core.begin();
  t.true([a.gpid, x.gpid].includes(core.running?.task.gpid ?? 0), `the core went on with ${core.running?.task.gpid}`);
  scheduler.close();
});
