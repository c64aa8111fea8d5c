/**
 * `bench network`: does the virtual network deliver what its links are configured to, and what does the
 * emulator cost? On a two-host cluster of its own, a container on each host, measured through the CLI's
 * own tools (the client library's netIperf and netPing):
 *   throughput    iperf h1 → h2 with both uplinks set to each bandwidth, achieved against configured
 *   delay         ping RTT with both uplinks at `delayMs` each way, against 2 × delay
 *   loss          ping's loss with both uplinks at `lossPercent` (each way: the expected round-trip loss
 *                 is 1 − (1 − p)²), and stream throughput at 0.1 %, 1 % and 5 % loss (falling, as NewReno's)
 *   unshaped      iperf and ping RTT with 1 gbit links and no delay, beside a plain NATS publisher
 *                 between two connections of this process with messages of the size the fabric carried
 * Every setting is changed on the running hosts (`net set-link`), as a user would.
 *
 * Left for later (see the issue): nic shares by weight and rate/ceil on one saturated uplink, UDP iperf.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterClient } from '@slicelab/client';
import { plainPublishRate, type Uplink } from '@slicelab/protocol';
import { withBenchCluster } from './cluster.js';
import { writeChart } from './chart.js';

export interface NetworkBenchOptions {
  /** bits per second */
  bandwidths: number[];
  durationMs: number;
  pings: number;
  delayMs: number;
  lossPercent: number;
  outDir: string;
  onProgress?: (line: string) => void;
}

/** What the issue asks of the network (bench network's aims). */
export const networkAims = { throughputWithin: 0.05, throughputUpToBps: 200e6, rttWithinMs: 1, lossWithinPoints: 1, unshapedOfPlain: 0.6, unshapedRttP50Ms: 1.5 };

export interface ThroughputRow {
  configuredBps: number;
  receivedBps: number;
  sentBps: number;
  retransmits: number;
  /** the hosts' uplinks warned that slicelab, not the link, held the rate back */
  emulatorLimited: string[];
}

export interface NetworkBenchResult {
  throughput: ThroughputRow[];
  delay: { configuredMs: number; rttMs: { min: number; avg: number; max: number; mdev: number } | null; replies: number; sent: number };
  loss: { configuredPercent: number; expectedPercent: number; measuredPercent: number; sent: number };
  lossThroughput: Array<{ lossPercent: number; receivedBps: number; retransmits: number }>;
  unshaped: { receivedBps: number; rttP50Ms: number; plainBps: number; messageBytes: number };
  files: { json: string; chart: string };
}

const linkAt = (bandwidth: number, delay = 0, loss = 0): Partial<Uplink> => ({ bandwidth, delay, jitter: 0, loss });

export async function benchNetwork(options: NetworkBenchOptions): Promise<NetworkBenchResult> {
  const say = options.onProgress ?? (() => {});
  return withBenchCluster('netbench', [{ name: 'h1', cores: 2 }, { name: 'h2', cores: 2 }], async ({ launcher, client }) => {
    await client.runContainer('h1', { name: 'tx', program: 'sleeper', args: { run: '1ms', sleep: '1s' } });
    await client.runContainer('h2', { name: 'rx', program: 'sleeper', args: { run: '1ms', sleep: '1s' } });
    const links = async (settings: Partial<Uplink>) => {
      for (const host of ['h1', 'h2']) await client.netSetLink(host, settings);
    };
    const iperf = async () => (await client.netIperf('tx', 'rx', { durationMs: options.durationMs, json: true })).json!.end;

    const throughput: ThroughputRow[] = [];
    for (const bandwidth of options.bandwidths) {
      say(`throughput at ${bandwidth / 1e6} mbit`);
      await links(linkAt(bandwidth));
      const end = await iperf();
      const warnings = (await client.netLinks()).hosts.flatMap((h) => h.warnings.map((w) => `${h.host}: ${w}`));
      throughput.push({ configuredBps: bandwidth, receivedBps: end.sum_received.bits_per_second, sentBps: end.sum_sent.bits_per_second, retransmits: end.sum_sent.retransmits, emulatorLimited: warnings });
    }

    say(`ping with ${options.delayMs} ms each way`);
    await links(linkAt(1e9, options.delayMs));
    const delayed = await client.netPing('tx', 'rx', { count: options.pings, intervalMs: 20, waitMs: 4 * options.delayMs + 500 });

    say(`ping with ${options.lossPercent} % loss each way`);
    await links(linkAt(1e9, 0, options.lossPercent));
    const lossy = await client.netPing('tx', 'rx', { count: options.pings, intervalMs: 10, waitMs: 500 });
    const p = options.lossPercent / 100;

    const lossThroughput = [];
    for (const loss of [0.1, 1, 5]) {
      say(`throughput at ${loss} % loss`);
      await links(linkAt(1e9, 0, loss));
      const end = await iperf();
      lossThroughput.push({ lossPercent: loss, receivedBps: end.sum_received.bits_per_second, retransmits: end.sum_sent.retransmits });
    }

    say('unshaped: iperf, ping, and a plain NATS publisher');
    await links(linkAt(1e9));
    const before = await client.netLinks('h1');
    const unshaped = await iperf();
    const after = await client.netLinks('h1');
    const rtts = (await client.netPing('tx', 'rx', { count: options.pings, intervalMs: 20, waitMs: 500 })).replies.map((r) => r.timeMs).sort((x, y) => x - y);
    const frames = after.hosts[0]!.uplink.txPackets - before.hosts[0]!.uplink.txPackets;
    const bytes = after.hosts[0]!.uplink.txBytes - before.hosts[0]!.uplink.txBytes;
    const messageBytes = Math.max(1, Math.round(bytes / Math.max(1, frames)));
    // the publisher's far end: a second connection of this process, with the same credential
    const receiver = await ClusterClient.connect({ nats: client.url, access: launcher.run.access });
    const plain = await plainPublishRate(client.nc, client.subjects.bench('plain'), Math.max(bytes, 16 * 2 ** 20), messageBytes, receiver.nc).finally(() => receiver.close());

    const result: Omit<NetworkBenchResult, 'files'> = {
      throughput,
      delay: { configuredMs: options.delayMs, rttMs: delayed.rtt ?? null, replies: delayed.received, sent: delayed.transmitted },
      loss: { configuredPercent: options.lossPercent, expectedPercent: (1 - (1 - p) ** 2) * 100, measuredPercent: lossy.lossPercent, sent: lossy.transmitted },
      lossThroughput,
      unshaped: { receivedBps: unshaped.sum_received.bits_per_second, rttP50Ms: rtts[Math.floor(rtts.length / 2)] ?? NaN, plainBps: plain.bytesPerSecond * 8, messageBytes },
    };
    mkdirSync(options.outDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const json = join(options.outDir, `network-${stamp}.json`);
    writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
    const chart = join(options.outDir, `network-${stamp}.svg`);
    await writeThroughputChart(throughput, chart);
    return { ...result, files: { json, chart } };
  });
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
