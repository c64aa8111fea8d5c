/**
 * Live migration's parts that need no bus: when precopy stops (Convergence, over made-up rounds), the
 * ack window over a lossy in-memory channel that reorders acks, the destination's page sink and the
 * digests both sides keep (over a real GuestMemory), the resource-binding table, GuestMemory's methods
 * for migrated pages, and mem-writer's fill and idle modes (driven step by step like a core does).
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { getProgram, pageSize, type Registers, type StepContext, type StepResult, type SyscallResult } from '@slicelab/programs';
import { resourceAttachments, resourceBindings, throttleSteps, type Resource } from '@slicelab/protocol';
import { GuestMemory, HostMemory, MemoryFault } from '../src/memory.js';
import { bindingAction, moveResources } from '../src/migration/bindings.js';
import { Convergence, type ConvergenceOptions, type Decision } from '../src/migration/convergence.js';
import { PageLedger, PageSink, isZeroPage, pagesOf } from '../src/migration/pages.js';
import { AckWindow } from '../src/migration/window.js';

// ---------------------------------------------------------------------------------------------------
// Convergence

const plain: ConvergenceOptions = { mode: 'precopy', downtimeLimitMs: 300, maxRounds: 30, autoConverge: false, postcopyAfter: null };

/**
 * A round that sent `pages` pages at `bytesPerMs` and left `dirtyPages` dirty. At 4096 bytes per ms
 * (one page per ms), 300 pages fit a 300 ms downtime limit.
 */
function round(pages: number, dirtyPages: number, bytesPerMs = pageSize): { pages: number; bytes: number; ms: number; dirtyPages: number } {
  const bytes = pages * pageSize;
  return { pages, bytes, ms: bytes / bytesPerMs, dirtyPages };
}

/** GuestMemory.markMissingPages for one page: true when it was marked (the host had room). */
function markMissing(memory: GuestMemory, page: number): boolean {
  const bitmap = new Uint8Array(Math.ceil(memory.pages / 32) * 4);
  bitmap[page >>> 3]! |= 1 << (page & 7);
  return memory.markMissingPages(bitmap) === 1;
}

test('convergence: before any round was measured the cap decides whether the dirty pages fit the downtime limit', (t) => {
  // the cap: 1000 bytes/ms, so 300 ms carry 300000 bytes, 73.2 pages
  const fits = new Convergence(plain, 1000);
  // a round of 10 pages (under 64: too small to measure a rate) leaves 73 dirty
  const a = fits.after({ pages: 10, bytes: 10 * pageSize, ms: 1, dirtyPages: 73 });
  t.is(a.next, 'stop-and-copy');
  t.regex((a as { why: string }).why, /^73 dirty pages fit the downtime limit \(299\.0 ms expected\)$/);

  const over = new Convergence(plain, 1000);
  t.deepEqual(over.after({ pages: 10, bytes: 10 * pageSize, ms: 1, dirtyPages: 74 }), { next: 'round' });
  t.is(over.expectedDowntimeMs(74), (74 * pageSize) / 1000);

  // no cap and nothing measured: nothing but zero pages fits
  const uncapped = new Convergence(plain, undefined);
  t.deepEqual(uncapped.after({ pages: 10, bytes: 10 * pageSize, ms: 1, dirtyPages: 1 }), { next: 'round' });
  t.is(uncapped.expectedDowntimeMs(1), Infinity);
  t.is(uncapped.expectedDowntimeMs(0), 0);
});

test('convergence: once a round was measured its rate decides, not the cap; a round too small to measure keeps the last rate', (t) => {
  // the cap says 1000 bytes/ms; the round measured 4096 bytes/ms: 300 pages fit in 300 ms
  const c = new Convergence(plain, 1000);
  t.deepEqual(c.after(round(1000, 301)), { next: 'round' });
  t.is(c.expectedDowntimeMs(300), 300);
  // a round of 10 pages at a crawl (1 byte/ms) is not a measurement: the rate stays one page per ms
  t.deepEqual(c.after({ pages: 10, bytes: 10 * pageSize, ms: 10 * pageSize, dirtyPages: 301 }), { next: 'round' });
  t.is(c.expectedDowntimeMs(300), 300);
  const d = c.after(round(400, 300));
  t.deepEqual(d, { next: 'stop-and-copy', why: '300 dirty pages fit the downtime limit (300.0 ms expected)' });
  // the rate of the round just ended counts: a faster round lets more pages fit
  const fast = new Convergence(plain, 1000);
  t.is(fast.after(round(1000, 1000, 2 * pageSize)).next, 'round');
  t.is(fast.after(round(1000, 600, 2 * pageSize)).next, 'stop-and-copy');
  t.deepEqual(fast.rounds.map((r) => r.round), [1, 2]);
});

test('convergence: hybrid goes to postcopy after postcopyAfter rounds, unless the pages fit first', (t) => {
  const hybrid: ConvergenceOptions = { ...plain, mode: 'hybrid', postcopyAfter: 3 };
  const c = new Convergence(hybrid, undefined);
  t.deepEqual(c.after(round(1000, 900)), { next: 'round' });
  t.deepEqual(c.after(round(900, 900)), { next: 'round' });
  t.deepEqual(c.after(round(900, 900)), { next: 'postcopy', why: 'after 3 precopy rounds' });

  const converges = new Convergence(hybrid, undefined);
  t.is(converges.after(round(1000, 900)).next, 'round');
  t.is(converges.after(round(900, 500)).next, 'round');
  t.is(converges.after(round(500, 100)).next, 'stop-and-copy', 'pages that fit stop and copy even at the postcopy round');

  // postcopyAfter null: only the stop rule sends hybrid to postcopy
  const never = new Convergence({ ...hybrid, postcopyAfter: null }, undefined);
  for (let i = 0; i < 10; i++) t.deepEqual(never.after(round(1000, 900)), { next: 'round' });
});

test('convergence: a round that grew more than 10 % ends plain precopy with stop-and-copy, and says why', (t) => {
  const exact = new Convergence(plain, undefined);
  t.is(exact.after(round(1000, 1000)).next, 'round');
  t.is(exact.after(round(1000, 1100)).next, 'round', 'exactly 10 % more is not growth');
  const d = exact.after(round(1000, 1211));
  t.is(d.next, 'stop-and-copy');
  t.is((d as { why: string }).why, 'round 3 grew over 10 % (1100 → 1211 dirty pages); 1211.0 ms expected, over the 300 ms limit');

  const shrinking = new Convergence(plain, undefined);
  for (const dirty of [1000, 900, 990, 980]) t.is(shrinking.after(round(1000, dirty)).next, 'round');
});

