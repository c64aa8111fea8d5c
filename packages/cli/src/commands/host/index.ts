import { Flags } from '@oclif/core';
import { createLogger, defaultDisk, defaultScheduler, namePattern, parseRate, parseSize } from '@slicelab/protocol';
import { runHost } from '@slicelab/host';
import { BaseCommand, unitFlags } from '../../base.js';

export default class HostCommand extends BaseCommand {
  static override description = 'Run one host that joins an existing bus: the way a cluster spans several machines';
  static override examples = ['<%= config.bin %> host --nats nats://10.0.0.5:4222 --name h4 --cpus 4 --memory 2GiB'];
  static override enableJsonFlag = false;
  static override flags = {
    nats: Flags.string({ required: true, description: 'bus URL (comma-separate several servers of one NATS cluster)' }),
    name: Flags.string({ required: true, description: 'host name: lower-case letters, digits and dashes' }),
    cluster: Flags.string({ default: 'default', description: 'cluster to join' }),
    cpus: Flags.integer({ default: 2, min: 1, max: 1024, description: 'emulated cores' }),
    memory: unitFlags.size({ default: parseSize('1GiB'), description: 'memory, e.g. 1GiB' }),
    uplink: unitFlags.rate({ default: parseRate('1gbit'), description: 'uplink bandwidth, e.g. 1gbit' }),
    scheduler: Flags.string({ options: ['wfq', 'lottery', 'credit'], default: defaultScheduler.policy, description: 'CPU scheduler' }),
    quantum: unitFlags.duration({ default: defaultScheduler.quantumMs, description: 'scheduling quantum, e.g. 10ms' }),
    log: Flags.string({ description: 'write the host log to this file instead of stderr' }),
  };

  async run() {
    const { flags } = await this.parse(HostCommand);
    for (const [what, name] of [['--name', flags.name], ['--cluster', flags.cluster]] as const) {
      if (!namePattern.test(name)) this.error(`${what} "${name}" must be lower-case letters, digits and dashes, starting with a letter`);
    }
    const log = createLogger('host', flags.log, flags.log ? 'info' : 'warn').child({ host: flags.name });
    const code = await runHost({
      cluster: flags.cluster, nats: flags.nats, log,
      spec: {
        name: flags.name, cores: flags.cpus, memory: flags.memory, uplink: { bandwidth: flags.uplink, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 },
        scheduler: { ...defaultScheduler, policy: flags.scheduler as 'wfq' | 'lottery' | 'credit', quantumMs: flags.quantum }, disk: { ...defaultDisk },
      },
      onStarted: () => this.log(`host ${flags.name} joined cluster ${flags.cluster} on ${flags.nats}; Ctrl-C leaves`),
    });
    log.flush();
    if (code === 1) this.error(`cannot join the bus at ${flags.nats}`, { exit: 1 });
    if (code !== 0) this.error(code === 3 ? 'the bus is gone; host stopped' : 'host stopped', { exit: code });
    this.log(`host ${flags.name} left cluster ${flags.cluster}`);
  }
}
