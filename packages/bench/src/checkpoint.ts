/**
 * `bench checkpoint`: what it costs to write a running container down and bring it back elsewhere. For
 * each working-set size, rounds of: a mem-writer on h1 that dirties that working set flat out, waited on
 * until every page of it has been written; a checkpoint (CRIU's dump: the container stays frozen until its
 * image has reached this process, then ends) whose image is written to a file in the out folder; the
 * image read back from that file and restored on h2, which takes the memory digest again; and, right
 * after, a plain NATS publisher moving as many bytes in chunks of the same size (defaultChunkBytes, what
 * sendBytes uses) from this process's connection to a second one of its own, without acks: the ceiling
 * the image's transfers are paired with, round by round.
 *
 * Division of labor:
 *   the client library: checkpoint and restore, the image over the bus (transfer.ts, acked chunks)
 *   this module: the load, the file, the checks of the image (zero pages, digests), the pairing, the figures
 *
 * The figures, per round: the freeze time (the host's frozenMs: from freezing to the state and pages
 * copied; the container then stays frozen while its image travels, and ends); the image's size against
 * the touched memory; checkpoint throughput, image bytes over the checkpoint's totalMs (freeze, copy,
 * encode, send); restore throughput, image bytes over the restore's transfer plus its restoreMs (decode,
 * check, rebuild, digest); the bus rates of both transfers, host→client for the checkpoint and
 * client→host for the restore, each as a share of the plain publisher's rate. The plain publisher's two
 * ends are in one process, the transfers' in two: the ceiling is the bus's, not a process's.
 *
 * A restore that h2 refuses (a digest that does not match, say) is a failed round: it is kept with its
 * error, counts against `digestsEqual`, and the restore figures are taken over the rounds that restored.
 *
 * The image file is overwritten every round and deleted at the end of the run (a 256 MiB file per run
 * would pile up in the results folder).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterClient } from '@slicelab/client';
import {
  decodeImage, defaultChunkBytes, formatSize, plainPublishRate, SlicelabError, type RestoreResult, type TransferStats,
} from '@slicelab/protocol';
import { withBenchCluster } from './cluster.js';
import { writeChart } from './chart.js';
import { spread, type Spread } from './paired.js';

/** The working sets this benchmark takes: at most half of its hosts' 1 GiB, so that one fits beside the rest. */
export const checkpointWorkingSet = { minBytes: 1024 ** 2, maxBytes: 512 * 1024 ** 2 };

/** The figures slicelab promises: image transfers at this share of plain NATS at least, this working set frozen in under this long. */
export const checkpointAims = { transferOfPlain: 0.7, freeze: { workingSetBytes: 256 * 1024 ** 2, underMs: 1000 } };

/** EINVAL for a working set outside checkpointWorkingSet. */
export function checkWorkingSet(bytes: number): void {
  const { minBytes, maxBytes } = checkpointWorkingSet;
  if (!(bytes >= minBytes && bytes <= maxBytes)) {
    throw new SlicelabError('EINVAL', `a working set of ${formatSize(bytes)} is outside ${formatSize(minBytes)} to ${formatSize(maxBytes)}`);
  }
}

