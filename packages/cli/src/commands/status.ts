import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../base.js';
import { accessFlags, accessFrom, clusterFlag, natsFlag } from '../config-file.js';
import { count, hostJson, hostsTable } from '../render.js';

export default class Status extends BaseCommand {
  static override description = 'Show every host of a cluster: pid, cores, memory, uplink, state, heartbeat age, load; and the bus';
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --json', '<%= config.bin %> status --nats nats://10.0.0.5:4222 --creds admin.creds'];
  static override flags = { cluster: clusterFlag, nats: natsFlag, ...accessFlags };

  async run() {
    const { flags } = await this.parse(Status);
    const client = await ClusterClient.connect({ cluster: flags.cluster, nats: flags.nats, access: accessFrom(flags) });
    try {
      const hosts = await client.hosts();
      const now = Date.now();
      this.say(hostsTable(hosts, now));
      const up = hosts.filter((h) => h.state === 'up').length;
      this.say(`cluster ${client.cluster}: ${up}/${count(hosts.length, 'host')} up; bus ${client.url}`);
      return { cluster: client.cluster, bus: client.url, hosts: hosts.map((h) => hostJson(h, now)) };
    } finally {
      await client.close();
    }
  }
}
