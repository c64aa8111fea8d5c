import test from 'ava';
import { Bridge, type BridgePort } from '../../src/net/bridge.js';

const a = '02:00:0a:00:00:01';
const b = '02:00:0a:00:00:02';
const c = '02:00:0a:00:00:03';
const broadcast = 'ff:ff:ff:ff:ff:ff';

function setup() {
  let now = 0;
  const bridge = new Bridge(() => now, 1000);
  const seen: Record<string, number> = {};
  const port = (id: string): BridgePort => ({ id, deliver: () => void (seen[id] = (seen[id] ?? 0) + 1) });
  for (const id of ['nic-a', 'nic-b', 'uplink']) bridge.attach(port(id));
  return { bridge, seen, advance: (ms: number) => void (now += ms) };
}

const frame = new Uint8Array(60);

test('an unknown destination is flooded to every other port; once learned, it goes to its port alone', (t) => {
  const { bridge, seen } = setup();
  bridge.receive('nic-a', frame, b, a);
  t.deepEqual(seen, { 'nic-b': 1, uplink: 1 }, 'flooded, not back to nic-a');
  bridge.receive('nic-b', frame, a, b);
  t.deepEqual(seen, { 'nic-b': 1, uplink: 1, 'nic-a': 1 }, 'a was learned on nic-a');
  bridge.receive('nic-a', frame, b, a);
  t.deepEqual(seen, { 'nic-b': 2, uplink: 1, 'nic-a': 1 }, 'b was learned on nic-b');
  t.deepEqual(bridge.stats, { forwarded: 2, flooded: 1, filtered: 0 });
});

test('broadcast goes everywhere but back; a frame for its own port is filtered', (t) => {
  const { bridge, seen } = setup();
  bridge.receive('uplink', frame, broadcast, c);
  t.deepEqual(seen, { 'nic-a': 1, 'nic-b': 1 });
  bridge.receive('uplink', frame, c, a);
  t.is(bridge.stats.filtered, 1, 'c lives behind the uplink, where the frame came from');
});

test('entries age out, and a MAC that moves is relearned at once (gratuitous ARP after a migration)', (t) => {
  const { bridge, seen, advance } = setup();
  bridge.receive('nic-a', frame, broadcast, a);
  t.deepEqual(bridge.table().map((e) => [e.mac, e.port]), [[a, 'nic-a']]);
  bridge.receive('uplink', frame, broadcast, a);
  t.deepEqual(bridge.table().map((e) => [e.mac, e.port]), [[a, 'uplink']], 'moved');
  advance(1001);
  t.deepEqual(bridge.table(), [], 'aged out');
  bridge.receive('nic-b', frame, a, b);
  t.is(seen['uplink'], 1 + 1, 'unknown again: flooded');
});

test('a detached port takes its learned MACs with it', (t) => {
  const { bridge } = setup();
  bridge.receive('nic-a', frame, broadcast, a);
  bridge.detach('nic-a');
  t.deepEqual(bridge.table(), []);
});
