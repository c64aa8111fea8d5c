/**
 * The fabric's messages: a window of frames handed over at once travels in messages the server takes
 * (NATS refuses one above its max_payload, and the frames in it would be lost whole).
 */
import test from 'ava';
import { batches, maxFrameBytes, maxMessageBytes } from '../../dist/net/fabric.js';

const frame = (length: number, tag: number) => new Uint8Array(length).fill(tag);

test('a TCP window of frames is cut into messages under the limit, in order, none lost', (t) => {
  // 4 MiB of full frames: a window the default buffers allow
  const frames = Array.from({ length: Math.ceil((4 * 2 ** 20) / maxFrameBytes) }, (_, i) => frame(maxFrameBytes, i % 251));
  const runs = batches(frames, maxMessageBytes);
  t.true(runs.length > 1);
  for (const run of runs) t.true(run.reduce((n, f) => n + f.length, 0) <= maxMessageBytes);
  t.deepEqual(runs.flat(), frames, 'every frame, in order');
});

test('frames of mixed sizes fill each message as far as the next would overflow it', (t) => {
  const frames = [frame(60, 1), frame(1514, 2), frame(1514, 3), frame(60, 4), frame(1514, 5)];
  t.deepEqual(batches(frames, 3100).map((run) => run.map((f) => f[0])), [[1, 2, 3], [4, 5]]);
  t.deepEqual(batches(frames, 1000).map((run) => run.map((f) => f[0])), [[1], [2], [3], [4], [5]], 'a frame larger than the limit goes alone');
  t.deepEqual(batches([], 3100), []);
});