export interface CheckpointBenchOptions {
  /** working-set sizes in bytes, each within checkpointWorkingSet */
  memory: number[];
  rounds: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

export interface CheckpointBenchRound {
  /** mem-writer's pagesWritten when the checkpoint was asked for (at least the working set's pages) */
  pagesWritten: number;
  /** memory.current of the container just before the checkpoint, read apart from the image */
  memoryCurrent: number;
  /** touched pages in the image */
  pages: number;
  imageBytes: number;
  /** the checkpoint's touched memory */
  touchedBytes: number;
  /** imageBytes / touchedBytes: the header, the state and the pagemap are the excess */
  imageOverTouched: number;
  /** all-zero pages found in the decoded image */
  zeroPages: number;
  checkpoint: {
    /** the host's frozenMs */
    freezeMs: number;
    /** the host's totalMs: freeze, copy, encode, send */
    ms: number;
    /** imageBytes / ms */
    bytesPerSecond: number;
    /** the image host → client */
    transfer: TransferStats;
    /** transfer rate / plain rate */
    transferOfPlain: number;
    /** what the image's header carries too */
    digest: string;
  };
  /** the restore on h2, or why h2 refused it (a failed round) */
  restore: RestoreFigures | { error: string };
  /** the plain publisher right after the restore: imageBytes in chunks of chunkBytes, without acks */
  plain: TransferStats;
  /** restored, with the checkpoint's digest */
  digestsEqual: boolean;
}

export interface RestoreFigures {
  /** the transfer's ms plus the host's restoreMs (decode, check, rebuild, digest) */
  ms: number;
  /** imageBytes / ms */
  bytesPerSecond: number;
  /** the image client → host */
  transfer: TransferStats;
  /** transfer rate / plain rate */
  transferOfPlain: number;
  /** the digest h2 took of the restored memory */
  digest: string;
}

export interface CheckpointSizeRow {
  workingSetBytes: number;
  wssPages: number;
  rounds: CheckpointBenchRound[];
  freezeMs: Spread;
  imageOverTouched: Spread;
  checkpointBytesPerSecond: Spread;
  checkpointTransferBytesPerSecond: Spread;
  plainBytesPerSecond: Spread;
  /** paired: each round's transfer rate over that round's plain rate */
  checkpointTransferOfPlain: Spread;
  /** over the rounds that restored; null when none did */
  restoreBytesPerSecond: Spread | null;
  restoreTransferBytesPerSecond: Spread | null;
  restoreTransferOfPlain: Spread | null;
  /** over all rounds */
  zeroPages: number;
  /** rounds restored with the checkpoint's digest */
  digestsEqual: number;
}

export interface CheckpointBenchResult {
  rounds: number;
  chunkBytes: number;
  rows: CheckpointSizeRow[];
  aims: {
    noZeroPage: boolean;
    /** both directions, the median of every size */
    transferAtLeast70PercentOfPlain: boolean;
    /** every 256 MiB round; null when 256 MiB was not measured */
    freeze256MiBUnder1s: boolean | null;
  };
  files: { json: string; chart: string };
}

const source = 'h1';
const target = 'h2';
const container = 'mem-writer';
const pageSize = 4096;
/** a mem-writer whose pagesWritten stays put this long is stuck */
const stuckMs = 10_000;

export async function benchCheckpoint(o: CheckpointBenchOptions): Promise<CheckpointBenchResult> {
  o.memory.forEach(checkWorkingSet);
  const hosts = [{ name: source, cores: 2 }, { name: target, cores: 2 }];
  return withBenchCluster('bench-checkpoint', hosts, async ({ client, launcher }) => {
    mkdirSync(o.outDir, { recursive: true });
    const imageFile = join(o.outDir, 'checkpoint.img');
    const receiver = await ClusterClient.connect({ nats: launcher.natsUrl, access: launcher.run.access });
    try {
      const rows: CheckpointSizeRow[] = [];
      for (const workingSetBytes of o.memory) {
        const wssPages = Math.floor(workingSetBytes / pageSize);
        const rounds: CheckpointBenchRound[] = [];
        for (let round = 1; round <= o.rounds; round++) {
          const say = (what: string) => o.onProgress?.(`${formatSize(workingSetBytes)}, round ${round}/${o.rounds}: ${what}`);
          rounds.push(await checkpointRound(client, receiver, workingSetBytes, wssPages, imageFile, say));
        }
        rows.push(sizeRow(workingSetBytes, wssPages, rounds));
      }
      const files = { json: join(o.outDir, 'checkpoint.json'), chart: join(o.outDir, 'checkpoint.svg') };
      const { freeze, transferOfPlain } = checkpointAims;
      const frozenRows = rows.filter((r) => r.workingSetBytes === freeze.workingSetBytes);
      const transferAimMet = (s: Spread | null) => s !== null && s.median >= transferOfPlain;
      const result: CheckpointBenchResult = {
        rounds: o.rounds, chunkBytes: defaultChunkBytes, rows,
        aims: {
          noZeroPage: rows.every((r) => r.zeroPages === 0),
          transferAtLeast70PercentOfPlain: rows.every((r) => transferAimMet(r.checkpointTransferOfPlain) && transferAimMet(r.restoreTransferOfPlain)),
          freeze256MiBUnder1s: frozenRows.length === 0 ? null : frozenRows.every((r) => r.freezeMs.max < freeze.underMs),
        },
        files,
      };
      writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
      await writeThroughputChart(rows, o.rounds, files.chart);
      return result;
    } finally {
      rmSync(imageFile, { force: true });
      await receiver.close();
    }
  });
}

async function checkpointRound(
  client: ClusterClient, receiver: ClusterClient, workingSetBytes: number, wssPages: number, imageFile: string, say: (what: string) => void,
): Promise<CheckpointBenchRound> {
  await client.runContainer(source, { name: container, program: 'mem-writer', args: { wss: String(workingSetBytes), rate: '0' } });
  const { pagesWritten, memoryCurrent } = await workingSetTouched(client, wssPages, say);

  say(`checkpoint on ${source}`);
  const { result, image: received } = await client.checkpoint(container, { onProgress: (bytes) => say(`checkpoint on ${source}: ${formatSize(bytes)} of the image here`) });
  say(`writing the image to ${imageFile}`);
  writeFileSync(imageFile, received);
  const image = readFileSync(imageFile);
  const decoded = decodeImage(image);
  const zeroPages = countZeroPages(decoded.pages, decoded.header.pageSize);

  const restored = await client.restore(target, image, { onProgress: (bytes, total) => say(`restore on ${target}: ${formatSize(bytes)} of ${formatSize(total)} sent`) })
    .catch((error: unknown) => {
      // h2 refused the image (it takes the digest again and refuses a mismatch): the round failed, and says why
      if (!(error instanceof SlicelabError)) throw error;
      return { error: `${error.code}: ${error.message}` };
    });
  say(`plain NATS publisher, ${formatSize(image.length)} in ${formatSize(defaultChunkBytes)} chunks`);
  // a subject outside the cluster's tree, so that nothing of slicelab's listens to these bytes
  const plain = await plainPublishRate(client.nc, client.subjects.bench('plain'), image.length, defaultChunkBytes, receiver.nc);
  if (!('error' in restored)) await client.removeContainer(container, true);

  const restore = 'error' in restored ? restored : restoreFigures(restored, image.length, plain);
  return {
    pagesWritten, memoryCurrent,
    pages: decoded.pageNumbers.length, imageBytes: image.length, touchedBytes: result.touchedBytes, imageOverTouched: image.length / result.touchedBytes,
    zeroPages,
    checkpoint: {
      freezeMs: result.frozenMs, ms: result.totalMs, bytesPerSecond: image.length / (result.totalMs / 1000), transfer: result.transfer,
      transferOfPlain: result.transfer.bytesPerSecond / plain.bytesPerSecond, digest: result.digest,
    },
    restore, plain,
    digestsEqual: decoded.header.digest === result.digest && 'digest' in restore && restore.digest === result.digest,
  };
}

function restoreFigures(restored: RestoreResult & { transfer: TransferStats }, imageBytes: number, plain: TransferStats): RestoreFigures {
  const ms = restored.transfer.ms + restored.restoreMs;
  return {
    ms, bytesPerSecond: imageBytes / (ms / 1000), transfer: restored.transfer,
    transferOfPlain: restored.transfer.bytesPerSecond / plain.bytesPerSecond, digest: restored.digest,
  };
}

/** Polls the mem-writer until it has written every page of its working set once. */
async function workingSetTouched(client: ClusterClient, wssPages: number, say: (what: string) => void): Promise<{ pagesWritten: number; memoryCurrent: number }> {
  let last = { pagesWritten: -1, at: performance.now() };
  for (;;) {
    const info = await client.inspect(container);
    const pagesWritten = info.processes[0]?.metrics.pagesWritten ?? 0;
    if (info.state !== 'running') {
      throw new Error(`${container} is ${info.state}${info.exitCode === undefined ? '' : ` (exit ${info.exitCode})`} after writing ${pagesWritten} of ${wssPages} pages`);
    }
    if (pagesWritten >= wssPages) return { pagesWritten, memoryCurrent: info.memoryCurrent };
    if (pagesWritten !== last.pagesWritten) last = { pagesWritten, at: performance.now() };
    if (performance.now() - last.at > stuckMs) throw new Error(`${container} wrote no page for ${stuckMs} ms (${pagesWritten} of ${wssPages})`);
    say(`touching the working set on ${source}: ${pagesWritten} of ${wssPages} pages`);
    await sleep(100);
  }
}

function countZeroPages(pages: Uint8Array, size: number): number {
  const zero = Buffer.alloc(size);
  const view = Buffer.from(pages.buffer, pages.byteOffset, pages.byteLength);
  let count = 0;
  for (let offset = 0; offset < view.length; offset += size) if (view.compare(zero, 0, size, offset, offset + size) === 0) count++;
  return count;
}

function sizeRow(workingSetBytes: number, wssPages: number, rounds: CheckpointBenchRound[]): CheckpointSizeRow {
  const over = (figure: (r: CheckpointBenchRound) => number) => spread(rounds.map(figure));
  const restores = rounds.flatMap((r) => ('error' in r.restore ? [] : [r.restore]));
  const overRestores = (figure: (r: RestoreFigures) => number) => (restores.length === 0 ? null : spread(restores.map(figure)));
  return {
    workingSetBytes, wssPages, rounds,
    freezeMs: over((r) => r.checkpoint.freezeMs),
    imageOverTouched: over((r) => r.imageOverTouched),
    checkpointBytesPerSecond: over((r) => r.checkpoint.bytesPerSecond),
    checkpointTransferBytesPerSecond: over((r) => r.checkpoint.transfer.bytesPerSecond),
    plainBytesPerSecond: over((r) => r.plain.bytesPerSecond),
    checkpointTransferOfPlain: over((r) => r.checkpoint.transferOfPlain),
    restoreBytesPerSecond: overRestores((r) => r.bytesPerSecond),
    restoreTransferBytesPerSecond: overRestores((r) => r.transfer.bytesPerSecond),
    restoreTransferOfPlain: overRestores((r) => r.transferOfPlain),
    zeroPages: rounds.reduce((sum, r) => sum + r.zeroPages, 0),
    digestsEqual: rounds.filter((r) => r.digestsEqual).length,
  };
}

/** Grouped bars: per working set, the five rates in MB/s (median), with every round as a dot. */
async function writeThroughputChart(rows: CheckpointSizeRow[], rounds: number, file: string): Promise<void> {
  const restored = (rate: (r: RestoreFigures) => number) => (r: CheckpointBenchRound) => ('error' in r.restore ? [] : [rate(r.restore)]);
  const measures: Array<[string, (r: CheckpointBenchRound) => number[]]> = [
    ['checkpoint (freeze to image sent)', (r) => [r.checkpoint.bytesPerSecond]],
    ['restore (image sent to running)', restored((r) => r.bytesPerSecond)],
    ['bus, image host→client', (r) => [r.checkpoint.transfer.bytesPerSecond]],
    ['bus, image client→host', restored((r) => r.transfer.bytesPerSecond)],
    ['plain NATS publisher', (r) => [r.plain.bytesPerSecond]],
  ];
  const values = rows.flatMap((row) => row.rounds.flatMap((r, i) => measures.flatMap(([measure, rates]) => rates(r).map((rate) => ({
    size: formatSize(row.workingSetBytes), measure, round: i + 1, rate: rate / 1e6,
  })))));
  const x = { field: 'size', type: 'nominal', sort: null, title: 'working set' } as const;
  const xOffset = { field: 'measure', type: 'nominal', sort: measures.map(([m]) => m) } as const;
  await writeChart({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'slicelab checkpoint and restore: MB/s per working set',
      subtitle: `${formatSize(defaultChunkBytes)} chunks; bars: median of ${rounds} rounds, dots: rounds`,
      anchor: 'start',
    },
    width: 160 * rows.length, height: 260,
    data: { values },
    layer: [
      {
        mark: 'bar',
        encoding: {
          x, xOffset, color: { field: 'measure', type: 'nominal', sort: measures.map(([m]) => m), title: null, legend: { labelLimit: 300 } },
          y: { aggregate: 'median', field: 'rate', type: 'quantitative', title: 'MB/s' },
        },
      },
      { mark: { type: 'point', filled: true, color: 'black' }, encoding: { x, xOffset, y: { field: 'rate', type: 'quantitative' } } },
    ],
  }, file);
}
