/**
 * Unit tests of the scheduling rules with a simulated clock: the policies (wfq, lottery, credit), the
 * cpu.max bandwidth limiter and the T2 credit account. No threads, no timers: every number is exact.
 */
import test from 'ava';
import { Bandwidth } from '../src/scheduler/bandwidth.js';
import { CreditAccount, t2Sizes } from '../src/scheduler/credit.js';
import { Credit, Lottery, Wfq, createPolicy, policyNames, type Policy, type Schedulable } from '../src/scheduler/policy.js';

const q = 10;
const hour = 3_600_000;
const minute = 60_000;

// ---------------------------------------------------------------------------------------------------------
// A simulated host: cores, groups of processes, one full quantum per dispatch. It drives the policy the way
// scheduler.ts does: a group is active while a process of it is queued or running; enqueueing into an
// inactive group calls wake() with the active groups; kick() offers each idle core the groups with a queued
// process; dispatch charges the full quantum at once and corrects it (used − quantum) when it ends; a
// process whose quantum ended goes back to the queue through enqueue().

interface SimGroup extends Schedulable {
  readonly id: number;
  weight: number;
  vtime: number;
  procs: number;
  queued: number;
  running: number;
  /** processes asleep (not queued, not running) */
  sleeping: number;
  asleep: boolean;
  /** ms of service received */
  served: number;
}

interface Dispatch {
  at: number;
  core: number;
  group: SimGroup;
  candidates: readonly SimGroup[];
}

class Sim {
  now = 0;
  readonly groups: SimGroup[] = [];
  readonly running: Array<{ group: SimGroup; end: number } | null>;
  readonly log: Dispatch[] = [];
  /** called at every dispatch point, before the pick */
  onDispatchPoint?: (sim: Sim) => void;

  constructor(readonly policy: Policy, cores: number) {
    this.running = Array.from({ length: cores }, () => null);
  }

  static active(group: SimGroup): boolean {
    return group.queued > 0 || group.running > 0;
  }

  add(id: number, weight: number, procs = 1): SimGroup {
    const group: SimGroup = { id, weight, vtime: 0, procs, queued: 0, running: 0, sleeping: procs, asleep: false, served: 0 };
    this.groups.push(group);
    this.wake(group);
    return group;
  }

  enqueue(group: SimGroup): void {
    if (!Sim.active(group)) this.policy.wake(group, this.groups.filter(Sim.active));
    group.queued++;
  }

  /** Every process of the group goes to sleep: queued ones now, running ones when their quantum ends. */
  sleep(group: SimGroup): void {
    group.asleep = true;
    group.sleeping += group.queued;
    group.queued = 0;
  }

  wake(group: SimGroup): void {
    group.asleep = false;
    for (; group.sleeping > 0; group.sleeping--) this.enqueue(group);
  }

  private kick(): void {
    for (let core = 0; core < this.running.length; core++) {
      if (this.running[core]) continue;
      const candidates = this.groups.filter((g) => g.queued > 0 && g.running < g.procs);
      if (candidates.length === 0) continue;
      this.onDispatchPoint?.(this);
      const group = this.policy.pick(candidates) as SimGroup;
      this.log.push({ at: this.now, core, group, candidates });
      group.queued--;
      this.policy.charge(group, q);
      group.running++;
      this.running[core] = { group, end: this.now + q };
    }
  }

