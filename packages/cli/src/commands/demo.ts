import { setTimeout as sleep } from 'node:timers/promises';
import { Flags } from '@oclif/core';
import { Launcher, loadConfig, stopOnSignal } from '@slicelab/launcher';
import { ClusterClient } from '@slicelab/client';
import { measureRoundTrips } from '@slicelab/bench';
import { BaseCommand, unitFlags } from '../base.js';
import { configFlag, defaultConfigFile } from '../config-file.js';
import { count, hostJson, hostsTable, table } from '../render.js';

export default class Demo extends BaseCommand {
  static override description = 'The main job (npm start): bring the default cluster up, show it, measure a round trip to every host over the bus, bring it down';
  static override flags = {
    config: configFlag,
    pings: Flags.integer({ default: 200, min: 1, description: 'round trips per host' }),
    share: unitFlags.duration({ default: 2000, description: 'how long the proportional-share experiment runs, e.g. 2s' }),
  };

  async run() {
    const { flags } = await this.parse(Demo);
    const config = loadConfig(flags.config ?? defaultConfigFile());
    this.say(`bringing up cluster ${config.name}: ${count(config.hosts.length, 'host')}, ${config.nats?.servers ? `bus ${config.nats.servers.join(',')}` : 'embedded nats-server'}`);
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
      const shares = await this.shareExperiment(client, hosts[0]!.name, hosts[0]!.cores, flags.share);
      return { cluster: config.name, bus: launcher.natsUrl, upMs: launcher.timings.total, hosts: hosts.map((h) => hostJson(h)), roundTripsMs: trips, shares };
    } finally {
      await client.close();
      await launcher.stop();
      void interrupted;
      this.say(`cluster ${config.name} is down`);
    }
  }

  /** Two CPU-bound containers at cpu.weight 100 and 300 on one host: the shares they really got. */
  private async shareExperiment(client: ClusterClient, host: string, cores: number, durationMs: number) {
    this.say(`\nproportional share on ${host}: two cpu-burn containers (${cores} processes each) at cpu.weight 100 and 300 for ${durationMs / 1000} s…`);
    const weights = { light: 100, heavy: 300 };
    for (const [name, weight] of Object.entries(weights)) {
      await client.runContainer(host, { name, program: 'cpu-burn', args: { procs: String(cores) }, cgroup: { 'cpu.weight': String(weight) } });
    }
    const usage = async () => Object.fromEntries((await client.containers(host)).map((c) => [c.name, c.cpuUsageMs]));
    await sleep(300);
    const before = await usage();
    await sleep(durationMs);
    const after = await usage();
    for (const name of Object.keys(weights)) await client.removeContainer(name, true);
    const used = Object.fromEntries(Object.keys(weights).map((name) => [name, after[name]! - before[name]!]));
    const total = Object.values(used).reduce((s, x) => s + x, 0);
    const rows = Object.entries(weights).map(([name, weight]) => ({ container: name, weight, cpuMs: used[name]!, share: used[name]! / total, ideal: weight / 400 }));
    this.say(table(['container', 'cpu.weight', 'CPU time', 'share', 'ideal'], rows.map((r) => [r.container, r.weight, `${(r.cpuMs / 1000).toFixed(2)} s`, `${(r.share * 100).toFixed(1)}%`, `${(r.ideal * 100).toFixed(1)}%`])));
    return rows;
  }
}
