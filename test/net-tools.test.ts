/**
 * The network's inspection and control commands through the CLI, as a user drives them, on one detached
 * cluster of real host processes (h1, h2) shared by the whole file (tests run in order and build on each
 * other): `net links` with its counters, `net set-link` and `net set-nic` (a ping's RTT follows the
 * delay), refused input that changes nothing, `net arp`, and `net capture` read back by the real tcpdump.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CaptureResult, ContainerInfo, HostArp, HostLinks, LinkSettings, NicLink, NicSettings } from '@slicelab/protocol';
import { Harness, hostConfig, oneLineError, poll } from './harness.js';

const h = new Harness();
const cluster = 'nt';
const config = h.writeConfig(cluster, hostConfig(cluster, ['h1', 'h2']));

type LinksJson = { hosts: HostLinks[]; missing: Array<{ host: string; reason: string }> };
type PingJson = { received: number; transmitted: number; rtt?: { min: number; avg: number; max: number } };
type CaptureJson = CaptureResult & { file: string };

/** the containers' addresses, as `container run` reported them */
const nics: Record<string, { ip: string; mac: string }> = {};

test.before(async () => {
  await h.up(config);
  const runs = await Promise.all([['h1', 'a'], ['h2', 'b']].map(([host, name]) =>
    h.cliJson<ContainerInfo>(['container', 'run', '--host', host!, '--name', name!, '--program', 'heartbeat', '--arg', 'interval=1s'])));
  for (const run of runs) {
    if (run.code !== 0) throw new Error(`container run failed (exit ${run.code}): ${run.stderr}`);
    nics[run.name] = { ip: run.nics[0]!.ip, mac: run.nics[0]!.mac };
  }
});

test.after.always(async () => {
  await h.cli(['down']);
  await h.cleanup();
});

// ---------------------------------------------------------------------------------------------------------
// helpers: all of them go through the CLI

async function links(): Promise<LinksJson> {
  const result = await h.cliJson<LinksJson>(['net', 'links']);
  if (result.code !== 0) throw new Error(`net links failed (exit ${result.code}): ${result.stderr}`);
  return result;
}

function nicOf(survey: LinksJson, container: string): NicLink {
  const nic = survey.hosts.flatMap((x) => x.nics).find((n) => n.container === container);
  if (!nic) throw new Error(`no nic of ${container} in ${JSON.stringify(survey)}`);
  return nic;
}

const uplinkOf = (survey: LinksJson, host: string) => survey.hosts.find((x) => x.host === host)!.uplink;

async function ping(from: string, to: string, count = 3): Promise<PingJson & { code: number; stderr: string }> {
  return h.cliJson<PingJson>(['net', 'ping', from, to, '--count', String(count), '--interval', '100ms']);
}

// ---------------------------------------------------------------------------------------------------------

test.serial('links: both uplinks and every nic with its class; the counters grow with a ping', async (t) => {
  const before = await links();
  t.deepEqual(before.hosts.map((x) => x.host), ['h1', 'h2']);
  t.deepEqual(before.missing, []);
  for (const host of ['h1', 'h2']) t.deepEqual(uplinkOf(before, host).spec, { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 });
  const a = nicOf(before, 'a');
  t.like(a, { container: 'a', nic: 'eth0', ip: nics['a']!.ip, mac: nics['a']!.mac });
  t.like(a.shaping, { rate: 0, ceil: null, weight: 1 }, 'a nic has no guarantee, the link as its ceil, weight 1 until told');
  t.is(before.hosts.find((x) => x.host === 'h2')!.nics[0]?.container, 'b', 'b is listed under its host');

  const pinged = await ping('a', 'b');
  t.is(pinged.code, 0, pinged.stderr);
  t.is(pinged.received, 3);

  const [after, text] = await Promise.all([links(), h.cli(['net', 'links'])]);
  for (const name of ['a', 'b']) {
    const [was, now] = [nicOf(before, name), nicOf(after, name)];
    t.true(now.counters.txPackets >= was.counters.txPackets + 3, `${name} sent 3 echoes or replies: ${JSON.stringify(now.counters)}`);
    t.true(now.counters.rxPackets >= was.counters.rxPackets + 3, `${name} received 3: ${JSON.stringify(now.counters)}`);
    t.true(now.shaping.packets >= was.shaping.packets + 3, `${name}'s class sent them through the uplink: ${JSON.stringify(now.shaping)}`);
  }
  for (const host of ['h1', 'h2']) {
    const [was, now] = [uplinkOf(before, host), uplinkOf(after, host)];
    t.true(now.txPackets >= was.txPackets + 3 && now.rxPackets >= was.rxPackets + 3, `${host}: ${JSON.stringify(now)}`);
    t.like(now.health, { limited: false }, `${host}: a ping does not make the emulator the limit`);
  }
  t.is(text.code, 0, text.stderr);
  for (const word of ['h1', 'h2', nics['a']!.ip, nics['b']!.mac, '1gbit']) t.true(text.stdout.includes(word), `${word} in:\n${text.stdout}`);
});

