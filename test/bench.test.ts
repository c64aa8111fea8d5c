/**
 * The CPU benchmarks end to end, short: each starts its own cluster of real host processes, prints JSON,
 * writes its JSON file and SVG chart, and leaves nothing running. Figures on this shared machine are
 * noise at these lengths, so what is checked is what cannot depend on speed: the shape of the result,
 * that work was really done and measured, and the limits that must hold however loaded the host is.
 */
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Harness } from './harness.js';

const h = new Harness();
test.after.always(() => h.cleanup());

interface Spread { median: number; low: number; high: number; min: number; max: number }
const files = (result: { files: { json: string; chart: string } }, title: RegExp) => {
  const saved = JSON.parse(readFileSync(result.files.json, 'utf8'));
  return { saved, chart: existsSync(result.files.chart) && title.test(readFileSync(result.files.chart, 'utf8')) };
};
const ordered = (s: Spread) => s.min <= s.low && s.low <= s.median && s.median <= s.high && s.high <= s.max;

test.serial('bench overhead: paired rounds of lu in a plain thread and in a container, renewed quanta', async (t) => {
  const out = join(h.home, 'overhead');
  const r = await h.cliJson<{
    rounds: Array<{ plain: { unitsPerSecond: number }; container: { unitsPerSecond: number; cpuShare: number }; overhead: number }>;
    overhead: Spread; renewedQuanta: number; schedulerCostOfACore: number; files: { json: string; chart: string };
  }>(['bench', 'overhead', '--rounds', '2', '--duration', '400ms', '--out', out], 60_000);
  t.is(r.code, 0, r.stderr);
  t.is(r.rounds.length, 2);
  for (const round of r.rounds) {
    t.true(round.plain.unitsPerSecond > 0 && round.container.unitsPerSecond > 0, 'lu did work on both sides');
    t.true(round.container.cpuShare > 0 && round.container.cpuShare <= 1.05, `container CPU ${round.container.cpuShare}`);
  }
  t.true(ordered(r.overhead));
  // alone on its host, the container's quanta are renewed on its core rather than dispatched again
  t.true(r.renewedQuanta > 0.5, `renewed ${r.renewedQuanta}`);
  t.true(r.schedulerCostOfACore > 0);
  const { saved, chart } = files(r, /lu units per second/);
  t.deepEqual(saved.overhead, r.overhead);
  t.true(chart);
});

test.serial('bench isolation: a row per stress beside the machine floor, and the fork bomb held at pids.max', async (t) => {
  const out = join(h.home, 'isolation');
  const r = await h.cliJson<{
    rows: Array<{ stress: string; rounds: unknown[]; slowdown: Spread; alone: { unitsPerSecond: number }; beside: { unitsPerSecond: number } }>;
    floor: { rounds: unknown[]; slowdown: Spread };
    forkBomb: { pidsMax: number; pidsPeak: number; refusedForks: number; statusMs: { n: number; max: number } };
    files: { json: string; chart: string };
  }>(['bench', 'isolation', '--rounds', '1', '--duration', '300ms', '--pids-max', '16', '--out', out], 120_000);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.rows.map((row) => row.stress), ['cpu', 'memory', 'io', 'fork bomb']);
  for (const row of r.rows) {
    t.is(row.rounds.length, 1);
    t.true(row.alone.unitsPerSecond > 0 && row.beside.unitsPerSecond > 0, `${row.stress}: the victim worked`);
    t.true(ordered(row.slowdown));
  }
  t.is(r.floor.rounds.length, 1);
  t.is(r.forkBomb.pidsMax, 16);
  t.true(r.forkBomb.pidsPeak <= 16, `pids.peak ${r.forkBomb.pidsPeak}`);
  t.true(r.forkBomb.refusedForks > 0, 'the bomb ran into its limit');
  t.true(r.forkBomb.statusMs.n > 0, 'the host was asked for its status while the bomb went off');
  const { saved, chart } = files(r, /victim \(lu\) slowdown/);
  t.deepEqual(saved.forkBomb, r.forkBomb);
  t.true(chart);
});

test.serial('bench fairness --policy wfq: shares of every container in both phases, with the lag and cpu.max checks', async (t) => {
  const out = join(h.home, 'fairness');
  const r = await h.cliJson<{
    policy: string; shares: Array<{ container: string; phase: string; achieved: number; quanta: number }>;
    maxLagMs: number; cpuMax: { quotaMs: number; peakPeriodMs: number }; files: { json: string; chart: string };
  }>(['bench', 'fairness', '--policy', 'wfq', '--weights', '1,3', '--duration', '2s', '--out', out], 60_000);
  t.is(r.code, 0, r.stderr);
  t.is(r.policy, 'wfq');
  for (const phase of new Set(r.shares.map((s) => s.phase))) {
    const shares = r.shares.filter((s) => s.phase === phase);
    t.true(Math.abs(shares.reduce((sum, s) => sum + s.achieved, 0) - 1) < 1e-6, `${phase}: shares add up to 1`);
    t.true(shares.every((s) => s.quanta > 0), `${phase}: every container was charged quanta`);
  }
  t.true(r.cpuMax.peakPeriodMs > 0, 'the capped container ran');
  t.true(Number.isFinite(r.maxLagMs));
  t.true(files(r, /./).chart);
});
