/**
 * Shaping with a fake clock: the token bucket's refill, burst, readiness, debt and save/load, also as the
 * disk's io.max buckets; the HTB
 * scheduler driven as its owner drives it (dequeue at nextReadyAt, never earlier), measured over
 * simulated seconds: the link's rate, weights, guarantees, caps, tail drop, a link changed while running,
 * a class removed with a backlog.
 */
import test from 'ava';
import { IoGroup } from '../src/disk.js';
import { Htb, TokenBucket } from '../src/shaping.js';

test('token bucket: refills at its rate from its first use, up to its burst', (t) => {
  const b = new TokenBucket(1000, 500, 0);
  t.is(b.level(5000), 0, 'the clock starts at the first call: nothing earned before it');
  t.is(b.level(5100), 100);
  t.is(b.level(5350), 350);
  t.is(b.level(60_000), 500, 'never more than its burst');
  b.take(200, 60_000);
  t.is(b.level(60_000), 300);
});

test('token bucket: readyAt is when the amount is there, or the whole burst for more than a burst', (t) => {
  const b = new TokenBucket(1000, 500, 0);
  t.is(b.readyAt(0, 0), 0);
  t.is(b.readyAt(0, 250), 250);
  t.is(b.readyAt(0, 2000), 500, 'an amount above the burst waits for a full bucket');
  t.is(b.readyAt(100, 100), 100, 'refilled by then');
  t.is(new TokenBucket(0, 0, 0).readyAt(0, 1), 0, 'a zero burst is always full');
});

test('token bucket: an overrun leaves it in debt, paid back before anything is ready', (t) => {
  const b = new TokenBucket(1000, 500, 500);
  b.take(2000, 0);
  t.is(b.level(0), -1500);
  t.is(b.readyAt(0, 0), 1500, 'out of debt after 1.5 s');
  t.is(b.readyAt(0, 100), 1600);
  t.is(b.level(1000), -500);
  t.is(b.level(1500), 0);
  t.is(b.level(3000), 500);
});

test('token bucket: saved on one host and loaded on another whose clock reads a million ms later, it refills the same', (t) => {
  const a = new TokenBucket(1000, 500, 0);
  a.level(1000);
  a.take(300, 1100);
  const saved = a.save(1200);
  t.deepEqual(saved, { tokens: -200, sinceRefillMs: 100 });
  const b = new TokenBucket(1000, 500, 0);
  b.load(saved, 1_001_200);
  t.deepEqual(b.save(1_001_200), saved);
  t.is(b.level(1_001_500), a.level(1500));
  // a bucket whose clock had not started still has not
  const idle = new TokenBucket(1000, 500, 0);
  const state = idle.save(7);
  t.deepEqual(state, { tokens: 0, sinceRefillMs: null });
  const back = new TokenBucket(1000, 500, 0);
  back.load(state, 9_000);
  t.is(back.level(20_000), 0);
});

test('io.max on token buckets: a group in debt, restored on another host as a restore does it (state, then limits), waits as long', (t) => {
  const write = (bytes: number) => ({ op: 'write' as const, bytes, owner: 1, queuedAt: 0, done: () => {} });
  const limits = { rbps: null, wbps: 1000, riops: null, wiops: 10 };
  const a = new IoGroup(1, 100);
  a.limits = limits;
  a.queue.push(write(3000));
  t.is(a.readyAt(5000), 6000, 'a limit starts from an empty bucket: one second\'s worth to fill');
  a.take(a.queue.shift()!, 6000);
  a.queue.push(write(3000));
  t.is(a.readyAt(6000), 9000, '3000 bytes taken from 1000: two seconds of debt, then one to fill');
  const saved = a.save(6500, 0);
  const b = new IoGroup(2, 100);
  b.load(saved, 1_006_500, 0);
  b.limits = limits;
  t.deepEqual(b.save(1_006_500, 0), saved, 'its limits set after the state keep the tokens');
  b.queue.push(write(3000));
  t.is(b.readyAt(1_006_500), 1_009_000);
  // lifted and set again, a limit starts empty again
  b.limits = { ...limits, wbps: null };
  t.is(b.readyAt(1_006_500), 1_006_500);
  b.limits = limits;
  t.is(b.readyAt(1_006_600), 1_007_600);
});

