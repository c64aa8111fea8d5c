/**
 * The host's cores: one worker thread per emulated core. A core runs the tasks posted to it in order,
 * one process for one quantum each, or for a row of quanta while the scheduler renews them; each
 * quantum's report goes to the listener given to `run`, and a task is done after a report that was not
 * renewed. A core whose worker dies (it should not: programs that throw are caught inside) is replaced,
 * and the process it ran is reported as crashed. So is a worker whose step never returns: a watchdog
 * that hears no report for `watchdogMs` past the quantum ends the thread, reports the process crashed
 * with the reason, and the core goes on with a new thread. The thread starts with the first container
 * the core is given: a host with nothing to run keeps no isolates (about 12 MB resident each).
 */
import { Worker } from 'node:worker_threads';
import { nextQuantum, renewalWord, type FromCore, type QuantumDone, type ToCore } from './core-protocol.js';
import type { MemoryShared } from './memory.js';

/**
 * The core entry, compiled by `npm run build` (workers cannot start TypeScript on Node 20). Cores run
 * from ES modules, not a bundle: bundling turns top-level const into var, and V8 then cannot fold
 * module constants into the programs' hot loops (lu did 20–30 % less work per CPU second from the
 * bundle). That costs about 2 MB and 20 ms more per started core.
 */
export const coreEntry = new URL('./core-worker.js', import.meta.url);

export type RunTask = Omit<Extract<ToCore, { kind: 'run' }>, 'quantum'>;

/**
 * How long past its quantum a core may stay silent before its step is taken as stuck. Generous: the
 * host's main thread may itself be busy for a while (a checkpoint copying 256 MiB), and reports wait.
 */
export const watchdogMs = 3000;

interface Posted {
  task: RunTask;
  quantum: number;
  report: (done: QuantumDone) => void;
}

export class Core {
  private worker?: Worker;
  /** tasks posted and not finished, in the order the core will get to them: the first is on the core */
  private readonly posted: Posted[] = [];
  private readonly attached = new Map<number, MemoryShared>();
  /** callbacks of detach messages not yet answered, in the order they were posted */
  private readonly detaching: Array<() => void> = [];
  /** the words shared with the worker (see core-protocol.ts) */
  private readonly renewal = new BigInt64Array(new SharedArrayBuffer(8));
  private readonly start = new Int32Array(new SharedArrayBuffer(4));
  private readonly preemption = new Int32Array(new SharedArrayBuffer(4));
  private lastQuantum = 0;
  private closed = false;
  /** when the core last reported, or began a task after being idle */
  private heardAt = 0;
  private checkedAt = 0;
  private watchdog?: NodeJS.Timeout;

  constructor(readonly index: number) {}

  get busy(): boolean {
    return this.posted.length > 0;
  }

  /**
   * Posts a task: on an idle core it starts at once, on a busy one it follows the tasks before it.
   * `report` hears of its quantum and of every renewal, until a report that was not renewed.
   */
  run(task: RunTask, report: (done: QuantumDone) => void): void {
    const quantum = this.newQuantum();
    if (this.posted.length === 0) this.heardAt = performance.now();
    this.posted.push({ task, quantum, report });
    Atomics.store(this.start, 0, quantum);
    this.post({ ...task, quantum });
  }

  /** Takes back the last task posted, unless the core has begun it: it is then reported unrun. */
  withdraw(): void {
    Atomics.store(this.start, 0, 0);
  }

  /**
   * The process on this core keeps it when its current quantum ends. Not while a detach waits for its
   * answer: the worker reads its messages only between tasks, and a renewed run never gets there.
   */
  renew(): void {
    const current = this.posted[0];
    if (current && this.detaching.length === 0) Atomics.store(this.renewal, 0, renewalWord(current.quantum, this.newQuantum()));
  }

  /**
   * Ends the quantum of process `gpid` on this core after its current step, not when its time is up: a
   * freeze for a checkpoint or a migration's stop-and-copy waits for one step, not for up to a quantum.
   */
  preempt(gpid: number): void {
    Atomics.store(this.preemption, 0, gpid);
  }

  /** Takes back a renewal the core has not taken yet: the current quantum is the process's last. */
  revoke(): void {
    Atomics.store(this.renewal, 0, 0n);
  }

  attach(container: number, memory: MemoryShared): void {
    this.attached.set(container, memory);
    this.post({ kind: 'attach', container, memory });
  }

  /** The core lets go of a container's memory; `done` once it holds no reference to it. */
  detach(container: number, done: () => void): void {
    this.attached.delete(container);
    if (!this.worker) return done();
    this.detaching.push(done);
    this.post({ kind: 'detach', container });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    await this.worker?.terminate();
  }

  /** A step that never returns: the thread is ended and the process on it reported crashed. */
  private check(): void {
    const now = performance.now();
    // the main thread itself was held up: the core's reports may be waiting behind this timer
    if (now - this.checkedAt > 1000) this.heardAt = Math.max(this.heardAt, now);
    this.checkedAt = now;
    const current = this.posted[0];
    if (!current) return;
    const limit = current.task.quantumMs + watchdogMs;
    if (now - this.heardAt > limit) {
      this.replace(`watchdog: a step of ${current.task.program} ran for more than ${Math.round(limit)} ms; the process was killed and its core given back`);
    }
  }

  /** Starts the thread now if it has not started (a migration's destination, before the container arrives). */
  warm(): void {
    if (!this.worker && !this.closed) this.spawn();
  }

  private post(message: ToCore): void {
    if (!this.worker) this.spawn();
    this.worker!.postMessage(message);
  }

  private newQuantum(): number {
    this.lastQuantum = nextQuantum(this.lastQuantum);
    return this.lastQuantum;
  }

  private spawn(): void {
    this.worker = new Worker(coreEntry, { name: `core${this.index}`, workerData: { renewal: this.renewal.buffer, start: this.start.buffer, preempt: this.preemption.buffer } });
    this.watchdog ??= setInterval(() => this.check(), 250).unref();
    this.worker.on('message', (message: FromCore) => {
      this.heardAt = performance.now();
      if (message.kind === 'detached') return this.detaching.shift()?.();
      const current = this.posted[0];
      if (message.kind !== 'done' || current?.quantum !== message.quantum) return;
      if (message.renewedAs) current.quantum = message.renewedAs;
      else {
        this.posted.shift();
        // a preemption that came after the quantum had ended must not cut the process's next one short
        Atomics.compareExchange(this.preemption, 0, current.task.gpid, 0);
      }
      current.report(message);
    });
    this.worker.on('error', (error) => this.replace(`core ${this.index} failed: ${error.message}`));
    this.worker.on('exit', () => this.replace(`core ${this.index} exited`));
  }

  private replace(reason: string): void {
    if (this.closed || !this.worker) return;
    this.worker.removeAllListeners();
    void this.worker.terminate();
    const lost = this.posted.splice(0);
    this.heardAt = performance.now();
    // the dead worker's references went with it
    for (const done of this.detaching.splice(0)) done();
    this.revoke();
    this.withdraw();
    this.spawn();
    for (const [container, memory] of this.attached) this.post({ kind: 'attach', container, memory });
    // the task on the core crashed with it; the ones behind it never began
    for (const [i, { task, quantum, report }] of lost.entries()) {
      report({
        kind: 'done', gpid: task.gpid, regs: task.regs, rand: task.rand, usedMs: 0, wallMs: 0, steps: 0,
        outcome: i === 0 ? { sys: 'crash', message: reason } : undefined, ret: task.ret, logs: [], quantum, renewedAs: 0,
      });
    }
  }
}
