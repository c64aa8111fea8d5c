import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { memoryText } from '../../container-flags.js';

export default class ContainerInspect extends BaseCommand {
  static override description = 'Show a container: host, state, limits, processes; with --digest the digest of its touched memory, to check a restore or a clone against';
  static override examples = ['<%= config.bin %> container inspect web --digest'];
  static override args = { name: Args.string({ required: true, description: 'container' }) };
  static override flags = { cluster: clusterFlag, digest: Flags.boolean({ default: false, description: 'digest of the touched memory pages (sha256)' }) };

  async run() {
    const { args, flags } = await this.parse(ContainerInspect);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const info = await client.inspect(args.name, { digest: flags.digest });
      this.say(`${info.name} on ${info.host}: ${info.state}${info.frozen ? ' (frozen)' : ''}, ${info.program}, hostname ${info.hostname}`);
      this.say(`memory ${memoryText(info.memoryCurrent, info.memoryMax)}, pids ${info.pids}/${info.pidsMax ?? 'max'}, cpu.weight ${info.cpuWeight}, uid_map ${info.uidMap}`);
      for (const p of info.processes) this.say(`  pid ${p.pid} (host ${p.gpid}) ${p.program} ${p.state} ${JSON.stringify(p.metrics)}`);
      for (const r of info.resources) this.say(`  resource ${r.name}: ${r.value} on ${r.location} (by ${r.binding}, ${r.attachment})`);
      if (info.migrating) this.say(`being migrated (migration ${info.migrating})`);
      if (info.digest !== undefined) this.say(`memory digest ${info.digest} (${info.pages} pages)`);
      return info;
    } finally {
      await client.close();
    }
  }
}
