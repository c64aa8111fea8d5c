import { Args, Flags } from '@oclif/core';
import { SlicelabError, formatDuration, formatRate } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand, unitFlags } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class NetSetLink extends BaseCommand {
  static override description = "Change a host's uplink while it runs, as tc qdisc change would: only what is given changes";
  static override examples = ['<%= config.bin %> net set-link h1 --bandwidth 100mbit --delay 5ms --jitter 1ms', '<%= config.bin %> net set-link h2 --loss 1%'];
  static override args = { host: Args.string({ required: true, description: 'host name' }) };
  static override flags = {
    cluster: clusterFlag,
    bandwidth: unitFlags.rate({ description: 'link rate, as tc writes it: 100mbit, 1gbit' }),
    delay: unitFlags.duration({ description: 'one-way delay: 5ms' }),
    jitter: unitFlags.duration({ description: 'delay jitter, uniform in ±jitter: 1ms' }),
    loss: unitFlags.percent({ description: 'independent loss per frame: 1% (or 1)' }),
    queue: Flags.integer({ min: 1, description: 'frames the queue holds before it drops at the tail' }),
  };

  async run() {
    const { args, flags } = await this.parse(NetSetLink);
    const changes = { bandwidth: flags.bandwidth, delay: flags.delay, jitter: flags.jitter, loss: flags.loss, maxQueue: flags.queue };
    if (Object.values(changes).every((value) => value === undefined)) throw new SlicelabError('EINVAL', 'nothing to change: give --bandwidth, --delay, --jitter, --loss or --queue');
    if (changes.bandwidth === 0) throw new SlicelabError('EINVAL', '--bandwidth must be above 0');
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const { host, uplink } = await client.netSetLink(args.host, changes);
      this.say(`${host} uplink: bandwidth ${formatRate(uplink.bandwidth)}, delay ${formatDuration(uplink.delay)}, jitter ${formatDuration(uplink.jitter)}, loss ${uplink.loss}%, queue ${uplink.maxQueue}`);
      return { host, uplink };
    } finally {
      await client.close();
    }
  }
}
