import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { schedulerText } from '../../render.js';

export default class SetScheduler extends BaseCommand {
  static override description = "Switch a host's CPU scheduler while it runs: wfq, lottery or credit";
  static override examples = ['<%= config.bin %> host set-scheduler h1 lottery --seed 7'];
  static override args = {
    host: Args.string({ required: true, description: 'host name' }),
    policy: Args.string({ required: true, options: ['wfq', 'lottery', 'credit'], description: 'scheduler' }),
  };
  static override flags = { cluster: clusterFlag, seed: Flags.integer({ min: 0, description: 'seed of the lottery draws' }) };

  async run() {
    const { args, flags } = await this.parse(SetScheduler);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const status = await client.setScheduler(args.host, args.policy, flags.seed);
      this.say(`host ${args.host} now schedules with ${schedulerText(status.scheduler)}`);
      return { host: args.host, policy: status.policy, scheduler: status.scheduler };
    } finally {
      await client.close();
    }
  }
}
