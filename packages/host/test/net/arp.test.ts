import test from 'ava';
import { ArpCache } from '../../src/net/arp.js';

function setup() {
  let now = 1000;
  const cache = new ArpCache<string>(() => now, { lifetimeMs: 60_000, retries: 3, retryMs: 1000, queueLimit: 2 });
  return { cache, at: (ms: number) => void (now = ms), now: () => now };
}

test('packets wait for their address; the reply releases them in order; the entry then answers lookups', (t) => {
  const { cache } = setup();
  t.is(cache.lookup('10.0.0.2'), undefined);
  t.true(cache.hold('10.0.0.2', 'p1'), 'the first packet sends the request');
  t.false(cache.hold('10.0.0.2', 'p2'), 'the second waits with it');
  t.false(cache.hold('10.0.0.2', 'p3'));
  t.is(cache.dropped, 1, 'the queue holds two');
  t.deepEqual(cache.learn('10.0.0.2', '02:00:0a:00:00:02'), ['p1', 'p2']);
  t.is(cache.lookup('10.0.0.2'), '02:00:0a:00:00:02');
  t.is(cache.nextTimerAt(), undefined);
});

test('requests are retried every second; after three the waiting packets fail (EHOSTUNREACH)', (t) => {
  const { cache, at } = setup();
  cache.hold('10.0.0.9', 'p');
  t.is(cache.nextTimerAt(), 2000);
  at(2000);
  t.deepEqual(cache.due(2000), { ask: ['10.0.0.9'], failed: [] });
  at(3000);
  t.deepEqual(cache.due(3000), { ask: ['10.0.0.9'], failed: [] });
  at(4000);
  t.deepEqual(cache.due(4000), { ask: [], failed: [{ ip: '10.0.0.9', packets: ['p'] }] });
  t.is(cache.dropped, 1);
});

test('entries expire after their lifetime; a gratuitous ARP moves one at once', (t) => {
  const { cache, at } = setup();
  cache.learn('10.0.0.2', '02:00:0a:00:00:02');
  cache.learn('10.0.0.2', '02:00:0a:00:00:99');
  t.is(cache.lookup('10.0.0.2'), '02:00:0a:00:00:99');
  at(1000 + 60_001);
  t.is(cache.lookup('10.0.0.2'), undefined);
  t.deepEqual(cache.table(), []);
});

test('the table saves and loads across a clock offset', (t) => {
  const { cache, at } = setup();
  cache.learn('10.0.0.2', '02:00:0a:00:00:02');
  cache.hold('10.0.0.3', 'q');
  at(1500);
  const state = cache.save(1500);
  let later = 900_000;
  const copy = new ArpCache<string>(() => later, cache.options);
  copy.load(state, later);
  t.deepEqual(copy.table(), [{ ip: '10.0.0.2', mac: '02:00:0a:00:00:02', ageMs: 500 }]);
  t.is(copy.nextTimerAt(), later + 500);
  later += 500;
  t.deepEqual(copy.due(later).ask, ['10.0.0.3']);
});
