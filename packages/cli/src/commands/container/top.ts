import { setTimeout as sleep } from 'node:timers/promises';
import { Flags } from '@oclif/core';
import { SlicelabError, formatDuration } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand, unitFlags } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { memoryText } from '../../container-flags.js';
import { table } from '../../render.js';

const minIntervalMs = 100;

export default class ContainerTop extends BaseCommand {
  static override description = 'Live CPU %, memory and pids of every container (like docker stats); CPU % above 100 means several cores';
  static override flags = {
    cluster: clusterFlag,
    host: Flags.string({ description: 'only this host' }),
    once: Flags.boolean({ description: 'print once and exit' }),
    interval: unitFlags.duration({ default: 1000, defaultHelp: async () => '1s', description: 'refresh interval, e.g. 1s' }),
  };

  async run() {
    const { flags } = await this.parse(ContainerTop);
    // a refresh faster than this only redraws the same numbers and loads the hosts
    if (flags.interval < minIntervalMs) throw new SlicelabError('EINVAL', `--interval must be at least ${minIntervalMs}ms (got ${formatDuration(flags.interval)})`);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      for (;;) {
        const { containers: all, missing } = await client.survey(flags.host);
        for (const m of missing) this.note(`host ${m.host} did not answer: ${m.reason}`);
        const containers = all.filter((c) => c.state === 'running');
        const rows = containers.map((c) => ({ name: c.name, host: c.host, cpuPercent: c.cpuPercent, memoryCurrent: c.memoryCurrent, memoryMax: c.memoryMax, pids: c.pids, pidsMax: c.pidsMax }));
        if (flags.once || this.jsonEnabled()) {
          this.say(this.render(rows));
          return { containers: rows };
        }
        // a terminal is redrawn in place; a pipe or file gets one table after another
        const clear = process.stdout.isTTY ? '\x1b[2J\x1b[H' : '';
        process.stdout.write(`${clear}${this.render(rows)}\n(every ${flags.interval} ms; Ctrl-C quits)\n`);
        await sleep(flags.interval);
      }
    } finally {
      await client.close();
    }
  }

  private render(rows: Array<{ name: string; host: string; cpuPercent: number; memoryCurrent: number; memoryMax: number | null; pids: number; pidsMax: number | null }>): string {
    return table(['container', 'host', 'cpu %', 'memory', 'pids'], rows.map((r) => [
      r.name, r.host, r.cpuPercent.toFixed(1), memoryText(r.memoryCurrent, r.memoryMax), `${r.pids} / ${r.pidsMax ?? 'max'}`,
    ]));
  }
}
