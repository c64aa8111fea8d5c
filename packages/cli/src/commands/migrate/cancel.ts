import { Args } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { migrationSummary } from '../../render.js';

export default class MigrateCancel extends BaseCommand {
  static override description = 'Cancel a migration before it commits (QEMU migrate_cancel): the container runs on where it was, as it was. A postcopy migration that has committed cannot be cancelled';
  static override examples = ['<%= config.bin %> migrate cancel 4BWL2CQ1V1HIL3WNA7DO2B'];
  static override args = { id: Args.string({ required: true, description: 'migration id (migrate list shows them)' }) };
  static override flags = { cluster: clusterFlag };

  async run() {
    const { args, flags } = await this.parse(MigrateCancel);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const cancelling = await client.cancelMigration(args.id);
      const done = await client.waitForMigration(cancelling);
      this.say(migrationSummary(done));
      return done;
    } finally {
      await client.close();
    }
  }
}
