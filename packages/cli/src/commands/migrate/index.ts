import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { SlicelabError, formatRate, migrationDefaults, migrationModes, parseRate, timeoutActions, type MigrationStats } from '@slicelab/protocol';
import { BaseCommand, unitFlags } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { migrationProgress, migrationSummary } from '../../render.js';

export default class Migrate extends BaseCommand {
  static override description = 'Live-migrate a running container to another host, as virsh migrate --live does: its pages cross the bus while it runs (precopy), ' +
    'after it runs on the destination (postcopy), or first one then the other (hybrid). The container stays on its host until the destination commits; ' +
    'Ctrl-C cancels before that. Prints QEMU\'s statistics at the end (--json: all of them)';
  static override examples = [
    '<%= config.bin %> migrate web --to h2',
    '<%= config.bin %> migrate web --to h2 --bandwidth 1gbit --downtime-limit 50ms --auto-converge',
    '<%= config.bin %> migrate web --to h2 --mode hybrid --postcopy-after 3',
    '<%= config.bin %> migrate web --to h2 --timeout 30s --on-timeout suspend --json',
  ];
  static override args = { container: Args.string({ required: true, description: 'container to move' }) };
  static override flags = {
    cluster: clusterFlag,
    to: Flags.string({ required: true, description: 'destination host' }),
    mode: Flags.string({ options: [...migrationModes], default: 'precopy', description: 'precopy: rounds while it runs; postcopy: run there first, pull pages on fault; hybrid: precopy, then postcopy' }),
    bandwidth: Flags.custom<number | null>({ parse: async (input) => (input === 'max' ? null : parseRate(input)) })({
      default: migrationDefaults.bandwidth, defaultHelp: async () => `${formatRate(migrationDefaults.bandwidth)} (QEMU's 128 MiB/s)`, description: 'cap on the pages\' rate (precopy rounds and the postcopy push; a page a process faulted on is never held back): 1gbit, 500mbit, or max',
    }),
    'downtime-limit': unitFlags.duration({ default: migrationDefaults.downtimeLimitMs, defaultHelp: async () => `${migrationDefaults.downtimeLimitMs}ms`, description: 'switch over once the rest would go within this' }),
    'max-rounds': Flags.integer({ default: migrationDefaults.maxRounds, min: 1, max: 10_000, description: 'precopy rounds at most (then stop-and-copy, or postcopy in hybrid)' }),
    'auto-converge': Flags.boolean({ default: false, description: 'throttle the container\'s cpu.max while precopy does not converge (20%, then +10%, at most 99%)' }),
    'postcopy-after': Flags.integer({ min: 1, description: 'hybrid: go to postcopy after this many precopy rounds' }),
    timeout: unitFlags.duration({ description: 'what to do if precopy has not switched over by then: see --on-timeout' }),
    'on-timeout': Flags.string({ options: [...timeoutActions], default: 'abort', description: 'abort (the container stays), postcopy (hybrid), suspend (stop and copy whatever the downtime)' }),
  };

  async run() {
    const { args, flags } = await this.parse(Migrate);
    const mode = flags.mode as (typeof migrationModes)[number];
    if (flags['postcopy-after'] !== undefined && mode !== 'hybrid') throw new SlicelabError('EINVAL', '--postcopy-after needs --mode hybrid');
    if (flags['on-timeout'] === 'postcopy' && mode !== 'hybrid') throw new SlicelabError('EINVAL', '--on-timeout postcopy needs --mode hybrid');
    if (flags['on-timeout'] !== 'abort' && flags.timeout === undefined) throw new SlicelabError('EINVAL', `--on-timeout ${flags['on-timeout']} needs --timeout`);
    if (flags.bandwidth === 0) throw new SlicelabError('EINVAL', '--bandwidth must be above 0 (or max for no cap)');
    if (flags['downtime-limit'] <= 0) throw new SlicelabError('EINVAL', '--downtime-limit must be above 0');
    if (flags.timeout !== undefined && flags.timeout <= 0) throw new SlicelabError('EINVAL', '--timeout must be above 0');
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    let started: MigrationStats | undefined;
    const interrupt = () => {
      if (started) void client.cancelMigration(started.id).catch((error: unknown) => this.note(`cannot cancel: ${String((error as Error).message)}`));
    };
    process.on('SIGINT', interrupt);
    try {
      started = await client.migrate(args.container, flags.to, {
        mode, bandwidth: flags.bandwidth, downtimeLimitMs: flags['downtime-limit'], maxRounds: flags['max-rounds'], autoConverge: flags['auto-converge'],
        postcopyAfter: flags['postcopy-after'] ?? null, timeoutMs: flags.timeout ?? null, onTimeout: flags['on-timeout'] as (typeof timeoutActions)[number],
      });
      this.progress(`migration ${started.id} of ${args.container} to ${flags.to} started`);
      const done = await client.waitForMigration(started, (stats) => this.progress(migrationProgress(stats)));
      this.progressDone();
      this.say(migrationSummary(done));
      if (done.status !== 'completed') {
        process.exitCode = 1;
        if (!this.jsonEnabled()) this.note(`migration ${done.status}: ${done.error ?? ''}; ${args.container} runs on ${done.source}`);
      }
      return done;
    } finally {
      process.off('SIGINT', interrupt);
      await client.close();
    }
  }
}