test('convergence: the round cap ends plain precopy with stop-and-copy and hybrid with postcopy', (t) => {
  const capped = new Convergence({ ...plain, maxRounds: 4 }, undefined);
  for (let i = 0; i < 3; i++) t.deepEqual(capped.after(round(1000, 800)), { next: 'round' });
  const d = capped.after(round(1000, 800));
  t.deepEqual(d, { next: 'stop-and-copy', why: 'round cap (4) reached; 800.0 ms expected, over the 300 ms limit' });

  const hybrid = new Convergence({ ...plain, mode: 'hybrid', maxRounds: 2 }, undefined);
  t.deepEqual(hybrid.after(round(1000, 800)), { next: 'round' });
  t.deepEqual(hybrid.after(round(1000, 800)), { next: 'postcopy', why: 'round cap (2) reached' });

  const grown = new Convergence({ ...plain, mode: 'hybrid' }, undefined);
  t.deepEqual(grown.after(round(1000, 500)), { next: 'round' });
  t.deepEqual(grown.after(round(1000, 600)), { next: 'postcopy', why: 'round 2 grew over 10 % (500 → 600 dirty pages)' });
});

/** Feeds rounds until a decision other than 'round'; returns the throttles stepped to and the final decision. */
function runUntilStop(c: Convergence, next: (n: number) => ReturnType<typeof round>, limit = 100): { throttles: number[]; end: Decision; rounds: number } {
  const throttles: number[] = [];
  for (let n = 1; n <= limit; n++) {
    const d = c.after(next(n));
    if (d.next !== 'round') return { throttles, end: d, rounds: n };
    if (d.throttle !== undefined) throttles.push(d.throttle);
  }
  throw new Error(`no end after ${limit} rounds`);
}

const steps = [20, 30, 40, 50, 60, 70, 80, 90, 99];

test('auto-converge: two rounds in a row that leave more than half as many dirty pages as they sent step the throttle 20 → 30 → … → 99', (t) => {
  const c = new Convergence({ ...plain, autoConverge: true, maxRounds: 1000 }, undefined);
  const decisions: Decision[] = [];
  // 1000 sent, 600 left dirty (more than half), never growing: every second round steps the throttle
  for (let n = 0; n < 18; n++) decisions.push(c.after(round(1000, 600)));
  t.deepEqual(decisions.filter((_, i) => i % 2 === 0), new Array(9).fill({ next: 'round' }));
  t.deepEqual(decisions.filter((_, i) => i % 2 === 1).map((d) => (d as { throttle?: number }).throttle), steps);
  t.is(c.throttle, throttleSteps.max);
  // each round reports the throttle it ran under
  t.deepEqual(c.rounds.map((r) => r.throttle), [0, 0, 20, 20, 30, 30, 40, 40, 50, 50, 60, 60, 70, 70, 80, 80, 90, 90]);
  // at 99 the throttle goes no higher, and the stop rule applies again: steady rounds go on, growth stops
  for (let n = 0; n < 4; n++) t.deepEqual(c.after(round(1000, 600)), { next: 'round' });
  t.is(c.throttle, 99);
  const end = c.after(round(1000, 700));
  t.is(end.next, 'stop-and-copy');
  t.regex((end as { why: string }).why, /^round 23 grew over 10 % \(600 → 700 dirty pages\)/);
});

test('auto-converge: a round under the half-sent mark resets the count; exactly half is not over it', (t) => {
  const c = new Convergence({ ...plain, autoConverge: true, maxRounds: 1000 }, undefined);
  t.deepEqual(c.after(round(1000, 600)), { next: 'round' });
  t.deepEqual(c.after(round(1000, 500)), { next: 'round' }, 'exactly half');
  t.deepEqual(c.after(round(1000, 510)), { next: 'round' }, 'one high round after a low one is not two in a row');
  t.deepEqual(c.after(round(1000, 520)), { next: 'round', throttle: 20 });
  t.deepEqual(c.after(round(1000, 530)), { next: 'round' }, 'the count starts again after a step');
  t.deepEqual(c.after(round(1000, 540)), { next: 'round', throttle: 30 });
});

test('auto-converge: growth steps the throttle at once, and at 99 growth ends precopy', (t) => {
  const c = new Convergence({ ...plain, autoConverge: true, maxRounds: 1000 }, undefined);
  // 400 of 1000 left dirty is under half: only growth steps the throttle; the dirty pages grow 20 % a round
  let dirty = 400;
  const { throttles, end, rounds } = runUntilStop(c, (n) => round(1000, n === 1 ? dirty : (dirty = Math.ceil(dirty * 1.2))));
  t.deepEqual(throttles, steps);
  t.is(rounds, 11, 'nine steps after round 1, then the stop rule at round 11');
  t.is(end.next, 'stop-and-copy');
  t.regex((end as { why: string }).why, /^round 11 grew over 10 %/);
});

test('auto-converge: at the round cap the throttle steps every round up to 99, then the cap stops precopy (hybrid: postcopy)', (t) => {
  // 400 of 1000 dirty, steady: neither half-sent nor growth; only the cap of 3 rounds
  const c = new Convergence({ ...plain, autoConverge: true, maxRounds: 3 }, undefined);
  const { throttles, end, rounds } = runUntilStop(c, () => round(1000, 400));
  t.deepEqual(throttles, steps);
  t.is(rounds, 12);
  t.deepEqual(end, { next: 'stop-and-copy', why: 'round cap (3) reached; 400.0 ms expected, over the 300 ms limit' });
  t.true(c.rounds.every((r) => r.throttle <= 99));

  const hybrid = new Convergence({ ...plain, mode: 'hybrid', autoConverge: true, maxRounds: 3 }, undefined);
  const h = runUntilStop(hybrid, () => round(1000, 400));
  t.deepEqual(h.throttles, steps);
  t.deepEqual(h.end, { next: 'postcopy', why: 'round cap (3) reached' });
});

