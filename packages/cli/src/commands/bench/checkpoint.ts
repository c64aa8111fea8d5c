import { Flags } from '@oclif/core';
import { benchCheckpoint, checkpointAims, checkpointWorkingSet, checkWorkingSet, type Spread } from '@slicelab/bench';
import { SlicelabError, errorMessage, formatSize, parseSize } from '@slicelab/protocol';
import { BaseCommand } from '../../base.js';
import { table } from '../../render.js';

export default class BenchCheckpoint extends BaseCommand {
  static override description = 'A running mem-writer checkpointed to a file and restored on another host: freeze time, image size against touched memory, checkpoint and restore throughput, and the image\'s transfer over the bus against a plain NATS publisher in the same rounds (aims: no zero page in the image, transfer at least 70 % of plain NATS, 256 MiB frozen under 1 s)';
  static override examples = ['<%= config.bin %> bench checkpoint', '<%= config.bin %> bench checkpoint --memory 16MiB,128MiB --rounds 5 --json'];
  static override flags = {
    memory: Flags.string({ default: '64MiB,256MiB', description: `working sets of the mem-writer, comma-separated, each ${formatSize(checkpointWorkingSet.minBytes)} to ${formatSize(checkpointWorkingSet.maxBytes)}` }),
    rounds: Flags.integer({ default: 3, min: 1, max: 100, description: 'rounds per working set' }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart (the image file is deleted at the end)' }),
  };

  async run() {
    const { flags } = await this.parse(BenchCheckpoint);
    const memory = flags.memory.split(',').map((text) => workingSet(text.trim()));
    const r = await benchCheckpoint({ memory, rounds: flags.rounds, outDir: flags.out, onProgress: (l) => this.progress(l) });
    this.progressDone();
    const mbps = (x: number) => `${(x / 1e6).toFixed(0)} MB/s`;
    const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
    const range = (s: Spread | null, f: (x: number) => string) => (s === null ? 'no round restored' : `${f(s.median)} [${f(s.min)}, ${f(s.max)}]`);
    const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
    const { freeze, transferOfPlain } = checkpointAims;
    const transferAim = (s: Spread | null) => `≥ ${pct(transferOfPlain)}: ${met(s !== null && s.median >= transferOfPlain)}`;
    const failures: string[] = [];
    for (const row of r.rows) {
      const size = formatSize(row.workingSetBytes);
      const rounds = row.rounds.length;
      row.rounds.forEach((round, i) => {
        if (!round.digestsEqual) failures.push(`${size} round ${i + 1}: ${'error' in round.restore ? round.restore.error : `restored digest ${round.restore.digest} is not the checkpoint's ${round.checkpoint.digest}`}`);
      });
      this.say(table([`${size} working set: median [min, max] of ${rounds} rounds`, 'value', 'aim'], [
        ['freeze time', range(row.freezeMs, (x) => `${x.toFixed(1)} ms`), row.workingSetBytes === freeze.workingSetBytes ? `< ${freeze.underMs} ms every round: ${met(row.freezeMs.max < freeze.underMs)}` : ''],
        ['image / touched memory', range(row.imageOverTouched, (x) => x.toFixed(4)), ''],
        ['zero pages in the image', row.zeroPages, `none: ${met(row.zeroPages === 0)}`],
        ["restored with the checkpoint's digest", `${row.digestsEqual} of ${rounds} rounds`, row.digestsEqual === rounds ? '' : 'FAILED'],
        ['checkpoint (image / freeze to sent)', range(row.checkpointBytesPerSecond, mbps), ''],
        ['restore (image / sent to running)', range(row.restoreBytesPerSecond, mbps), ''],
        ['bus, image host→client', range(row.checkpointTransferBytesPerSecond, mbps), ''],
        ['  of plain NATS, paired', range(row.checkpointTransferOfPlain, pct), transferAim(row.checkpointTransferOfPlain)],
        ['bus, image client→host', range(row.restoreTransferBytesPerSecond, mbps), ''],
        ['  of plain NATS, paired', range(row.restoreTransferOfPlain, pct), transferAim(row.restoreTransferOfPlain)],
        [`plain NATS publisher, ${formatSize(r.chunkBytes)} chunks`, range(row.plainBytesPerSecond, mbps), ''],
      ]));
    }
    for (const failure of failures) this.say(`FAILED ${failure}`);
    this.say(`wrote ${r.files.json} and ${r.files.chart}`);
    // a round that did not bring the memory back is a failure of slicelab, not a figure: it fails the command
    if (failures.length > 0) {
      const rounds = r.rows.reduce((sum, row) => sum + row.rounds.length, 0);
      process.stderr.write(`slicelab: ${failures.length} of ${rounds} rounds did not restore the checkpointed memory (the first: ${failures[0]})\n`);
      process.exitCode = 1;
    }
    return r;
  }
}

/** One --memory entry, in bytes, through the one units parser. */
function workingSet(text: string): number {
  try {
    const bytes = parseSize(text);
    checkWorkingSet(bytes);
    return bytes;
  } catch (error) {
    throw new SlicelabError('EINVAL', `--memory "${text}": ${errorMessage(error)}`, { cause: error });
  }
}
