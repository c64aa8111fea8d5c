import { Args } from '@oclif/core';
import { SlicelabError } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class CgroupSet extends BaseCommand {
  static override description = "Write a container's cgroup file while it runs; bad values are refused with the kernel's error (ERANGE, EINVAL)";
  static override examples = ['<%= config.bin %> cgroup set web cpu.weight=300', '<%= config.bin %> cgroup set web "cpu.max=50000 100000"'];
  static override args = { name: Args.string({ required: true, description: 'container' }), assignment: Args.string({ required: true, description: 'FILE=VALUE' }) };
  static override flags = { cluster: clusterFlag };
  static override errnoInText = true;

  async run() {
    const { args, flags } = await this.parse(CgroupSet);
    const eq = args.assignment.indexOf('=');
    if (eq <= 0) throw new SlicelabError('EINVAL', `"${args.assignment}" is not FILE=VALUE`);
    const file = args.assignment.slice(0, eq);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const now = await client.cgroupSet(args.name, file, args.assignment.slice(eq + 1));
      this.say(`${args.name} ${file}: ${now}`);
      return { container: args.name, file, value: now };
    } finally {
      await client.close();
    }
  }
}
