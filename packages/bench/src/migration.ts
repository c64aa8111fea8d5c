/**
 * `bench migration`: Clark et al.'s figure ("Live Migration of Virtual Machines", NSDI 2005: downtime and
 * total time against the guest's dirty rate) redrawn on slicelab, per migration mode. On a three-host
 * cluster of its own (h1 the source, h2 the destination, h3 a peer over the network), one migration per
 * cell (mode × dirty rate):
 *   the load      a mem-writer on h1 that writes every page of the working set once (fill=yes), then
 *                 dirties random pages at the cell's rate (0: none, `rate=idle`), waited on until filled
 *   the watchers  a `heartbeat` inside it (interval 1 ms; the engine reports the pause it saw across the
 *                 switch-over as observed-downtime.heartbeat), and a `net-heartbeat` pair between it and
 *                 a container on h3 (the engine reports the gap the one inside saw in its peer's
 *                 datagrams as observed-downtime.network; the bench reads what the peer saw)
 *   the move      after a second of running, migrate to h2 with the cell's mode, the bandwidth and the
 *                 downtime limit (precopy with auto-converge, hybrid going to postcopy after
 *                 `postcopyAfter` rounds), followed to its end
 * and then an uncapped precopy of an idle working set, in paired rounds (paired.ts) with a plain NATS
 * publisher moving as many bytes in chunks of the migration's batch size between two connections of
 * this process, without acks: the ceiling the page throughput is judged against.
 *
 * Division of labor:
 *   the client library: migrate, waitForMigration, cancelMigration; the engine's statistics (QEMU's names)
 *   this module: the load and the watchers, the deadline, the peer's figure, the aims, the JSON and the chart
 *
 * Definitions. Total time, setup time, downtime and expected downtime are the engine's (`total-time` from
 * the request to the end, `downtime` from the freeze on h1 to the commit on h2). The heartbeat inside has
 * two figures: the engine's, what its pausedMs grew by from the switch-over to the migration's finish (in
 * postcopy that is the end of the push, so it holds the push's delays too), and the bench's, what it grew
 * by over the whole migration (every gap over 2 ms less 1 ms: wake-ups delayed while the hosts move pages
 * show there). The peer's
 * figures are what its net-heartbeat's pausedMs and pauses grew by from just before the migration to a
 * few datagrams after its end (every gap over two intervals, 20 ms, less one interval: blind to pauses
 * under 20 ms, and counting any other pause of the link meanwhile), and the longest gap it heard since it
 * began, a second or so before the migration. Page throughput is the bytes the precopy rounds sent over the
 * rounds' own time (from a round's first batch to its last ack, summed over rounds): it leaves out the
 * setup (the destination making room), the downtime and the finish (digests, the heartbeat's figure),
 * which are latencies of the protocol, not the rate of the pages. An uncapped idle precopy sends its whole
 * memory in round 1, so that is in effect round 1's rate. The plain publisher moves the container's
 * touched bytes (read before the round, so that either may go first).
 *
 * A cell whose migration has not ended at its deadline (a minute plus ten times the memory at the
 * bandwidth) is cancelled and kept as cut off: that is the "loops for ever" the aims rule out.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterClient } from '@slicelab/client';
import { pageSize } from '@slicelab/programs';
import { batchPages } from '@slicelab/host';
import {
  SlicelabError, formatRate, formatSize, plainPublishRate, type MigrationMode, type MigrationState, type MigrationStats, type TransferStats,
} from '@slicelab/protocol';
import { withBenchCluster } from './cluster.js';
import { writeChart } from './chart.js';
import { pairedRounds, spread, type Spread } from './paired.js';

/** The working sets this benchmark takes: at most half of its hosts' memory. */
export const migrationWorkingSet = { minBytes: 1024 ** 2, maxBytes: 1024 ** 3 };
/** each host's memory: room for the largest working set twice */
const hostMemory = '2GiB';

/** a migration batch's bytes: the plain publisher's chunks are as large */
export const migrationBatchBytes = batchPages * pageSize;

