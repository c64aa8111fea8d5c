import { Flags } from '@oclif/core';
import { formatSize } from '@slicelab/protocol';
import { benchStartup } from '@slicelab/bench';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

export default class BenchStartup extends BaseCommand {
  static override description = 'Time from up until every host registered, and the resident memory of an idle host process (aims: 32 hosts under 15 s on 2 cores, idle host under 60 MB)';
  static override examples = ['<%= config.bin %> bench startup --hosts 32', '<%= config.bin %> bench startup --hosts 3 --json'];
  static override flags = {
    hosts: Flags.integer({ default: 3, min: 1, max: 256, description: 'hosts to start' }),
    idle: unitFlags.duration({ default: 5000, description: 'idle time before host memory is read, e.g. 5s' }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart' }),
  };

  async run() {
    const { flags } = await this.parse(BenchStartup);
    const result = await benchStartup({ hosts: flags.hosts, idleMs: flags.idle, outDir: flags.out, onProgress: (line) => this.progress(line) });
    this.progressDone();
    const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
    const aim = (ok: boolean | null) => (ok === null ? 'n/a (aim is for 32 hosts)' : ok ? 'met' : 'MISSED');
    this.say(table(['measure', 'value', 'aim'], [
      ['hosts', result.hosts, ''],
      ['bus ready', `${result.busMs.toFixed(0)} ms`, ''],
      ['all hosts registered', `${result.allRegisteredMs.toFixed(0)} ms`, `< 15 s at 32 hosts: ${aim(result.aims.allRegisteredUnder15sAt32)}`],
      ['host registered p50 / max', `${result.registeredMs.p50.toFixed(0)} / ${result.registeredMs.max.toFixed(0)} ms`, ''],
      ['idle host RSS mean', mb(result.idleRssBytes.mean), ''],
      ['idle host RSS max', `${mb(result.idleRssBytes.max)} (${formatSize(result.idleRssBytes.max)})`, `< 60 MB: ${aim(result.aims.idleHostUnder60MB)}`],
    ]));
    this.say(`wrote ${result.files.json} and ${result.files.chart}`);
    return result;
  }
}