test('auto-converge: pages that fit the limit stop and copy whatever the throttle', (t) => {
  const c = new Convergence({ ...plain, autoConverge: true, maxRounds: 1000 }, undefined);
  t.is(c.after(round(1000, 600)).next, 'round');
  t.deepEqual(c.after(round(1000, 600)), { next: 'round', throttle: 20 });
  t.is(c.after(round(1000, 250)).next, 'stop-and-copy');
  t.is(c.throttle, 20);
});

// ---------------------------------------------------------------------------------------------------
// AckWindow

/** mulberry32: a small seeded PRNG */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

class FakeTimeout extends Error {
  constructor() {
    super('timeout');
    this.name = 'TimeoutError';
  }
}
class Refused extends Error {}
const retryTimeouts = (error: unknown) => error instanceof FakeTimeout;

/**
 * An in-memory request channel: each delivery is lost (request or ack: the promise rejects with a
 * timeout after `timeoutMs`) with probability `loss`, otherwise acked after 0..maxDelayMs ms. The
 * dice for an item's n-th attempt come from (seed, item, n), so the outcome does not depend on how the
 * timers interleave.
 */
class LossyChannel {
  concurrent = 0;
  maxConcurrent = 0;
  /** deliveries the sender saw time out */
  lost = 0;
  /** of those, the ones the receiver did get (the ack was lost) */
  ackLost = 0;
  /** what the receiver got, duplicates included */
  readonly received: number[] = [];
  /** the order acks reached the sender */
  readonly acks: number[] = [];
  readonly attempts = new Map<number, number>();

  constructor(private readonly seed: number, private readonly loss: number, private readonly maxDelayMs: number) {}

  readonly deliver = async (item: number, timeoutMs: number): Promise<void> => {
    const attempt = this.attempts.get(item) ?? 0;
    this.attempts.set(item, attempt + 1);
    const dice = prng(Math.imul(this.seed, 0x9e3779b1) ^ Math.imul(item + 1, 0x85ebca6b) ^ Math.imul(attempt + 1, 0xc2b2ae35));
    this.concurrent++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    try {
      const delay = Math.floor(dice() * (this.maxDelayMs + 1));
      if (dice() < this.loss) {
        this.lost++;
        if (dice() < 0.5) {
          this.ackLost++;
          this.received.push(item);
        }
        await sleep(timeoutMs);
        throw new FakeTimeout();
      }
      await sleep(delay);
      this.received.push(item);
      this.acks.push(item);
    } finally {
      this.concurrent--;
    }
  };
}

test('ack window: under 20 % loss and reordered acks every item is acked once, the window is never exceeded, retransmits are counted', async (t) => {
  const items = 300;
  const window = 8;
  const channel = new LossyChannel(7, 0.2, 3);
  const stalls: boolean[] = [];
  const w = new AckWindow<number>(channel.deliver, { window, timeoutMs: 4, retries: 100, retryable: retryTimeouts, onStall: (s) => void stalls.push(s) });
  for (let i = 0; i < items; i++) await w.send(i);
  await w.drain();

  t.is(w.acked, items);
  t.false(w.failed);
  t.deepEqual([...channel.acks].sort((a, b) => a - b), Array.from({ length: items }, (_, i) => i), 'each item acked exactly once');
  t.notDeepEqual(channel.acks, [...channel.acks].sort((a, b) => a - b), 'acks came back out of order');
  t.true(channel.lost > 20, `the channel lost ${channel.lost} deliveries`);
  t.is(w.retransmits, channel.lost, 'every lost delivery was sent again, and nothing else');
  t.is(channel.received.length, items + channel.ackLost, 'the receiver got each item once, plus the retransmits of lost acks');
  t.is(new Set(channel.received).size, items);
  t.is(channel.maxConcurrent, window);
  t.is(channel.concurrent, 0);
  // stalls alternate, start with a retransmit and end with acks flowing again
  t.true(stalls.length >= 2);
  t.true(stalls.every((s, i) => s === (i % 2 === 0)));
});

test('ack window: a window of 1 delivers in order, one at a time, through loss', async (t) => {
  const channel = new LossyChannel(3, 0.3, 2);
  const w = new AckWindow<number>(channel.deliver, { window: 1, timeoutMs: 3, retries: 100, retryable: retryTimeouts });
  for (let i = 0; i < 40; i++) await w.send(i);
  await w.drain();
  t.is(channel.maxConcurrent, 1);
  t.deepEqual(channel.acks, Array.from({ length: 40 }, (_, i) => i));
  t.is(w.retransmits, channel.lost);
  t.true(channel.lost > 0);
});

test('ack window: a refusal (not retryable) fails send() and drain() with that very error', async (t) => {
  const refusal = new Refused('no room for page 9');
  const channel = new LossyChannel(11, 0.1, 2);
  const sent: number[] = [];
  const w = new AckWindow<number>(async (item, timeoutMs) => {
    sent.push(item);
    if (item === 13) {
      await sleep(1);
      throw refusal;
    }
    return channel.deliver(item, timeoutMs);
  }, { window: 4, timeoutMs: 4, retries: 100, retryable: retryTimeouts });
  const error = await t.throwsAsync(async () => {
    for (let i = 0; i < 200; i++) await w.send(i);
    await w.drain();
  });
  t.is(error, refusal);
  t.true(w.failed);
  t.is(sent.filter((item) => item === 13).length, 1, 'a refusal is not sent again');
  t.true(sent.length < 200, 'sending stopped at the failure');
  t.is(await t.throwsAsync(w.send(1000)), refusal);
  t.is(await t.throwsAsync(w.drain()), refusal);
});

test('ack window: an item lost more often than `retries` fails the window with the last timeout', async (t) => {
  const calls = new Map<number, number>();
  const timeouts: FakeTimeout[] = [];
  const w = new AckWindow<number>(async (item, timeoutMs) => {
    calls.set(item, (calls.get(item) ?? 0) + 1);
    await sleep(item === 2 ? timeoutMs : 1);
    if (item === 2) {
      const timeout = new FakeTimeout();
      timeouts.push(timeout);
      throw timeout;
    }
  }, { window: 3, timeoutMs: 3, retries: 3, retryable: retryTimeouts });
  for (let i = 0; i < 3; i++) await w.send(i);
  const error = await t.throwsAsync(w.drain());
  t.is(calls.get(2), 4, 'sent once and again three times');
  t.is(w.retransmits, 3);
  t.is(timeouts.length, 4);
  t.is(error, timeouts[3]!);
  t.true(w.failed);
});

