import { Args } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { migrationProgress } from '../../render.js';

export default class MigratePostcopy extends BaseCommand {
  static override description = 'Switch a hybrid migration to postcopy after its current precopy round (QEMU migrate-start-postcopy)';
  static override examples = ['<%= config.bin %> migrate postcopy 4BWL2CQ1V1HIL3WNA7DO2B'];
  static override args = { id: Args.string({ required: true, description: 'migration id (migrate list shows them)' }) };
  static override flags = { cluster: clusterFlag };

  async run() {
    const { args, flags } = await this.parse(MigratePostcopy);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const stats = await client.startPostcopy(args.id);
      this.say(`migration ${stats.id} goes to postcopy after this round; ${migrationProgress(stats)}`);
      return stats;
    } finally {
      await client.close();
    }
  }
}
