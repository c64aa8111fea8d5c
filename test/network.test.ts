/**
 * The virtual network over real host processes: nics with addresses leased in the cluster, ping across
 * hosts through the CLI as ping prints it, the uplink's delay and loss, a TCP stream that delivers every
 * byte in order across 5 % loss, iperf, and an open stream that survives its container's checkpoint on
 * one host and restore on another.
 */
import test from 'ava';
import type { ContainerInfo } from '@slicelab/protocol';
import { Harness, oneLineError, poll } from './harness.js';

const h = new Harness();
const cluster = 'wire';
test.before(async () => {
  const config = h.writeConfig(cluster, {
    name: cluster,
    hosts: [
      { name: 'h1', cores: 2, memory: '512MiB', uplink: { bandwidth: '100mbit', delay: '10ms', loss: 5 } },
      { name: 'h2', cores: 2, memory: '512MiB', uplink: { bandwidth: '100mbit', delay: '10ms', loss: 5 } },
      { name: 'h3', cores: 2, memory: '512MiB' },
    ],
  });
  await h.up(config);
});
test.after.always(async () => {
  await h.cli(['down']);
  await h.cleanup();
});

type PingJson = { target: string; lines: string[]; transmitted: number; received: number; lossPercent: number; rtt?: { min: number; avg: number; max: number } };

async function run(host: string, name: string, program: string, args: Record<string, string | number> = {}, extra: string[] = []): Promise<ContainerInfo> {
  const flags = Object.entries(args).flatMap(([k, v]) => ['--arg', `${k}=${v}`]);
  const info = await h.cliJson<ContainerInfo>(['container', 'run', '--host', host, '--name', name, '--program', program, ...flags, ...extra]);
  if (info.code !== 0) throw new Error(info.stderr);
  return info;
}

/** A container's logs once they match, or as they are after `ms`: a deadline, not a count of tries (each is a CLI run, slower on a loaded machine). */
async function logsUntil(name: string, pattern: RegExp, ms: number) {
  const deadline = Date.now() + ms;
  let logs = await h.cli(['container', 'logs', name]);
  while (!pattern.test(logs.stdout) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    logs = await h.cli(['container', 'logs', name]);
  }
  return logs;
}

const metrics = async (name: string) => (await h.cliJson<ContainerInfo>(['container', 'inspect', name])).processes[0]?.metrics ?? {};

test.serial('every container gets a nic with an address of the cluster\'s subnet, unique across hosts, and a MAC made from it', async (t) => {
  const a = await run('h1', 'a', 'sleeper');
  const b = await run('h2', 'b', 'sleeper');
  const two = await run('h3', 'two', 'sleeper', {}, ['--nic', '2']);
  const all = [...a.nics, ...b.nics, ...two.nics];
  t.deepEqual(two.nics.map((n) => n.name), ['eth0', 'eth1']);
  for (const nic of all) {
    t.regex(nic.ip, /^10\.0\.\d+\.\d+$/);
    t.is(nic.mac, `02:00:${nic.ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`);
  }
  t.is(new Set(all.map((n) => n.ip)).size, all.length, 'no address twice');
  const ps = await h.cli(['container', 'ps']);
  t.regex(ps.stdout, new RegExp(`│ a\\s+│ h1\\s+│ ${a.nics[0]!.ip.replace(/\./g, '\\.')}\\s+│`));
  t.is((await h.cli(['container', 'rm', '-f', 'two'])).code, 0);
});

