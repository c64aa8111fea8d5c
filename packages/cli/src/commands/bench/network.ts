import { Flags } from '@oclif/core';
import { benchNetwork, networkAims } from '@slicelab/bench';
import { SlicelabError, errorMessage, parseRate } from '@slicelab/protocol';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

export default class BenchNetwork extends BaseCommand {
  static override description = 'The virtual network against its configuration: stream throughput at each uplink bandwidth, ping RTT against the configured delay, loss, throughput against loss, and the unshaped stream and RTT beside a plain NATS publisher (aims: throughput within 5 % up to 200 mbit, RTT = 2 × delay ± 1 ms, loss within 1 point, unshaped stream ≥ 60 % of plain NATS, unshaped RTT p50 < 1.5 ms)';
  static override examples = ['<%= config.bin %> bench network', '<%= config.bin %> bench network --bandwidths 10mbit,50mbit --duration 3s --json'];
  static override flags = {
    bandwidths: Flags.string({ default: '10mbit,50mbit,200mbit,1gbit', description: 'uplink bandwidths to measure, as tc writes them' }),
    duration: unitFlags.duration({ default: 5000, defaultHelp: async () => '5s', description: 'how long each iperf runs' }),
    pings: Flags.integer({ default: 100, min: 10, max: 150, description: 'echo requests per ping measurement' }),
    delay: unitFlags.duration({ default: 5, defaultHelp: async () => '5ms', description: 'one-way delay of each uplink for the RTT measurement' }),
    loss: unitFlags.percent({ default: 1, defaultHelp: async () => '1%', description: 'loss of each uplink for the loss measurement' }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG chart' }),
  };

  async run() {
    const { flags } = await this.parse(BenchNetwork);
    const bandwidths = flags.bandwidths.split(',').map((text) => {
      try {
        return parseRate(text.trim());
      } catch (error) {
        throw new SlicelabError('EINVAL', `--bandwidths "${text}": ${errorMessage(error)}`);
      }
    });
    const r = await benchNetwork({ bandwidths, durationMs: flags.duration, pings: flags.pings, delayMs: flags.delay, lossPercent: flags.loss, outDir: flags.out, onProgress: (l) => this.progress(l) });
    this.progressDone();
    const mbit = (bps: number) => `${(bps / 1e6).toFixed(1)} Mbit/s`;
    const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
    this.say(table(['stream throughput (one TCP stream h1 → h2)', 'received', 'of configured', 'retransmits', 'aim'], r.throughput.map((row) => {
      const share = row.receivedBps / row.configuredBps;
      const aim = row.configuredBps <= networkAims.throughputUpToBps ? `within 5 %: ${met(Math.abs(1 - share) <= networkAims.throughputWithin)}` : '';
      const limited = row.emulatorLimited.length > 0 ? ` (slicelab was the limit: ${row.emulatorLimited[0]})` : '';
      return [mbit(row.configuredBps), mbit(row.receivedBps), `${(share * 100).toFixed(1)} %`, row.retransmits, `${aim}${limited}`];
    })));
    const rtt = r.delay.rttMs;
    const expected = 2 * r.delay.configuredMs;
    this.say(table(['figure', 'measured', 'aim'], [
      [`ping RTT, ${r.delay.configuredMs} ms each way (avg [min, max])`, rtt ? `${rtt.avg.toFixed(2)} ms [${rtt.min.toFixed(2)}, ${rtt.max.toFixed(2)}]` : 'no reply', rtt ? `${expected} ± 1 ms: ${met(Math.abs(rtt.avg - expected) <= networkAims.rttWithinMs)}` : 'MISSED'],
      [`ping loss, ${r.loss.configuredPercent} % each way (${r.loss.sent} requests)`, `${r.loss.measuredPercent.toFixed(1)} %`, `${r.loss.expectedPercent.toFixed(1)} ± 1 point: ${met(Math.abs(r.loss.measuredPercent - r.loss.expectedPercent) <= networkAims.lossWithinPoints)}`],
      ...r.lossThroughput.map((row) => [`stream at ${row.lossPercent} % loss each way`, `${mbit(row.receivedBps)}, ${row.retransmits} retransmits`, '']),
      ['unshaped stream (1 gbit links)', mbit(r.unshaped.receivedBps), ''],
      [`plain NATS publisher, ${r.unshaped.messageBytes}-byte messages`, mbit(r.unshaped.plainBps), ''],
      ['  unshaped stream of plain NATS', `${((r.unshaped.receivedBps / r.unshaped.plainBps) * 100).toFixed(0)} %`, `≥ 60 %: ${met(r.unshaped.receivedBps / r.unshaped.plainBps >= networkAims.unshapedOfPlain)}`],
      ['unshaped ping RTT p50', `${r.unshaped.rttP50Ms.toFixed(2)} ms`, `< 1.5 ms: ${met(r.unshaped.rttP50Ms < networkAims.unshapedRttP50Ms)}`],
    ]));
    this.say(`wrote ${r.files.json} and ${r.files.chart}`);
    return r;
  }
}
