import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Flags } from '@oclif/core';
import { checkName, createLogger, defaultDisk, defaultScheduler, errorMessage, parseRate, parseSize } from '@slicelab/protocol';
import { runHost } from '@slicelab/host';
import { hostNodeFlags } from '@slicelab/launcher';
import { BaseCommand, unitFlags } from '../../base.js';

export default class HostCommand extends BaseCommand {
  static override description = 'Run one host that joins an existing bus: the way a cluster spans several machines';
  static override examples = ['<%= config.bin %> host --nats nats://10.0.0.5:4222 --name h4 --cores 4 --memory 2GiB'];
  static override enableJsonFlag = false;
  static override flags = {
    nats: Flags.string({ required: true, description: 'bus URL (comma-separate several servers of one NATS cluster)' }),
    name: Flags.string({ required: true, description: 'host name: lower-case letters, digits and dashes' }),
    cluster: Flags.string({ default: 'default', description: 'cluster to join' }),
    cores: Flags.integer({ default: 2, min: 1, max: 1024, description: 'emulated cores (worker threads)' }),
    memory: unitFlags.size({ default: parseSize('1GiB'), defaultHelp: async () => '1GiB', description: 'memory, e.g. 1GiB' }),
    uplink: unitFlags.rate({ default: parseRate('1gbit'), defaultHelp: async () => '1gbit', description: 'uplink bandwidth, e.g. 1gbit' }),
    scheduler: Flags.string({ options: ['wfq', 'lottery', 'credit'], default: defaultScheduler.policy, description: 'CPU scheduler' }),
    quantum: unitFlags.duration({ default: defaultScheduler.quantumMs, defaultHelp: async () => `${defaultScheduler.quantumMs}ms`, description: 'scheduling quantum, e.g. 10ms' }),
    log: Flags.string({ description: 'write the host log (JSON lines) to this file' }),
  };

  async run() {
    const { flags } = await this.parse(HostCommand);
    try {
      checkName('--name', flags.name);
      checkName('--cluster', flags.cluster);
    } catch (error) {
      // a usage error, exit 2, as oclif's own flag checks
      this.error(errorMessage(error));
    }
    if (!hostNodeFlags.every((flag) => process.execArgv.includes(flag))) {
      // a host process runs with the host's node flags, which only the command line can give
      process.exitCode = await runAgainWithHostFlags();
      return;
    }
    const parent = Number(process.env[parentVariable]);
    // without --log the terminal gets this command's own lines, one per problem (SLICELAB_LOG_LEVEL adds the log's)
    const log = createLogger('host', flags.log, flags.log ? 'info' : process.env['SLICELAB_LOG_LEVEL'] ?? 'fatal').child({ host: flags.name });
    const code = await runHost({
      cluster: flags.cluster, nats: flags.nats, log, launcherPid: parent > 0 ? parent : undefined,
      spec: {
        name: flags.name, cores: flags.cores, memory: flags.memory, uplink: { bandwidth: flags.uplink, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 },
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

/** set in the command run again: the host stops by itself when the process that ran it is gone */
const parentVariable = 'SLICELAB_HOST_PARENT';

/** Runs this same command line again under the host's node flags, passing signals on; resolves with its exit code. */
function runAgainWithHostFlags(): Promise<number> {
  const child = spawn(process.execPath, [...hostNodeFlags, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit', env: { ...process.env, [parentVariable]: String(process.pid) },
  });
  const pass = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', pass).on('SIGTERM', pass);
  return new Promise((resolve) => {
    child.once('error', (error) => {
      process.stderr.write(`slicelab: cannot start the host process: ${error.message}\n`);
      resolve(1);
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', pass).off('SIGTERM', pass);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}
