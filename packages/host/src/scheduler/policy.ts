/**
 * How a host shares its cores among containers. Three policies behind one interface (a compliance suite
 * in the tests runs the shared rules against each):
 *
 *   wfq      weighted fair queueing: each group has a virtual time s_i, s_i += used / w_i; a group that
 *            becomes runnable starts at max(s_i, s_min), s_min never decreasing, so sleeping earns no
 *            credit and newcomers cannot starve others. The pick is WF²Q's (Bennett & Zhang), as in
 *            Linux's EEVDF: among groups that are owed service (s_i no later than the weighted mean
 *            virtual time V), the one whose quantum would finish first (smallest s_i + q / w_i). Plain
 *            smallest-s_i can let a group run a whole quantum ahead of its share; this keeps every lag
 *            |W_i − T·w_i/W| under one quantum.
 *   lottery  a seeded draw per quantum, tickets = weight (Waldspurger): shares hold in expectation.
 *   credit   AWS T2: wfq among groups that may run, where a group out of credits (standard mode) is held
 *            to its baseline by a bandwidth limiter (see credit.ts).
 */
import { xorshift32 } from '@slicelab/programs';

export type PolicyName = 'wfq' | 'lottery' | 'credit';
export const policyNames: readonly PolicyName[] = ['wfq', 'lottery', 'credit'];

/** What a policy needs to know of a group. */
export interface Schedulable {
  readonly id: number;
  readonly weight: number;
  /** the WFQ virtual time s_i */
  vtime: number;
}

export interface Policy {
  readonly name: PolicyName;
  /** picks one of the candidates (never empty) */
  pick(candidates: readonly Schedulable[]): Schedulable;
  /**
   * The group `pick` would choose now, without changing any state; undefined where that cannot be known
   * before the pick itself (a draw). The scheduler renews a running quantum when this is its group.
   */
  peek(candidates: readonly Schedulable[]): Schedulable | undefined;
  /** a group ran `usedMs` */
  charge(group: Schedulable, usedMs: number): void;
  /** a group becomes runnable (new, or back from sleep); `runnable` are the others that are */
  wake(group: Schedulable, runnable: readonly Schedulable[]): void;
  /**
   * The virtual time a group's position is measured from (wfq's s_min): a group saved on one host and
   * restored on another keeps its distance from it, not a virtual time that means nothing there.
   */
  reference(): number;
}

export class Wfq implements Policy {
  readonly name: PolicyName = 'wfq';
  private sMin = 0;

  constructor(private readonly quantumMs = 10) {}

  pick(candidates: readonly Schedulable[]): Schedulable {
    const best = this.peek(candidates);
    this.sMin = Math.max(this.sMin, Math.min(...candidates.map((g) => g.vtime)));
    return best;
  }

  peek(candidates: readonly Schedulable[]): Schedulable {
    let weights = 0;
    let weighted = 0;
    for (const group of candidates) {
      weights += group.weight;
      weighted += group.weight * group.vtime;
    }
    const mean = weighted / weights;
    let best: Schedulable | undefined;
    let bestFinish = Infinity;
    for (const group of candidates) {
      if (group.vtime > mean + 1e-9) continue;
      const finish = group.vtime + this.quantumMs / group.weight;
      if (finish < bestFinish || (finish === bestFinish && group.id < best!.id)) {
        best = group;
        bestFinish = finish;
      }
    }
    // the group with the smallest s_i is always at or below the mean, so one is always eligible
    return best!;
  }

  charge(group: Schedulable, usedMs: number): void {
    group.vtime += usedMs / group.weight;
  }

  reference(): number {
    return this.sMin;
  }

  wake(group: Schedulable, runnable: readonly Schedulable[]): void {
    let min = Infinity;
    for (const other of runnable) if (other !== group) min = Math.min(min, other.vtime);
    if (min !== Infinity) this.sMin = Math.max(this.sMin, min);
    group.vtime = Math.max(group.vtime, this.sMin);
  }
}

export class Lottery implements Policy {
  readonly name: PolicyName = 'lottery';

  constructor(private state: number) {}

  pick(candidates: readonly Schedulable[]): Schedulable {
    let tickets = 0;
    for (const group of candidates) tickets += group.weight;
    let draw = this.random() * tickets;
    for (const group of candidates) {
      draw -= group.weight;
      if (draw < 0) return group;
    }
    return candidates.at(-1)!;
  }

  peek(candidates: readonly Schedulable[]): Schedulable | undefined {
    return candidates.length === 1 ? candidates[0] : undefined;
  }

  charge(): void {}

  wake(): void {}

  reference(): number {
    return 0;
  }

  /** seeded: the same seed repeats the same sequence of draws */
  private random(): number {
    this.state = xorshift32(this.state);
    return this.state / 0x1_0000_0000;
  }
}

/** wfq ordering; the credit rules act as limits on which groups may run (see Scheduler). */
export class Credit extends Wfq {
  override readonly name: PolicyName = 'credit';
}

export function createPolicy(name: PolicyName, seed = 1, quantumMs = 10): Policy {
  switch (name) {
    case 'wfq':
      return new Wfq(quantumMs);
    case 'lottery':
      return new Lottery(seed);
    case 'credit':
      return new Credit(quantumMs);
  }
}
