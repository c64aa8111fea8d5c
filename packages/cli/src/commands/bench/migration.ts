import { Flags } from '@oclif/core';
import {
  benchMigration, checkMigrationWorkingSet, migrationAimCells, migrationAims, migrationBenchDefaults, migrationWorkingSet, type MigrationCell, type Spread,
} from '@slicelab/bench';
import { pageSize } from '@slicelab/programs';
import { SlicelabError, errorMessage, formatRate, formatSize, migrationModes, parseRate, parseSize, type MigrationMode } from '@slicelab/protocol';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

/** the highest --dirty-rate taken, pages per second (4 GB/s of 4 KiB pages) */
const maxDirtyRate = 1_000_000;

export default class BenchMigration extends BaseCommand {
  static override description = 'Live migration against the dirty rate, after Clark et al.: one migration per mode and dirty rate of a mem-writer on h1 to h2, ' +
    'with a heartbeat inside and a peer on h3 watching over the network; downtime, total time, rounds and bytes per cell, a chart of both against the dirty rate, ' +
    'and an uncapped migration paired with a plain NATS publisher (aims: idle 256 MiB at 1 gbit within 10 % of size / bandwidth with downtime ≤ 50 ms, ' +
    '2,000 pages/s converges with downtime ≤ 100 ms, a dirty rate above the bandwidth still ends, postcopy downtime ≤ 30 ms, uncapped pages ≥ 70 % of plain NATS, every digest equal)';
  static override examples = [
    '<%= config.bin %> bench migration',
    '<%= config.bin %> bench migration --memory 64MiB --dirty-rate 0,2000 --mode precopy',
    '<%= config.bin %> bench migration --bandwidth max --downtime-limit 30ms --json',
  ];
  static override flags = {
    memory: Flags.string({ default: '256MiB', description: `working set of the mem-writer, ${formatSize(migrationWorkingSet.minBytes)} to ${formatSize(migrationWorkingSet.maxBytes)}` }),
    'dirty-rate': Flags.string({ default: '0,2000,20000', description: 'pages per second the mem-writer dirties after writing its working set once, comma-separated (0: none, an idle guest)' }),
    mode: Flags.string({ default: migrationModes.join(','), description: `migration modes, comma-separated: ${migrationModes.join(', ')}` }),
    bandwidth: Flags.custom<number | null>({ parse: async (input) => (input === 'max' ? null : parseRate(input)) })({
      default: 1e9, defaultHelp: async () => '1gbit', description: 'cap on the pages\' rate: 1gbit, 500mbit, or max (no cap)',
    }),
    'downtime-limit': unitFlags.duration({
      default: migrationBenchDefaults.downtimeLimitMs, defaultHelp: async () => `${migrationBenchDefaults.downtimeLimitMs}ms`, description: 'switch over once the rest would go within this',
    }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart' }),
  };

  async run() {
    const { flags } = await this.parse(BenchMigration);
    const memoryBytes = workingSet(flags.memory);
    const dirtyRates = list('--dirty-rate', flags['dirty-rate'], (text) => {
      const rate = Number(text);
      if (!/^\d+$/.test(text) || rate > maxDirtyRate) throw new Error(`a whole number of pages per second from 0 to ${maxDirtyRate}`);
      return rate;
    });
    const modes = list('--mode', flags.mode, (text) => {
      if (!(migrationModes as readonly string[]).includes(text)) throw new Error(`one of ${migrationModes.join(', ')}`);
      return text as MigrationMode;
    });
    if (flags.bandwidth !== null && !(flags.bandwidth > 0)) throw new SlicelabError('EINVAL', '--bandwidth must be above 0 (or max for no cap)');
    if (!(flags['downtime-limit'] > 0)) throw new SlicelabError('EINVAL', '--downtime-limit must be above 0');

    const r = await benchMigration({
      memoryBytes, dirtyRates, modes, bandwidth: flags.bandwidth, downtimeLimitMs: flags['downtime-limit'], outDir: flags.out, onProgress: (l) => this.progress(l),
    });
    this.progressDone();
    const ms = (x: number | null) => (x === null ? '-' : `${x.toFixed(x < 10 ? 2 : 1)} ms`);
    const mbs = (x: number) => `${(x / 1e6).toFixed(0)} MB/s`;
    const pct = (x: number) => `${(x * 100).toFixed(0)} %`;
    const range = (s: Spread, f: (x: number) => string) => `${f(s.median)} [${f(s.min)}, ${f(s.max)}]`;
    const met = (ok: boolean | null, unmeasured = 'not measured') => (ok === null ? unmeasured : ok ? 'met' : 'MISSED');
    const rate = (c: MigrationCell) => (c.dirtyRate === 0 ? 'idle' : `${c.dirtyRate}/s`);
    const cap = r.bandwidth === null ? 'no cap' : formatRate(r.bandwidth);

    this.say(table(
      [
        `${formatSize(r.memoryBytes)}, ${cap}, limit ${ms(r.downtimeLimitMs)}`, 'dirty pages', 'status', 'total-time (setup)', 'downtime (expected)',
        'heartbeat inside: switch-over (all)', 'net-heartbeat inside: switch-over; peer: paused (pauses), longest gap', 'transferred', 'rounds', 'throttle', 'postcopy req. (fault p50/p99)', 'digests',
      ],
      r.cells.map((c) => [
        c.mode, rate(c), `${c.status}${c.cutOff ? ' (cut off)' : ''}`, `${ms(c.totalMs)} (${ms(c.setupMs)})`, `${ms(c.downtimeMs)} (${ms(c.expectedDowntimeMs)})`,
        `${ms(c.heartbeatMs)} (${ms(c.heartbeatPausedMs)})`, `${ms(c.networkMs)}; ${c.peer === null ? 'heard nothing after' : `${ms(c.peer.pausedMs)} (${c.peer.pauses}), ${ms(c.peer.longestGapMs)}`}`,
        `${formatSize(c.transferredBytes)} of ${formatSize(c.touchedBytes)}`, c.rounds, c.throttlePercent > 0 ? `${c.throttlePercent}%` : '-',
        c.mode === 'precopy' ? '-' : `${c.postcopyRequests}${c.faultLatency ? ` (${ms(c.faultLatency.p50)} / ${ms(c.faultLatency.p99)})` : ''}`,
        c.digestsEqual ? 'equal' : 'DIFFERENT',
      ]),
    ));
    const u = r.uncapped;
    this.say(table([`uncapped precopy, idle: median [min, max] of ${u.rounds.length} paired rounds`, 'value', 'aim'], [
      ['page throughput (precopy rounds\' bytes / their time)', range(u.pageBytesPerSecond, mbs), ''],
      [`plain NATS publisher, ${formatSize(r.chunkBytes)} chunks`, range(u.plainBytesPerSecond, mbs), ''],
      ['  page throughput of plain NATS, paired', range(u.ofPlain, pct), `≥ ${pct(migrationAims.uncappedOfPlain)}: ${met(r.aims.uncappedAtLeast70PercentOfPlain)}`],
      ['downtime', u.rounds.map((round) => ms(round.cell.downtimeMs)).join(', '), ''],
    ]));

    const { idle, converging, postcopyDowntimeMs } = migrationAims;
    const cellsOf = (keep: (c: MigrationCell) => boolean, figure: (c: MigrationCell) => string) =>
      r.cells.filter(keep).map((c) => `${c.mode} ${rate(c)}: ${c.status === 'completed' ? figure(c) : c.status}`).join('; ') || '-';
    const effectivePages = r.effectiveBytesPerSecond / pageSize;
    this.say(table(['aim', 'measured', 'verdict'], [
      [`idle ${formatSize(idle.workingSetBytes)} at ${formatRate(idle.bandwidth)}: total time within ${pct(idle.totalWithin)} of memory / bandwidth (precopy, hybrid)`,
        cellsOf(migrationAimCells.idle, (c) => (c.idealMs === null ? ms(c.totalMs) : `${ms(c.totalMs)} against ${ms(c.idealMs)} (${c.totalMs >= c.idealMs ? '+' : ''}${pct(c.totalMs / c.idealMs - 1)})`)),
        met(r.aims.idleTotalWithin10Percent, `not measured (the aim is for ${formatSize(idle.workingSetBytes)} at ${formatRate(idle.bandwidth)})`)],
      [`idle: downtime ≤ ${idle.downtimeMs} ms (precopy, hybrid)`, cellsOf(migrationAimCells.idle, (c) => ms(c.downtimeMs)), met(r.aims.idleDowntimeUnder50ms)],
      [`${converging.dirtyRate} dirty pages/s: converges, downtime ≤ ${converging.downtimeMs} ms (precopy, hybrid)`,
        cellsOf(migrationAimCells.converging, (c) => `${ms(c.downtimeMs)} after ${c.rounds} rounds`),
        met(r.aims.convergesAt2000)],
      [`a dirty rate above the bandwidth (≥ ${effectivePages.toFixed(0)} pages/s here) ends: auto-converge, postcopy`,
        cellsOf((c) => migrationAimCells.aboveBandwidth(c, r.effectiveBytesPerSecond), (c) => `${ms(c.totalMs)}, ${c.rounds} rounds${c.throttlePercent > 0 ? `, throttled ${c.throttlePercent}%` : ''}`),
        met(r.aims.aboveBandwidthEnds, `not measured (no dirty rate of ${effectivePages.toFixed(0)} pages/s or more)`)],
      [`postcopy: downtime ≤ ${postcopyDowntimeMs} ms`, cellsOf(migrationAimCells.postcopy, (c) => ms(c.downtimeMs)), met(r.aims.postcopyDowntimeUnder30ms)],
      [`uncapped page throughput ≥ ${pct(migrationAims.uncappedOfPlain)} of plain NATS`, range(u.ofPlain, pct), met(r.aims.uncappedAtLeast70PercentOfPlain)],
      ['every migration\'s digests equal', `${[...r.cells, ...u.rounds.map((round) => round.cell)].filter((c) => c.digestsEqual).length} of ${r.cells.length + u.rounds.length}`,
        met(r.aims.digestsEqual)],
    ]));

    const failures = [...r.cells, ...u.rounds.map((round) => round.cell)].filter((c) => !c.digestsEqual).map((c) => `${c.mode} ${rate(c)}${c.bandwidth === null ? ' uncapped' : ''}: ` +
      (c.status === 'completed' ? `digests differ (source ${c.stats.digest.source}, destination ${c.stats.digest.destination})` : `${c.status}${c.error ? `: ${c.error}` : ''}`));
    for (const failure of failures) this.say(`FAILED ${failure}`);
    this.say(`wrote ${r.files.json} and ${r.files.chart}`);
    // a migration that failed or did not bring the memory over is a failure of slicelab, not a figure: it fails the command
    if (failures.length > 0) {
      process.stderr.write(`slicelab: ${failures.length} of ${r.cells.length + u.rounds.length} migrations failed or moved different memory (the first: ${failures[0]})\n`);
      process.exitCode = 1;
    }
    return r;
  }
}

/** The --memory flag, in bytes, through the one units parser. */
function workingSet(text: string): number {
  try {
    const bytes = parseSize(text.trim());
    checkMigrationWorkingSet(bytes);
    return bytes;
  } catch (error) {
    throw new SlicelabError('EINVAL', `--memory "${text}": ${errorMessage(error)}`, { cause: error });
  }
}

/** A comma-separated flag: each entry through `parse`, none twice, at least one; EINVAL naming the flag and the entry. */
function list<T>(flag: string, text: string, parse: (entry: string) => T): T[] {
  const entries = text.split(',').map((entry) => entry.trim());
  const values = entries.map((entry) => {
    try {
      return parse(entry);
    } catch (error) {
      throw new SlicelabError('EINVAL', `${flag} "${entry}": ${errorMessage(error)}`);
    }
  });
  const twice = entries.find((entry, i) => entries.indexOf(entry) !== i);
  if (twice !== undefined) throw new SlicelabError('EINVAL', `${flag}: "${twice}" is given twice`);
  return values;
}
