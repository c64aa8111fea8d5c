/** `container stop|start|kill NAME`: one command shape, three operations of the client. */
import { Args } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from './base.js';
import { clusterFlag } from './config-file.js';

export function lifecycleCommand(op: 'stop' | 'start' | 'kill', description: string): typeof BaseCommand {
  return class extends BaseCommand {
    static override description = description;
    static override args = { name: Args.string({ required: true, description: 'container' }) };
    static override flags = { cluster: clusterFlag };

    async run() {
      const { args, flags } = await this.parse();
      const client = await ClusterClient.connect({ cluster: flags['cluster'] as string | undefined });
      try {
        const info = await client[`${op}Container`](args['name'] as string);
        this.say(`container ${info.name} on ${info.host}: ${info.state}${info.exitCode === undefined ? '' : ` (exit ${info.exitCode})`}`);
        return info;
      } finally {
        await client.close();
      }
    }
  };
}
