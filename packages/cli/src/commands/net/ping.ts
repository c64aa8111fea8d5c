import { Args, Flags } from '@oclif/core';
import { SlicelabError } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand, unitFlags } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

/** the container's log keeps its last 200 lines, which ping's lines must fit in */
const maxCount = 150;

export default class NetPing extends BaseCommand {
  static override description = 'ICMP echo from a container to another container (by name or IP), printed as ping prints it';
  static override examples = ['<%= config.bin %> net ping web db', '<%= config.bin %> net ping web 10.0.0.7 --count 10 --interval 200ms --json'];
  static override args = {
    from: Args.string({ required: true, description: 'the container ping runs in' }),
    to: Args.string({ required: true, description: 'a container name or an IPv4 address' }),
  };
  static override flags = {
    cluster: clusterFlag,
    count: Flags.integer({ char: 'c', default: 4, min: 1, max: maxCount, description: 'echo requests to send' }),
    interval: unitFlags.duration({ char: 'i', default: 1000, defaultHelp: async () => '1s', description: 'time between requests' }),
    size: Flags.integer({ char: 's', default: 56, min: 0, max: 1472, description: 'data bytes per request' }),
    wait: unitFlags.duration({ char: 'W', default: 1000, defaultHelp: async () => '1s', description: 'how long to wait for the last replies' }),
  };

  async run() {
    const { args, flags } = await this.parse(NetPing);
    if (flags.interval < 1) throw new SlicelabError('EINVAL', '--interval must be at least 1ms');
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const result = await client.netPing(args.from, args.to, {
        count: flags.count, intervalMs: flags.interval, size: flags.size, waitMs: flags.wait, onLine: (line) => this.say(line),
      });
      if (result.received === 0) process.exitCode = 1;
      return result;
    } finally {
      await client.close();
    }
  }
}