test.serial('ack window: a failure that comes back at once waits backoffMs before sending again', async (t) => {
  const calls: number[] = [];
  const stalls: boolean[] = [];
  const w = new AckWindow<string>(async () => {
    calls.push(performance.now());
    if (calls.length <= 2) throw new FakeTimeout();
  }, { window: 2, timeoutMs: 1000, retries: 5, retryable: retryTimeouts, backoffMs: 15, onStall: (s) => void stalls.push(s) });
  await w.send('a');
  await w.drain();
  t.is(calls.length, 3);
  t.is(w.retransmits, 2);
  const gaps = [calls[1]! - calls[0]!, calls[2]! - calls[1]!];
  t.true(gaps.every((gap) => gap >= 14), `gaps of ${gaps.map((gap) => gap.toFixed(1)).join(', ')} ms: backoffMs is 15`);
  t.true(gaps.every((gap) => gap < 900), 'the backoff, not the ack timeout');
  t.deepEqual(stalls, [true, false]);
});

test('ack window: fail() wakes a sender waiting for room and a drain, both with its error', async (t) => {
  const w = new AckWindow<number>(() => new Promise<void>(() => {}), { window: 2, timeoutMs: 1000, retries: 0, retryable: () => false });
  await w.send(0);
  await w.send(1);
  const settled: string[] = [];
  const waiting = w.send(2).then(() => settled.push('send'), (error: unknown) => { settled.push('send failed'); throw error; });
  const draining = w.drain().then(() => settled.push('drain'), (error: unknown) => { settled.push('drain failed'); throw error; });
  await sleep(5);
  t.deepEqual(settled, [], 'both wait while the window is full');
  const cancel = new Error('cancelled by request');
  w.fail(cancel);
  t.is(await t.throwsAsync(waiting), cancel);
  t.is(await t.throwsAsync(draining), cancel);
  t.deepEqual(settled.sort(), ['drain failed', 'send failed']);
  // the first failure stays the window's
  w.fail(new Error('later'));
  t.is(await t.throwsAsync(w.send(3)), cancel);
});

// ---------------------------------------------------------------------------------------------------
// PageSink, PageLedger

/** A page of `byte`, with `stamp` in its first four bytes. */
function page(byte: number, stamp = 0): Uint8Array {
  const bytes = new Uint8Array(pageSize).fill(byte);
  new DataView(bytes.buffer).setUint32(0, stamp, true);
  return bytes;
}

/** A batch as the sink takes it: pages with contents, and zero pages by number. */
function batch(pages: Array<[number, Uint8Array]>, zeros: number[] = []): [Uint32Array, Uint8Array, Uint32Array] {
  const data = new Uint8Array(pages.length * pageSize);
  pages.forEach(([, bytes], i) => data.set(bytes, i * pageSize));
  return [Uint32Array.from(pages.map(([n]) => n)), data, Uint32Array.from(zeros)];
}

function ledgerOf(pageCount: number, contents: Map<number, Uint8Array>): PageLedger {
  const ledger = new PageLedger(pageCount);
  for (const [n, bytes] of contents) ledger.set(n, bytes);
  return ledger;
}

function readPage(memory: GuestMemory, n: number): Uint8Array {
  const into = new Uint8Array(pageSize);
  memory.read(n * pageSize, into);
  return into;
}

test('page sink: a later batch that overtakes an earlier one keeps its newer copy; duplicates change nothing', (t) => {
  const memory = GuestMemory.create(64 * pageSize);
  const sink = new PageSink(memory);
  // round 1 sent pages 3 and 4 in batch 0; round 2 sent page 3 again in batch 1, which arrives first
  t.is(sink.apply(1, ...batch([[3, page(0xbb, 2)]])), 1);
  t.is(sink.apply(0, ...batch([[3, page(0xaa, 1)], [4, page(0xaa, 1)]])), 1, 'only page 4 of the older batch is written');
  t.deepEqual(readPage(memory, 3), page(0xbb, 2));
  t.deepEqual(readPage(memory, 4), page(0xaa, 1));
  t.is(memory.currentBytes, 2 * pageSize);
  // both batches again (retransmits whose first copies were acked late)
  const digest = sink.ledger.digest();
  t.is(sink.apply(0, ...batch([[3, page(0xaa, 1)], [4, page(0xaa, 1)]])), 0);
  t.is(sink.apply(1, ...batch([[3, page(0xbb, 2)]])), 0);
  t.deepEqual(readPage(memory, 3), page(0xbb, 2));
  t.is(memory.currentBytes, 2 * pageSize);
  t.is(sink.ledger.digest(), digest);
  t.is(sink.pages, 2);
  t.deepEqual([...sink.batches].sort(), [0, 1]);
  // a newer batch after both wins
  t.is(sink.apply(2, ...batch([[4, page(0xcc, 3)]])), 1);
  t.deepEqual(readPage(memory, 4), page(0xcc, 3));
});

test('page sink: the destination digest equals a source ledger of the final page contents, whatever order batches came in', (t) => {
  const pages = 96;
  const rand = prng(99);
  // three rounds over random pages; each round's copy of a page is newer than the last
  const batches: Array<{ seq: number; pages: Array<[number, Uint8Array]>; zeros: number[] }> = [];
  const final = new Map<number, Uint8Array>();
  let seq = 0;
  for (let r = 0; r < 3; r++) {
    for (let b = 0; b < 4; b++) {
      const set = new Set<number>();
      while (set.size < 10) set.add(Math.floor(rand() * pages));
      const contents: Array<[number, Uint8Array]> = [];
      const zeros: number[] = [];
      for (const n of set) {
        if (rand() < 0.2) {
          zeros.push(n);
          final.set(n, new Uint8Array(pageSize));
        } else {
          const bytes = page(Math.floor(rand() * 256), seq * 1000 + n);
          contents.push([n, bytes]);
          final.set(n, bytes);
        }
      }
      batches.push({ seq: seq++, pages: contents, zeros });
    }
  }
  // delivered shuffled, with some duplicates
  const order = [...batches, ...batches.filter((_, i) => i % 3 === 0)];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const memory = GuestMemory.create(pages * pageSize);
  const sink = new PageSink(memory);
  for (const b of order) sink.apply(b.seq, ...batch(b.pages, b.zeros));

  for (const [n, bytes] of final) t.deepEqual(readPage(memory, n), bytes, `page ${n}`);
  t.is(memory.currentBytes, final.size * pageSize);
  const source = ledgerOf(pages, final);
  t.is(sink.ledger.digest(), source.digest());
  t.is(sink.ledger.count, final.size);
  t.deepEqual(sink.ledger.lacking(memory.touchedBitmap()), []);
  // and a ledger in the order of the batches (the source's) ends the same
  const inOrder = new PageLedger(pages);
  for (const b of batches) {
    for (const [n, bytes] of b.pages) inOrder.set(n, bytes);
    for (const n of b.zeros) inOrder.set(n, new Uint8Array(pageSize));
  }
  t.is(inOrder.digest(), source.digest());
});