test.serial('ping across hosts prints what ping prints; the RTT carries both uplinks\' delay', async (t) => {
  const text = await h.cli(['net', 'ping', 'a', 'b', '--count', '5', '--interval', '100ms', '--wait', '500ms']);
  const ip = (await h.cliJson<ContainerInfo>(['container', 'inspect', 'b'])).nics[0]!.ip;
  const lines = text.stdout.trim().split('\n');
  t.is(lines[0], `PING ${ip} (${ip}) 56(84) bytes of data.`);
  for (const reply of lines.filter((l) => l.includes('bytes from'))) t.regex(reply, new RegExp(`^64 bytes from ${ip.replace(/\./g, '\\.')}: icmp_seq=\\d ttl=64 time=\\d+(\\.\\d+)? ms$`));
  t.true(lines.includes(`--- ${ip} ping statistics ---`));
  t.regex(text.stdout, /^5 packets transmitted, \d received, \d+(\.\d+)?% packet loss, time \d+ms$/m);
  const json = await h.cliJson<PingJson>(['net', 'ping', 'a', ip, '--count', '10', '--interval', '50ms', '--wait', '500ms']);
  t.true(json.received >= 5, `most replies come back through 5 % loss each way: ${json.received}/10`);
  // 10 ms out on h1's uplink, 10 ms back on h2's
  t.true(json.rtt!.min >= 20, `rtt min ${json.rtt!.min} ms`);
  t.true(json.rtt!.min < 20 + 15, `rtt min ${json.rtt!.min} ms`);
});

test.serial('ping: an address nobody holds is 100 % loss and exit 1; an unknown container is one line', async (t) => {
  const none = await h.cli(['net', 'ping', 'a', '10.0.255.254', '--count', '2', '--interval', '100ms', '--wait', '200ms'], 30_000);
  t.is(none.code, 1);
  t.regex(none.stdout, /2 packets transmitted, 0 received, 100% packet loss/);
  oneLineError(t, await h.cli(['net', 'ping', 'a', 'nosuch']), /no container "nosuch"/);
  oneLineError(t, await h.cli(['net', 'ping', 'a', 'b', '--count', '0']), /--count/);
});

test.serial('a TCP stream delivers every byte in order across 5 % loss on both uplinks', async (t) => {
  const server = await run('h2', 'echo-srv', 'echo');
  await run('h1', 'echo-cli', 'echo', { mode: 'client', target: server.nics[0]!.ip, bytes: '256K', chunk: '64K' });
  t.timeout(110_000);
  const logs = await logsUntil('echo-cli', /verified|echo:/, 60_000);
  t.regex(logs.stdout, /echo: verified 262144 bytes/);
});

test.serial('net iperf between two hosts: intervals and totals as iperf3 prints them; --json with iperf3 -J\'s fields', async (t) => {
  await run('h3', 'ip-srv', 'sleeper');
  await run('h3', 'ip-cli', 'sleeper');
  const text = await h.cli(['net', 'iperf', 'ip-cli', 'ip-srv', '--duration', '1500ms'], 60_000);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^Connecting to host 10\.0\.\d+\.\d+, port 5201$/m);
  t.regex(text.stdout, /\[\s*\d+\]\s+0\.00-1\.\d\d\s+sec\s+[\d.]+ [KMG]Bytes\s+[\d.]+ [KMG]bits\/sec\s+\d+\s+[\d.]+ [KMG]Bytes/);
  t.regex(text.stdout, /sec\s+[\d.]+ [KMG]Bytes\s+[\d.]+ [KMG]bits\/sec\s+\d+\s+sender$/m);
  t.regex(text.stdout, /receiver$/m);
  t.regex(text.stdout, /^iperf Done\.$/m);
  type Sum = { bytes: number; seconds: number; bits_per_second: number; retransmits?: number };
  // the first 500 ms (iperf3 -O) are reported as omitted and count in no total
  const json = await h.cliJson<{ intervals: Array<{ streams: unknown[]; sum: Sum & { omitted: boolean } }>; end: { sum_sent: Sum; sum_received: Sum; streams: unknown[] } }>(
    ['net', 'iperf', 'ip-cli', 'ip-srv', '--duration', '1500ms', '--omit', '500ms', '--parallel', '2'], 60_000);
  t.is(json.code, 0, json.stderr);
  const counted = json.intervals.filter((i) => !i.sum.omitted);
  t.true(json.intervals[0]!.sum.omitted, 'the first interval is omitted');
  t.true(counted.length >= 2);
  t.true(Math.abs(json.end.sum_sent.seconds - 1.5) < 0.2, `${json.end.sum_sent.seconds} s counted`);
  t.is(json.intervals[0]!.streams.length, 2);
  t.is(json.end.streams.length, 2);
  const { sum_sent: sent, sum_received: received } = json.end;
  // what the receiver got since counting began includes what the send buffers (4 MiB a stream) held then
  t.true(sent.bytes > 0 && received.bytes > 0 && received.bytes <= sent.bytes + 2 * 4 * 2 ** 20, JSON.stringify(json.end));
  t.is(sent.bits_per_second, (sent.bytes * 8) / sent.seconds);
  t.is(typeof sent.retransmits, 'number');
  t.is(counted.reduce((n, i) => n + i.sum.bytes, 0), sent.bytes, 'the intervals not omitted add up to what was sent');
  oneLineError(t, await h.cli(['net', 'iperf', 'ip-cli', 'nosuch']), /no container "nosuch"/);
  oneLineError(t, await h.cli(['net', 'iperf', 'ip-cli', 'ip-srv', '--bitrate', '5mbit']), /--udp/);
});

