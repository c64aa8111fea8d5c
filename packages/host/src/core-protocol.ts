/**
 * Messages between the host's scheduler (main thread) and its cores (worker threads), and the renewal
 * word they share: the scheduler writes there the id of a running quantum it renews (the same process
 * keeps the core for another quantum, as a kernel leaves the current task running when it is still the
 * best pick); the core takes the renewal when that quantum ends, reports it and goes on, so a process
 * that keeps its core pays no round trip through the main thread per quantum.
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
      quantumMs: number;
      /** this quantum's id on its core (see nextQuantum) */
      quantum: number;
    };

/** Why a quantum ended, besides the quantum running out (`undefined`). */
export type Outcome =
  | Syscall
  | { sys: 'fault'; kind: 'oom' | 'missing'; page: number }
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
  logs: string[];
  /** the quantum this reports */
  quantum: number;
  /** the core took a renewal and runs the same process on, in quantum nextQuantum(quantum) */
  renewed: boolean;
}

/** The id after `id`: positive Int32 values that wrap, so 0 never names a quantum and means "none". */
export function nextQuantum(id: number): number {
  return (id % 0x7fff_ffff) + 1;
}

export type FromCore = QuantumDone | { kind: 'ready' };