test('page ledger: a digest changes when one byte of one page changes, and when a page moves to another number', (t) => {
  const contents = new Map<number, Uint8Array>();
  for (const n of [0, 5, 31, 32, 63]) contents.set(n, page(n + 1, n));
  const base = ledgerOf(64, contents).digest();
  t.regex(base, /^[0-9a-f]{16}\/5$/);
  const seen = new Set([base]);
  for (const n of [0, 32, 63]) {
    for (const at of [0, 1, 2047, 4093, pageSize - 1]) {
      const changed = new Map(contents);
      const bytes = new Uint8Array(contents.get(n)!);
      bytes[at] ^= 0x01;
      changed.set(n, bytes);
      const digest = ledgerOf(64, changed).digest();
      t.not(digest, base, `page ${n}, byte ${at}`);
      seen.add(digest);
    }
  }
  t.is(seen.size, 1 + 3 * 5, 'every change gives its own digest');
  // the same bytes under another page number
  const moved = new Map(contents);
  moved.delete(5);
  moved.set(6, contents.get(5)!);
  t.not(ledgerOf(64, moved).digest(), base);
  // two pages' contents swapped
  const swapped = new Map(contents);
  swapped.set(0, contents.get(63)!);
  swapped.set(63, contents.get(0)!);
  t.not(ledgerOf(64, swapped).digest(), base);
  // a copy that is not 4-byte aligned hashes as the aligned one does
  const unaligned = new Uint8Array(pageSize + 1).subarray(1);
  unaligned.set(contents.get(31)!);
  const viaUnaligned = new Map(contents);
  viaUnaligned.set(31, unaligned);
  t.is(ledgerOf(64, viaUnaligned).digest(), base);
});

test('page ledger: setting a page again replaces its hash; dropping it takes it out of the sum', (t) => {
  const ledger = new PageLedger(40);
  const empty = ledger.digest();
  t.is(empty, '0000000000000000/0');
  ledger.set(7, page(1));
  ledger.set(7, page(2));
  t.is(ledger.count, 1);
  t.is(ledger.digest(), ledgerOf(40, new Map([[7, page(2)]])).digest());
  ledger.set(39, page(3));
  ledger.drop(7);
  ledger.drop(7);
  t.is(ledger.digest(), ledgerOf(40, new Map([[39, page(3)]])).digest());
  ledger.drop(39);
  t.is(ledger.digest(), empty);
  t.false(ledger.has(39));
});

test('page sink: dropUntouched releases the pages the source freed after sending them', (t) => {
  const pages = 64;
  const source = GuestMemory.create(pages * pageSize);
  const memory = GuestMemory.create(pages * pageSize);
  const sink = new PageSink(memory);
  const sent = [3, 4, 10, 33, 40, 63];
  for (const n of sent) source.writeU32(n * pageSize, n + 100);
  sink.apply(0, ...batch(sent.map((n) => [n, source.pageView(n).slice()])));
  t.is(memory.currentBytes, sent.length * pageSize);
  // the source frees 4, 33 and 63 after sending them
  for (const n of [4, 33, 63]) source.release(n * pageSize, pageSize);
  const kept = [3, 10, 40];
  t.deepEqual([...source.touchedPageNumbers()], kept);

  t.is(sink.dropUntouched(source.touchedBitmap()), 3);
  t.is(memory.currentBytes, kept.length * pageSize);
  t.deepEqual([...memory.touchedPageNumbers()], kept);
  for (const n of [4, 33, 63]) t.is(memory.readU32(n * pageSize), 0, `page ${n} reads as zero again`);
  for (const n of kept) t.is(memory.readU32(n * pageSize), n + 100);
  t.is(sink.ledger.digest(), ledgerOf(pages, new Map(kept.map((n) => [n, source.pageView(n)]))).digest());
  t.is(sink.dropUntouched(source.touchedBitmap()), 0, 'a second time drops nothing');
  t.is(memory.currentBytes, kept.length * pageSize);
});

test('page sink: dropUntouched reads a bitmap that is not 4-byte aligned (a view into a message)', (t) => {
  const source = GuestMemory.create(64 * pageSize);
  const memory = GuestMemory.create(64 * pageSize);
  const sink = new PageSink(memory);
  for (const n of [1, 34]) source.writeU32(n * pageSize, 1);
  sink.apply(0, ...batch([[1, page(1)], [2, page(2)], [34, page(3)], [35, page(4)]]));
  const bitmap = source.touchedBitmap();
  const message = new Uint8Array(bitmap.length + 3);
  message.set(bitmap, 3);
  t.is(sink.dropUntouched(message.subarray(3)), 2);
  t.deepEqual([...memory.touchedPageNumbers()], [1, 34]);
});

