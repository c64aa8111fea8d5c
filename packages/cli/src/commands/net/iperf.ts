import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand, unitFlags } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class NetIperf extends BaseCommand {
  static override description = 'TCP throughput (or UDP at a bitrate, with jitter and loss) from one container to another, printed as iperf3 prints it; --json gives iperf3 -J\'s fields';
  static override examples = ['<%= config.bin %> net iperf web db', '<%= config.bin %> net iperf web db --duration 5s --parallel 4 --json', '<%= config.bin %> net iperf web db --omit 2s', '<%= config.bin %> net iperf web db --udp --bitrate 50mbit'];
  static override args = {
    client: Args.string({ required: true, description: 'the container that sends' }),
    server: Args.string({ required: true, description: 'the container that receives (a one-off iperf server runs in it)' }),
  };
  static override flags = {
    cluster: clusterFlag,
    duration: unitFlags.duration({ char: 't', default: 10_000, defaultHelp: async () => '10s', description: 'how long to send' }),
    // no default here either: --omit is TCP's only
    omit: unitFlags.duration({ char: 'O', description: 'leave the first seconds (slow start, a filling queue) out of the figures, as iperf3 -O [default: 0s]', exclusive: ['udp'] }),
    parallel: Flags.integer({ char: 'P', default: 1, min: 1, max: 128, description: 'parallel streams' }),
    port: Flags.integer({ char: 'p', default: 5201, min: 1, max: 65535, description: 'the server\'s port' }),
    udp: Flags.boolean({ char: 'u', description: 'UDP at --bitrate instead of TCP: jitter and loss, as iperf3 -u' }),
    // no default here: oclif would count a default as given, and --bitrate needs --udp
    bitrate: unitFlags.rate({ char: 'b', description: 'UDP bitrate, as tc writes rates: 50mbit [default: 1mbit]', dependsOn: ['udp'] }),
  };

  async run() {
    const { args, flags } = await this.parse(NetIperf);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const result = await client.netIperf(args.client, args.server, {
        durationMs: flags.duration, omitMs: flags.omit, parallel: flags.parallel, port: flags.port, json: this.jsonEnabled(), udpBitrate: flags.udp ? flags.bitrate ?? 1e6 : undefined,
        onLine: (line) => this.say(line),
      });
      return result.json ?? result;
    } finally {
      await client.close();
    }
  }
}
