/**
 * `bench network`: does the virtual network deliver what its links are configured to, and what does the
 * emulator cost? On a two-host cluster of its own, containers on each host, measured through the CLI's
 * own tools (the client library's netIperf, netPing, netSetLink, netSetNic and netLinks):
 *   throughput    iperf h1 → h2 with both uplinks set to each bandwidth, achieved against configured
 *   shares        three nics of h1 (s1, s2, s3 at weights 1:2:3) each streaming to its own receiver on h2
 *                 at once, h1's uplink at `shareBandwidthBps`: each one's share against w / Σw, from iperf's
 *                 received figures and from h1's shaper counters over the time all three were sending
 *   rate, ceil    on the same link: s1 with a ceil alone (received at most the ceil), then s2 with a rate
 *                 (guarantee) against s3 at a far higher weight (received at least the rate)
 *   delay         ping RTT with both uplinks at `delayMs` each way, against 2 × delay
 *   loss          UDP iperf (iperf-udp) h1 → h2 with both uplinks at `lossPercent`, at least
 *                 `minDatagrams` datagrams: netem's loss is drawn on egress only (uplink.ts), so a datagram
 *                 crosses one lossy link (h1's) and the expected loss is p itself; beside it what h1's
 *                 uplink's netem dropped and what rx's nic dropped at a full socket queue (a receiver that
 *                 fell behind: slicelab, not the link). It replaces ping's loss over at most 150 requests,
 *                 too few to tell 1 point. Then stream throughput at 0.1 %, 1 % and 5 % loss (falling, as
 *                 NewReno's)
 *   unshaped      iperf and ping RTT with 100 gbit links (never the limit) and no delay, beside a plain NATS
 *                 publisher between two connections of this process with messages of the size the fabric
 *                 published (its batches of frames)
 * Every setting is changed on the running hosts (`net set-link`, `net set-nic`), as a user would, and put
 * back before the next measurement: the nics of the shares and rate/ceil rows are reset and their
 * containers removed (a ceil cannot be given back to "the link's" over the bus, only set to a number).
 *
 * The iperfs of one row start one after the other (each waits for its server to listen, a few hundred
 * ms), and a stream alone on the link takes all of it meanwhile, which skews whole-run figures. The shares
 * and the rate are therefore judged on h1's shaper counters (bytes each nic's class sent, frames with their
 * headers, the unit the link, rates and ceils are set in; `net links`), sampled every 200 ms, over the span
 * in which every stream of the row was sending; iperf's received figures (payload) stand beside them. With
 * the link's queue of 1000 frames a slow class holds seconds of data, so that span outlasts `durationMs`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterClient } from '@slicelab/client';
import { plainPublishRate, type Uplink } from '@slicelab/protocol';
import { withBenchCluster } from './cluster.js';
import { writeChart } from './chart.js';

export interface NetworkBenchOptions {
  /** bits per second */
  bandwidths: number[];
  durationMs: number;
  /** each TCP iperf first runs this long uncounted (iperf3 -O): slow start and the first fill of the link's queue */
  omitMs: number;
  pings: number;
  delayMs: number;
  lossPercent: number;
  /** h1's uplink for the shares and rate/ceil rows, bits per second (default 20 mbit) */
  shareBandwidthBps?: number;
  /** the UDP loss row's bitrate, bits per second (default 20 mbit: at 50 mbit on a 2-core machine the receiving program fell behind and its socket queue dropped) */
  udpBitrateBps?: number;
  /** the UDP loss row runs long enough to send at least this many datagrams (default 10,000) */
  minDatagrams?: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

/** What the issue asks of the network (bench network's aims). */
export const networkAims = {
  throughputWithin: 0.05, throughputUpToBps: 200e6, rttWithinMs: 1, lossWithinPoints: 1, unshapedOfPlain: 0.6, unshapedRttP50Ms: 1.5,
  /** each nic's share within 5 % (relative) of w / Σw */
  sharesWithin: 0.05,
  /** a ceil: received at most 5 % above it; a rate: at least 5 % below it */
  rateCeilWithin: 0.05,
};

