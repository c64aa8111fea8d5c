import { Flags } from '@oclif/core';
import { SlicelabError } from '@slicelab/protocol';
import { Launcher, loadConfig, runDir, startDetached, stopOnSignal } from '@slicelab/launcher';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../base.js';
import { configFlag, defaultConfigFile } from '../config-file.js';
import { count, hostJson, hostsTable } from '../render.js';

export default class Up extends BaseCommand {
  static override description = 'Start a cluster: its bus (an embedded nats-server unless the config names servers), then one process per host';
  static override examples = ['<%= config.bin %> up', '<%= config.bin %> up --detach', '<%= config.bin %> up --config my-cluster.json --json --detach'];
  static override flags = {
    config: configFlag,
    detach: Flags.boolean({ char: 'd', description: 'return once every host has registered; `slicelab down` stops the cluster' }),
  };

  async run() {
    const { flags } = await this.parse(Up);
    const file = flags.config ?? defaultConfigFile();
    const config = loadConfig(file);
    const onProgress = (registered: number, total: number) => this.progress(`starting cluster ${config.name}: ${registered}/${total} hosts registered`);
    try {
      if (flags.detach) {
        const run = await startDetached(file, onProgress);
        this.progressDone();
        const client = await ClusterClient.connect({ cluster: run.cluster });
        const hosts = await client.hosts();
        await client.close();
        this.say(hostsTable(hosts));
        this.say(`cluster ${run.cluster} is up: bus ${run.natsUrl}, run folder ${runDir(run.cluster)}; stop it with: slicelab down`);
        return { cluster: run.cluster, bus: run.natsUrl, runDir: runDir(run.cluster), detached: true, hosts: hosts.map((h) => hostJson(h)) };
      }
      const launcher = await Launcher.start(config, { onProgress });
      this.progressDone();
      const stopped = stopOnSignal(launcher);
      const hosts = launcher.registry.list().hosts;
      if (this.jsonEnabled()) {
        this.logJson({ cluster: config.name, bus: launcher.natsUrl, runDir: runDir(config.name), detached: false, hosts: hosts.map((h) => hostJson(h)) });
      }
      this.say(hostsTable(hosts));
      this.say(`cluster ${config.name} is up: bus ${launcher.natsUrl}, ${count(hosts.length, 'host')} in ${(launcher.timings.total / 1000).toFixed(2)} s; Ctrl-C stops it`);
      const failed = await stopped;
      if (failed) throw new SlicelabError('EUNAVAILABLE', failed);
      this.say(`cluster ${config.name} stopped`);
      return undefined;
    } catch (error) {
      this.progressDone();
      if (error instanceof SlicelabError && error.code === 'EEXIST') {
        this.say(error.message);
        return { cluster: config.name, alreadyRunning: true };
      }
      throw error;
    }
  }
}
