/**
 * Typed registers for programs. `Program.step` takes plain `Registers`; each program declares the shape
 * of its own, and this is the one place that trusts the host to hand a step back what the program's
 * `init` (and its earlier steps) left there.
 *
 * Steps are written "memory first, registers last": every access to container memory that may fault
 * happens before the step changes its registers, so a step that faults and runs again from the same
 * registers repeats exactly, whether or not the host discarded the registers of the faulted attempt.
 */
import type { Program, ProgramArgs, Registers, StepContext, StepResult } from './program.js';

export interface ProgramDefinition<R extends Registers> {
  readonly name: string;
  readonly description: string;
  init(args: ProgramArgs): R;
  step(regs: R, ctx: StepContext): StepResult;
}

export function defineProgram<R extends Registers>(definition: ProgramDefinition<R>): Program {
  return definition;
}

/** xorshift32: a seeded generator whose whole state is one number in the registers. */
export function xorshift32(state: number): number {
  let x = state | 0 || 0x9e3779b9;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}
