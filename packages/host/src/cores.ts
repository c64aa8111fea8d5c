/**
 * The host's cores: one worker thread per emulated core. A core is either idle or running one process
 * for one quantum, or for a row of quanta while the scheduler renews them; each quantum's report goes to
 * the listener given to `run`, and the core is free again after a report that was not renewed. A core
 * whose worker dies (it should not:
 * programs that throw are caught inside) is replaced, and the process it ran is reported as crashed.
 * The thread starts with the first container the core is given: a host with nothing to run keeps
 * no isolates (about 10 MB resident each, measured by `bench startup`).
 */
import { Worker } from 'node:worker_threads';
import { nextQuantum, type FromCore, type QuantumDone, type ToCore } from './core-protocol.js';
import type { MemoryShared } from './memory.js';

/**
 * The core entry, compiled by `npm run build` (workers cannot start TypeScript on Node 20). Cores run
 * from ES modules, not a bundle: bundling turns top-level const into var, and V8 then cannot fold
 * module constants into the programs' hot loops (lu did 20–30 % less work per CPU second from the
 * bundle). That costs about 2 MB and 20 ms more per started core.
 */
export const coreEntry = new URL('./core-worker.js', import.meta.url);

export type RunTask = Omit<Extract<ToCore, { kind: 'run' }>, 'quantum'>;

export class Core {
  private worker?: Worker;
  private pending?: { task: RunTask; quantum: number; report: (done: QuantumDone) => void };
  private readonly attached = new Map<number, MemoryShared>();
  /** the renewal word shared with the worker (see core-protocol.ts) */
  private readonly renewal = new Int32Array(new SharedArrayBuffer(4));
  private lastQuantum = 0;
  private closed = false;

  constructor(readonly index: number) {}

  get busy(): boolean {
    return this.pending !== undefined;
  }

  /** The process on this core keeps it when its current quantum ends. */
  renew(): void {
    if (this.pending) Atomics.store(this.renewal, 0, this.pending.quantum);
  }

  /** Takes back a renewal the core has not taken yet: the current quantum is the process's last. */
  revoke(): void {
    Atomics.store(this.renewal, 0, 0);
  }

  attach(container: number, memory: MemoryShared): void {
    this.attached.set(container, memory);
    this.post({ kind: 'attach', container, memory });
  }

  detach(container: number): void {
    this.attached.delete(container);
    this.post({ kind: 'detach', container });
  }

  /** Starts a quantum; `report` hears of it and of every renewal until one that was not renewed. */
  run(task: RunTask, report: (done: QuantumDone) => void): void {
    if (this.pending) throw new Error(`core ${this.index} is busy`);
    this.revoke();
    const quantum = this.lastQuantum = nextQuantum(this.lastQuantum);
    this.pending = { task, quantum, report };
    this.post({ ...task, quantum });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.worker?.terminate();
  }

  private post(message: ToCore): void {
    if (!this.worker) this.spawn();
    this.worker!.postMessage(message);
  }

  private spawn(): void {
    this.worker = new Worker(coreEntry, { name: `core${this.index}`, workerData: { renewal: this.renewal.buffer } });
    this.worker.on('message', (message: FromCore) => {
      const pending = this.pending;
      if (message.kind !== 'done' || !pending) return;
      if (message.renewed) {
        pending.quantum = this.lastQuantum = nextQuantum(message.quantum);
      } else {
        this.pending = undefined;
        this.revoke();
      }
      pending.report(message);
    });
    this.worker.on('error', (error) => this.replace(`core ${this.index} failed: ${error.message}`));
    this.worker.on('exit', () => this.replace(`core ${this.index} exited`));
  }

  private replace(reason: string): void {
    if (this.closed || !this.worker) return;
    this.worker.removeAllListeners();
    void this.worker.terminate();
    const pending = this.pending;
    this.pending = undefined;
    this.revoke();
    this.spawn();
    for (const [container, memory] of this.attached) this.post({ kind: 'attach', container, memory });
    if (pending) {
      pending.report({
        kind: 'done', gpid: pending.task.gpid, regs: pending.task.regs, rand: pending.task.rand,
        usedMs: 0, wallMs: 0, steps: 0, outcome: { sys: 'crash', message: reason }, logs: [], quantum: pending.quantum, renewed: false,
      });
    }
  }
}
