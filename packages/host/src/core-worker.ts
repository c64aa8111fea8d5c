/**
 * A core: one worker thread that runs process steps for the quantum the scheduler grants. It calls
 * `step(regs, ctx)` until the quantum is used up or the step returns a system call, a memory access
 * faults, or the program throws; then it reports the registers, the time really used and why it stopped.
 * A quantum that runs out while the scheduler has renewed it is reported and followed at once by the
 * next one for the same process (see core-protocol.ts).
 * Processes are data: the core keeps nothing of a process between quanta but its container's memory.
 */
import { openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { getProgram, xorshift32, type StepContext, type SyscallResult } from '@slicelab/programs';
import { GuestMemory, MemoryFault } from './memory.js';
import { nextQuantum, type FromCore, type Outcome, type ToCore } from './core-protocol.js';

const port = parentPort!;
const renewal = new Int32Array((workerData as { renewal: SharedArrayBuffer }).renewal);
const memories = new Map<number, GuestMemory>();
const clock = () => performance.timeOrigin + performance.now();

/**
 * How long this thread has waited, runnable, for a real CPU (ms): schedstat's run_delay. A quantum is
 * charged its wall time less the waiting that happened during it, so time the real machine gave the
 * core's thread to someone else is not charged, which matters when emulated cores outnumber real ones.
 * (schedstat's run time field would undercount: the kernel brings it up to date only at ticks and
 * context switches, so read at the end of a quantum it misses up to a tick; run_delay is settled each
 * time the thread gets a CPU back, so it is exact while the thread runs.) The file stays open and is
 * read with pread: 2 µs a read against 19 µs for open, read and close. Without schedstat: zero.
 */
const waitedMs: () => number = (() => {
  try {
    const fd = openSync('/proc/thread-self/schedstat', 'r');
    const buffer = Buffer.alloc(128);
    const read = () => Number(buffer.toString('latin1', 0, readSync(fd, buffer, 0, buffer.length, 0)).split(' ', 2)[1]) / 1e6;
    if (Number.isFinite(read())) return read;
  } catch {
    // no schedstat on this kernel
  }
  return () => 0;
})();

port.on('message', (message: ToCore) => {
  if (message.kind === 'attach') memories.set(message.container, new GuestMemory(message.memory));
  else if (message.kind === 'detach') memories.delete(message.container);
  else run(message);
});

/** Runs the task's quantum, and each renewal of it, posting one report per quantum. */
function run(task: Extract<ToCore, { kind: 'run' }>): void {
  const memory = memories.get(task.container);
  const program = getProgram(task.program);
  let rand = task.rand;
  let ret: SyscallResult | undefined = task.ret;
  let logs: string[] = [];
  const ctx: StepContext = {
    pid: task.pid,
    args: task.args,
    mem: memory!,
    now: clock,
    rand: () => {
      rand = xorshift32(rand);
      return rand / 0x1_0000_0000;
    },
    log: (line) => {
      if (logs.length < 100) logs.push(String(line).slice(0, 1000));
    },
    get ret() {
      return ret;
    },
  };
  let quantum = task.quantum;
  let began = clock();
  let waitedBefore = waitedMs();
  for (;;) {
    let steps = 0;
    let outcome: Outcome;
    try {
      if (!program) throw new Error(`unknown program "${task.program}"`);
      if (!memory) throw new Error(`container ${task.container} has no memory on this core`);
      for (;;) {
        const result = program.step(task.regs, ctx);
        memory.endStep();
        ret = undefined;
        steps++;
        if (result?.sys === 'spawn' && !memory.forkAllowed()) {
          // refused here at pids.max: the process goes on with EAGAIN, no round trip to the host
          ret = { ok: false, errno: 'EAGAIN' };
        } else if (result !== undefined) {
          outcome = result;
          break;
        }
        if (clock() - began >= task.quantumMs) break;
      }
    } catch (error) {
      memory?.endStep();
      outcome = error instanceof MemoryFault
        ? { sys: 'fault', kind: error.kind, page: error.page }
        : { sys: 'crash', message: error instanceof Error ? error.message : String(error) };
    }
    const ended = clock();
    const waited = waitedMs();
    const renewed = outcome === undefined && Atomics.compareExchange(renewal, 0, quantum, 0) === quantum;
    port.postMessage({
      kind: 'done', gpid: task.gpid, regs: task.regs, rand, usedMs: Math.max(0, ended - began - (waited - waitedBefore)), wallMs: ended - began,
      steps, outcome, logs, quantum, renewed,
    } satisfies FromCore);
    if (!renewed) return;
    quantum = nextQuantum(quantum);
    logs = [];
    began = ended;
    waitedBefore = waited;
  }
}

port.postMessage({ kind: 'ready' } satisfies FromCore);
