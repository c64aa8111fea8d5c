/**
 * `bench migration` end to end, short: an 8 MiB mem-writer, idle and at 2,000 pages/s, migrated by
 * precopy and by postcopy on a cluster of the command's own, then the uncapped rounds beside the plain
 * publisher. What is checked cannot depend on the machine's speed: every migration completed with equal
 * digests and moved every page, the heartbeat inside and the peer were there to see it, every figure of
 * a cell is the engine's statistic it names, the summaries and the aims are what the cells give
 * (recomputed here), the files agree with what was printed, and nothing of the cluster outlives the
 * command.
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Harness, pollUntil } from './harness.js';

const h = new Harness();
test.after.always(() => h.cleanup());

interface Spread { median: number; low: number; high: number; min: number; max: number }
interface Stats {
  status: string; 'total-time': number; 'setup-time': number; downtime: number | null; 'expected-downtime': number | null;
  ram: { transferred: number; total: number; normal: number; duplicate: number; 'dirty-sync-count': number; 'precopy-bytes': number; 'postcopy-bytes': number; 'postcopy-requests': number };
  'observed-downtime': { heartbeat: number | null; network: number | null };
  'cpu-throttle-percentage': number;
  digest: { source: string | null; destination: string | null };
  rounds: Array<{ bytes: number; ms: number }>;
}
interface Cell {
  mode: string; dirtyRate: number; bandwidth: number | null; status: string; cutOff: boolean;
  totalMs: number; setupMs: number; downtimeMs: number | null; expectedDowntimeMs: number | null;
  heartbeatMs: number | null; heartbeatPausedMs: number | null; networkMs: number | null; peer: { pausedMs: number; pauses: number; longestGapMs: number } | null;
  touchedBytes: number; transferredBytes: number; idealMs: number | null; rounds: number; pageBytesPerSecond: number | null;
  throttlePercent: number; postcopyRequests: number; digestsEqual: boolean; stats: Stats;
}
interface Transfer { bytes: number; chunks: number; ms: number; bytesPerSecond: number }
interface Result {
  memoryBytes: number; bandwidth: number | null; chunkBytes: number; cells: Cell[];
  uncapped: { rounds: Array<{ cell: Cell; plain: Transfer; ofPlain: number }>; pageBytesPerSecond: Spread; plainBytesPerSecond: Spread; ofPlain: Spread };
  effectiveBytesPerSecond: number;
  aims: Record<string, boolean | null>;
  files: { json: string; chart: string };
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
const middle = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Processes whose environment or command line names this harness's root: the command and the cluster it started. */
function processesUnder(home: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1');
      if (environ.includes(`SLICELAB_HOME=${home}\u0000`) || cmdline.includes(home)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

test.serial('bench migration: precopy and postcopy of an 8 MiB mem-writer, idle and dirtying, every digest equal', async (t) => {
  t.timeout(90_000);
  const out = join(h.home, 'migration');
  const run = h.start(['bench', 'migration', '--memory', '8MiB', '--dirty-rate', '0,2000', '--mode', 'precopy,postcopy', '--out', out, '--json']);
  let code: number | null | undefined;
  void run.exited.then((exit) => (code = exit));
  // watched while it runs, so that "nothing left" below is known to see the cluster when there is one
  let seen: number[] = [];
  while (code === undefined) {
    const now = processesUnder(h.home);
    if (now.length > seen.length) seen = now;
    await sleep(200);
  }
  const [stdout, stderr] = run.output().split('\u0000');
  t.is(code, 0, stderr);
  t.true(seen.length >= 5, `the command, three hosts and nats-server were seen running: ${seen.length} processes`);
  t.true(await pollUntil(() => processesUnder(h.home).length === 0, 5000), `left running: ${processesUnder(h.home).join(', ')}`);
  const r = JSON.parse(stdout!) as Result;

  t.deepEqual(r.cells.map((c) => [c.mode, c.dirtyRate]), [['precopy', 0], ['precopy', 2000], ['postcopy', 0], ['postcopy', 2000]]);
  const wssPages = (8 * 1024 ** 2) / 4096;
  for (const c of [...r.cells, ...r.uncapped.rounds.map((round) => round.cell)]) {
    const at = `${c.mode} ${c.dirtyRate}${c.bandwidth === null ? ' uncapped' : ''}`;
    const s = c.stats;
    t.is(c.status, 'completed', `${at}: ${JSON.stringify(s)}`);
    t.false(c.cutOff, at);
    t.true(s.digest.source !== null && s.digest.source === s.digest.destination, `${at}: digests ${JSON.stringify(s.digest)}`);
    t.true(c.digestsEqual, at);
    // every page of the working set crossed at least once
    t.true(s.ram.normal + s.ram.duplicate >= wssPages, `${at}: ${s.ram.normal} + ${s.ram.duplicate} pages sent`);
    t.true(s.ram.total >= 8 * 1024 ** 2, `${at}: ${s.ram.total} bytes touched`);
    // each figure is the engine's statistic it names
    t.deepEqual(
      [c.totalMs, c.setupMs, c.downtimeMs, c.expectedDowntimeMs, c.heartbeatMs, c.networkMs, c.touchedBytes, c.transferredBytes, c.rounds, c.throttlePercent, c.postcopyRequests],
      [s['total-time'], s['setup-time'], s.downtime, s['expected-downtime'], s['observed-downtime'].heartbeat, s['observed-downtime'].network, s.ram.total, s.ram.transferred,
        s.ram['dirty-sync-count'], s['cpu-throttle-percentage'], s.ram['postcopy-requests']],
      at,
    );
    t.true(c.downtimeMs !== null && c.downtimeMs > 0 && c.downtimeMs < c.totalMs, `${at}: downtime ${c.downtimeMs} of ${c.totalMs} ms`);
    t.true(c.idealMs === null ? c.bandwidth === null : close(c.idealMs, (c.touchedBytes * 8 * 1000) / c.bandwidth!), `${at}: ideal ${c.idealMs}`);
    const roundBytes = s.rounds.reduce((sum, round) => sum + round.bytes, 0);
    const roundMs = s.rounds.reduce((sum, round) => sum + round.ms, 0);
    t.true(c.pageBytesPerSecond === null ? roundBytes === 0 : close(c.pageBytesPerSecond, (roundBytes * 1000) / roundMs), `${at}: page throughput`);
    if (c.mode === 'precopy') {
      t.true(c.rounds >= 1 && s.ram['precopy-bytes'] >= 8 * 1024 ** 2 && s.ram['postcopy-bytes'] === 0, `${at}: ${JSON.stringify(s.ram)}`);
    } else {
      // postcopy: no precopy round, the memory goes after the switch-over
      t.true(c.rounds === 0 && s.ram['precopy-bytes'] === 0 && s.ram['postcopy-bytes'] > 0, `${at}: ${JSON.stringify(s.ram)}`);
    }
  }
  for (const c of r.cells) {
    const at = `${c.mode} ${c.dirtyRate}`;
    t.is(c.bandwidth, 1e9, at);
    // a heartbeat ran inside and a peer on h3 heard the container after the move
    t.true(c.heartbeatMs !== null && c.heartbeatMs >= 0, `${at}: heartbeat ${c.heartbeatMs}`);
    t.true(c.heartbeatPausedMs !== null && c.heartbeatPausedMs >= 0, `${at}: heartbeat paused ${c.heartbeatPausedMs}`);
    t.true(c.peer !== null && c.peer.pausedMs >= 0 && c.peer.pauses >= 0 && c.peer.longestGapMs > 0, `${at}: peer ${JSON.stringify(c.peer)}`);
  }

  const u = r.uncapped;
  t.is(r.chunkBytes, 64 * 4096);
  t.is(u.rounds.length, 3);
  for (const [i, round] of u.rounds.entries()) {
    t.true(round.cell.bandwidth === null && round.cell.mode === 'precopy' && round.cell.dirtyRate === 0, `uncapped round ${i + 1}`);
    t.true(round.plain.bytes >= 8 * 1024 ** 2 && round.plain.chunks === Math.ceil(round.plain.bytes / r.chunkBytes), `plain ${JSON.stringify(round.plain)}`);
    t.true(close(round.ofPlain, round.cell.pageBytesPerSecond! / round.plain.bytesPerSecond), `uncapped round ${i + 1}: of plain`);
  }
  const spreadOf = (s: Spread, samples: number[]) => close(s.median, middle(samples)) && s.min === Math.min(...samples) && s.max === Math.max(...samples);
  t.true(spreadOf(u.pageBytesPerSecond, u.rounds.map((round) => round.cell.pageBytesPerSecond!)));
  t.true(spreadOf(u.plainBytesPerSecond, u.rounds.map((round) => round.plain.bytesPerSecond)));
  t.true(spreadOf(u.ofPlain, u.rounds.map((round) => round.ofPlain)));
  t.true(close(r.effectiveBytesPerSecond, Math.min(1e9 / 8, u.pageBytesPerSecond.median)));

  // the aims, from the cells
  const downtimeAtMost = (limit: number) => (c: Cell) => c.downtimeMs! <= limit;
  const idle = r.cells.filter((c) => c.dirtyRate === 0 && c.mode !== 'postcopy');
  const above = r.cells.filter((c) => c.dirtyRate * 4096 >= r.effectiveBytesPerSecond);
  t.deepEqual(r.aims, {
    idleTotalWithin10Percent: null,
    idleDowntimeUnder50ms: idle.every(downtimeAtMost(50)),
    convergesAt2000: r.cells.filter((c) => c.dirtyRate === 2000 && c.mode !== 'postcopy').every(downtimeAtMost(100)),
    aboveBandwidthEnds: above.length === 0 ? null : true,
    postcopyDowntimeUnder30ms: r.cells.filter((c) => c.mode === 'postcopy').every(downtimeAtMost(30)),
    uncappedAtLeast70PercentOfPlain: u.ofPlain.median >= 0.7,
    digestsEqual: true,
  });

  t.deepEqual(JSON.parse(readFileSync(r.files.json, 'utf8')), r);
  t.true(existsSync(r.files.chart));
  const svg = readFileSync(r.files.chart, 'utf8');
  for (const label of ['downtime and total time against the dirty rate', 'total time', 'precopy', 'postcopy', 'downtime limit 50 ms', '8MiB']) {
    t.true(svg.includes(label), `the chart says "${label}"`);
  }
});
