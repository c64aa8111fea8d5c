/**
 * AWS T2 CPU credits. One credit is one core at 100 % for one minute. A container earns credits
 * continuously at its size's rate up to a cap of 24 hours of earnings, and spends them for the CPU it
 * uses; launch credits (30 per vCPU) are spent first and do not count toward the cap. In standard mode a
 * container at zero balance is held to its baseline; in unlimited mode it may spend surplus credits,
 * which later earnings repay, and what cannot be carried is reported as charged. Accounting is at
 * millisecond resolution; `speed` runs the credit clock faster so hours of credit history fit into a
 * benchmark of seconds (it scales earning and spending alike, so baselines are unchanged).
 */
export interface T2Size {
  name: string;
  vcpus: number;
  /** credits earned per hour */
  earnPerHour: number;
  maxBalance: number;
  /** baseline per vCPU, as a fraction of one core */
  baseline: number;
}

export const t2Sizes: Record<string, T2Size> = {
  't2.nano': { name: 't2.nano', vcpus: 1, earnPerHour: 3, maxBalance: 72, baseline: 0.05 },
  't2.micro': { name: 't2.micro', vcpus: 1, earnPerHour: 6, maxBalance: 144, baseline: 0.1 },
  't2.small': { name: 't2.small', vcpus: 1, earnPerHour: 12, maxBalance: 288, baseline: 0.2 },
  't2.medium': { name: 't2.medium', vcpus: 2, earnPerHour: 24, maxBalance: 576, baseline: 0.2 },
};

export type CreditMode = 'standard' | 'unlimited';

export interface CreditStat {
  size: string;
  mode: CreditMode;
  balance: number;
  launch: number;
  earned: number;
  spent: number;
  surplus: number;
  charged: number;
  /** true while held to baseline (standard mode, no credits left) */
  atBaseline: boolean;
}

/** An account as data; earnings are brought up to the moment of saving, so no time is stored. */
export type CreditState = Omit<CreditStat, 'atBaseline'> & { speed: number };

export class CreditAccount {
  balance = 0;
  launch: number;
  earned = 0;
  spent = 0;
  surplus = 0;
  charged = 0;
  private lastEarn: number;

  constructor(public size: T2Size, public mode: CreditMode, readonly speed: number, now: number) {
    this.launch = 30 * size.vcpus;
    this.lastEarn = now;
  }

  save(now: number): CreditState {
    this.earn(now);
    const { balance, launch, earned, spent, surplus, charged } = this;
    return { size: this.size.name, mode: this.mode, speed: this.speed, balance, launch, earned, spent, surplus, charged };
  }

  static restore(state: CreditState, now: number): CreditAccount {
    const size = t2Sizes[state.size];
    if (!size) throw new RangeError(`unknown T2 size "${state.size}"`);
    const account = new CreditAccount(size, state.mode, state.speed, now);
    Object.assign(account, { balance: state.balance, launch: state.launch, earned: state.earned, spent: state.spent, surplus: state.surplus, charged: state.charged });
    return account;
  }

  /** Earnings since the last call: first repaying surplus, then into the balance up to its cap. */
  earn(now: number): void {
    const credits = ((now - this.lastEarn) * this.speed * this.size.earnPerHour) / 3_600_000;
    this.lastEarn = now;
    this.earned += credits;
    const repaid = Math.min(this.surplus, credits);
    this.surplus -= repaid;
    this.balance = Math.min(this.size.maxBalance, this.balance + credits - repaid);
  }

  /** Spends for `usedMs` of one core: launch credits first, then the balance, then (unlimited) surplus. */
  spend(usedMs: number, now: number): void {
    this.earn(now);
    let credits = (usedMs * this.speed) / 60_000;
    this.spent += credits;
    const fromLaunch = Math.min(this.launch, credits);
    this.launch -= fromLaunch;
    credits -= fromLaunch;
    const fromBalance = Math.min(this.balance, credits);
    this.balance -= fromBalance;
    credits -= fromBalance;
    if (credits > 0 && this.mode === 'unlimited') {
      this.surplus += credits;
      // surplus beyond what 24 hours of earnings could repay is charged
      if (this.surplus > this.size.maxBalance) {
        this.charged += this.surplus - this.size.maxBalance;
        this.surplus = this.size.maxBalance;
      }
    }
  }

  /**
   * Standard mode with too little left to pay for one full quantum: the container is held to its
   * baseline. (Checking for exactly zero would let the trickle earned between quanta buy whole quanta.)
   */
  atBaseline(now: number, quantumMs: number): boolean {
    this.earn(now);
    return this.mode === 'standard' && this.launch + this.balance < (quantumMs * this.speed) / 60_000;
  }

  stat(now: number, quantumMs: number): CreditStat {
    return {
      size: this.size.name, mode: this.mode, balance: this.balance, launch: this.launch, earned: this.earned,
      spent: this.spent, surplus: this.surplus, charged: this.charged, atBaseline: this.atBaseline(now, quantumMs),
    };
  }
}
