import { Args } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class CgroupGet extends BaseCommand {
  static override description = "Read a container's cgroup files (all, or one), as the kernel prints them";
  static override examples = ['<%= config.bin %> cgroup get web cpu.stat', '<%= config.bin %> cgroup get web --json'];
  static override args = { name: Args.string({ required: true, description: 'container' }), file: Args.string({ description: 'file, e.g. memory.current' }) };
  static override flags = { cluster: clusterFlag };

  async run() {
    const { args, flags } = await this.parse(CgroupGet);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const files = await client.cgroupGet(args.name, args.file);
      if (args.file) this.say(files[args.file]);
      else for (const [file, value] of Object.entries(files)) this.say(value.includes('\n') ? `${file}:\n  ${value.split('\n').join('\n  ')}` : `${file}: ${value}`);
      return { container: args.name, files };
    } finally {
      await client.close();
    }
  }
}
