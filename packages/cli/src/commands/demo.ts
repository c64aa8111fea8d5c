import { Flags } from '@oclif/core';
import { Launcher, loadConfig, stopOnSignal } from '@slicelab/launcher';
import { ClusterClient } from '@slicelab/client';
import { measureRoundTrips } from '@slicelab/bench';
import { BaseCommand } from '../base.js';
import { configFlag, defaultConfigFile } from '../config-file.js';
import { hostJson, hostsTable, table } from '../render.js';

export default class Demo extends BaseCommand {
  static override description = 'The main job (npm start): bring the default cluster up, show it, measure a round trip to every host over the bus, bring it down';
  static override flags = {
    config: configFlag,
    pings: Flags.integer({ default: 200, min: 1, description: 'round trips per host' }),
  };

  async run() {
    const { flags } = await this.parse(Demo);
    const config = loadConfig(flags.config ?? defaultConfigFile());
    this.say(`bringing up cluster ${config.name}: ${config.hosts.length} hosts, ${config.nats ? `bus ${config.nats.servers.join(',')}` : 'embedded nats-server'}`);
    const launcher = await Launcher.start(config, { onProgress: (n, total) => this.progress(`${n}/${total} hosts registered`) });
    this.progressDone();
    const interrupted = stopOnSignal(launcher);
    const client = await ClusterClient.connect({ cluster: config.name });
    try {
      const hosts = await client.hosts();
      this.say(hostsTable(hosts));
      this.say(`up in ${(launcher.timings.total / 1000).toFixed(2)} s on bus ${launcher.natsUrl}`);
      this.say(`\nmeasuring ${flags.pings} request/reply round trips to each host over the bus…`);
      const trips = await measureRoundTrips(client, hosts.map((h) => h.name), flags.pings);
      this.say(table(['host', 'round trips', 'min ms', 'p50 ms', 'p99 ms', 'max ms'], Object.entries(trips).map(([host, s]) => [host, s.n, s.min.toFixed(3), s.p50.toFixed(3), s.p99.toFixed(3), s.max.toFixed(3)])));
      return { cluster: config.name, bus: launcher.natsUrl, upMs: launcher.timings.total, hosts: hosts.map((h) => hostJson(h)), roundTripsMs: trips };
    } finally {
      await client.close();
      await launcher.stop();
      void interrupted;
      this.say(`cluster ${config.name} is down`);
    }
  }
}
