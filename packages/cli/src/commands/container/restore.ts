import { readFileSync } from 'node:fs';
import { Args, Flags } from '@oclif/core';
import { ClusterClient } from '@slicelab/client';
import { SlicelabError, errorMessage, formatSize } from '@slicelab/protocol';
import { BaseCommand } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class ContainerRestore extends BaseCommand {
  static override description = 'Bring a container back from its image on a host, as criu restore and docker start --checkpoint do: it resumes where it stopped (registers, pids, memory, counters, the time left on each sleep, its own clock)';
  static override examples = ['<%= config.bin %> container restore web.img --host h2', '<%= config.bin %> container restore web.img --host h3 --name web2'];
  static override args = { file: Args.string({ required: true, description: 'image file (from container checkpoint)' }) };
  static override flags = {
    cluster: clusterFlag,
    host: Flags.string({ required: true, description: 'host to restore on' }),
    name: Flags.string({ description: 'name of the restored container [default: the name in the image]' }),
  };

  async run() {
    const { args, flags } = await this.parse(ContainerRestore);
    let image: Uint8Array;
    try {
      image = readFileSync(args.file);
    } catch (error) {
      throw new SlicelabError('ENOENT', `cannot read ${args.file}: ${errorMessage(error).replace(/^[A-Z]+: /, '')}`);
    }
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    try {
      const result = await client.restore(flags.host, image, { name: flags.name, onProgress: (bytes, total) => this.progress(`sending the image: ${formatSize(bytes)} of ${formatSize(total)}`) });
      this.progressDone();
      this.say(`restored ${result.info.name} on ${result.info.host} from ${args.file} (checkpointed on ${result.sourceHost}): ${result.pages} pages, ` +
        `${formatSize(result.imageBytes)} sent in ${result.transfer.ms.toFixed(0)} ms, restored in ${result.restoreMs.toFixed(1)} ms`);
      this.say(`memory digest ${result.digest} (equal on both sides)`);
      return result;
    } finally {
      await client.close();
    }
  }
}