/** The share row's weights, as the issue names them. */
export const shareWeights = [1, 2, 3];
/** the weight of the competitor of the nic with a guaranteed rate */
const competitorWeight = 100;
/** iperf-udp's datagram payload when not told (the client library does not pass `len`) */
const udpDatagramBytes = 1460;
const sampleEveryMs = 200;

export interface ThroughputRow {
  configuredBps: number;
  receivedBps: number;
  sentBps: number;
  retransmits: number;
  /** the hosts' uplinks warned that slicelab, not the link, held the rate back */
  emulatorLimited: string[];
}

/** One stream of a row with several at once. */
export interface FlowFigures {
  sender: string;
  receiver: string;
  /** iperf's figures over its own run */
  receivedBps: number;
  retransmits: number;
  /** what the sender's class in h1's shaper sent (frames, headers included) while every stream of the row was sending */
  windowBps: number;
}

export interface NicShareRow extends FlowFigures {
  weight: number;
  /** w / Σw */
  idealShare: number;
  /** of the sum of the row's received figures (whole runs) */
  receivedShare: number;
  /** of what the row's classes sent while all were sending: the figure the aim is judged on */
  windowShare: number;
  /** windowShare − idealShare, percentage points */
  errorPoints: number;
  /** |windowShare − idealShare| / idealShare */
  relativeError: number;
}

export interface NetworkBenchResult {
  throughput: ThroughputRow[];
  shares: { linkBps: number; durationMs: number; windowMs: number; rows: NicShareRow[]; warnings: string[] };
  rateCeil: {
    linkBps: number;
    ceil: FlowFigures & { ceilBps: number };
    rate: FlowFigures & { rateBps: number; weight: number; idealBps: number; competitor: FlowFigures & { weight: number }; windowMs: number };
    warnings: string[];
  };
  delay: { configuredMs: number; rttMs: { min: number; avg: number; max: number; mdev: number } | null; rttP50Ms: number; replies: number; sent: number };
  loss: {
    configuredPercent: number; expectedPercent: number; measuredPercent: number; lost: number; datagrams: number; bitrateBps: number; durationMs: number; datagramBytes: number;
    /** datagrams the sender sent (it falls behind the bitrate when its host's CPU does), and the receiver's rate */
    sent: number; receivedBps: number;
    /** what h1's uplink counted meanwhile: frames netem dropped of those it sent */
    uplink: { lossDrops: number; txPackets: number };
    /** frames rx's nic dropped meanwhile (a full socket receive queue: the receiving program fell behind, not the link) */
    receiverDrops: number;
  };
  lossThroughput: Array<{ lossPercent: number; receivedBps: number; retransmits: number }>;
  unshaped: { receivedBps: number; rttP50Ms: number; plainBps: number; messageBytes: number };
  files: { json: string; chart: string; sharesChart: string };
}

const linkAt = (bandwidth: number, delay = 0, loss = 0): Partial<Uplink> => ({ bandwidth, delay, jitter: 0, loss });
const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)] ?? NaN;
/** a link that is never the limit: the unshaped rows measure slicelab and the bus alone */
const unshapedBps = 100e9;
const idle = { program: 'sleeper', args: { run: '1ms', sleep: '1s' } };

