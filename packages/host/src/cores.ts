/**
 * The host's cores: one worker thread per emulated core. A core is either idle or running one process
 * for one quantum; `run` resolves when the core reports back. A core whose worker dies (it should not:
 * programs that throw are caught inside) is replaced, and the process it ran is reported as crashed.
 * The thread starts with the first container the core is given: a host with nothing to run keeps
 * no isolates (about 10 MB resident each, measured by `bench startup`).
 */
import { Worker } from 'node:worker_threads';
import type { FromCore, QuantumDone, ToCore } from './core-protocol.js';
import type { MemoryShared } from './memory.js';

/** The core entry, bundled by `npm run build` (workers cannot start TypeScript on Node 20). */
export const coreEntry = new URL('./core.bundle.mjs', import.meta.url);

type RunTask = Extract<ToCore, { kind: 'run' }>;

export class Core {
  private worker?: Worker;
  private pending?: { task: RunTask; resolve: (done: QuantumDone) => void };
  private readonly attached = new Map<number, MemoryShared>();
  private closed = false;

  constructor(readonly index: number) {}

  get busy(): boolean {
    return this.pending !== undefined;
  }

  attach(container: number, memory: MemoryShared): void {
    this.attached.set(container, memory);
    this.post({ kind: 'attach', container, memory });
  }

  detach(container: number): void {
    this.attached.delete(container);
    this.post({ kind: 'detach', container });
  }

  run(task: RunTask): Promise<QuantumDone> {
    if (this.pending) throw new Error(`core ${this.index} is busy`);
    return new Promise((resolve) => {
      this.pending = { task, resolve };
      this.post(task);
    });
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
    this.worker = new Worker(coreEntry, { name: `core${this.index}` });
    this.worker.on('message', (message: FromCore) => {
      if (message.kind !== 'done' || !this.pending) return;
      const { resolve } = this.pending;
      this.pending = undefined;
      resolve(message);
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
    this.spawn();
    for (const [container, memory] of this.attached) this.post({ kind: 'attach', container, memory });
    if (pending) {
      pending.resolve({
        kind: 'done', gpid: pending.task.gpid, regs: pending.task.regs, rand: pending.task.rand,
        usedMs: 0, wallMs: 0, steps: 0, outcome: { sys: 'crash', message: reason }, logs: [],
      });
    }
  }
}
