/** The main job (`npm start` runs `slicelab demo`) and the startup benchmark, end to end. */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, isAlive } from './harness.js';

const h = new Harness();
test.after.always(() => h.cleanup());

test.serial('demo brings the default cluster up, measures round trips to every host, brings it down', async (t) => {
  const demo = await h.cliJson<{ cluster: string; hosts: Array<{ name: string; pid: number }>; roundTripsMs: Record<string, { n: number; p50: number; p99: number }> }>(['demo', '--pings', '20']);
  t.is(demo.code, 0, demo.stderr);
  t.is(demo.cluster, 'default');
  t.deepEqual(Object.keys(demo.roundTripsMs), ['h1', 'h2', 'h3']);
  for (const trips of Object.values(demo.roundTripsMs)) {
    t.is(trips.n, 20);
    t.true(trips.p50 > 0 && trips.p50 <= trips.p99);
  }
  t.false(demo.hosts.some((x) => isAlive(x.pid)), 'demo leaves nothing running');
  t.is(h.runFile('default'), undefined);
});

test.serial('bench startup prints what it measured and writes JSON and an SVG chart', async (t) => {
  const out = join(h.home, 'results');
  const bench = await h.cliJson<{ hosts: number; allRegisteredMs: number; idleRssBytes: { n: number; max: number }; files: { json: string; chart: string } }>(['bench', 'startup', '--hosts', '2', '--idle', '1s', '--out', out]);
  t.is(bench.code, 0, bench.stderr);
  t.is(bench.hosts, 2);
  t.is(bench.idleRssBytes.n, 2);
  t.true(bench.idleRssBytes.max > 10e6, 'the RSS was read from real host processes');
  t.true(bench.allRegisteredMs > 0);
  t.deepEqual(JSON.parse(readFileSync(bench.files.json, 'utf8')).allRegisteredMs, bench.allRegisteredMs);
  t.true(existsSync(bench.files.chart));
  t.regex(readFileSync(bench.files.chart, 'utf8'), /^<svg[^>]*>[\s\S]*hosts registered[\s\S]*<\/svg>$/);
});
