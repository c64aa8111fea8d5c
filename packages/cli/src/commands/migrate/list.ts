import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { migrationsTable } from '../../render.js';

export default class MigrateList extends BaseCommand {
  static override description = 'Recent migrations in the cluster, from every host that answers, oldest first';
  static override flags = { cluster: clusterFlag };

  async run() {
    const { flags } = await this.parse(MigrateList);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const migrations = await client.migrations();
      this.say(migrations.length === 0 ? 'no migrations yet' : migrationsTable(migrations));
      return { migrations };
    } finally {
      await client.close();
    }
  }
}