/** What the issue asks of live migration (bench migration's aims). */
export const migrationAims = {
  /** an idle guest of this size at this bandwidth: total time within 10 % of its memory / bandwidth; any idle guest: downtime ≤ 50 ms (precopy, hybrid) */
  idle: { workingSetBytes: 256 * 1024 ** 2, bandwidth: 1e9, totalWithin: 0.1, downtimeMs: 50 },
  /** at this dirty rate: completed, downtime ≤ 100 ms (precopy, hybrid: the modes whose rounds converge or not) */
  converging: { dirtyRate: 2000, downtimeMs: 100 },
  /** postcopy's downtime whatever the memory size */
  postcopyDowntimeMs: 30,
  /** uncapped page throughput against the plain NATS publisher */
  uncappedOfPlain: 0.7,
};

/** The bench's own defaults where the engine's (QEMU's) are for another purpose. */
export const migrationBenchDefaults = { downtimeLimitMs: 50, postcopyAfter: 2, uncappedRounds: 3 };

/** EINVAL for a working set outside migrationWorkingSet. */
export function checkMigrationWorkingSet(bytes: number): void {
  const { minBytes, maxBytes } = migrationWorkingSet;
  if (!(bytes >= minBytes && bytes <= maxBytes)) {
    throw new SlicelabError('EINVAL', `a working set of ${formatSize(bytes)} is outside ${formatSize(minBytes)} to ${formatSize(maxBytes)}`);
  }
}