test.serial('set-link changes only what is given; 20 ms of delay on both hosts shows in a ping\'s RTT', async (t) => {
  const set = await Promise.all(['h1', 'h2'].map((host) => h.cliJson<LinkSettings>(['net', 'set-link', host, '--delay', '20ms'])));
  for (const [i, result] of set.entries()) {
    t.is(result.code, 0, result.stderr);
    t.deepEqual(result.uplink, { bandwidth: 1e9, delay: 20, jitter: 0, loss: 0, maxQueue: 1000 }, `h${i + 1}: only the delay changed`);
  }
  const pinged = await ping('a', 'b');
  t.is(pinged.received, 3, pinged.stderr);
  t.true(pinged.rtt!.min >= 40, `a round trip crosses both uplinks' 20 ms: rtt ${JSON.stringify(pinged.rtt)}`);

  const more = await h.cliJson<LinkSettings>(['net', 'set-link', 'h1', '--bandwidth', '100mbit', '--jitter', '1ms', '--loss', '1%', '--queue', '500']);
  t.deepEqual(more.uplink, { bandwidth: 100e6, delay: 20, jitter: 1, loss: 1, maxQueue: 500 }, 'the delay set before stays');
  t.deepEqual(uplinkOf(await links(), 'h1').spec, more.uplink, 'links shows the link as set');
  type Status = { hosts: Array<{ name: string; uplink: { bandwidth: number } }> };
  const status = await poll(() => h.cliJson<Status>(['status']), (r) => r.hosts?.find((x) => x.name === 'h1')?.uplink.bandwidth === 100e6, 30, 200);
  t.is(status.hosts.find((x) => x.name === 'h1')!.uplink.bandwidth, 100e6, 'status shows it too, from the next heartbeat');

  const [h1, h2] = await Promise.all([
    h.cliJson<LinkSettings>(['net', 'set-link', 'h1', '--bandwidth', '1gbit', '--delay', '0ms', '--jitter', '0ms', '--loss', '0', '--queue', '1000']),
    h.cli(['net', 'set-link', 'h2', '--delay', '0ms']),
  ]);
  t.deepEqual(h1.uplink, { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 }, '--loss takes a bare percentage too');
  t.is(h2.stdout.trim(), 'h2 uplink: bandwidth 1gbit, delay 0ms, jitter 0ms, loss 0%, queue 1000', h2.stderr);
});

