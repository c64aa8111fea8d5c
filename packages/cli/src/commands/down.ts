import { SlicelabError } from '@slicelab/protocol';
import { findRun, stopRun } from '@slicelab/launcher';
import { BaseCommand } from '../base.js';
import { clusterFlag } from '../config-file.js';
import { count } from '../render.js';

export default class Down extends BaseCommand {
  static override description = 'Stop a cluster: hosts gracefully, then the embedded bus; nothing of it is left running';
  static override flags = { cluster: clusterFlag };

  async run() {
    const { flags } = await this.parse(Down);
    let run;
    try {
      run = findRun(flags.cluster);
    } catch (error) {
      if (error instanceof SlicelabError && error.code === 'ENOTRUNNING') {
        this.say(`${error.message.split(';')[0]}; nothing to stop`);
        return { stopped: false, reason: error.message };
      }
      throw error;
    }
    const result = await stopRun(run);
    const leftovers = result.killed.length > 0 ? ` (killed ${result.killed.length} leftover processes)` : '';
    this.say(`cluster ${run.cluster} stopped: ${count(run.hosts.length, 'host')}${run.nats ? ' and the embedded nats-server' : ''}${leftovers}`);
    return { cluster: run.cluster, stopped: true, hosts: run.hosts.length, killed: result.killed };
  }
}
