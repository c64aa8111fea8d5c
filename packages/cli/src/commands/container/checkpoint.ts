import { writeFileSync, renameSync } from 'node:fs';
import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { formatSize } from '@slicelab/protocol';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class ContainerCheckpoint extends BaseCommand {
  static override description = "Write a running container's image to a file, as criu dump and docker checkpoint create do: it is frozen, its image (registers, memory pages, cgroup counters, rootfs, logs) comes over the bus, then the container ends and its name is free, unless --leave-running";
  static override examples = [
    '<%= config.bin %> container checkpoint web --out web.img',
    '<%= config.bin %> container checkpoint web --out web.img --leave-running',
  ];
  static override args = { name: Args.string({ required: true, description: 'container' }) };
  static override flags = {
    cluster: clusterFlag,
    out: Flags.string({ description: 'image file to write [default: NAME.img]' }),
    'leave-running': Flags.boolean({ default: false, description: 'keep the container running after the checkpoint (how a clone is made)' }),
  };

  async run() {
    const { args, flags } = await this.parse(ContainerCheckpoint);
    const out = flags.out ?? `${args.name}.img`;
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const { result, image } = await client.checkpoint(args.name, {
        leaveRunning: flags['leave-running'], onProgress: (bytes) => this.progress(`receiving the image: ${formatSize(bytes)}`),
      });
      this.progressDone();
      // written whole or not at all: a half-written image must not pass for one
      writeFileSync(`${out}.part`, image);
      renameSync(`${out}.part`, out);
      this.say(`checkpointed ${result.name} on ${result.host} to ${out}: ${result.pages} pages, ${formatSize(result.imageBytes)} ` +
        `(memory ${formatSize(result.touchedBytes)}), frozen ${result.frozenMs.toFixed(1)} ms, ${result.totalMs.toFixed(0)} ms in all; ` +
        `${result.leftRunning ? 'it runs on' : 'it has ended and its name is free'}`);
      this.say(`memory digest ${result.digest}`);
      return { ...result, file: out };
    } finally {
      await client.close();
    }
  }
}
