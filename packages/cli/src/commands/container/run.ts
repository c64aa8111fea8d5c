import { Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { programNames } from '@slicelab/programs';
import { maxNics } from '@slicelab/protocol';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { argFlag, cgroupWrites, limitFlags, programArgs, resourceFlag, resources } from '../../container-flags.js';

export default class ContainerRun extends BaseCommand {
  static override description = 'Run a program in a new container on a host (namespaces + cgroup + paged memory)';
  static override examples = [
    '<%= config.bin %> container run --host h1 --name web --program cpu-burn --cpu-weight 200',
    '<%= config.bin %> container run --host h2 --name db --program mem-writer --arg wss=64MiB --arg rate=2000 --memory 128MiB --pids-max 50',
    '<%= config.bin %> container run --host h1 --name app --program sleeper --resource db=identifier:fastened:/srv/db --resource tmp=value:unattached:/tmp/cache',
  ];
  static override flags = {
    cluster: clusterFlag,
    host: Flags.string({ required: true, description: 'host to run on' }),
    name: Flags.string({ required: true, description: 'container name, unique in the cluster' }),
    program: Flags.string({ required: true, description: `program: ${programNames().join(', ')}` }),
    hostname: Flags.string({ description: 'hostname inside (uts namespace); default: the container name' }),
    nic: Flags.integer({ default: 1, min: 0, max: maxNics, description: 'nics in its net namespace (eth0, eth1, …), each with an address from the cluster\'s subnet' }),
    arg: argFlag,
    resource: resourceFlag,
    ...limitFlags,
  };

  async run() {
    const { flags } = await this.parse(ContainerRun);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const info = await client.runContainer(flags.host, {
        name: flags.name, program: flags.program, args: programArgs(flags.arg), cgroup: cgroupWrites(flags), hostname: flags.hostname, nics: flags.nic,
        resources: resources(flags.resource),
      });
      const addresses = info.nics.map((nic) => `${nic.name} ${nic.ip}`).join(', ');
      this.say(`container ${info.name} runs ${info.program} on ${info.host} (pid 1 inside, ${info.processes[0]?.gpid ?? '?'} on the host)${addresses ? `; ${addresses}` : ''}`);
      return info;
    } finally {
      await client.close();
    }
  }
}
