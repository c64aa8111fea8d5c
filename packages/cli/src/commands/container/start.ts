import { Args } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class ContainerStart extends BaseCommand {
  static override description = 'Start a stopped container again (its program from the beginning)';
  static override args = { name: Args.string({ required: true, description: 'container' }) };
  static override flags = { cluster: clusterFlag };

  async run() {
    const { args, flags } = await this.parse(ContainerStart);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const info = await client.startContainer(args.name);
      this.say(`container ${info.name} on ${info.host}: ${info.state}${info.exitCode === undefined ? '' : ` (exit ${info.exitCode})`}`);
      return info;
    } finally {
      await client.close();
    }
  }
}
