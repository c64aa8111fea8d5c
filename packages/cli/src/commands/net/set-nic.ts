import { Args, Flags } from '@oclif/core';
import { SlicelabError, formatRate } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand, unitFlags } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class NetSetNic extends BaseCommand {
  static override description = "Change a container nic's class in its host's uplink shaper (HTB): rate guaranteed, ceil at most, weight of the spare bandwidth; only what is given changes";
  static override examples = ['<%= config.bin %> net set-nic web --rate 10mbit --ceil 50mbit', '<%= config.bin %> net set-nic db --weight 300'];
  static override args = { container: Args.string({ required: true, description: 'container' }) };
  static override flags = {
    cluster: clusterFlag,
    nic: Flags.string({ default: 'eth0', description: 'which of its nics' }),
    rate: unitFlags.rate({ description: 'guaranteed rate, as tc writes it: 10mbit' }),
    ceil: unitFlags.rate({ description: 'the most it may borrow up to, at least the rate: 100mbit' }),
    weight: Flags.integer({ min: 1, max: 10_000, description: 'its share of the spare bandwidth against the other nics\' (1..10000)' }),
  };

  async run() {
    const { args, flags } = await this.parse(NetSetNic);
    if (flags.rate === undefined && flags.ceil === undefined && flags.weight === undefined) throw new SlicelabError('EINVAL', 'nothing to change: give --rate, --ceil or --weight');
    if (flags.ceil === 0) throw new SlicelabError('EINVAL', '--ceil must be above 0');
    if (flags.rate !== undefined && flags.ceil !== undefined && flags.ceil < flags.rate) {
      throw new SlicelabError('EINVAL', `--ceil ${formatRate(flags.ceil)} is below --rate ${formatRate(flags.rate)}`);
    }
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const nic = await client.netSetNic(args.container, { nic: flags.nic, rate: flags.rate, ceil: flags.ceil, weight: flags.weight });
      this.say(`${nic.container} ${nic.nic} (${nic.ip} on ${nic.host}): rate ${formatRate(nic.rate)}, ceil ${nic.ceil === null ? "the link's" : formatRate(nic.ceil)}, weight ${nic.weight}`);
      return nic;
    } finally {
      await client.close();
    }
  }
}
