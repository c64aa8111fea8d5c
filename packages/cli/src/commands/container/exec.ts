import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';
import { argFlag, programArgs } from '../../container-flags.js';

export default class ContainerExec extends BaseCommand {
  static override description = "Start another process in a running container's namespaces";
  static override args = { name: Args.string({ required: true, description: 'container' }) };
  static override flags = { cluster: clusterFlag, program: Flags.string({ required: true, description: 'program to run' }), arg: argFlag };

  async run() {
    const { args, flags } = await this.parse(ContainerExec);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const process = await client.exec(args.name, flags.program, programArgs(flags.arg));
      this.say(`${flags.program} runs in ${args.name} as pid ${process.pid} (host pid ${process.gpid})`);
      return process;
    } finally {
      await client.close();
    }
  }
}