interface Packet {
  id: string;
  byteLength: number;
}

/**
 * Drives `htb` from `from` to `to` ms as its owner would: dequeue at nextReadyAt until nothing is ready.
 * The `saturating` classes are kept 8 packets deep. Returns the bytes each class sent.
 */
function drive(htb: Htb<Packet>, saturating: string[], from: number, to: number, size = 1500): Record<string, number> {
  const sent: Record<string, number> = Object.fromEntries(saturating.map((id) => [id, 0]));
  const queued = new Map(saturating.map((id) => [id, htb.stats(from).classes[id]!.backlog]));
  let now = from;
  let misses = 0;
  for (;;) {
    for (const [id, n] of queued) for (let k = n; k < 8; k++) if (htb.enqueue(id, { id, byteLength: size })) queued.set(id, queued.get(id)! + 1);
    const at = htb.nextReadyAt(now);
    if (at < now) throw new Error(`nextReadyAt went back in time: ${at} < ${now}`);
    if (at >= to) return sent;
    now = at;
    const packet = htb.dequeue(now);
    if (!packet) {
      // at nextReadyAt a packet is ready, but for the last bit of rounding
      if (++misses > 2) throw new Error(`nothing dequeued at nextReadyAt ${now}`);
      continue;
    }
    misses = 0;
    sent[packet.id] = (sent[packet.id] ?? 0) + packet.byteLength;
    if (queued.has(packet.id)) queued.set(packet.id, queued.get(packet.id)! - 1);
  }
}

