import { Flags } from '@oclif/core';
import { formatDuration } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { memoryText } from '../../container-flags.js';
import { table } from '../../render.js';

export default class ContainerPs extends BaseCommand {
  static override description = 'List containers and their processes (pids inside the container and on the host)';
  static override flags = { cluster: clusterFlag, host: Flags.string({ description: 'only this host' }), all: Flags.boolean({ char: 'a', description: 'show processes too' }) };

  async run() {
    const { flags } = await this.parse(ContainerPs);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const { containers, unknown, missing } = await client.survey(flags.host);
      this.say(table(['container', 'host', 'ip', 'program', 'state', 'pids', 'cpu', 'memory', 'weight'], [
        ...containers.map((c) => [
          c.name, c.host, c.nics.map((nic) => nic.ip).join(',') || '-', c.program, c.exitCode !== undefined ? `${c.state} (${c.exitCode})` : c.frozen ? `${c.state} (frozen)` : c.state, c.pids,
          formatDuration(c.cpuUsageMs), memoryText(c.memoryCurrent, c.memoryMax), c.cpuWeight,
        ]),
        ...unknown.map((u) => [u.name, u.host, '?', '?', `unknown (${u.reason})`, '?', '?', '?', '?']),
      ]));
      for (const m of missing) this.note(`host ${m.host} did not answer: ${m.reason}`);
      if (flags.all) {
        for (const c of containers) {
          this.say(`\n${c.name} on ${c.host}:`);
          this.say(table(['pid', 'host pid', 'ppid', 'uid', 'host uid', 'program', 'state', 'cpu'], c.processes.map((p) => [
            p.pid, p.gpid, p.ppid, p.uid, p.hostUid, p.program, p.state, formatDuration(p.cpuMs),
          ])));
        }
      }
      return { containers, unknown, missing };
    } finally {
      await client.close();
    }
  }
}