test.serial('net iperf --udp: datagrams paced to the bitrate; loss and jitter as the receiver saw them', async (t) => {
  await run('h1', 'udp-tx', 'sleeper');
  await run('h3', 'udp-rx', 'sleeper');
  type UdpJson = { end: { sum: { lost_percent: number; packets: number; jitter_ms: number }; sum_sent: { bits_per_second: number } } };
  // h1's uplink loses 5 % of what leaves it; h3's loses nothing
  const json = await h.cliJson<UdpJson>(['net', 'iperf', 'udp-tx', 'udp-rx', '--udp', '--bitrate', '5mbit', '--duration', '2s'], 60_000);
  t.is(json.code, 0, json.stderr);
  const { sum, sum_sent: sent } = json.end;
  t.true(Math.abs(sent.bits_per_second / 5e6 - 1) < 0.03, `sent at ${sent.bits_per_second} bit/s`);
  t.true(sum.packets > 700, `${sum.packets} datagrams`);
  t.true(sum.lost_percent > 2 && sum.lost_percent < 9, `lost ${sum.lost_percent} %`);
  t.true(sum.jitter_ms >= 0 && sum.jitter_ms < 20, `jitter ${sum.jitter_ms} ms`);
});

test.serial('an open stream survives its container\'s checkpoint on one host and restore on another: same address, every byte', async (t) => {
  const server = await run('h2', 'far', 'echo');
  // the echoes come back at 2 Mbit/s at most: the stream is still open at the checkpoint however busy the machine
  t.is((await h.cli(['net', 'set-nic', 'far', '--ceil', '2mbit'])).code, 0);
  const mover = await run('h1', 'mover', 'echo', { mode: 'client', target: server.nics[0]!.ip, bytes: '2M', chunk: '32K' });
  await poll(() => metrics('mover'), (m) => (m['verified'] ?? 0) > 64 * 1024, 100, 100);
  t.is((await h.cli(['net', 'set-nic', 'mover', '--rate', '2mbit', '--weight', '7'])).code, 0);
  const image = `${h.home}/mover.img`;
  const checkpointed = await h.cli(['container', 'checkpoint', 'mover', '--out', image]);
  t.is(checkpointed.code, 0, checkpointed.stderr);
  const restored = await h.cliJson<{ info: ContainerInfo }>(['container', 'restore', image, '--host', 'h3']);
  t.is(restored.code, 0, restored.stderr);
  t.deepEqual(restored.info.nics, mover.nics, 'the same address and MAC on the new host');
  type Links = { hosts: Array<{ host: string; nics: Array<{ container: string; shaping: { rate: number; weight: number } }> }> };
  const links = await h.cliJson<Links>(['net', 'links', '--host', 'h3']);
  const shaping = links.hosts[0]!.nics.find((n) => n.container === 'mover')!.shaping;
  t.deepEqual([shaping.rate, shaping.weight], [2e6, 7], 'its class in the uplink moved with it');
  t.timeout(110_000);
  const logs = await logsUntil('mover', /verified|echo:/, 60_000);
  const stalled = () => h.cli(['container', 'inspect', 'mover', '--json']).then((r) => r.stdout.slice(0, 1500));
  t.regex(logs.stdout, /echo: verified 2097152 bytes/, /echo: verified/.test(logs.stdout) ? logs.stdout : `no end after 60 s: ${await stalled()}`);
});
