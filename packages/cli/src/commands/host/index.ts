import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Flags } from '@oclif/core';
import { checkName, createLogger, defaultDisk, defaultScheduler, defaultSubnet, errorMessage, loadCredential, maxCores, parseRate, parseSize } from '@slicelab/protocol';
import { runHost } from '@slicelab/host';
import { coresLimit, hostNodeFlags } from '@slicelab/launcher';
import { BaseCommand, unitFlags } from '../../base.js';
import { accessFlags, accessFrom } from '../../config-file.js';

export default class HostCommand extends BaseCommand {
  static override description = 'Run one host that joins an existing bus: the way a cluster spans several machines';
  static override examples = [
    '<%= config.bin %> creds export --role host --host h4 --out h4.creds   # on the machine that ran `up`',
    '<%= config.bin %> host --nats nats://10.0.0.5:4222 --creds h4.creds --cores 4 --memory 2GiB',
  ];
  static override enableJsonFlag = false;
  static override flags = {
    nats: Flags.string({ required: true, description: 'bus URL (comma-separate several servers of one NATS cluster)' }),
    ...accessFlags,
    name: Flags.string({ description: 'host name: lower-case letters, digits and dashes [default: the one the credential names]' }),
    cluster: Flags.string({ description: 'cluster to join [default: the one the credential names, else "default"]' }),
    cores: Flags.integer({ default: 2, min: 1, description: `emulated cores (worker threads), at most ${maxCores}` }),
    memory: unitFlags.size({ default: parseSize('1GiB'), defaultHelp: async () => '1GiB', description: 'memory, e.g. 1GiB' }),
    uplink: unitFlags.rate({ default: parseRate('1gbit'), defaultHelp: async () => '1gbit', description: 'uplink bandwidth, e.g. 1gbit' }),
    scheduler: Flags.string({ options: ['wfq', 'lottery', 'credit'], default: defaultScheduler.policy, description: 'CPU scheduler' }),
    quantum: unitFlags.duration({ default: defaultScheduler.quantumMs, defaultHelp: async () => `${defaultScheduler.quantumMs}ms`, description: 'scheduling quantum, e.g. 10ms' }),
    subnet: Flags.string({ default: defaultSubnet, description: 'the cluster\'s subnet, as its config says (nics lease addresses from it)' }),
    log: Flags.string({ description: 'write the host log (JSON lines) to this file' }),
  };

  async run() {
    const { flags } = await this.parse(HostCommand);
    const access = { ...accessFrom(flags), servers: flags.nats.split(',') };
    let name: string;
    let cluster: string;
    try {
      const credential = loadCredential(access)?.credential;
      const named = credential?.identity.role === 'host' ? credential.identity.host : undefined;
      name = flags.name ?? named ?? '';
      cluster = flags.cluster ?? credential?.cluster ?? 'default';
      if (!name) throw new Error('--name is required (the credential names no host)');
      checkName('--name', name);
      checkName('--cluster', cluster);
      if (flags.cores > maxCores) throw new Error(`--cores ${coresLimit}`);
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
    const log = createLogger('host', flags.log, flags.log ? 'info' : process.env['SLICELAB_LOG_LEVEL'] ?? 'fatal').child({ host: name });
    const exit = await runHost({
      cluster, access, log, launcherPid: parent > 0 ? parent : undefined,
      spec: {
        name, cores: flags.cores, memory: flags.memory, uplink: { bandwidth: flags.uplink, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 },
        scheduler: { ...defaultScheduler, policy: flags.scheduler as 'wfq' | 'lottery' | 'credit', quantumMs: flags.quantum }, disk: { ...defaultDisk },
        subnet: flags.subnet,
      },
      onStarted: (host) => {
        this.log(`host ${name} is on the bus at ${flags.nats}; registering with cluster ${cluster}…`);
        const waiting = setTimeout(() => this.log(`no launcher of cluster ${cluster} answers yet; still trying (without one, hosts are found by discovery)`), 3000);
        void host.joined.then(() => {
          clearTimeout(waiting);
          this.log(`host ${name} joined cluster ${cluster}; Ctrl-C leaves`);
        });
        void host.busLost.then(() => clearTimeout(waiting));
      },
    });
    log.flush();
    if (exit.code !== 0) this.error(exit.code === 3 ? 'the bus is gone; host stopped' : exit.reason ?? 'host stopped', { exit: exit.code });
    this.log(`host ${name} left cluster ${cluster}`);
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
