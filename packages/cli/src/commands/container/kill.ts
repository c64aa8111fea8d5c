import { Args } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class ContainerKill extends BaseCommand {
  static override description = 'Kill every process of a container (SIGKILL; like cgroup.kill)';
  static override args = { name: Args.string({ required: true, description: 'container' }) };
  static override flags = { cluster: clusterFlag };

  async run() {
    const { args, flags } = await this.parse(ContainerKill);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const info = await client.killContainer(args.name);
      this.say(`container ${info.name} on ${info.host}: ${info.state}${info.exitCode === undefined ? '' : ` (exit ${info.exitCode})`}`);
      return info;
    } finally {
      await client.close();
    }
  }
}