test.serial('set-nic sets a nic\'s class (bits/s as tc writes them) and links shows it', async (t) => {
  const [set, text] = await Promise.all([
    h.cliJson<NicSettings>(['net', 'set-nic', 'a', '--rate', '10mbit', '--ceil', '50mbit']),
    h.cli(['net', 'set-nic', 'b', '--ceil', '200mbit']),
  ]);
  t.is(set.code, 0, set.stderr);
  t.like(set, { container: 'a', host: 'h1', nic: 'eth0', ip: nics['a']!.ip, rate: 10e6, ceil: 50e6, weight: 1 });
  t.is(text.stdout.trim(), `b eth0 (${nics['b']!.ip} on h2): rate 0bit, ceil 200mbit, weight 1`, text.stderr);
  const weight = await h.cliJson<NicSettings>(['net', 'set-nic', 'a', '--weight', '300']);
  t.like(weight, { rate: 10e6, ceil: 50e6, weight: 300 }, 'rate and ceil stay');
  t.like(nicOf(await links(), 'a').shaping, { rate: 10e6, ceil: 50e6, weight: 300 });
});

test.serial('bad input: one line, a non-zero exit, and nothing changed', async (t) => {
  // refused in the CLI itself, so it may run beside the first look
  const [before, json] = await Promise.all([links(), h.cliJson<{ error: { code: string; message: string } }>(['net', 'set-link', 'h1', '--loss', '150%'])]);
  t.deepEqual(json.error, { code: 'ERANGE', message: '--loss: 150% is above 100%' }, 'with --json: the error as JSON');
  const refused: Array<[string[], RegExp]> = [
    [['net', 'set-link', 'nosuch', '--delay', '1ms'], /no host "nosuch" answers/],
    [['net', 'set-nic', 'nosuch', '--rate', '1mbit'], /no container "nosuch"/],
    [['net', 'set-link', 'h1', '--loss', '150%'], /--loss: 150% is above 100%/],
    [['net', 'set-nic', 'a', '--rate', '10gigs'], /--rate: unknown rate unit "gigs"/],
    [['net', 'set-nic', 'a', '--rate', '20mbit', '--ceil', '10mbit'], /--ceil 10mbit is below --rate 20mbit/],
    [['net', 'set-nic', 'a', '--rate', '60mbit'], /ceil 50mbit is below rate 60mbit/],
    [['net', 'set-nic', 'a', '--weight', '0'], /--weight/],
    [['net', 'capture', 'nosuch', '--out', join(h.home, 'x.pcap')], /no container or host "nosuch"/],
  ];
  // a few at a time: a dozen CLIs starting at once on a small machine would make the hosts late
  for (let i = 0; i < refused.length; i += 4) {
    const batch = refused.slice(i, i + 4);
    const results = await Promise.all(batch.map(([args]) => h.cli(args)));
    for (const [j, result] of results.entries()) oneLineError(t, result, batch[j]![1], batch[j]![0].join(' '));
  }

  const after = await links();
  t.deepEqual(after.hosts.map((x) => x.uplink.spec), before.hosts.map((x) => x.uplink.spec), 'the links are as they were');
  for (const name of ['a', 'b']) t.deepEqual(settings(nicOf(after, name)), settings(nicOf(before, name)), `${name}'s class is as it was`);
  t.deepEqual(settings(nicOf(after, 'a')), { rate: 10e6, ceil: 50e6, weight: 300 });
});

const settings = ({ shaping: { rate, ceil, weight } }: NicLink) => ({ rate, ceil, weight });

test.serial('arp: the neighbour a ping taught each side, and where each bridge learned the MACs', async (t) => {
  const [h1, h2, text] = await Promise.all([h.cliJson<HostArp>(['net', 'arp', 'h1']), h.cliJson<HostArp>(['net', 'arp', 'h2']), h.cli(['net', 'arp', 'h1'])]);
  t.is(h1.code, 0, h1.stderr);
  t.true(h1.neighbours.some((n) => n.container === 'a' && n.ip === nics['b']!.ip && n.mac === nics['b']!.mac), JSON.stringify(h1.neighbours));
  t.true(h2.neighbours.some((n) => n.container === 'b' && n.ip === nics['a']!.ip && n.mac === nics['a']!.mac), JSON.stringify(h2.neighbours));
  const portOf = (arp: HostArp, mac: string) => arp.fdb.find((e) => e.mac === mac)?.port;
  t.deepEqual([portOf(h1, nics['a']!.mac), portOf(h1, nics['b']!.mac)], ['a-eth0', 'uplink']);
  t.deepEqual([portOf(h2, nics['a']!.mac), portOf(h2, nics['b']!.mac)], ['uplink', 'b-eth0']);
  t.true(text.stdout.includes(nics['b']!.mac) && text.stdout.includes('a-eth0'), text.stdout);
});