test('page sink: zero pages travel as numbers, are charged and counted, and overwrite an older copy', (t) => {
  t.true(isZeroPage(new Uint8Array(pageSize)));
  const last = new Uint8Array(pageSize);
  last[pageSize - 1] = 1;
  t.false(isZeroPage(last), 'a page with its last byte set is not zero');
  const first = new Uint8Array(pageSize);
  first[0] = 1;
  t.false(isZeroPage(first));
  t.true(isZeroPage(new Uint8Array(pageSize + 8).subarray(8)), 'an unaligned view');

  const memory = GuestMemory.create(32 * pageSize);
  const sink = new PageSink(memory);
  t.is(sink.apply(0, ...batch([[5, page(0xcc)]], [7, 8])), 3);
  t.is(memory.currentBytes, 3 * pageSize);
  t.true(sink.ledger.has(7) && sink.ledger.has(8));
  t.is(sink.ledger.count, 3);
  // page 5 was zeroed after round 1
  t.is(sink.apply(1, ...batch([], [5])), 1);
  t.deepEqual(readPage(memory, 5), new Uint8Array(pageSize));
  t.is(memory.currentBytes, 3 * pageSize);
  const zero = new Uint8Array(pageSize);
  t.is(sink.ledger.digest(), ledgerOf(32, new Map([[5, zero], [7, zero], [8, zero]])).digest());
  t.not(sink.ledger.digest(), ledgerOf(32, new Map([[5, page(0xcc)], [7, zero], [8, zero]])).digest());
});

test('page sink: a batch whose data does not match its numbers, a page outside memory, or no room on the host is refused', (t) => {
  const memory = GuestMemory.create(8 * pageSize, HostMemory.create(2 * pageSize));
  const sink = new PageSink(memory);
  t.throws(() => sink.apply(0, Uint32Array.of(1, 2), new Uint8Array(pageSize), new Uint32Array()), { instanceOf: RangeError, message: /2 pages carries 4096 bytes/ });
  t.throws(() => sink.apply(1, ...batch([[8, page(1)]])), { instanceOf: RangeError, message: /page 8 lies outside/ });
  t.throws(() => sink.apply(2, ...batch([[0, page(1)], [1, page(1)], [2, page(1)]])), { instanceOf: RangeError, message: /no room on this host for page 2/ });
  t.is(memory.currentBytes, 2 * pageSize, 'the host held two pages, and no more was charged');
});

test('page sink: place puts a postcopy page in, whatever batch brought it, and the digest follows', (t) => {
  const memory = GuestMemory.create(16 * pageSize);
  const sink = new PageSink(memory);
  sink.apply(5, ...batch([[2, page(1)], [3, page(1)]]));
  // at switch-over page 3 was dirty again: the destination marks it missing and drops it from its ledger
  t.true(markMissing(memory, 3));
  sink.ledger.drop(3);
  t.true(markMissing(memory, 9));
  t.throws(() => memory.readU32(3 * pageSize), { instanceOf: MemoryFault, message: /page 3 not present/ });
  sink.place(3, page(7));
  sink.place(9, undefined);
  t.deepEqual(readPage(memory, 3), page(7));
  t.deepEqual(readPage(memory, 9), new Uint8Array(pageSize));
  t.is(memory.currentBytes, 3 * pageSize);
  t.is(sink.ledger.digest(), ledgerOf(16, new Map([[2, page(1)], [3, page(7)], [9, new Uint8Array(pageSize)]])).digest());
  t.throws(() => sink.place(16, undefined), { instanceOf: RangeError });
});

// ---------------------------------------------------------------------------------------------------
// bindings

test('bindings: the binding table, identifier/value/type by unattached/fastened/fixed', (t) => {
  const table: Record<Resource['binding'], Array<ReturnType<typeof bindingAction>>> = {
    identifier: ['move', 'global-reference', 'global-reference'],
    value: ['copy', 'global-reference', 'global-reference'],
    type: ['rebind', 'rebind', 'rebind'],
  };
  t.deepEqual([...resourceBindings], ['identifier', 'value', 'type']);
  t.deepEqual([...resourceAttachments], ['unattached', 'fastened', 'fixed']);
  for (const binding of resourceBindings) {
    t.deepEqual(resourceAttachments.map((attachment) => bindingAction({ binding, attachment })), table[binding], binding);
  }
});

test('bindings: moveResources leaves global references on the source and puts the rest on the destination', (t) => {
  const resources: Resource[] = resourceBindings.flatMap((binding) => resourceAttachments.map((attachment) => ({
    name: `${binding}-${attachment}`, binding, attachment, value: `v-${binding}-${attachment}`, location: 'h1',
  })));
  const before = structuredClone(resources);
  const { resources: moved, moves } = moveResources(resources, 'h2');
  t.deepEqual(resources, before, 'the input is left as it was');
  const where = Object.fromEntries(moved.map((r) => [r.name, r.location]));
  t.deepEqual(where, {
    'identifier-unattached': 'h2', 'identifier-fastened': 'h1', 'identifier-fixed': 'h1',
    'value-unattached': 'h2', 'value-fastened': 'h1', 'value-fixed': 'h1',
    'type-unattached': 'h2', 'type-fastened': 'h2', 'type-fixed': 'h2',
  });
  t.deepEqual(moved.map((r) => ({ ...r, location: 'h1' })), before, 'only the location changes');
  t.deepEqual(moves.find((m) => m.name === 'identifier-unattached'), {
    name: 'identifier-unattached', binding: 'identifier', attachment: 'unattached', action: 'move',
    before: 'v-identifier-unattached@h1', after: 'v-identifier-unattached@h2',
  });
  t.deepEqual(moves.find((m) => m.name === 'value-fixed'), {
    name: 'value-fixed', binding: 'value', attachment: 'fixed', action: 'global-reference',
    before: 'v-value-fixed@h1', after: 'v-value-fixed@h1',
  });
  t.deepEqual(moves.map((m) => m.action), ['move', 'global-reference', 'global-reference', 'copy', 'global-reference', 'global-reference', 'rebind', 'rebind', 'rebind']);
  t.deepEqual(moveResources([], 'h2'), { resources: [], moves: [] });
});

// ---------------------------------------------------------------------------------------------------
// GuestMemory for migration

test('guest memory: receivePage charges a page once, stores its bytes or zeros, and refuses when the host is full', (t) => {
  const memory = GuestMemory.create(16 * pageSize, HostMemory.create(3 * pageSize));
  t.true(memory.receivePage(4, page(9, 1)));
  t.is(memory.currentBytes, pageSize);
  t.true(memory.receivePage(4, page(8, 2)));
  t.is(memory.currentBytes, pageSize, 'the second copy of a page costs nothing more');
  t.deepEqual(readPage(memory, 4), page(8, 2));
  t.true(memory.receivePage(4, undefined));
  t.deepEqual(readPage(memory, 4), new Uint8Array(pageSize));
  t.true(memory.isTouched(4));
  t.false(memory.isDirty(4), 'an arriving page is not a write of the container');
  t.true(memory.receivePage(5, page(1)));
  t.true(memory.receivePage(6, page(1)));
  t.false(memory.receivePage(7, page(1)));
  t.is(memory.currentBytes, 3 * pageSize);
  t.false(memory.isTouched(7));
  t.is(memory.peakBytes, 3 * pageSize);
});