const within = (actual: number, expected: number, fraction: number) => Math.abs(actual - expected) <= fraction * expected;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(3)} MB`;

test('htb: one class alone gets the link rate, and the rate estimate follows it', (t) => {
  const htb = new Htb<Packet>({ bandwidth: 10e6, limit: 100 });
  htb.setClass('a', {});
  const sent = drive(htb, ['a'], 1000, 2000);
  t.true(within(sent.a!, 10e6, 0.01), `sent ${mb(sent.a!)} in a second`);
  drive(htb, ['a'], 2000, 6000);
  const stats = htb.stats(6000);
  t.true(within(stats.classes.a!.rate, 10e6, 0.02), `class rate ${mb(stats.classes.a!.rate)}/s`);
  t.true(within(stats.link.rate, 10e6, 0.02), `link rate ${mb(stats.link.rate)}/s`);
  t.is(stats.link.bytes, stats.classes.a!.bytes);
  t.is(stats.link.packets, stats.link.bytes / 1500);
});

test('htb: three saturating classes at weights 1:2:3 get 1/6, 2/6 and 3/6 of the link', (t) => {
  const htb = new Htb<Packet>({ bandwidth: 12e6, limit: 100 });
  htb.setClass('one', { weight: 1 });
  htb.setClass('two', { weight: 2 });
  htb.setClass('three', { weight: 3 });
  const sent = drive(htb, ['one', 'two', 'three'], 1000, 2000);
  for (const [id, share] of [['one', 1 / 6], ['two', 2 / 6], ['three', 3 / 6]] as const) {
    t.true(within(sent[id]!, share * 12e6, 0.02), `${id}: ${mb(sent[id]!)} for ${mb(share * 12e6)}`);
  }
  // the scale weights are written in does not matter
  const scaled = new Htb<Packet>({ bandwidth: 12e6, limit: 100 });
  for (const [id, weight] of [['one', 100], ['two', 200], ['three', 300]] as const) scaled.setClass(id, { weight });
  const again = drive(scaled, ['one', 'two', 'three'], 1000, 2000);
  t.true(within(again.three!, 6e6, 0.02), `weight 300 of 600: ${mb(again.three!)}`);
});

test('htb: a class with rate R gets at least R while heavier classes saturate the link', (t) => {
  const htb = new Htb<Packet>({ bandwidth: 10e6, limit: 100 });
  htb.setClass('guaranteed', { rate: 6e6, weight: 1 });
  htb.setClass('b', { weight: 10 });
  htb.setClass('c', { weight: 10 });
  const sent = drive(htb, ['guaranteed', 'b', 'c'], 1000, 3000);
  // 6 MB/s of its own, and its weight's share (1 of 21) of the 4 MB/s the guarantee leaves
  t.true(sent.guaranteed! >= 2 * 6e6, `guaranteed got ${mb(sent.guaranteed! / 2)}/s`);
  t.true(within(sent.guaranteed!, 2 * (6e6 + 4e6 / 21), 0.02), `guaranteed got ${mb(sent.guaranteed! / 2)}/s`);
  t.true(within(sent.b!, sent.c!, 0.02), `b ${mb(sent.b!)}, c ${mb(sent.c!)}`);
  t.true(within(sent.guaranteed! + sent.b! + sent.c!, 2 * 10e6, 0.01), 'the link stays full');
  // without the guarantee the same weights would leave it a 21st
  const unguaranteed = new Htb<Packet>({ bandwidth: 10e6, limit: 100 });
  for (const [id, weight] of [['guaranteed', 1], ['b', 10], ['c', 10]] as const) unguaranteed.setClass(id, { weight });
  t.true(drive(unguaranteed, ['guaranteed', 'b', 'c'], 1000, 2000).guaranteed! < 0.6e6);
});

test('htb: a class with ceil C gets at most C on an idle link, and the others take the rest', (t) => {
  const alone = new Htb<Packet>({ bandwidth: 10e6, limit: 100 });
  alone.setClass('capped', { ceil: 2e6 });
  const sent = drive(alone, ['capped'], 1000, 2000);
  t.true(sent.capped! <= 2e6 * 1.01 && sent.capped! >= 2e6 * 0.98, `capped alone: ${mb(sent.capped!)}`);
  const shared = new Htb<Packet>({ bandwidth: 10e6, limit: 100 });
  shared.setClass('capped', { ceil: 2e6, weight: 5 });
  shared.setClass('free', { weight: 1 });
  const both = drive(shared, ['capped', 'free'], 1000, 2000);
  t.true(both.capped! <= 2e6 * 1.01, `capped beside another: ${mb(both.capped!)}`);
  t.true(within(both.free!, 8e6, 0.02), `the other took ${mb(both.free!)}`);
  // at its ceil a class waits, and nextReadyAt says until when
  const waiting = new Htb<Packet>({ bandwidth: 10e6, limit: 100 });
  waiting.setClass('capped', { ceil: 1e6 });
  for (let k = 0; k < 20; k++) waiting.enqueue('capped', { id: 'capped', byteLength: 1500 });
  let sentNow = 0;
  while (waiting.dequeue(0)) sentNow++;
  t.is(sentNow, 4, 'what its ceil bucket held (3 ms of 1 MB/s and one MTU) goes at once');
  const at = waiting.nextReadyAt(0);
  t.true(within(at, 1.486, 1e-9), `then it waits until its ceil is out of debt, at ${at} ms`);
  t.is(waiting.dequeue(at)?.id, 'capped');
  t.is(waiting.dequeue(at), undefined);
});

test('htb: a full queue drops at the tail and counts it on the class and the link', (t) => {
  const htb = new Htb<Packet>({ bandwidth: 1e6, limit: 2 });
  htb.setClass('a', { limit: 3 });
  htb.setClass('b', {});
  const p = (id: string) => ({ id, byteLength: 100 });
  t.deepEqual([1, 2, 3, 4, 5].map(() => htb.enqueue('a', p('a'))), [true, true, true, false, false]);
  t.deepEqual([1, 2, 3].map(() => htb.enqueue('b', p('b'))), [true, true, false], 'b takes the link\'s limit');
  const stats = htb.stats(0);
  t.like(stats.classes.a, { drops: 2, backlog: 3, backlogBytes: 300 });
  t.like(stats.classes.b, { drops: 1, backlog: 2 });
  t.like(stats.link, { drops: 3, backlog: 5, backlogBytes: 500 });
  htb.setLink({ limit: 3 });
  t.true(htb.enqueue('b', p('b')), 'a larger link limit lets b queue more');
  t.is(htb.dequeue(0)?.id, 'a', 'the first queued of the first class leaves first');
  t.is(htb.stats(0).classes.a!.backlog, 2);
  t.throws(() => htb.enqueue('nobody', p('nobody')), { instanceOf: RangeError });
  t.throws(() => htb.setClass('c', { rate: 5, ceil: 4 }), { instanceOf: RangeError });
});

test('htb: a segment a nic offloaded counts as its packets in the queue limit, the drops and what was sent', (t) => {
  const htb = new Htb<Packet & { packets: number }>({ bandwidth: 1e6, limit: 50 });
  htb.setClass('a', {});
  // 44 packets of 1514 bytes on the wire, then a second such segment that would overflow the 50-packet queue
  const segment = { id: 'a', byteLength: 44 * 1514, packets: 44 };
  t.true(htb.enqueue('a', segment));
  t.false(htb.enqueue('a', segment));
  t.true(htb.enqueue('a', { id: 'a', byteLength: 1514, packets: 1 }));
  t.like(htb.stats(0).classes.a, { drops: 44, backlog: 45, backlogBytes: 45 * 1514 });
  t.is(htb.dequeue(0), segment);
  t.like(htb.stats(0).classes.a, { bytes: 44 * 1514, packets: 44, backlog: 1 });
  // the link's bucket is in debt for the segment's whole time on the wire: 66.6 ms at 1 MB/s
  t.true(Math.abs(htb.nextReadyAt(0) - (44 * 1514 - 3000 - 1514) / 1000) < 0.01, `${htb.nextReadyAt(0)}`);
});

test('htb: a link bandwidth changed while running takes effect, for classes with and without a ceil', (t) => {
  const htb = new Htb<Packet>({ bandwidth: 10e6, limit: 100 });
  htb.setClass('a', {});
  htb.setClass('b', { ceil: 8e6 });
  const before = drive(htb, ['a', 'b'], 1000, 2000);
  t.true(within(before.a! + before.b!, 10e6, 0.01), `before: ${mb(before.a! + before.b!)}`);
  htb.setLink({ bandwidth: 2e6 });
  const after = drive(htb, ['a', 'b'], 2000, 3000);
  t.true(within(after.a! + after.b!, 2e6, 0.02), `after: ${mb(after.a! + after.b!)}`);
  t.true(within(after.a!, after.b!, 0.02), 'still shared by weight');
  htb.setLink({ bandwidth: 20e6 });
  const raised = drive(htb, ['b'], 3000, 4000);
  t.true(within(raised.b!, 8e6, 0.02), `b alone is held to its ceil, not the new link: ${mb(raised.b!)}`);
});

test('htb: removing a class with a backlog drops its packets, and the others get the link', (t) => {
  const htb = new Htb<Packet>({ bandwidth: 10e6, limit: 100 });
  htb.setClass('a', {});
  htb.setClass('b', {});
  htb.setClass('c', {});
  drive(htb, ['a', 'b', 'c'], 1000, 1500);
  const backlog = htb.stats(1500).classes.b!.backlog;
  t.true(backlog > 0);
  const dropsBefore = htb.stats(1500).link.drops;
  htb.removeClass('b');
  t.false(htb.has('b'));
  t.is(htb.stats(1500).link.drops, dropsBefore + backlog, 'its backlog counts as dropped on the link');
  t.deepEqual(Object.keys(htb.stats(1500).classes), ['a', 'c']);
  const after = drive(htb, ['a', 'c'], 1500, 2500);
  t.is(after.b, undefined, 'none of its packets leaves');
  t.true(within(after.a!, 5e6, 0.02) && within(after.c!, 5e6, 0.02), `a ${mb(after.a!)}, c ${mb(after.c!)}`);
  t.throws(() => htb.enqueue('b', { id: 'b', byteLength: 1500 }), { instanceOf: RangeError });
  htb.removeClass('a');
  htb.removeClass('c');
  t.is(htb.nextReadyAt(2500), Infinity, 'nothing left to send');
  t.is(htb.dequeue(2500), undefined);
});
