/**
 * Messages between the host's scheduler (main thread) and its cores (worker threads), and two words they
 * share, so that a core never waits on the main thread between quanta when the scheduler has decided
 * ahead what comes next:
 *
 * - renewal (64 bits): the id of the running quantum and the id its continuation will have. When the
 *   quantum ends with the first id still there, the core takes the renewal, reports the quantum and goes
 *   on with the same process (as a kernel leaves the current task running when it is still the best pick).
 * - start (32 bits): the id of the last task posted that the scheduler still wants run. A task can be
 *   posted to a busy core, to follow its quantum (picked shortly before that quantum ends); the core
 *   starts a task only if its id is still there, and otherwise reports it at once as run for 0 ms, so the
 *   scheduler can take a posted task back by clearing the word.
 * - preempt (32 bits): the host pid of a process whose quantum is to end after its current step (a
 *   freeze); the core clears it when it acts on it, and then takes no renewal.
 */
import type { ProgramArgs, Registers, Syscall, SyscallResult } from '@slicelab/programs';
import type { MemoryShared } from './memory.js';

export type ToCore =
  | { kind: 'attach'; container: number; memory: MemoryShared }
  | { kind: 'detach'; container: number }
  | {
      kind: 'run';
      gpid: number;
      pid: number;
      container: number;
      program: string;
      args: ProgramArgs;
      regs: Registers;
      ret: SyscallResult | undefined;
      rand: number;
      /** the container's clock (its time namespace) minus the host's, ms: what ctx.now() adds */
      clockOffset: number;
      quantumMs: number;
      /** this quantum's id on its core (see nextQuantum) */
      quantum: number;
    };

/** Why a quantum ended, besides the quantum running out (`undefined`). */
export type Outcome =
  | Syscall
  | { sys: 'fault'; kind: 'oom' | 'host-oom' | 'missing'; page: number }
  | { sys: 'crash'; message: string }
  | undefined;

export interface QuantumDone {
  kind: 'done';
  gpid: number;
  regs: Registers;
  rand: number;
  /** milliseconds the quantum really ran on a real CPU, as the kernel charges its thread (thread-cpu.ts) */
  usedMs: number;
  /** wall milliseconds from start to end of the quantum */
  wallMs: number;
  steps: number;
  outcome: Outcome;
  /**
   * a result the core made itself and the process has not seen yet (EAGAIN for a fork refused at
   * pids.max when the quantum ran out right after): ctx.ret of its next step
   */
  ret: SyscallResult | undefined;
  logs: string[];
  /** the quantum this reports */
  quantum: number;
  /** the id of the quantum the core went on with for the same process (a renewal taken), or 0 */
  renewedAs: number;
}

/** The id after `id`: positive Int32 values that wrap, so 0 never names a quantum and means "none". */
export function nextQuantum(id: number): number {
  return (id % 0x7fff_ffff) + 1;
}

/** The renewal word's value for "quantum `running` goes on as quantum `next`". */
export function renewalWord(running: number, next: number): bigint {
  return (BigInt(running) << 32n) | BigInt(next);
}

/** `detached`: the core holds no reference to the container's memory any more (it has collected it) */
export type FromCore = QuantumDone | { kind: 'ready' } | { kind: 'detached'; container: number };
