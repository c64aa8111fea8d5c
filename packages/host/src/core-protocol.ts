/** Messages between the host's scheduler (main thread) and its cores (worker threads). */
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
  /** milliseconds the quantum really ran on a real CPU: wall time less the time its thread waited for one */
  usedMs: number;
  /** wall milliseconds from start to end of the quantum */
  wallMs: number;
  steps: number;
  outcome: Outcome;
  logs: string[];
}

export type FromCore = QuantumDone | { kind: 'ready' };