  /** Runs until simulated time `until` (quanta that straddle it finish first). */
  runUntil(until: number): void {
    for (;;) {
      if (this.now < until) this.kick();
      const ends = this.running.filter((r) => r !== null).map((r) => r.end);
      if (ends.length === 0) {
        this.now = until;
        return;
      }
      const next = Math.min(...ends);
      if (next > until) return;
      this.now = next;
      for (let core = 0; core < this.running.length; core++) {
        const slot = this.running[core];
        if (!slot || slot.end !== next) continue;
        this.running[core] = null;
        const { group } = slot;
        group.running--;
        group.served += q;
        this.policy.charge(group, q - q);
        if (group.asleep) group.sleeping++;
        else this.enqueue(group);
      }
    }
  }
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------------------------------------
// wfq

test('wfq on one core: weights 1,2,3 over 10 s get their shares within 1%', (t) => {
  const sim = new Sim(new Wfq(), 1);
  // two processes per group, so a group stays active across its own quantum ends: with one process,
  // scheduler.ts treats every quantum end as a wake-up (running-- before the re-enqueue) and wfq's wake
  // rule then lifts the group to s_min, which skews the shares (a known bug, not tested here)
  const groups = [1, 2, 3].map((w, i) => sim.add(i + 1, w, 2));
  sim.runUntil(10_000);
  const total = sum(groups.map((g) => g.served));
  t.is(total, 10_000);
  for (const g of groups) {
    const share = g.served / total;
    const expected = g.weight / 6;
    t.true(Math.abs(share - expected) <= 0.01 * expected, `weight ${g.weight}: share ${share}, expected ${expected}`);
  }
});

test('wfq keeps the start-time fair queueing bound |W_i/w_i − W_j/w_j| ≤ q/w_i + q/w_j at every dispatch point', (t) => {
  const sim = new Sim(new Wfq(), 1);
  const groups = [1, 2, 3, 5].map((w, i) => sim.add(i + 1, w, 2));
  let worst = 0;
  let points = 0;
  sim.onDispatchPoint = () => {
    points++;
    for (const a of groups) {
      for (const b of groups) {
        if (a === b) continue;
        const gap = Math.abs(a.served / a.weight - b.served / b.weight) - (q / a.weight + q / b.weight);
        worst = Math.max(worst, gap);
      }
    }
  };
  sim.runUntil(10_000);
  t.true(points >= 999);
  t.true(worst <= 1e-9, `the bound was exceeded by ${worst} ms`);
});

test('wfq: every pick is WF2Q\'s: among candidates at or below the weighted mean virtual time, the smallest finish s_i + q/w_i', (t) => {
  const sim = new Sim(new Wfq(q), 2);
  [3, 1, 7, 2].forEach((w, i) => sim.add(i + 1, w, 1 + (i % 3)));
  const seen: Array<Array<{ id: number; vtime: number; weight: number }>> = [];
  sim.onDispatchPoint = (s) => {
    seen.push(s.groups.filter((g) => g.queued > 0 && g.running < g.procs).map((g) => ({ id: g.id, vtime: g.vtime, weight: g.weight })));
  };
  sim.runUntil(2000);
  t.is(seen.length, sim.log.length);
  sim.log.forEach((d, i) => {
    const candidates = seen[i]!;
    const mean = candidates.reduce((s, g) => s + g.weight * g.vtime, 0) / candidates.reduce((s, g) => s + g.weight, 0);
    const eligible = candidates.filter((g) => g.vtime <= mean + 1e-9);
    const finish = (g: { vtime: number; weight: number }) => g.vtime + q / g.weight;
    const best = Math.min(...eligible.map(finish));
    const expected = eligible.filter((g) => finish(g) === best).map((g) => g.id).sort((a, b) => a - b)[0];
    t.is(d.group.id, expected);
  });
});

test('wfq wake rule: a group that slept 2 s wakes at max(own, s_min) and its catch-up is bounded by one quantum', (t) => {
  const sim = new Sim(new Wfq(), 1);
  const [a, b, c] = [1, 2, 3].map((w, i) => sim.add(i + 1, w, 2)) as [SimGroup, SimGroup, SimGroup];
  sim.runUntil(1000);
  sim.sleep(c);
  sim.runUntil(3000);
  t.is(c.running, 0);
  t.false(Sim.active(c));
  const own = c.vtime;
  const sMin = Math.min(a.vtime, b.vtime);
  t.true(sMin > own, 'the others ran on while it slept');
  const servedAtWake = { a: a.served, b: b.served, c: c.served };
  const wokeAt = sim.now;
  sim.wake(c);
  t.is(c.vtime, Math.max(own, sMin));
  // from the wake on, c may not take more than its share w_c/W plus one quantum at any dispatch point
  let worstExcess = -Infinity;
  let longestRun = 0;
  let run = 0;
  sim.onDispatchPoint = (s) => {
    const elapsed = s.now - wokeAt;
    worstExcess = Math.max(worstExcess, c.served - servedAtWake.c - (elapsed * c.weight) / 6);
  };
  const before = sim.log.length;
  sim.runUntil(5000);
  for (const d of sim.log.slice(before)) {
    run = d.group === c ? run + 1 : 0;
    longestRun = Math.max(longestRun, run);
  }
  t.true(worstExcess <= q, `c ran ${worstExcess} ms ahead of its share after waking`);
  // weight 3 of 6: fair is every other quantum, so it never runs more than two in a row
  t.true(longestRun <= 2, `c ran ${longestRun} quanta in a row after waking`);
  // and the others were not starved: over 2 s each got its share within one quantum
  const elapsed = sim.now - wokeAt;
  t.true(Math.abs(a.served - servedAtWake.a - elapsed / 6) <= q);
  t.true(Math.abs(b.served - servedAtWake.b - (elapsed * 2) / 6) <= q);
});

test('wfq wake rule: a group that ran ahead keeps its own, larger virtual time when it wakes', (t) => {
  const policy = new Wfq();
  const others: Schedulable[] = [{ id: 1, weight: 1, vtime: 5 }, { id: 2, weight: 1, vtime: 7 }];
  const group: Schedulable = { id: 3, weight: 1, vtime: 40 };
  policy.wake(group, others);
  t.is(group.vtime, 40);
  const behind: Schedulable = { id: 4, weight: 1, vtime: 1 };
  policy.wake(behind, others);
  t.is(behind.vtime, 5);
});

test('wfq: s_min never decreases, even when the only groups left runnable are behind it', (t) => {
  const policy = new Wfq();
  const a: Schedulable = { id: 1, weight: 1, vtime: 100 };
  const b: Schedulable = { id: 2, weight: 1, vtime: 0 };
  policy.wake(b, [a]);
  t.is(b.vtime, 100);
  const late: Schedulable = { id: 3, weight: 1, vtime: 0 };
  // nothing else runnable: it still starts at the s_min reached so far
  policy.wake(late, []);
  t.is(late.vtime, 100);
});

test('wfq: a group arriving midway starts at s_min and does not monopolise the core', (t) => {
  const sim = new Sim(new Wfq(), 1);
  const [a, b] = [1, 2].map((w, i) => sim.add(i + 1, w, 2)) as [SimGroup, SimGroup];
  sim.runUntil(5000);
  const sMin = Math.min(a.vtime, b.vtime);
  t.true(sMin > 100);
  const arrivedAt = sim.now;
  const c = sim.add(3, 3, 2);
  t.is(c.vtime, sMin);
  let worstExcess = -Infinity;
  sim.onDispatchPoint = (s) => {
    worstExcess = Math.max(worstExcess, c.served - ((s.now - arrivedAt) * 3) / 6);
  };
  sim.runUntil(10_000);
  t.true(worstExcess <= q, `the newcomer ran ${worstExcess} ms ahead of its share`);
  const elapsed = sim.now - arrivedAt;
  t.true(Math.abs(c.served / elapsed - 0.5) <= 0.01);
  t.true(a.served > 0 && b.served > 0);
});

test('wfq on two cores: weights 1 and 3 with two processes each share 1:3', (t) => {
  const sim = new Sim(new Wfq(), 2);
  const light = sim.add(1, 1, 2);
  const heavy = sim.add(2, 3, 2);
  sim.runUntil(10_000);
  t.is(light.served + heavy.served, 20_000);
  t.true(Math.abs(heavy.served / light.served - 3) <= 0.03, `ratio ${heavy.served / light.served}`);
});

// ---------------------------------------------------------------------------------------------------------
// lottery

test('lottery: the same seed repeats the same picks, another seed does not', (t) => {
  const groups: Schedulable[] = [1, 2, 3, 4].map((w, i) => ({ id: i + 1, weight: w, vtime: 0 }));
  const draws = (seed: number) => {
    const policy = new Lottery(seed);
    return Array.from({ length: 2000 }, () => policy.pick(groups).id);
  };
  t.deepEqual(draws(7), draws(7));
  t.deepEqual(createPolicy('lottery', 99) instanceof Lottery, true);
  t.notDeepEqual(draws(7), draws(8));
  // through the simulator as well
  const run = (seed: number) => {
    const sim = new Sim(createPolicy('lottery', seed), 2);
    [1, 2, 3].forEach((w, i) => sim.add(i + 1, w, 2));
    sim.runUntil(3000);
    return sim.log.map((d) => `${d.core}:${d.group.id}`);
  };
  t.deepEqual(run(3), run(3));
});

test('lottery: over 20000 quanta each share lands within 3·sqrt(p(1−p)/n) of p', (t) => {
  const n = 20_000;
  const sim = new Sim(new Lottery(1), 1);
  const groups = [1, 2, 3].map((w, i) => sim.add(i + 1, w, 2));
  sim.runUntil(n * q);
  t.is(sim.log.length, n);
  for (const g of groups) {
    const p = g.weight / 6;
    const share = g.served / (n * q);
    const bound = 3 * Math.sqrt((p * (1 - p)) / n);
    t.true(Math.abs(share - p) <= bound, `weight ${g.weight}: share ${share}, p ${p}, bound ${bound}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The compliance block: the shared rules, run against every policy.

for (const name of policyNames) {
  test(`compliance ${name}: pick returns one of the candidates, whatever subset is offered`, (t) => {
    const policy = createPolicy(name, 5);
    t.is(policy.name, name);
    const groups: Schedulable[] = [1, 5, 100, 10_000, 3, 1].map((w, i) => ({ id: i + 1, weight: w, vtime: 0 }));
    for (const g of groups) policy.wake(g, groups.filter((o) => o !== g));
    let state = 12345;
    for (let k = 0; k < 5000; k++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const subset = groups.filter((_, i) => state & (1 << (i + 3)));
      if (subset.length === 0) continue;
      const picked = policy.pick(subset);
      t.true(subset.includes(picked));
      policy.charge(picked, q);
      t.true(groups.every((g) => Number.isFinite(g.vtime) && g.vtime >= 0));
    }
  });

  test(`compliance ${name}: a single candidate is always picked`, (t) => {
    const policy = createPolicy(name, 9);
    const groups: Schedulable[] = [1, 2, 10_000].map((w, i) => ({ id: i + 1, weight: w, vtime: i * 1000 }));
    for (let k = 0; k < 300; k++) {
      const only = groups[k % 3]!;
      t.is(policy.pick([only]), only);
      policy.charge(only, q);
    }
  });

  test(`compliance ${name}: the weight bounds 1 and 10000 keep virtual times finite`, (t) => {
    const policy = createPolicy(name, 2);
    const sim = new Sim(policy, 1);
    const groups = [1, 10_000].map((w, i) => sim.add(i + 1, w, 2));
    sim.runUntil(200_000);
    for (const g of groups) {
      t.true(g.weight >= 1);
      t.true(Number.isFinite(g.vtime));
    }
    // the weight-1 group gets about 1 quantum in 10001, not more than a few times that
    t.true(groups[0]!.served <= (200_000 / 10_001) * 4 + q);
  });

  test(`compliance ${name}: long-run shares converge to the weights within 5%`, (t) => {
    const sim = new Sim(createPolicy(name, 11), 2);
    const weights = [1, 2, 3, 4];
    const groups = weights.map((w, i) => sim.add(i + 1, w, 2));
    sim.runUntil(500_000);
    const total = sum(groups.map((g) => g.served));
    t.is(total, 2 * 500_000);
    for (const g of groups) {
      const share = g.served / total;
      const expected = g.weight / sum(weights);
      t.true(Math.abs(share - expected) <= 0.05 * expected, `${name} weight ${g.weight}: share ${share}, expected ${expected}`);
    }
  });
}

test('createPolicy hands out each policy by name; credit orders like wfq', (t) => {
  t.true(createPolicy('wfq') instanceof Wfq);
  t.true(createPolicy('credit') instanceof Credit);
  t.true(createPolicy('lottery') instanceof Lottery);
  const order = (policy: Policy) => {
    const sim = new Sim(policy, 1);
    [2, 5, 1].forEach((w, i) => sim.add(i + 1, w, 2));
    sim.runUntil(2000);
    return sim.log.map((d) => d.group.id);
  };
  t.deepEqual(order(createPolicy('credit')), order(createPolicy('wfq')));
});

// ---------------------------------------------------------------------------------------------------------
// cpu.max: bandwidth control with fake times

/** Runs `cores` cores flat out against a limiter from `from` to `until`, as the scheduler does. */
function drive(bw: Bandwidth, cores: number, from: number, until: number, usedFraction = 1): void {
  const busyUntil = Array.from({ length: cores }, () => from);
  const pending: Array<{ core: number; end: number; reserved: number }> = [];
  for (let now = from; now < until; now += 0.5) {
    for (let i = pending.length - 1; i >= 0; i--) {
      const p = pending[i]!;
      if (p.end > now) continue;
      bw.settle(p.reserved, p.reserved * usedFraction);
      pending.splice(i, 1);
    }
    for (let core = 0; core < cores; core++) {
      if (busyUntil[core]! > now) continue;
      const available = bw.available(now);
      if (available < 0.05) {
        bw.throttle(now);
        continue;
      }
      const quantum = Math.min(q, available);
      bw.reserve(quantum);
      pending.push({ core, end: now + quantum, reserved: quantum });
      busyUntil[core] = now + quantum;
    }
  }
  for (const p of pending) bw.settle(p.reserved, p.reserved * usedFraction);
}

test('cpu.max 20ms/100ms on one core: 10 periods, each throttled, exact counters', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  let now = 0;
  while (now < 1000) {
    const available = bw.available(now);
    if (available >= 0.05) {
      const quantum = Math.min(q, available);
      bw.reserve(quantum);
      now += quantum;
      bw.settle(quantum, quantum);
    } else {
      bw.throttle(now);
      now = bw.nextPeriod;
    }
  }
  bw.available(1000);
  t.deepEqual(bw.stats, { nrPeriods: 10, nrThrottled: 10, throttledMs: 800, nrBursts: 0, burstMs: 0, peakPeriodMs: 20 });
});

test('cpu.max: reserve/settle on four concurrent cores never lets a period use more than the quota', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  drive(bw, 4, 0, 2000);
  bw.available(2000);
  t.true(bw.stats.peakPeriodMs <= 20 + 1e-9, `peak ${bw.stats.peakPeriodMs}`);
  t.true(bw.stats.peakPeriodMs >= 20 - 1e-9);
  t.is(bw.stats.nrPeriods, 20);
  t.is(bw.stats.nrThrottled, 20);
  t.is(bw.stats.nrBursts, 0);
  // two cores reserve the whole quota at the period start, the other two are throttled from then on
  t.is(bw.stats.throttledMs, 20 * 100);
});

test('cpu.max: a quantum that uses less than it reserved gives the rest back', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(10);
  t.is(bw.available(1), 10);
  bw.settle(10, 4);
  t.is(bw.available(5), 16);
  drive(bw, 2, 10, 1000, 0.5);
  bw.available(1000);
  t.true(bw.stats.peakPeriodMs <= 20 + 1e-9);
});

test('cpu.max: a period with no work is not counted in nr_periods and not throttled', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(5);
  bw.settle(5, 5);
  t.is(bw.available(350), 20);
  t.is(bw.stats.nrPeriods, 1);
  t.is(bw.stats.nrThrottled, 0);
  t.is(bw.stats.throttledMs, 0);
  t.is(bw.stats.peakPeriodMs, 5);
});

test('cpu.max: throttling is counted once per period, for the time until the next refill', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(20);
  bw.settle(20, 20);
  t.is(bw.available(30), 0);
  bw.throttle(30);
  bw.throttle(50);
  bw.throttle(99);
  t.is(bw.nextPeriod, 100);
  t.is(bw.available(100), 20);
  t.is(bw.stats.nrThrottled, 1);
  t.is(bw.stats.throttledMs, 70);
  t.is(bw.stats.nrPeriods, 1);
  bw.reserve(20);
  bw.settle(20, 20);
  bw.throttle(120);
  t.is(bw.available(200), 20);
  t.is(bw.stats.nrThrottled, 2);
  t.is(bw.stats.nrPeriods, 2);
  t.is(bw.stats.throttledMs, 150);
});

test('cpu.max.burst: runtime refills to min(runtime + quota, quota + burst) and bursts are counted', (t) => {
  const bw = new Bandwidth(20, 100, 15, 0);
  t.is(bw.available(0), 20);
  bw.reserve(5);
  bw.settle(5, 5);
  // 15 left + 20 = 35, capped at 20 + 15
  t.is(bw.available(100), 35);
  // an idle period: min(35 + 20, 35)
  t.is(bw.available(200), 35);
  bw.reserve(35);
  bw.settle(35, 35);
  t.is(bw.available(250), 0);
  t.is(bw.available(300), 20);
  t.is(bw.stats.nrBursts, 1);
  t.is(bw.stats.burstMs, 15);
  t.is(bw.stats.peakPeriodMs, 35);
  // without burst the runtime never carries over
  const plain = new Bandwidth(20, 100, 0, 0);
  t.is(plain.available(500), 20);
});

test('cpu.max: a quantum that overruns its reservation is paid back next period and is not a burst', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(20);
  // the core noticed its deadline 0.3 ms late
  bw.settle(20, 20.3);
  t.is(bw.available(100), 19.7);
  t.is(bw.stats.nrBursts, 0);
  t.is(bw.stats.burstMs, 0);
  t.is(bw.stats.peakPeriodMs, 20.3);
  // with burst, only what the carried-over runtime paid for is a burst
  const bursting = new Bandwidth(20, 100, 10, 0);
  t.is(bursting.available(100), 30);
  bursting.reserve(30);
  bursting.settle(30, 31);
  t.is(bursting.available(200), 19);
  t.is(bursting.stats.nrBursts, 1);
  t.is(bursting.stats.burstMs, 10);
});

test('cpu.max: update() changes the limits in place and keeps the counters', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  drive(bw, 1, 0, 500);
  bw.available(500);
  const before = { ...bw.stats };
  t.is(before.nrPeriods, 5);
  t.is(before.nrThrottled, 5);
  bw.update(50, 100, 0);
  t.deepEqual(bw.stats, before);
  t.is(bw.quotaMs, 50);
  drive(bw, 1, 500, 1000);
  bw.available(1000);
  t.is(bw.stats.nrPeriods, 10);
  t.is(bw.stats.nrThrottled, 10);
  t.is(bw.stats.peakPeriodMs, 50);
  // a lower quota cuts the runtime already granted
  const cut = new Bandwidth(80, 100, 0, 0);
  cut.update(30, 100, 0);
  t.is(cut.available(0), 30);
  // a longer period moves the next refill
  const longer = new Bandwidth(20, 100, 0, 0);
  longer.update(20, 250, 0);
  t.is(longer.nextPeriod, 250);
});

test('cpu.max: a long idle stretch is skipped without looping and lands on the period grid', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(10);
  bw.settle(10, 10);
  t.is(bw.available(1_000_000_050), 20);
  t.is(bw.nextPeriod, 1_000_000_100);
  t.is(bw.stats.nrPeriods, 1);
});

// ---------------------------------------------------------------------------------------------------------
// T2 credits

const micro = t2Sizes['t2.micro']!;

test('t2 sizes carry the published rates, caps and baselines', (t) => {
  t.like(t2Sizes['t2.micro'], { vcpus: 1, earnPerHour: 6, maxBalance: 144, baseline: 0.1 });
  t.like(t2Sizes['t2.small'], { vcpus: 1, earnPerHour: 12, maxBalance: 288, baseline: 0.2 });
  t.like(t2Sizes['t2.medium'], { vcpus: 2, earnPerHour: 24, maxBalance: 576, baseline: 0.2 });
  for (const size of Object.values(t2Sizes)) t.is(size.maxBalance, size.earnPerHour * 24);
});

test('t2.micro earns 6 credits in a simulated hour', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  account.earn(hour);
  t.true(Math.abs(account.earned - 6) < 1e-9);
  t.true(Math.abs(account.balance - 6) < 1e-9);
  // earning is continuous: half an hour more is 3 more
  account.earn(1.5 * hour);
  t.true(Math.abs(account.balance - 9) < 1e-9);
});

test('t2 balance never exceeds maxBalance, even after 30 simulated hours idle', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  for (let h = 1; h <= 30; h++) {
    account.earn(h * hour);
    t.true(account.balance <= micro.maxBalance + 1e-9);
  }
  t.is(account.balance, 144);
  t.true(Math.abs(account.earned - 180) < 1e-9);
  // the launch credits are apart from the cap
  t.is(account.launch, 30);
  t.is(account.stat(30 * hour, q).balance + account.stat(30 * hour, q).launch, 174);
});

test('t2 launch credits (30 per vCPU) are spent first', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  account.earn(2 * hour);
  t.true(Math.abs(account.balance - 12) < 1e-9);
  account.spend(minute, 2 * hour);
  t.true(Math.abs(account.launch - 29) < 1e-9);
  t.true(Math.abs(account.balance - 12) < 1e-9);
  account.spend(29.5 * minute, 2 * hour);
  t.is(account.launch, 0);
  t.true(Math.abs(account.balance - 11.5) < 1e-9);
  t.is(new CreditAccount(t2Sizes['t2.medium']!, 'standard', 1, 0).launch, 60);
});

test('t2: 100% of one core for one minute is one credit', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  account.spend(minute, 0);
  t.true(Math.abs(account.spent - 1) < 1e-12);
  // accounting at ms resolution: 60000 quanta of 1 ms spend the same
  const fine = new CreditAccount(micro, 'standard', 1, 0);
  for (let i = 0; i < 60_000; i++) fine.spend(1, 0);
  t.true(Math.abs(fine.spent - 1) < 1e-9);
  t.true(Math.abs(fine.launch - 29) < 1e-9);
});

test('t2 standard mode is held to baseline once out of credits, and released by what it earns', (t) => {
  const account = new CreditAccount(micro, 'standard', 1, 0);
  t.false(account.atBaseline(0, q));
  account.spend(30 * minute, 0);
  t.is(account.launch, 0);
  t.is(account.balance, 0);
  t.true(account.atBaseline(0, q));
  t.true(account.stat(0, q).atBaseline);
  // standard mode never goes below zero
  account.spend(minute, 0);
  t.is(account.balance, 0);
  t.is(account.surplus, 0);
  // 10 simulated minutes earn one credit: enough for a quantum
  t.false(account.atBaseline(10 * minute, q));
  t.is(new CreditAccount(micro, 'unlimited', 1, 0).atBaseline(0, q), false);
});

test('t2 unlimited mode accrues surplus, repaid from later earnings before the balance grows', (t) => {
  const account = new CreditAccount(micro, 'unlimited', 1, 0);
  account.spend(40 * minute, 0);
  t.is(account.launch, 0);
  t.is(account.balance, 0);
  t.true(Math.abs(account.surplus - 10) < 1e-9);
  t.false(account.atBaseline(0, q));
  account.earn(hour);
  t.true(Math.abs(account.surplus - 4) < 1e-9);
  t.is(account.balance, 0);
  account.earn(2 * hour);
  t.is(account.surplus, 0);
  t.true(Math.abs(account.balance - 2) < 1e-9);
  t.is(account.charged, 0);
});

test('t2 unlimited: surplus beyond maxBalance is charged', (t) => {
  const account = new CreditAccount(micro, 'unlimited', 1, 0);
  account.spend((30 + 144 + 10) * minute, 0);
  t.is(account.surplus, 144);
  t.true(Math.abs(account.charged - 10) < 1e-9);
  account.spend(5 * minute, 0);
  t.true(Math.abs(account.charged - 15) < 1e-9);
  const stat = account.stat(0, q);
  t.like(stat, { size: 't2.micro', mode: 'unlimited', surplus: 144, atBaseline: false });
});

test('t2 speed scales earning and spending alike', (t) => {
  const fast = new CreditAccount(micro, 'standard', 60, 0);
  // one real minute at speed 60 is one credit hour
  fast.earn(minute);
  t.true(Math.abs(fast.earned - 6) < 1e-9);
  // one real second at 100% at speed 60 is one credit minute
  fast.spend(1000, minute);
  t.true(Math.abs(fast.spent - 1) < 1e-9);
  t.true(Math.abs(fast.launch - 29) < 1e-9);
  // the baseline is unchanged: at 10% of a core, spending matches earning at every speed
  for (const speed of [1, 60, 3600]) {
    const account = new CreditAccount(micro, 'standard', speed, 0);
    account.spend(30 * minute / speed, 0);
    t.is(account.launch, 0);
    for (let s = 1; s <= 100; s++) account.spend(100, s * 1000);
    t.true(Math.abs(account.balance) < 1e-9, `speed ${speed}: balance ${account.balance}`);
    t.true(Math.abs(account.earned - account.spent + 30) < 1e-9);
  }
});

test('wfq on one core, one process per group: weights 1,2,3 get their shares within 1%', (t) => {
  const sim = new Sim(new Wfq(q), 1);
  const groups = [1, 2, 3].map((w, i) => sim.add(i + 1, w, 1));
  sim.runUntil(10_000);
  const total = sum(groups.map((g) => g.served));
  for (const g of groups) t.true(Math.abs(g.served / total - g.weight / 6) <= (0.01 * g.weight) / 6, `w${g.weight}: ${g.served / total}`);
});

test('wfq lag bound: |W_i − T·w_i/W| < q at every dispatch point (weights 1,2,3 and 1,1,1,1,10)', (t) => {
  for (const weights of [[1, 2, 3], [1, 1, 1, 1, 10]]) {
    const sim = new Sim(new Wfq(q), 1);
    const groups = weights.map((w, i) => sim.add(i + 1, w, 2));
    const total = sum(weights);
    let worst = 0;
    sim.onDispatchPoint = (s) => {
      for (const g of groups) worst = Math.max(worst, Math.abs(g.served - (s.now * g.weight) / total));
    };
    sim.runUntil(10_000);
    t.true(worst < q, `weights ${weights}: lag ${worst}`);
  }
});

test('cpu.max burst: after any long idle stretch runtime = quota + burst', (t) => {
  for (const idle of [500, 1500, 5000]) {
    const bw = new Bandwidth(20, 100, 20, 0);
    bw.reserve(20);
    bw.settle(20, 20);
    t.is(bw.available(idle), 40, `after ${idle} ms idle`);
  }
});

test('cpu.stat: nr_throttled never exceeds nr_periods, even mid-period', (t) => {
  const bw = new Bandwidth(20, 100, 0, 0);
  bw.reserve(20);
  bw.settle(20, 20);
  bw.available(30);
  bw.throttle(30);
  t.true(bw.stats.nrThrottled <= bw.stats.nrPeriods);
  bw.available(120);
  t.is(bw.stats.nrThrottled, 1);
  t.is(bw.stats.nrPeriods, 1);
});
