import { renameSync, writeFileSync } from 'node:fs';
import { Args, Flags } from '@oclif/core';
import { SlicelabError, formatDuration, formatSize, maxCaptureFrames, maxCaptureMs } from '@slicelab/protocol';
import { ClusterClient } from '@slicelab/client';
import { BaseCommand, unitFlags } from '../../base.js';
import { clusterFlag } from '../../config-file.js';

export default class NetCapture extends BaseCommand {
  static override description = "Capture frames to a pcap file that tcpdump and Wireshark open, as tcpdump -w does: a container's nics both ways, or everything crossing a host's bridge";
  static override examples = ['<%= config.bin %> net capture web --duration 5s --out web.pcap', '<%= config.bin %> net capture h1 --count 100 --out h1.pcap'];
  static override args = { target: Args.string({ required: true, description: 'a container, or a host (when no container has the name)' }) };
  static override flags = {
    cluster: clusterFlag,
    duration: unitFlags.duration({ default: 5000, defaultHelp: async () => '5s', description: `how long to capture (at most ${formatDuration(maxCaptureMs)})` }),
    out: Flags.string({ required: true, description: 'pcap file to write' }),
    count: Flags.integer({ char: 'c', min: 1, max: maxCaptureFrames, description: 'stop after this many frames, as tcpdump -c' }),
  };

  async run() {
    const { args, flags } = await this.parse(NetCapture);
    if (!(flags.duration > 0 && flags.duration <= maxCaptureMs)) throw new SlicelabError('EINVAL', `--duration must be above 0 and at most ${formatDuration(maxCaptureMs)}`);
    const client = await ClusterClient.connect({ cluster: flags.cluster });
    const began = Date.now();
    try {
      const { result, pcap } = await client.netCapture(args.target, {
        durationMs: flags.duration, count: flags.count,
        onProgress: (bytes) => this.progress(bytes > 0
          ? `receiving the capture: ${formatSize(bytes)}`
          : `capturing on ${args.target}: ${formatDuration(Math.min(Date.now() - began, flags.duration))} of ${formatDuration(flags.duration)}`),
      });
      this.progressDone();
      // written whole or not at all, as checkpoint images are
      writeFileSync(`${flags.out}.part`, pcap);
      renameSync(`${flags.out}.part`, flags.out);
      const where = result.container ? `${result.container}'s nics (on ${result.host})` : `${result.host}'s bridge`;
      const stopped = result.stoppedBy === 'count' ? `, stopped at ${result.frames} frames` : '';
      this.say(`captured ${result.frames} frames on ${where} in ${formatDuration(result.durationMs)}${stopped}: ${flags.out} (${formatSize(result.bytes)})`);
      return { ...result, file: flags.out };
    } finally {
      await client.close();
    }
  }
}
