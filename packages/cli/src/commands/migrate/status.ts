import { Args } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { SlicelabError } from '@slicelab/protocol';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { migrationProgress, migrationSummary } from '../../render.js';

export default class MigrateStatus extends BaseCommand {
  static override description = "A migration's statistics now, running or ended (virsh domjobinfo); without an id, the cluster's latest";
  static override examples = ['<%= config.bin %> migrate status', '<%= config.bin %> migrate status 4BWL2CQ1V1HIL3WNA7DO2B --json'];
  static override args = { id: Args.string({ description: 'migration id (migrate list shows them)' }) };
  static override flags = { cluster: clusterFlag };

  async run() {
    const { args, flags } = await this.parse(MigrateStatus);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const stats = args.id === undefined ? (await client.migrations()).at(-1) : await client.migrationStatus(args.id);
      if (!stats) throw new SlicelabError('ENOENT', `no migration in cluster "${client.cluster}" yet`);
      if (!['completed', 'failed', 'cancelled'].includes(stats.status)) this.say(migrationProgress(stats));
      this.say(migrationSummary(stats));
      return stats;
    } finally {
      await client.close();
    }
  }
}