export async function benchNetwork(options: NetworkBenchOptions): Promise<NetworkBenchResult> {
  const say = options.onProgress ?? (() => {});
  const shareBandwidth = options.shareBandwidthBps ?? 20e6;
  const udpBitrate = options.udpBitrateBps ?? 20e6;
  const minDatagrams = options.minDatagrams ?? 10_000;
  return withBenchCluster('netbench', [{ name: 'h1', cores: 2 }, { name: 'h2', cores: 2 }], async ({ launcher, client }) => {
    await client.runContainer('h1', { name: 'tx', ...idle });
    await client.runContainer('h2', { name: 'rx', ...idle });
    const links = async (settings: Partial<Uplink>) => {
      for (const host of ['h1', 'h2']) await client.netSetLink(host, settings);
    };
    const iperf = async () => (await client.netIperf('tx', 'rx', { durationMs: options.durationMs, omitMs: options.omitMs, json: true })).json!.end;
    const warningsNow = async () => (await client.netLinks()).hosts.flatMap((h) => h.warnings.map((w) => `${h.host}: ${w}`));

    const throughput: ThroughputRow[] = [];
    for (const bandwidth of options.bandwidths) {
      say(`throughput at ${bandwidth / 1e6} mbit`);
      await links(linkAt(bandwidth));
      const end = await iperf();
      throughput.push({ configuredBps: bandwidth, receivedBps: end.sum_received.bits_per_second, sentBps: end.sum_sent.bits_per_second, retransmits: end.sum_sent.retransmits, emulatorLimited: await warningsNow() });
    }

    // shares, then rate and ceil: h1's uplink at the share bandwidth, h2's (the ACKs) at 1 gbit, no delay or loss
    const senders = ['s1', 's2', 's3'];
    const receivers = ['r1', 'r2', 'r3'];
    for (const name of senders) await client.runContainer('h1', { name, ...idle });
    for (const name of receivers) await client.runContainer('h2', { name, ...idle });
    await links(linkAt(1e9));
    await client.netSetLink('h1', { bandwidth: shareBandwidth });

    say(`shares at weights ${shareWeights.join(':')} on a ${shareBandwidth / 1e6} mbit uplink`);
    for (const [i, name] of senders.entries()) await client.netSetNic(name, { weight: shareWeights[i]! });
    const shareRun = await competing(client, senders.map((sender, i) => ({ sender, receiver: receivers[i]! })), options.durationMs);
    const totalWeight = shareWeights.reduce((s, w) => s + w, 0);
    const receivedSum = shareRun.flows.reduce((s, f) => s + f.receivedBps, 0);
    const windowSum = shareRun.flows.reduce((s, f) => s + f.windowBps, 0);
    const shareRows: NicShareRow[] = shareRun.flows.map((f, i) => {
      const idealShare = shareWeights[i]! / totalWeight;
      const windowShare = windowSum > 0 ? f.windowBps / windowSum : 0;
      return {
        ...f, weight: shareWeights[i]!, idealShare, receivedShare: receivedSum > 0 ? f.receivedBps / receivedSum : 0, windowShare,
        errorPoints: (windowShare - idealShare) * 100, relativeError: Math.abs(windowShare - idealShare) / idealShare,
      };
    });
    const shareWarnings = await warningsNow();
    for (const name of senders) await client.netSetNic(name, { weight: 1 });

    const ceilBps = shareBandwidth / 4;
    say(`a ceil of ${ceilBps / 1e6} mbit alone on the ${shareBandwidth / 1e6} mbit uplink`);
    await client.netSetNic('s1', { ceil: ceilBps });
    const ceilRun = await competing(client, [{ sender: 's1', receiver: 'r1' }], options.durationMs);

    const rateBps = shareBandwidth * 0.6;
    say(`a rate of ${rateBps / 1e6} mbit against weight ${competitorWeight}`);
    await client.netSetNic('s2', { rate: rateBps, weight: 1 });
    await client.netSetNic('s3', { weight: competitorWeight });
    const rateRun = await competing(client, [{ sender: 's2', receiver: 'r2' }, { sender: 's3', receiver: 'r3' }], options.durationMs);
    const rateWarnings = await warningsNow();
    // back to no guarantee and weight 1 (the ceil only to a number: the link's bandwidth now), then gone
    for (const name of senders) await client.netSetNic(name, { rate: 0, ceil: shareBandwidth, weight: 1 });
    for (const name of [...senders, ...receivers]) await client.removeContainer(name, true);
    await links(linkAt(1e9));

    say(`ping with ${options.delayMs} ms each way`);
    await links(linkAt(1e9, options.delayMs));
    const delayed = await client.netPing('tx', 'rx', { count: options.pings, intervalMs: 20, waitMs: 4 * options.delayMs + 500 });

    const udpMs = Math.max(options.durationMs, Math.ceil(((minDatagrams * 1.05 * udpDatagramBytes * 8) / udpBitrate) * 1000));
    say(`UDP at ${udpBitrate / 1e6} mbit for ${(udpMs / 1000).toFixed(1)} s with ${options.lossPercent} % loss on both uplinks`);
    await links(linkAt(1e9, 0, options.lossPercent));
    const counters = async () => {
      const [h1, h2] = (await client.netLinks()).hosts;
      return { uplink: h1!.uplink, rx: h2!.nics.find((n) => n.container === 'rx')!.counters };
    };
    const udpBefore = await counters();
    const udpEnd = (await client.netIperf('tx', 'rx', { udpBitrate, durationMs: udpMs, json: true })).json!.end;
    const udp = udpEnd.sum!;
    const udpAfter = await counters();

    const lossThroughput = [];
    for (const loss of [0.1, 1, 5]) {
      say(`throughput at ${loss} % loss`);
      await links(linkAt(1e9, 0, loss));
      const end = await iperf();
      lossThroughput.push({ lossPercent: loss, receivedBps: end.sum_received.bits_per_second, retransmits: end.sum_sent.retransmits });
    }

    say('unshaped: iperf, ping, and a plain NATS publisher');
    await links(linkAt(unshapedBps));
    const before = (await client.netLinks('h1')).hosts[0]!.fabric;
    const unshaped = await iperf();
    const after = (await client.netLinks('h1')).hosts[0]!.fabric;
    const rtts = (await client.netPing('tx', 'rx', { count: options.pings, intervalMs: 20, waitMs: 500 })).replies.map((r) => r.timeMs);
    // the messages the fabric published for the stream (and its handshake), batches of frames
    const bytes = after.bytes - before.bytes;
    const messageBytes = Math.max(1, Math.round(bytes / Math.max(1, after.messages - before.messages)));
    // the publisher's far end: a second connection of this process, with the same credential
    const receiver = await ClusterClient.connect({ nats: client.url, access: launcher.run.access });
    const plain = await plainPublishRate(client.nc, client.subjects.bench('plain'), Math.max(bytes, 16 * 2 ** 20), messageBytes, receiver.nc).finally(() => receiver.close());

    const [s2, s3] = rateRun.flows;
    const result: Omit<NetworkBenchResult, 'files'> = {
      throughput,
      shares: { linkBps: shareBandwidth, durationMs: options.durationMs, windowMs: shareRun.windowMs, rows: shareRows, warnings: shareWarnings },
      rateCeil: {
        linkBps: shareBandwidth,
        ceil: { ...ceilRun.flows[0]!, ceilBps },
        rate: {
          ...s2!, rateBps, weight: 1, idealBps: rateBps + (shareBandwidth - rateBps) / (1 + competitorWeight),
          competitor: { ...s3!, weight: competitorWeight }, windowMs: rateRun.windowMs,
        },
        warnings: rateWarnings,
      },
      delay: { configuredMs: options.delayMs, rttMs: delayed.rtt ?? null, rttP50Ms: median(delayed.replies.map((r) => r.timeMs)), replies: delayed.received, sent: delayed.transmitted },
      loss: {
        configuredPercent: options.lossPercent, expectedPercent: options.lossPercent, measuredPercent: udp.lost_percent, lost: udp.lost_packets, datagrams: udp.packets,
        bitrateBps: udpBitrate, durationMs: udpMs, datagramBytes: udpDatagramBytes,
        sent: Math.round(udpEnd.sum_sent.bytes / udpDatagramBytes), receivedBps: udp.bits_per_second,
        uplink: { lossDrops: udpAfter.uplink.lossDrops - udpBefore.uplink.lossDrops, txPackets: udpAfter.uplink.txPackets - udpBefore.uplink.txPackets },
        receiverDrops: udpAfter.rx.rxDropped - udpBefore.rx.rxDropped,
      },
      lossThroughput,
      unshaped: { receivedBps: unshaped.sum_received.bits_per_second, rttP50Ms: median(rtts), plainBps: plain.bytesPerSecond * 8, messageBytes },
    };
    mkdirSync(options.outDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const json = join(options.outDir, `network-${stamp}.json`);
    writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
    const chart = join(options.outDir, `network-${stamp}.svg`);
    await writeThroughputChart(throughput, chart);
    const sharesChart = join(options.outDir, `network-shares-${stamp}.svg`);
    await writeSharesChart(result.shares, sharesChart);
    return { ...result, files: { json, chart, sharesChart } };
  });
}

/**
 * Streams from h1's containers to h2's at once (each to its own receiver, so each its own server and
 * port), with h1's shaper counters sampled meanwhile: each stream's iperf figures, and what its class
 * sent over the span in which every class of the row was sending (null span: 0 bits/s).
 */
async function competing(client: ClusterClient, flows: Array<{ sender: string; receiver: string }>, durationMs: number): Promise<{ flows: FlowFigures[]; windowMs: number }> {
  const samples: Array<{ at: number; bytes: number[] }> = [];
  const sample = async () => {
    const nics = (await client.netLinks('h1')).hosts[0]!.nics;
    samples.push({ at: Date.now(), bytes: flows.map((f) => nics.find((n) => n.container === f.sender && n.nic === 'eth0')?.shaping.bytes ?? 0) });
  };
  let running = true;
  const sampler = (async () => {
    while (running) {
      await sample();
      await sleep(sampleEveryMs);
    }
    await sample();
  })();
  const ends = await Promise.all(flows.map((f) => client.netIperf(f.sender, f.receiver, { durationMs, json: true }).then((r) => r.json!.end)))
    .finally(() => (running = false));
  await sampler;
  // the span from the first to the last gap between samples in which every class sent something
  const all = (i: number) => flows.every((_, k) => samples[i]!.bytes[k]! > samples[i - 1]!.bytes[k]!);
  let first = -1;
  let last = -1;
  for (let i = 1; i < samples.length; i++) {
    if (!all(i)) continue;
    if (first < 0) first = i - 1;
    last = i;
  }
  const windowMs = first < 0 ? 0 : samples[last]!.at - samples[first]!.at;
  return {
    windowMs,
    flows: flows.map((f, k) => ({
      sender: f.sender, receiver: f.receiver, receivedBps: ends[k]!.sum_received.bits_per_second, retransmits: ends[k]!.sum_sent.retransmits,
      windowBps: windowMs > 0 ? ((samples[last]!.bytes[k]! - samples[first]!.bytes[k]!) * 8 * 1000) / windowMs : 0,
    })),
  };
}

/** Achieved against configured throughput, per setting, with the ideal line. */
async function writeThroughputChart(rows: ThroughputRow[], file: string): Promise<void> {
  const values = rows.flatMap((r) => [
    { configured: r.configuredBps / 1e6, series: 'configured', mbps: r.configuredBps / 1e6 },
    { configured: r.configuredBps / 1e6, series: 'received (iperf)', mbps: r.receivedBps / 1e6 },
  ]);
  await writeChart({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'slicelab bench network: stream throughput against the configured link', subtitle: 'both uplinks set to the bandwidth; one TCP stream h1 → h2', anchor: 'start' },
    width: 420, height: 260,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'configured', type: 'quantitative', scale: { type: 'log' }, title: 'configured (Mbit/s)' },
      y: { field: 'mbps', type: 'quantitative', scale: { type: 'log' }, title: 'Mbit/s' },
      color: { field: 'series', type: 'nominal', title: null },
    },
  }, file);
}