/** the real tcpdump, installed when the machine lacks it */
function tcpdump(file: string): string {
  try {
    execFileSync('tcpdump', ['--version'], { stdio: 'ignore' });
  } catch {
    execFileSync('apt-get', ['install', '-y', 'tcpdump'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: 'ignore' });
  }
  return execFileSync('tcpdump', ['-r', file, '-nn'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

test.serial('capture: a container\'s nic and a host\'s bridge to pcap files that tcpdump reads, with the ping\'s ICMP', async (t) => {
  const files = { a: join(h.home, 'a.pcap'), h2: join(h.home, 'h2.pcap'), b: join(h.home, 'b.pcap') };
  const [a, h2, b, pinged] = await Promise.all([
    h.cliJson<CaptureJson>(['net', 'capture', 'a', '--duration', '4s', '--out', files.a]),
    h.cliJson<CaptureJson>(['net', 'capture', 'h2', '--duration', '4s', '--out', files.h2]),
    h.cliJson<CaptureJson>(['net', 'capture', 'b', '--duration', '20s', '--count', '2', '--out', files.b]),
    // the captures are on well before this: each CLI takes about a second to ask its host
    sleep(1500).then(() => ping('a', 'b', 2)),
  ]);
  t.is(pinged.received, 2, pinged.stderr);
  for (const [name, result] of [['a', a], ['h2', h2]] as const) {
    t.is(result.code, 0, result.stderr);
    t.is(result.stoppedBy, 'duration');
    t.is(result.file, files[name]);
    const lines = tcpdump(files[name]).trim().split('\n');
    t.is(lines.length, result.frames, `${name}: every frame recorded is one tcpdump line:\n${lines.join('\n')}`);
    for (const seq of [1, 2]) {
      t.true(lines.some((l) => l.includes(`IP ${nics['a']!.ip} > ${nics['b']!.ip}: ICMP echo request`) && l.includes(`seq ${seq},`)), `${name}: request ${seq}:\n${lines.join('\n')}`);
      t.true(lines.some((l) => l.includes(`IP ${nics['b']!.ip} > ${nics['a']!.ip}: ICMP echo reply`) && l.includes(`seq ${seq},`)), `${name}: reply ${seq}:\n${lines.join('\n')}`);
    }
  }
  t.like(a, { host: 'h1', container: 'a' });
  t.is(h2.host, 'h2');
  t.is(h2.container, undefined, 'a host capture is of its whole bridge');

  t.is(b.code, 0, b.stderr);
  t.like(b, { host: 'h2', container: 'b', stoppedBy: 'count', frames: 2 }, '--count stops the capture early, as tcpdump -c');
  t.true(b.durationMs < 20_000, `stopped after ${b.durationMs} ms`);
  t.is(tcpdump(files.b).trim().split('\n').length, 2);
});

test.serial('links: a host that does not answer is named on stderr and the others are shown', async (t) => {
  const run = h.runFile(cluster)!;
  const h2 = run.hosts.find((x) => x.name === 'h2')!.pid;
  process.kill(h2, 'SIGSTOP');
  try {
    const result = await h.cliJson<LinksJson>(['net', 'links']);
    t.is(result.code, 0, result.stderr);
    t.deepEqual(result.hosts.map((x) => x.host), ['h1']);
    t.deepEqual(result.missing.map((m) => m.host), ['h2']);
    t.regex(result.stderr, /^slicelab: host h2 did not answer: (host h2 did not answer within 2000 ms|lost \(its heartbeats stopped\))\n$/);
  } finally {
    process.kill(h2, 'SIGCONT');
  }
});
