import { Args } from '@oclif/core';
import { formatDuration } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { table } from '../../render.js';

export default class NetArp extends BaseCommand {
  static override description = "A host's neighbour tables, one per container (ip neigh), and its bridge's forwarding table (bridge fdb)";
  static override examples = ['<%= config.bin %> net arp h1'];
  static override args = { host: Args.string({ required: true, description: 'host name' }) };
  static override flags = { cluster: clusterFlag };

  async run() {
    const { args, flags } = await this.parse(NetArp);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const arp = await client.netArp(args.host);
      this.say(`neighbours on ${arp.host}:`);
      this.say(table(['container', 'ip', 'mac', 'age'], arp.neighbours.map((n) => [n.container, n.ip, n.mac, formatDuration(n.ageMs)])));
      this.say(`forwarding table of ${arp.host}'s bridge:`);
      this.say(table(['mac', 'port', 'age'], arp.fdb.map((e) => [e.mac, e.port, formatDuration(e.ageMs)])));
      return arp;
    } finally {
      await client.close();
    }
  }
}
