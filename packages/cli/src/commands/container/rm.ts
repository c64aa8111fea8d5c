import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class ContainerRm extends BaseCommand {
  static override description = 'Remove a container (a running one only with --force)';
  static override args = { name: Args.string({ required: true, description: 'container' }) };
  static override flags = { cluster: clusterFlag, force: Flags.boolean({ char: 'f', description: 'kill it first if it runs' }) };

  async run() {
    const { args, flags } = await this.parse(ContainerRm);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      await client.removeContainer(args.name, flags.force);
      this.say(`container ${args.name} removed`);
      return { name: args.name, removed: true };
    } finally {
      await client.close();
    }
  }
}
