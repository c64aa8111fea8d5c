import { Flags } from '@oclif/core';
import { formatDuration, formatRate, formatSize } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { table } from '../../render.js';

/** bytes and packets in one cell, as `ip -s link` pairs them */
const traffic = (bytes: number, packets: number) => `${formatSize(bytes)} (${packets})`;

export default class NetLinks extends BaseCommand {
  static override description = "Every host's uplink (its link model and what it carried) and every nic (its counters and its class in the uplink's shaper); warns when slicelab itself, not the link, held a link back";
  static override examples = ['<%= config.bin %> net links', '<%= config.bin %> net links --host h1 --json'];
  static override flags = { cluster: clusterFlag, host: Flags.string({ description: 'only this host' }) };

  async run() {
    const { flags } = await this.parse(NetLinks);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const { hosts, missing } = await client.netLinks(flags.host);
      this.say(table(['host', 'bandwidth', 'delay', 'jitter', 'loss', 'queue', 'tx', 'rx', 'queue drops', 'loss drops', 'backlog', 'rate'], hosts.map(({ host, uplink: u }) => [
        host, formatRate(u.spec.bandwidth), formatDuration(u.spec.delay), formatDuration(u.spec.jitter), `${u.spec.loss}%`, u.spec.maxQueue,
        traffic(u.txBytes, u.txPackets), traffic(u.rxBytes, u.rxPackets), u.queueDrops, u.lossDrops, u.backlog, formatRate(Math.round(u.rateBps)),
      ])));
      const nics = hosts.flatMap(({ host, nics }) => nics.map((nic) => ({ host, ...nic })));
      if (nics.length > 0) {
        this.say(table(['host', 'container', 'nic', 'ip', 'mac', 'rx', 'tx', 'drops', 'rate', 'ceil', 'weight', 'sent', 'class drops', 'now'], nics.map((n) => [
          n.host, n.container, n.nic, n.ip, n.mac, traffic(n.counters.rxBytes, n.counters.rxPackets), traffic(n.counters.txBytes, n.counters.txPackets),
          n.counters.rxDropped + n.counters.txDropped, formatRate(n.shaping.rate), n.shaping.ceil === null ? 'link' : formatRate(n.shaping.ceil), n.shaping.weight,
          traffic(n.shaping.bytes, n.shaping.packets), n.shaping.drops, formatRate(Math.round(n.shaping.rateBps)),
        ])));
      }
      for (const warning of hosts.flatMap((h) => h.warnings)) this.say(`warning: ${warning}`);
      for (const m of missing) this.note(`host ${m.host} did not answer: ${m.reason}`);
      return { hosts, missing };
    } finally {
      await client.close();
    }
  }
}
