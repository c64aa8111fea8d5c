import { Args, Flags } from '@oclif/core';
import { printable } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class ContainerLogs extends BaseCommand {
  static override description = "Print a container's log: what its processes logged, crashes and OOM kills included (the last 200 lines)";
  static override examples = ['<%= config.bin %> container exec web --program fs --arg op=read --arg path=/etc/hostname && <%= config.bin %> container logs web --tail 1'];
  static override args = { name: Args.string({ required: true, description: 'container' }) };
  static override flags = { cluster: clusterFlag, tail: Flags.integer({ min: 1, description: 'only the last N lines' }) };

  async run() {
    const { args, flags } = await this.parse(ContainerLogs);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const lines = await client.logs(args.name);
      const shown = flags.tail ? lines.slice(-flags.tail) : lines;
      // each line of the log is one line here, whatever a program wrote into it
      for (const line of shown) this.say(printable(line));
      return { name: args.name, lines: shown };
    } finally {
      await client.close();
    }
  }
}