test('guest memory: a page marked missing faults on read and write until it arrives, and is charged once', (t) => {
  const memory = GuestMemory.create(16 * pageSize);
  t.true(markMissing(memory, 2));
  t.false(memory.isPresent(2));
  t.is(memory.currentBytes, pageSize);
  const read = t.throws(() => memory.readU32(2 * pageSize + 8), { instanceOf: MemoryFault });
  t.is(read.kind, 'missing');
  t.is(read.page, 2);
  const write = t.throws(() => memory.writeU32(2 * pageSize + 16, 1), { instanceOf: MemoryFault });
  t.is(write.kind, 'missing');
  t.is(write.page, 2);
  const across = t.throws(() => memory.write(3 * pageSize - 2, new Uint8Array(4)), { instanceOf: MemoryFault });
  t.is(across.page, 2, 'a write from the page before across into the missing one faults on it');
  t.is(memory.readU32(pageSize), 0, 'the page before is still readable');
  t.true(memory.receivePage(2, page(0, 0xabcd)));
  t.true(memory.isPresent(2));
  t.is(memory.readU32(2 * pageSize), 0xabcd);
  t.is(memory.readU32(2 * pageSize + 16), 0, 'the faulted write stored nothing');
  t.is(memory.currentBytes, pageSize);
  // a page that arrived in precopy and was dirtied since: missing again, still charged once
  t.true(memory.receivePage(3, page(1)));
  t.true(markMissing(memory, 3));
  t.is(memory.currentBytes, 2 * pageSize);
  t.throws(() => memory.readU32(3 * pageSize), { instanceOf: MemoryFault });
  // no room: refused, nothing charged
  const full = GuestMemory.create(16 * pageSize, HostMemory.create(pageSize));
  t.true(markMissing(full, 0));
  t.false(markMissing(full, 1));
  t.is(full.currentBytes, pageSize);
  t.true(full.isPresent(1));
});

test('guest memory: dirtyPageNumbers gives the touched dirty pages; takePage clears the bit and copies the page', (t) => {
  const memory = GuestMemory.create(80 * pageSize);
  for (const n of [1, 31, 32, 70]) memory.writeU32(n * pageSize, n);
  t.deepEqual([...memory.dirtyPageNumbers()], [1, 31, 32, 70]);
  const into = new Uint8Array(pageSize);
  memory.takePage(31, into);
  t.is(new DataView(into.buffer).getUint32(0, true), 31);
  t.deepEqual([...memory.dirtyPageNumbers()], [1, 32, 70]);
  t.true(memory.isTouched(31), 'taking a page leaves it touched');
  // written again: dirty again
  memory.writeU32(31 * pageSize + 4, 1);
  t.deepEqual([...memory.dirtyPageNumbers()], [1, 31, 32, 70]);
  // a freed page is neither touched nor dirty; a page dirtied while untouched (restored dirty bits) is not listed
  memory.release(70 * pageSize, pageSize);
  t.deepEqual([...memory.dirtyPageNumbers()], [1, 31, 32]);
  Atomics.or(new Int32Array(memory.shared.dirty), 50 >>> 5, 1 << (50 & 31));
  t.true(memory.isDirty(50));
  t.deepEqual([...memory.dirtyPageNumbers()], [1, 31, 32]);
  for (const n of memory.dirtyPageNumbers()) memory.takePage(n, into);
  t.deepEqual([...memory.dirtyPageNumbers()], []);
});

// ---------------------------------------------------------------------------------------------------
// mem-writer fill and idle

/** One mem-writer process driven as a core drives it: a copy of the registers per step, kept unless it faulted. */
class WriterProcess {
  readonly program = getProgram('mem-writer')!;
  regs: Registers;
  clock = 0;
  faults = 0;
  readonly sleeps: number[] = [];
  private ret: SyscallResult | undefined;

  constructor(readonly args: Record<string, string | number>, readonly mem: GuestMemory, private readonly stepMs = 1) {
    this.regs = this.program.init(args);
  }

  get metrics(): { pagesWritten: number; passes: number; filled: number } {
    return this.regs['metrics'] as { pagesWritten: number; passes: number; filled: number };
  }

  /** One step; a fault leaves the registers as they were. */
  step(): StepResult | 'fault' {
    const regs = structuredClone(this.regs);
    const ctx: StepContext = {
      pid: 1, args: this.args, mem: this.mem, now: () => this.clock, rand: () => 0.25, log: () => {}, ret: this.ret,
    };
    let result: StepResult;
    try {
      result = this.program.step(regs, ctx);
    } catch (error) {
      if (!(error instanceof MemoryFault)) throw error;
      this.faults++;
      return 'fault';
    }
    this.regs = regs;
    this.clock += this.stepMs;
    this.ret = undefined;
    if (result?.sys === 'alloc') this.ret = { ok: true, value: 0 };
    if (result?.sys === 'sleep') {
      this.sleeps.push(result.ms);
      this.clock += result.ms;
    }
    return result;
  }

  /** Steps until `until` or `max` steps. */
  run(until: () => boolean, max = 10_000): void {
    for (let i = 0; i < max && !until(); i++) this.step();
  }
}

const stamp = (memory: GuestMemory, n: number) => memory.readU32(n * pageSize);

