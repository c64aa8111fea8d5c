import { Flags } from '@oclif/core';
import { benchNetwork, networkAims } from '@slicelab/bench';
import { SlicelabError, errorMessage, parseRate } from '@slicelab/protocol';
import { BaseCommand, unitFlags } from '../../base.js';
import { table } from '../../render.js';

export default class BenchNetwork extends BaseCommand {
  static override description = 'The virtual network against its configuration: stream throughput at each uplink bandwidth, three nics at weights 1:2:3 sharing one saturated uplink, a nic\'s ceil and rate (guarantee) honoured, ping RTT against the configured delay, UDP loss over at least 10,000 datagrams against the configured loss, throughput against loss, and the unshaped stream and RTT beside a plain NATS publisher (aims: throughput within 5 % up to 200 mbit, shares within 5 % of w / Σw, ceil and rate within 5 %, RTT = 2 × delay ± 1 ms, loss within 1 point, unshaped stream ≥ 60 % of plain NATS, unshaped RTT p50 < 1.5 ms)';
  static override examples = ['<%= config.bin %> bench network', '<%= config.bin %> bench network --bandwidths 10mbit,50mbit --duration 3s --json'];
  static override flags = {
    bandwidths: Flags.string({ default: '10mbit,50mbit,200mbit,1gbit', description: 'uplink bandwidths to measure, as tc writes them' }),
    duration: unitFlags.duration({ default: 5000, defaultHelp: async () => '5s', description: 'how long each iperf runs' }),
    omit: unitFlags.duration({ default: 2000, defaultHelp: async () => '2s', description: 'how long each TCP stream of the throughput rows runs before it is counted (iperf3 -O): slow start and the first fill of the link\'s queue' }),
    pings: Flags.integer({ default: 100, min: 10, max: 150, description: 'echo requests per ping measurement' }),
    delay: unitFlags.duration({ default: 5, defaultHelp: async () => '5ms', description: 'one-way delay of each uplink for the RTT measurement' }),
    loss: unitFlags.percent({ default: 1, defaultHelp: async () => '1%', description: 'loss of each uplink for the UDP loss measurement' }),
    'share-bandwidth': unitFlags.rate({ default: 20e6, defaultHelp: async () => '20mbit', description: 'the sender host\'s uplink for the shares and the rate/ceil measurements (the ceil is a quarter of it, the rate 60 %)' }),
    'udp-bitrate': unitFlags.rate({ default: 20e6, defaultHelp: async () => '20mbit', description: 'bitrate of the UDP loss measurement (it runs long enough for 10,000 datagrams; the receiver\'s socket drops are shown beside it)' }),
    out: Flags.string({ default: 'bench-results', description: 'folder for the JSON result and the SVG charts' }),
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
    if (!(flags['share-bandwidth'] > 0)) throw new SlicelabError('EINVAL', `--share-bandwidth: a rate above 0, got ${flags['share-bandwidth']} bits/s`);
    if (!(flags['udp-bitrate'] > 0)) throw new SlicelabError('EINVAL', `--udp-bitrate: a rate above 0, got ${flags['udp-bitrate']} bits/s`);
    const r = await benchNetwork({
      bandwidths, durationMs: flags.duration, omitMs: flags.omit, pings: flags.pings, delayMs: flags.delay, lossPercent: flags.loss,
      shareBandwidthBps: flags['share-bandwidth'], udpBitrateBps: flags['udp-bitrate'], outDir: flags.out, onProgress: (l) => this.progress(l),
    });
    this.progressDone();
    const mbit = (bps: number) => `${(bps / 1e6).toFixed(1)} Mbit/s`;
    const mbit2 = (bps: number) => `${(bps / 1e6).toFixed(2)} Mbit/s`;
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
    const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
    this.say(table(['stream throughput (one TCP stream h1 → h2)', 'received', 'of configured', 'retransmits', 'aim'], r.throughput.map((row) => {
      const share = row.receivedBps / row.configuredBps;
      const aim = row.configuredBps <= networkAims.throughputUpToBps ? `within 5 %: ${met(Math.abs(1 - share) <= networkAims.throughputWithin)}` : '';
      const limited = row.emulatorLimited.length > 0 ? ` (slicelab was the limit: ${row.emulatorLimited[0]})` : '';
      return [mbit(row.configuredBps), mbit(row.receivedBps), `${(share * 100).toFixed(1)} %`, row.retransmits, `${aim}${limited}`];
    })));
    const s = r.shares;
    this.say(table(
      [`shares of h1's ${mbit(s.linkBps)} uplink (three TCP streams at once)`, 'received (iperf)', 'of the sum', `shaper, while all sent (${(s.windowMs / 1000).toFixed(1)} s)`, 'ideal', 'error', 'aim'],
      s.rows.map((row) => [
        `${row.sender} → ${row.receiver}, weight ${row.weight}`, mbit2(row.receivedBps), pct(row.receivedShare), `${mbit2(row.windowBps)}, ${pct(row.windowShare)}`, pct(row.idealShare),
        `${row.errorPoints >= 0 ? '+' : ''}${row.errorPoints.toFixed(1)} points (${pct(row.relativeError)})`,
        s.windowMs > 0 ? `within 5 %: ${met(row.relativeError <= networkAims.sharesWithin)}` : 'MISSED (never all sending at once)',
      ]),
    ));
    if (s.warnings.length > 0) this.say(`  slicelab was the limit during the shares: ${s.warnings.join('; ')}`);
    const { ceil, rate } = r.rateCeil;
    this.say(table([`rate and ceil on h1's ${mbit(r.rateCeil.linkBps)} uplink`, 'received (iperf)', 'shaper, while all sent', 'aim'], [
      [`${ceil.sender} alone, ceil ${mbit(ceil.ceilBps)}`, `${mbit2(ceil.receivedBps)} (${pct(ceil.receivedBps / ceil.ceilBps)} of ceil)`, '',
        `≤ ceil + 5 %: ${met(ceil.receivedBps <= ceil.ceilBps * (1 + networkAims.rateCeilWithin))}`],
      [`${rate.sender} with rate ${mbit(rate.rateBps)}, weight ${rate.weight}`, `${mbit2(rate.receivedBps)} (${pct(rate.receivedBps / rate.rateBps)} of rate)`,
        `${mbit2(rate.windowBps)} (ideal ${mbit2(rate.idealBps)})`,
        rate.windowMs > 0 ? `≥ rate − 5 %: ${met(rate.windowBps >= rate.rateBps * (1 - networkAims.rateCeilWithin))}` : 'MISSED (never both sending at once)'],
      [`  against ${rate.competitor.sender}, no rate, weight ${rate.competitor.weight}`, mbit2(rate.competitor.receivedBps),
        `${mbit2(rate.competitor.windowBps)} (ideal ${mbit2(r.rateCeil.linkBps - rate.idealBps)})`, ''],
    ]));
    if (r.rateCeil.warnings.length > 0) this.say(`  slicelab was the limit during rate/ceil: ${r.rateCeil.warnings.join('; ')}`);
    const rtt = r.delay.rttMs;
    const expected = 2 * r.delay.configuredMs;
    const l = r.loss;
    this.say(table(['figure', 'measured', 'aim'], [
      [`ping RTT, ${r.delay.configuredMs} ms each way (avg [min, max])`, rtt ? `${rtt.avg.toFixed(2)} ms [${rtt.min.toFixed(2)}, ${rtt.max.toFixed(2)}]` : 'no reply', rtt ? `${expected} ± 1 ms: ${met(Math.abs(rtt.avg - expected) <= networkAims.rttWithinMs)}` : 'MISSED'],
      ['  the delay\'s part: p50 less the unshaped p50', `${(r.delay.rttP50Ms - r.unshaped.rttP50Ms).toFixed(2)} ms`, 'the rest is slicelab\'s own path (unshaped RTT, below)'],
      [`UDP loss, ${l.configuredPercent} % on both uplinks (${mbit(l.bitrateBps)}, ${l.datagramBytes}-byte datagrams, one lossy egress h1 → h2)`,
        `${l.measuredPercent.toFixed(2)} % (${l.lost}/${l.datagrams})`,
        `${l.expectedPercent.toFixed(1)} ± 1 point: ${met(Math.abs(l.measuredPercent - l.expectedPercent) <= networkAims.lossWithinPoints)}${l.datagrams < 10_000 ? ` (only ${l.datagrams} datagrams of the 10,000 asked)` : ''}`],
      [`  sender sent, receiver received`, `${l.sent} datagrams (${mbit(l.sent * l.datagramBytes * 8 / (l.durationMs / 1000))} of ${mbit(l.bitrateBps)}), ${mbit(l.receivedBps)}`, ''],
      ['  h1\'s uplink meanwhile: netem drops of frames sent', `${l.uplink.lossDrops}/${l.uplink.txPackets} (${((l.uplink.lossDrops / Math.max(1, l.uplink.txPackets)) * 100).toFixed(2)} %)`, ''],
      ['  rx\'s nic meanwhile: drops at a full socket receive queue', `${l.receiverDrops}`, l.receiverDrops > 0 ? 'the receiving program fell behind (slicelab\'s CPU), not the link' : ''],
      ...r.lossThroughput.map((row) => [`stream at ${row.lossPercent} % loss each way`, `${mbit(row.receivedBps)}, ${row.retransmits} retransmits`, '']),
      ['unshaped stream (100 gbit links, never the limit)', mbit(r.unshaped.receivedBps), ''],
      [`plain NATS publisher, ${r.unshaped.messageBytes}-byte messages`, mbit(r.unshaped.plainBps), ''],
      ['  unshaped stream of plain NATS', `${((r.unshaped.receivedBps / r.unshaped.plainBps) * 100).toFixed(0)} %`, `≥ 60 %: ${met(r.unshaped.receivedBps / r.unshaped.plainBps >= networkAims.unshapedOfPlain)}`],
      ['unshaped ping RTT p50', `${r.unshaped.rttP50Ms.toFixed(2)} ms`, `< 1.5 ms: ${met(r.unshaped.rttP50Ms < networkAims.unshapedRttP50Ms)}`],
    ]));
    this.say(`wrote ${r.files.json}, ${r.files.chart} and ${r.files.sharesChart}`);
    return r;
  }
}
