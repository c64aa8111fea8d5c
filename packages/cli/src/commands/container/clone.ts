import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { formatSize } from '@slicelab/protocol';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class ContainerClone extends BaseCommand {
  static override description = 'Copy a running container to a host under a new name: a checkpoint that leaves it running, the image sent host to host over the bus, and a restore; both run on, independently';
  static override examples = ['<%= config.bin %> container clone web --to h2 --name web2'];
  static override args = { name: Args.string({ required: true, description: 'container to copy' }) };
  static override flags = {
    cluster: clusterFlag,
    to: Flags.string({ required: true, description: 'host the copy runs on' }),
    name: Flags.string({ required: true, description: 'name of the copy' }),
  };

  async run() {
    const { args, flags } = await this.parse(ContainerClone);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const { checkpoint, restore } = await client.clone(args.name, flags.to, flags.name);
      this.say(`cloned ${checkpoint.name} (${checkpoint.host}) to ${restore.info.name} on ${restore.info.host}: ${checkpoint.pages} pages, ` +
        `${formatSize(checkpoint.imageBytes)}, ${checkpoint.name} was frozen ${checkpoint.frozenMs.toFixed(1)} ms`);
      this.say(`memory digest ${restore.digest} (equal on both sides)`);
      return { checkpoint, restore };
    } finally {
      await client.close();
    }
  }
}