/** Each nic's share of the saturated uplink: ideal (w / Σw), in the shaper while all sent, and of iperf's whole runs. */
async function writeSharesChart(shares: NetworkBenchResult['shares'], file: string): Promise<void> {
  const measures = ['ideal (w / Σw)', 'shaper, while all sent', 'iperf received, whole runs'];
  const values = shares.rows.flatMap((r) => [
    { nic: `${r.sender} (weight ${r.weight})`, measure: measures[0], share: r.idealShare * 100 },
    { nic: `${r.sender} (weight ${r.weight})`, measure: measures[1], share: r.windowShare * 100 },
    { nic: `${r.sender} (weight ${r.weight})`, measure: measures[2], share: r.receivedShare * 100 },
  ]);
  await writeChart({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'slicelab bench network: nic shares of one saturated uplink',
      subtitle: `three TCP streams h1 → h2 at once, h1's uplink at ${shares.linkBps / 1e6} Mbit/s`, anchor: 'start',
    },
    width: 420, height: 260,
    data: { values },
    mark: 'bar',
    encoding: {
      x: { field: 'nic', type: 'nominal', title: null, axis: { labelAngle: 0 } },
      xOffset: { field: 'measure', type: 'nominal', sort: measures },
      y: { field: 'share', type: 'quantitative', title: 'share of the uplink (%)' },
      color: { field: 'measure', type: 'nominal', sort: measures, title: null, legend: { labelLimit: 300 } },
    },
  }, file);
}