test('mem-writer: fill=yes writes every page of the working set once, in order, then rate=idle writes nothing', (t) => {
  const wssPages = 200;
  const memory = GuestMemory.create(256 * pageSize);
  const proc = new WriterProcess({ wss: wssPages * pageSize, fill: 'yes', rate: 'idle' }, memory);
  t.is(proc.regs['rate'], -1);
  t.is(proc.metrics.filled, 0);
  proc.step(); // alloc
  proc.step(); // the address arrives
  const counts: number[] = [];
  while (proc.metrics.filled === 0) {
    t.is(proc.step(), undefined, 'the fill goes flat out, without sleeping');
    counts.push(proc.metrics.pagesWritten);
  }
  t.deepEqual(counts, [64, 128, 192, 200]);
  t.is(memory.currentBytes, wssPages * pageSize);
  t.deepEqual([...memory.touchedPageNumbers()], Array.from({ length: wssPages }, (_, i) => i));
  for (let n = 0; n < wssPages; n++) if (stamp(memory, n) !== n + 1) t.fail(`page ${n} holds stamp ${stamp(memory, n)}`);
  t.is(proc.metrics.passes, 1);
  // idle: only sleeps from now on
  const scratch = new Uint8Array(pageSize);
  for (const n of memory.dirtyPageNumbers()) memory.takePage(n, scratch);
  for (let i = 0; i < 20; i++) t.is((proc.step() as { sys?: string } | undefined)?.sys, 'sleep');
  t.deepEqual([...memory.dirtyPageNumbers()], []);
  t.is(proc.metrics.pagesWritten, wssPages);
});

test('mem-writer: rate=idle without fill writes nothing at all', (t) => {
  const memory = GuestMemory.create(64 * pageSize);
  const proc = new WriterProcess({ wss: 64 * pageSize, rate: 'idle' }, memory);
  t.is(proc.metrics.filled, 1);
  for (let i = 0; i < 10; i++) proc.step();
  t.is(memory.currentBytes, 0);
  t.is(proc.metrics.pagesWritten, 0);
});

test('mem-writer: after fill=yes the rate counts from the end of the fill, not from the start', (t) => {
  const wssPages = 512;
  const memory = GuestMemory.create(wssPages * pageSize);
  // 50 ms a step: alloc, address, then a fill of 8 steps, the last at 450 ms on the clock
  const proc = new WriterProcess({ wss: wssPages * pageSize, fill: 'yes', rate: 100 }, memory, 50);
  proc.run(() => proc.metrics.filled === 1);
  const filledAt = proc.clock - 50;
  t.is(filledAt, 450);
  t.is(proc.metrics.pagesWritten, wssPages);
  // the step 50 ms after the fill has 5 pages due at 100 pages/s, not the 45 of the time since the alloc
  const first = proc.step();
  t.is(proc.metrics.pagesWritten, wssPages + 5, 'no burst of pages "due" for the time the fill took');
  t.is((first as { sys: string }).sys, 'sleep');
  proc.run(() => proc.clock >= filledAt + 1000);
  const after = proc.metrics.pagesWritten - wssPages;
  t.true(after >= 95 && after <= 105, `${after} pages in the second after the fill, at 100 pages/s`);
  // the sequential pattern goes on from page 0 with the next stamps
  t.is(stamp(memory, 0), wssPages + 1);
  t.is(stamp(memory, 1), wssPages + 2);
});

test('mem-writer: a fill step that faults runs again and writes the very same stamps', (t) => {
  const wssPages = 192;
  const memory = GuestMemory.create(wssPages * pageSize);
  memory.setMax(100 * pageSize);
  const proc = new WriterProcess({ wss: wssPages * pageSize, fill: 'yes', rate: 'idle' }, memory);
  proc.run(() => proc.faults > 0, 20);
  t.is(proc.faults, 1);
  t.is(proc.metrics.pagesWritten, 64, 'the faulted step left no progress in the registers');
  memory.setMax(null);
  proc.run(() => proc.metrics.filled === 1, 20);
  t.is(proc.faults, 1);
  for (let n = 0; n < wssPages; n++) if (stamp(memory, n) !== n + 1) t.fail(`page ${n} holds stamp ${stamp(memory, n)}`);
  t.is(memory.currentBytes, wssPages * pageSize);
  t.pass();
});

test('mem-writer: fill and rate arguments are checked', (t) => {
  const program = getProgram('mem-writer')!;
  t.throws(() => program.init({ fill: 'maybe' }), { message: 'mem-writer: fill: one of no, yes, got "maybe"' });
  t.throws(() => program.init({ rate: 'sometimes' }), { message: /^mem-writer: rate: pages per second, or idle/ });
  t.is(program.init({ rate: 'idle' })['rate'], -1);
  t.is(program.init({ fill: 'yes', wss: '1MiB' })['toFill'], 256);
  t.is(program.init({ wss: '1MiB' })['toFill'], 0);
});

test('postcopy bitmaps: markMissingPages charges each page once and clears present; lackingBitmap, dropAll and pagesOf agree with the page-by-page forms', (t) => {
  const host = HostMemory.create(64 * pageSize);
  const memory = GuestMemory.create(64 * pageSize, host);
  memory.write(3 * pageSize, new Uint8Array([1]));
  const bitmap = new Uint8Array(8);
  for (const page of [3, 9, 31, 32, 40]) bitmap[page >>> 3]! |= 1 << (page & 7);
  t.deepEqual([...pagesOf(bitmap)], [3, 9, 31, 32, 40]);
  t.is(memory.markMissingPages(bitmap), 5);
  t.is(memory.currentBytes, 5 * pageSize, 'page 3 was charged already: four more');
  t.is(host.usedBytes, 5 * pageSize);
  for (const page of [3, 9, 31, 32, 40]) t.false(memory.isPresent(page), `page ${page} missing`);
  t.true(memory.isPresent(4));
  t.throws(() => memory.readU32(40 * pageSize), { instanceOf: MemoryFault });
  const full = HostMemory.create(2 * pageSize);
  const small = GuestMemory.create(64 * pageSize, full);
  t.is(small.markMissingPages(bitmap), undefined, 'no room: nothing marked');
  t.is(small.currentBytes, 0);
  t.true(small.isPresent(9));

  const ledger = new PageLedger(64);
  const page = new Uint8Array(pageSize).fill(7);
  for (const n of [3, 9, 10]) ledger.set(n, page);
  const touched = new Uint8Array(8);
  for (const n of [3, 9, 10, 11]) touched[n >>> 3]! |= 1 << (n & 7);
  t.deepEqual([...pagesOf(ledger.lackingBitmap(touched))], ledger.lacking(touched), 'the bitmap form lists what lacking lists');
  t.deepEqual(ledger.lacking(touched), [11]);
  const dirty = new Uint8Array(8);
  dirty[1] = 1 << (9 & 7);
  ledger.dropAll(dirty);
  t.false(ledger.has(9));
  t.true(ledger.has(10));
  t.deepEqual(ledger.lacking(touched), [9, 11]);
});