export interface MigrationBenchOptions {
  /** the mem-writer's working set, bytes, within migrationWorkingSet */
  memoryBytes: number;
  /** pages per second dirtied after the fill; 0: none (an idle guest) */
  dirtyRates: number[];
  modes: MigrationMode[];
  /** bits per second; null: no cap */
  bandwidth: number | null;
  downtimeLimitMs: number;
  /** hybrid: postcopy after this many precopy rounds (migrationBenchDefaults) */
  postcopyAfter?: number;
  /** rounds of the uncapped migration paired with the plain publisher (migrationBenchDefaults) */
  uncappedRounds?: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

/** One migration and what was seen of it. */
export interface MigrationCell {
  mode: MigrationMode;
  /** pages per second the mem-writer dirtied after its fill; 0: none */
  dirtyRate: number;
  /** bits per second; null: no cap */
  bandwidth: number | null;
  status: MigrationState;
  error?: string;
  /** the bench cancelled it at its deadline */
  cutOff: boolean;
  totalMs: number;
  setupMs: number;
  downtimeMs: number | null;
  expectedDowntimeMs: number | null;
  /** the pause the heartbeat inside saw from the switch-over to the finish, in postcopy the push's end (the engine's observed-downtime.heartbeat) */
  heartbeatMs: number | null;
  /** what the heartbeat inside counted as paused over the whole migration (its pausedMs grown); null: not watched */
  heartbeatPausedMs: number | null;
  /** the same for the gaps the net-heartbeat inside saw in its peer's datagrams (the engine's observed-downtime.network) */
  networkMs: number | null;
  /** the peer's figures (see the module's definitions); null: not watched, or the peer heard nothing after the end */
  peer: PeerFigures | null;
  /** the container's touched memory when the migration began (ram.total) */
  touchedBytes: number;
  transferredBytes: number;
  /** touchedBytes at the bandwidth: the total time if only the pages counted; null without a cap */
  idealMs: number | null;
  /** precopy rounds (dirty-sync-count) */
  rounds: number;
  /** bytes of the precopy rounds over their time (see the module's definitions); null when no round sent anything */
  pageBytesPerSecond: number | null;
  throttlePercent: number;
  postcopyRequests: number;
  faultLatency: { p50: number; p99: number } | null;
  /** completed, with the destination's digest equal to the source's */
  digestsEqual: boolean;
  /** the engine's statistics as they ended */
  stats: MigrationStats;
}

/** What the net-heartbeat on h3 saw of the moving container. */
export interface PeerFigures {
  /** its pausedMs grown from just before the migration to `heardAfter` datagrams after its end */
  pausedMs: number;
  /** its pauses counted meanwhile */
  pauses: number;
  /** the longest gap between the moving container's datagrams since the peer began (a second or so before the migration) */
  longestGapMs: number;
}

export interface UncappedRound {
  cell: MigrationCell;
  /** the plain publisher: the container's touched bytes in chunks of the batch size */
  plain: TransferStats;
  /** cell.pageBytesPerSecond / plain.bytesPerSecond */
  ofPlain: number;
}

export interface MigrationBenchResult {
  memoryBytes: number;
  bandwidth: number | null;
  downtimeLimitMs: number;
  postcopyAfter: number;
  chunkBytes: number;
  cells: MigrationCell[];
  uncapped: {
    rounds: UncappedRound[];
    pageBytesPerSecond: Spread;
    plainBytesPerSecond: Spread;
    /** paired: each round's page throughput over that round's plain rate */
    ofPlain: Spread;
  };
  /**
   * The rate pages can leave at, bytes per second: the cap, or the uncapped page throughput if lower.
   * A cell dirtying at least this much is "above the bandwidth".
   */
  effectiveBytesPerSecond: number;
  /** null: no cell the aim applies to was measured */
  aims: {
    /** idle precopy and hybrid cells, at the aim's working set and bandwidth: total time within 10 % of idealMs */
    idleTotalWithin10Percent: boolean | null;
    /** idle precopy and hybrid cells: completed, downtime ≤ 50 ms */
    idleDowntimeUnder50ms: boolean | null;
    /** precopy and hybrid cells at 2,000 pages/s: completed, downtime ≤ 100 ms */
    convergesAt2000: boolean | null;
    /** cells dirtying at least effectiveBytesPerSecond: completed on their own before the deadline */
    aboveBandwidthEnds: boolean | null;
    /** postcopy cells: completed, downtime ≤ 30 ms */
    postcopyDowntimeUnder30ms: boolean | null;
    /** median of the paired rounds ≥ 70 % */
    uncappedAtLeast70PercentOfPlain: boolean;
    /** every migration of the run, the uncapped ones too */
    digestsEqual: boolean;
  };
  files: { json: string; chart: string };
}

const source = 'h1';
const destination = 'h2';
const peerHost = 'h3';
const mover = 'mover';
const peer = 'peer';
const idle = { program: 'sleeper', args: { run: '1ms', sleep: '1s' } };
const netHeartbeat = { port: 9999, intervalMs: 10 };
/** how long the load runs watched before the migration */
const settleMs = 1000;
/** datagrams the peer must hear after the end before its figure is read: the gap across the downtime has closed */
const heardAfter = 3;
/** a mem-writer whose pagesWritten stays put this long is stuck */
const stuckMs = 10_000;

export async function benchMigration(o: MigrationBenchOptions): Promise<MigrationBenchResult> {
  checkMigrationWorkingSet(o.memoryBytes);
  const postcopyAfter = o.postcopyAfter ?? migrationBenchDefaults.postcopyAfter;
  const uncappedRounds = o.uncappedRounds ?? migrationBenchDefaults.uncappedRounds;
  const hosts = [source, destination, peerHost].map((name) => ({ name, cores: 2, memory: hostMemory }));
  return withBenchCluster('bench-migration', hosts, async ({ client, launcher }) => {
    mkdirSync(o.outDir, { recursive: true });
    const cells: MigrationCell[] = [];
    for (const mode of o.modes) {
      for (const dirtyRate of o.dirtyRates) {
        const say = (what: string) => o.onProgress?.(`${mode}, ${rateText(dirtyRate)}: ${what}`);
        cells.push(await watchedCell(client, o, mode, dirtyRate, postcopyAfter, say));
      }
    }
    const receiver = await ClusterClient.connect({ nats: launcher.natsUrl, access: launcher.run.access });
    const rounds = await uncappedCells(client, receiver, o, uncappedRounds).finally(() => receiver.close());
    const uncapped = {
      rounds,
      pageBytesPerSecond: spread(rounds.map((r) => r.cell.pageBytesPerSecond ?? 0)),
      plainBytesPerSecond: spread(rounds.map((r) => r.plain.bytesPerSecond)),
      ofPlain: spread(rounds.map((r) => r.ofPlain)),
    };
    const effectiveBytesPerSecond = Math.min(o.bandwidth === null ? Infinity : o.bandwidth / 8, uncapped.pageBytesPerSecond.median);
    const files = { json: join(o.outDir, 'migration.json'), chart: join(o.outDir, 'migration.svg') };
    const result: MigrationBenchResult = {
      memoryBytes: o.memoryBytes, bandwidth: o.bandwidth, downtimeLimitMs: o.downtimeLimitMs, postcopyAfter, chunkBytes: migrationBatchBytes,
      cells, uncapped, effectiveBytesPerSecond,
      aims: judge(o, cells, uncapped, effectiveBytesPerSecond),
      files,
    };
    writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
    await writeMigrationChart(result, files.chart);
    return result;
  });
}

/** "idle" for 0, else "N pages/s". */
function rateText(dirtyRate: number): string {
  return dirtyRate === 0 ? 'idle' : `${dirtyRate} pages/s`;
}

/** One cell: the load on h1 with its watchers, the migration to h2, the peer's figure, both containers removed. */
async function watchedCell(
  client: ClusterClient, o: MigrationBenchOptions, mode: MigrationMode, dirtyRate: number, postcopyAfter: number, say: (what: string) => void,
): Promise<MigrationCell> {
  await client.runContainer(source, { name: mover, program: 'mem-writer', args: memWriterArgs(o.memoryBytes, dirtyRate) });
  await filled(client, mover, o.memoryBytes / pageSize, say);
  await client.runContainer(peerHost, { name: peer, ...idle });
  const [moverIp, peerIp] = await Promise.all([mover, peer].map(async (name) => (await client.inspect(name)).nics[0]!.ip));
  const interval = `${netHeartbeat.intervalMs}ms`;
  await client.exec(mover, 'heartbeat', { interval: '1ms' });
  await client.exec(mover, 'net-heartbeat', { peer: peerIp!, port: netHeartbeat.port, interval });
  await client.exec(peer, 'net-heartbeat', { peer: moverIp!, port: netHeartbeat.port, interval });
  say('the heartbeats start');
  const heard = async () => Math.min(...(await Promise.all([mover, peer].map(async (name) => (await beatsOf(client, name, 'net-heartbeat')).heard))));
  const deadline = performance.now() + 5000;
  while ((await heard()) === 0) {
    if (performance.now() > deadline) throw new Error(`the net-heartbeats of ${mover} (${moverIp}) and ${peer} (${peerIp}) did not hear each other within 5 s`);
    await sleep(50);
  }
  await sleep(settleMs);

  const before = { peer: await beatsOf(client, peer, 'net-heartbeat'), inside: await beatsOf(client, mover, 'heartbeat') };
  const started = await client.migrate(mover, destination, {
    mode, bandwidth: o.bandwidth, downtimeLimitMs: o.downtimeLimitMs, autoConverge: mode === 'precopy', postcopyAfter: mode === 'hybrid' ? postcopyAfter : null,
  });
  const { stats, cutOff } = await followMigration(client, started, o.bandwidth, say);
  const after = { peer: await peerAfter(client, say), inside: await beatsOf(client, mover, 'heartbeat') };
  await client.removeContainer(mover, true);
  await client.removeContainer(peer, true);
  const seen = after.peer === null ? null : {
    pausedMs: after.peer.pausedMs - before.peer.pausedMs, pauses: after.peer.pauses - before.peer.pauses, longestGapMs: after.peer.maxGapMs,
  };
  return cellOf(mode, dirtyRate, o.bandwidth, stats, cutOff, { heartbeatPausedMs: after.inside.pausedMs - before.inside.pausedMs, peer: seen });
}

/** The uncapped rounds: one idle container moved h1 → h2 → h1 …, each move paired with the plain publisher. */
async function uncappedCells(client: ClusterClient, receiver: ClusterClient, o: MigrationBenchOptions, rounds: number): Promise<UncappedRound[]> {
  const name = 'uncapped';
  const say = (what: string) => o.onProgress?.(`uncapped precopy, idle: ${what}`);
  await client.runContainer(source, { name, program: 'mem-writer', args: memWriterArgs(o.memoryBytes, 0) });
  const { memoryCurrent } = await filled(client, name, o.memoryBytes / pageSize, say);
  let at = source;
  const pairs = await pairedRounds(rounds, async () => {
    const to = at === source ? destination : source;
    say(`migrating ${at} → ${to}`);
    const started = await client.migrate(name, to, { mode: 'precopy', bandwidth: null, downtimeLimitMs: o.downtimeLimitMs });
    const { stats, cutOff } = await followMigration(client, started, null, say);
    if (stats.status === 'completed') at = to;
    return cellOf('precopy', 0, null, stats, cutOff, { heartbeatPausedMs: null, peer: null });
  }, () => {
    say(`plain NATS publisher, ${formatSize(memoryCurrent)} in ${formatSize(migrationBatchBytes)} chunks`);
    // a subject outside the cluster's tree, so that nothing of slicelab's listens to these bytes
    return plainPublishRate(client.nc, client.subjects.bench('plain'), memoryCurrent, migrationBatchBytes, receiver.nc);
  });
  await client.removeContainer(name, true);
  return pairs.map(([cell, plain]) => ({ cell, plain, ofPlain: (cell.pageBytesPerSecond ?? 0) / plain.bytesPerSecond }));
}

function memWriterArgs(memoryBytes: number, dirtyRate: number): Record<string, string> {
  return { wss: String(memoryBytes), fill: 'yes', rate: dirtyRate === 0 ? 'idle' : String(dirtyRate), pattern: 'random' };
}

/** Polls the mem-writer until it has written every page of its working set once (metrics.filled). */
async function filled(client: ClusterClient, name: string, wssPages: number, say: (what: string) => void): Promise<{ memoryCurrent: number }> {
  let last = { pagesWritten: -1, at: performance.now() };
  for (;;) {
    const info = await client.inspect(name);
    const metrics = info.processes[0]?.metrics ?? {};
    const pagesWritten = metrics['pagesWritten'] ?? 0;
    if (info.state !== 'running') {
      throw new Error(`${name} is ${info.state}${info.exitCode === undefined ? '' : ` (exit ${info.exitCode})`} after writing ${pagesWritten} of ${wssPages} pages`);
    }
    if (metrics['filled'] === 1) return { memoryCurrent: info.memoryCurrent };
    if (pagesWritten !== last.pagesWritten) last = { pagesWritten, at: performance.now() };
    if (performance.now() - last.at > stuckMs) throw new Error(`${name} wrote no page for ${stuckMs} ms (${pagesWritten} of ${wssPages})`);
    say(`filling the working set on ${info.host}: ${pagesWritten} of ${wssPages} pages`);
    await sleep(100);
  }
}

/** What a heartbeat or a net-heartbeat has counted (both count pauses alike; a net-heartbeat also what it heard). */
interface Beats {
  heard: number;
  pauses: number;
  pausedMs: number;
  maxGapMs: number;
}

/** The counts of the program `program` (heartbeat or net-heartbeat) in container `name`. */
async function beatsOf(client: ClusterClient, name: string, program: 'heartbeat' | 'net-heartbeat'): Promise<Beats> {
  const process = (await client.inspect(name)).processes.find((p) => p.program === program);
  if (!process) throw new Error(`no ${program} runs in ${name}`);
  const m = process.metrics;
  return { heard: m['heard'] ?? 0, pauses: m['pauses'] ?? 0, pausedMs: m['pausedMs'] ?? 0, maxGapMs: m['maxGapMs'] ?? 0 };
}

/** The peer's net-heartbeat once it has heard `heardAfter` more datagrams since the end; null if it hears none for 5 s. */
async function peerAfter(client: ClusterClient, say: (what: string) => void): Promise<Beats | null> {
  const atEnd = await beatsOf(client, peer, 'net-heartbeat');
  const deadline = performance.now() + 5000;
  for (;;) {
    const now = await beatsOf(client, peer, 'net-heartbeat');
    if (now.heard >= atEnd.heard + heardAfter) return now;
    if (performance.now() > deadline) return null;
    say(`waiting for ${peer} on ${peerHost} to hear the moved container`);
    await sleep(20);
  }
}

/**
 * Follows a migration to its end with the client's progress polls; one that has not ended by its
 * deadline (a minute plus ten times the touched memory at the bandwidth) is cancelled.
 */
async function followMigration(
  client: ClusterClient, started: MigrationStats, bandwidth: number | null, say: (what: string) => void,
): Promise<{ stats: MigrationStats; cutOff: boolean }> {
  const deadlineMs = 60_000 + 10 * (idealMs(started.ram.total, bandwidth) ?? 0);
  let cutOff = false;
  const stats = await client.waitForMigration(started, (s) => {
    say(`${s.status}, round ${s.ram['dirty-sync-count'] + 1}: ${formatSize(s.ram.transferred)} sent, ${formatSize(s.ram.remaining)} left` +
      (s['cpu-throttle-percentage'] > 0 ? `, throttled ${s['cpu-throttle-percentage']}%` : ''));
    if (cutOff || s['total-time'] <= deadlineMs) return;
    cutOff = true;
    // a postcopy that has committed cannot be cancelled (EBUSY): its push ends it
    void client.cancelMigration(s.id).catch(() => {});
  });
  return { stats, cutOff };
}

/** ms to send `bytes` at `bandwidth` bits/s; null without a cap. */
function idealMs(bytes: number, bandwidth: number | null): number | null {
  return bandwidth === null ? null : (bytes * 8 * 1000) / bandwidth;
}

function cellOf(
  mode: MigrationMode, dirtyRate: number, bandwidth: number | null, stats: MigrationStats, cutOff: boolean,
  watched: Pick<MigrationCell, 'heartbeatPausedMs' | 'peer'>,
): MigrationCell {
  const roundBytes = stats.rounds.reduce((sum, r) => sum + r.bytes, 0);
  const roundMs = stats.rounds.reduce((sum, r) => sum + r.ms, 0);
  return {
    mode, dirtyRate, bandwidth, status: stats.status, ...(stats.error === undefined ? {} : { error: stats.error }), cutOff,
    totalMs: stats['total-time'], setupMs: stats['setup-time'], downtimeMs: stats.downtime, expectedDowntimeMs: stats['expected-downtime'],
    heartbeatMs: stats['observed-downtime'].heartbeat, networkMs: stats['observed-downtime'].network, ...watched,
    touchedBytes: stats.ram.total, transferredBytes: stats.ram.transferred, idealMs: idealMs(stats.ram.total, bandwidth),
    rounds: stats.ram['dirty-sync-count'], pageBytesPerSecond: roundBytes > 0 && roundMs > 0 ? (roundBytes * 1000) / roundMs : null,
    throttlePercent: stats['cpu-throttle-percentage'], postcopyRequests: stats.ram['postcopy-requests'], faultLatency: stats['fault-latency'],
    digestsEqual: stats.status === 'completed' && stats.digest.source !== null && stats.digest.source === stats.digest.destination,
    stats,
  };
}

/**
 * Which cells each per-cell aim judges, given the rate pages leave at (effectiveBytesPerSecond). Postcopy
 * has no rounds to converge and sends the memory after the switch-over, its pushes uncapped: its aim is
 * the downtime alone.
 */
export const migrationAimCells = {
  idle: (c: MigrationCell) => c.mode !== 'postcopy' && c.dirtyRate === 0,
  converging: (c: MigrationCell) => c.mode !== 'postcopy' && c.dirtyRate === migrationAims.converging.dirtyRate,
  aboveBandwidth: (c: MigrationCell, effectiveBytesPerSecond: number) => c.dirtyRate * pageSize >= effectiveBytesPerSecond,
  postcopy: (c: MigrationCell) => c.mode === 'postcopy',
};

/** Each aim from the measured cells; null where no cell it applies to was measured. */
function judge(
  o: MigrationBenchOptions, cells: MigrationCell[], uncapped: MigrationBenchResult['uncapped'], effectiveBytesPerSecond: number,
): MigrationBenchResult['aims'] {
  const { idle, converging, postcopyDowntimeMs, uncappedOfPlain } = migrationAims;
  const verdict = (applies: (c: MigrationCell) => boolean, ok: (c: MigrationCell) => boolean) => {
    const judged = cells.filter(applies);
    return judged.length === 0 ? null : judged.every(ok);
  };
  const downtimeAtMost = (limitMs: number) => (c: MigrationCell) => c.status === 'completed' && c.downtimeMs !== null && c.downtimeMs <= limitMs;
  const atIdleAim = o.memoryBytes === idle.workingSetBytes && o.bandwidth === idle.bandwidth;
  return {
    idleTotalWithin10Percent: atIdleAim
      ? verdict(migrationAimCells.idle, (c) => c.status === 'completed' && c.idealMs !== null && Math.abs(c.totalMs - c.idealMs) <= idle.totalWithin * c.idealMs)
      : null,
    idleDowntimeUnder50ms: verdict(migrationAimCells.idle, downtimeAtMost(idle.downtimeMs)),
    convergesAt2000: verdict(migrationAimCells.converging, downtimeAtMost(converging.downtimeMs)),
    aboveBandwidthEnds: verdict((c) => migrationAimCells.aboveBandwidth(c, effectiveBytesPerSecond), (c) => c.status === 'completed' && !c.cutOff),
    postcopyDowntimeUnder30ms: verdict(migrationAimCells.postcopy, downtimeAtMost(postcopyDowntimeMs)),
    uncappedAtLeast70PercentOfPlain: uncapped.ofPlain.median >= uncappedOfPlain,
    digestsEqual: [...cells, ...uncapped.rounds.map((r) => r.cell)].every((c) => c.digestsEqual),
  };
}

/**
 * Three panels, dirty rate across, one line per mode: the downtime (with the downtime limit), the total
 * time (with the memory at the bandwidth), and, on a log axis, what the watchers saw: the heartbeat and
 * the net-heartbeat inside across the switch-over, and the peer's longest gap (a figure of 0, no pause seen, has no place on
 * a log axis and is left to the JSON). Cells that did not complete are left out.
 */
async function writeMigrationChart(r: MigrationBenchResult, file: string): Promise<void> {
  const done = r.cells.filter((c) => c.status === 'completed');
  const point = (c: MigrationCell, ms: number, measure?: string) => ({ mode: c.mode, dirtyRate: c.dirtyRate, ms, ...(measure ? { measure } : {}) });
  const downtimes = done.flatMap((c) => (c.downtimeMs === null ? [] : [point(c, c.downtimeMs)]));
  const totals = done.map((c) => point(c, c.totalMs));
  const observedBy = { heartbeat: 'heartbeat inside, switch-over', network: 'net-heartbeat inside, switch-over', peer: 'peer, longest gap' };
  const observed = done.flatMap((c) => [
    ...(c.heartbeatMs === null ? [] : [point(c, c.heartbeatMs, observedBy.heartbeat)]),
    ...(c.networkMs === null ? [] : [point(c, c.networkMs, observedBy.network)]),
    ...(c.peer === null ? [] : [point(c, c.peer.longestGapMs, observedBy.peer)]),
  ]).filter((d) => d.ms > 0);
  const x = { field: 'dirtyRate', type: 'ordinal', title: 'dirty rate (pages/s after the fill)', axis: { labelAngle: 0 } } as const;
  const color = { field: 'mode', type: 'nominal', title: 'mode', sort: ['precopy', 'postcopy', 'hybrid'] } as const;
  const y = { field: 'ms', type: 'quantitative', title: 'ms' } as const;
  const rule = (ms: number, label: string) => [
    { data: { values: [{ ms, label }] }, mark: { type: 'rule' as const, strokeDash: [4, 4], color: 'gray' }, encoding: { y } },
    { data: { values: [{ ms, label }] }, mark: { type: 'text' as const, align: 'left' as const, dx: 4, dy: -6, color: 'gray' }, encoding: { x: { value: 0 }, y, text: { field: 'label' } } },
  ];
  const ideal = done.find((c) => c.idealMs !== null)?.idealMs ?? null;
  const panel = { width: 300, height: 260 };
  const cap = r.bandwidth === null ? 'no cap' : formatRate(r.bandwidth);
  await writeChart({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'slicelab live migration: downtime and total time against the dirty rate',
      subtitle: `${formatSize(r.memoryBytes)} mem-writer, random pages; bandwidth ${cap}, downtime limit ${r.downtimeLimitMs} ms; one migration per point (after Clark et al., NSDI 2005)`,
      anchor: 'start',
    },
    hconcat: [
      {
        title: 'downtime', ...panel,
        layer: [{ data: { values: downtimes }, mark: { type: 'line', point: true }, encoding: { x, y, color } }, ...rule(r.downtimeLimitMs, `downtime limit ${r.downtimeLimitMs} ms`)],
      },
      {
        title: 'total time', ...panel,
        layer: [
          { data: { values: totals }, mark: { type: 'line', point: true }, encoding: { x, y, color } },
          ...(ideal === null ? [] : rule(ideal, `memory / bandwidth ${ideal.toFixed(0)} ms`)),
        ],
      },
      {
        title: 'what the watchers saw', ...panel,
        data: { values: observed },
        mark: { type: 'point', size: 60 },
        encoding: {
          x, color,
          y: { ...y, scale: { type: 'log' } },
          shape: { field: 'measure', type: 'nominal', title: 'observed by', sort: [observedBy.heartbeat, observedBy.network, observedBy.peer], legend: { labelLimit: 300 } },
        },
      },
    ],
    resolve: { scale: { y: 'independent' } },
  }, file);
}
