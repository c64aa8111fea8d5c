/**
 * A core: one worker thread that runs process steps for the quantum the scheduler grants. It calls
 * `step(regs, ctx)` until the quantum is used up or the step returns a system call, a memory access
 * faults, or the program throws; then it reports the registers, the time really used and why it stopped.
 * A quantum that runs out while the scheduler has renewed it is reported and followed at once by the
 * next one for the same process; a task the scheduler has taken back is reported unrun (see
 * core-protocol.ts).
 * Processes are data: the core keeps nothing of a process between quanta but its container's memory.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { getProgram, xorshift32, type StepContext, type SyscallResult } from '@slicelab/programs';
import { GuestMemory, MemoryFault, collectGarbage } from './memory.js';
import { threadCpuClock } from './thread-cpu.js';
import type { FromCore, Outcome, ToCore } from './core-protocol.js';

const port = parentPort!;
const shared = workerData as { renewal: SharedArrayBuffer; start: SharedArrayBuffer; preempt: SharedArrayBuffer };
const renewal = new BigInt64Array(shared.renewal);
const start = new Int32Array(shared.start);
const preemption = new Int32Array(shared.preempt);
const memories = new Map<number, GuestMemory>();
const clock = () => performance.timeOrigin + performance.now();

/** a fork refused at pids.max: one object for all, since a fork bomb meets it millions of times a second */
const eagain: SyscallResult = Object.freeze({ ok: false, errno: 'EAGAIN' });

/** this thread's CPU time, as the kernel charges it (see thread-cpu.ts) */
const cpuMs = threadCpuClock();

port.on('message', (message: ToCore) => {
  if (message.kind === 'attach') memories.set(message.container, new GuestMemory(message.memory));
  else if (message.kind === 'detach') {
    memories.delete(message.container);
    // the container's pages go back to the OS only once no isolate holds its buffer (see collectGarbage)
    collectGarbage();
    port.postMessage({ kind: 'detached', container: message.container } satisfies FromCore);
  }
  else run(message);
});

/** Runs the task's quantum, and each renewal of it, posting one report per quantum. */
function run(task: Extract<ToCore, { kind: 'run' }>): void {
  if (Atomics.compareExchange(start, 0, task.quantum, 0) !== task.quantum) {
    // taken back before it began: nothing ran, the registers go back as they came
    port.postMessage({
      kind: 'done', gpid: task.gpid, regs: task.regs, rand: task.rand, usedMs: 0, wallMs: 0, steps: 0, outcome: undefined, ret: task.ret, logs: [],
      quantum: task.quantum, renewedAs: 0,
    } satisfies FromCore);
    return;
  }
  const memory = memories.get(task.container);
  const program = getProgram(task.program);
  let rand = task.rand;
  let ret: SyscallResult | undefined = task.ret;
  let logs: string[] = [];
  const ctx: StepContext = {
    pid: task.pid,
    args: task.args,
    mem: memory!,
    now: () => clock() + task.clockOffset,
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
  let cpuBefore = cpuMs();
  for (;;) {
    let steps = 0;
    let outcome: Outcome;
    let preempted = false;
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
          ret = eagain;
        } else if (result !== undefined) {
          outcome = result;
          break;
        }
        if (clock() - began >= task.quantumMs) break;
        if (Atomics.load(preemption, 0) === task.gpid && Atomics.compareExchange(preemption, 0, task.gpid, 0) === task.gpid) {
          preempted = true;
          break;
        }
      }
    } catch (error) {
      memory?.endStep();
      outcome = error instanceof MemoryFault
        ? { sys: 'fault', kind: error.kind, page: error.page }
        : { sys: 'crash', message: error instanceof Error ? error.message : String(error) };
    }
    const ended = clock();
    const cpu = cpuMs();
    const word = Atomics.load(renewal, 0);
    const renewedAs = outcome === undefined && !preempted && word >> 32n === BigInt(quantum) && Atomics.compareExchange(renewal, 0, word, 0n) === word
      ? Number(word & 0xffff_ffffn)
      : 0;
    port.postMessage({
      kind: 'done', gpid: task.gpid, regs: task.regs, rand, usedMs: Math.max(0, cpu - cpuBefore), wallMs: ended - began,
      // the result the next step is to see: a pending EAGAIN, or the faulting step's own input, as it runs again
      steps, outcome, ret: outcome === undefined || outcome.sys === 'fault' ? ret : undefined, logs, quantum, renewedAs,
    } satisfies FromCore);
    if (!renewedAs) return;
    quantum = renewedAs;
    logs = [];
    began = ended;
    cpuBefore = cpu;
  }
}

port.postMessage({ kind: 'ready' } satisfies FromCore);
