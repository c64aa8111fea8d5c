import { Flags } from '@oclif/core';
import { SlicelabError, checkName } from '@slicelab/protocol';
import { ClusterAuth, findRun, runDir } from '@slicelab/launcher';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class CredsExport extends BaseCommand {
  static override description = "Write a credential of a running cluster to hand to another machine: a standard NATS .creds file (mode 0600) whose permissions the cluster's nats-server enforces";
  static override examples = [
    '<%= config.bin %> creds export --role host --host h4 --out h4.creds',
    '<%= config.bin %> creds export --role admin --out admin.creds',
  ];
  static override flags = {
    cluster: clusterFlag,
    role: Flags.string({ options: ['host', 'admin'], default: 'host', description: 'host: may be one host and nothing else; admin: may drive the whole cluster' }),
    host: Flags.string({ description: 'the host the credential is for (with --role host)' }),
    out: Flags.string({ required: true, description: 'file to write' }),
  };

  async run() {
    const { flags } = await this.parse(CredsExport);
    const run = findRun(flags.cluster);
    const dir = join(runDir(run.cluster), 'auth');
    if (!run.nats || !existsSync(join(dir, 'keys.json'))) {
      throw new SlicelabError('EINVAL', `cluster "${run.cluster}" joined existing NATS servers; their credentials come from whoever runs them`);
    }
    if (flags.role === 'host') {
      if (!flags.host) throw new SlicelabError('EINVAL', '--host is required with --role host: a host credential lets one host speak, as itself');
      checkName('--host', flags.host);
    } else if (flags.host) {
      throw new SlicelabError('EINVAL', '--host goes with --role host only');
    }
    const who = flags.role === 'host' ? { role: 'host' as const, host: flags.host! } : { role: 'admin' as const };
    const file = await ClusterAuth.open(dir, run.cluster).writeCredential(who, resolve(flags.out));
    const what = who.role === 'host' ? `host ${who.host}` : 'an admin';
    this.say(`wrote a credential for ${what} of cluster ${run.cluster} to ${file} (mode 0600)`);
    this.say(who.role === 'host'
      ? `on the other machine: slicelab host --nats ${run.natsUrl} --creds ${flags.out}`
      : `use it with: slicelab status --nats ${run.natsUrl} --creds ${flags.out}`);
    return { cluster: run.cluster, role: who.role, host: who.role === 'host' ? who.host : undefined, file, nats: run.natsUrl };
  }
}
