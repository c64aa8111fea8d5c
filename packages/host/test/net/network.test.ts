/**
 * Two hosts' networks joined in memory (the fabric replaced by a turn of the event loop), on the real
 * clock and the network's own timer; and an uplink on a fake clock: an offloaded segment larger than the
 * whole queue goes in as the packets it is, as far as they fit, the rest dropped at the tail.
 */
import test from 'ava';
import { setImmediate as turn } from 'node:timers/promises';
import { Bridge } from '../../src/net/bridge.js';
import { encodeEthernet, encodeIpv4, encodeTcp, etherTypes, ipProtocols } from '../../src/net/frame.js';
import { HostNetwork } from '../../src/net/network.js';
import { UplinkPort } from '../../src/net/uplink.js';

const clock = () => performance.now();

/** h1 and h2 on 1 gbit uplinks with queues of `maxQueue` packets, a container's namespace on each. */
function twoHosts(maxQueue: number) {
  const spec = { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue };
  const nets: Record<string, HostNetwork> = {};
  const join = (from: string, other: string) => new HostNetwork(clock, spec, 1, (_to, frame) => setImmediate(() => nets[other]!.fromFabric(from, [frame])));
  nets['h1'] = join('h1', 'h2');
  nets['h2'] = join('h2', 'h1');
  const sender = nets['h1'].stack('tx', () => {});
  const receiver = nets['h2'].stack('rx', () => {});
  nets['h1'].attach(sender, 'eth0', '10.0.0.1', '02:00:0a:00:00:01');
  const receiverNic = nets['h2'].attach(receiver, 'eth0', '10.0.0.2', '02:00:0a:00:00:02');
  return { nets, sender, receiver, receiverNic };
}

test('a stream through an uplink whose queue holds 20 packets, less than one offloaded segment: every byte, in order', async (t) => {
  const { nets, sender, receiver } = twoHosts(20);
  const listener = receiver.socket('stream');
  receiver.bind(listener, 5201);
  receiver.listen(listener, 1);
  const client = sender.socket('stream');
  const deadline = performance.now() + 20_000;
  while (!sender.connect(client, { ip: '10.0.0.2', port: 5201 }) && performance.now() < deadline) await turn();
  let accepted: number | undefined;
  const data = Uint8Array.from({ length: 2 * 2 ** 20 }, (_, i) => (i * 31) % 253);
  const got: Uint8Array[] = [];
  let sent = 0;
  let received = 0;
  while (received < data.length && performance.now() < deadline) {
    if (sent < data.length) sent += sender.write(client, data.subarray(sent));
    accepted ??= receiver.accept(listener)?.fd;
    const bytes = accepted === undefined ? undefined : receiver.read(accepted, 1 << 20);
    if (bytes && bytes.length > 0) {
      got.push(bytes);
      received += bytes.length;
    }
    await turn();
  }
  const info = sender.tcpInfo(client);
  for (const net of Object.values(nets)) net.close();
  t.is(received, data.length, 'every byte arrived');
  t.true(Buffer.compare(Buffer.concat(got), data) === 0, 'in order');
  const link = nets['h1'].link();
  t.log(`h1's uplink: ${link.txPackets} packets sent, ${link.queueDrops} dropped at the tail; ${info.retransmits} retransmits, ${info.timeouts} timeouts`);
  t.true(link.txPackets > data.length / 1460, 'as the packets on the wire');
});

test('an offloaded segment of 44 packets into a queue of 20: 20 packets queue, 24 are dropped at the tail, none of it whole', (t) => {
  let now = 0;
  const sent: Uint8Array[] = [];
  const uplink = new UplinkPort(() => now, { bandwidth: 8e6, delay: 0, jitter: 0, loss: 0, maxQueue: 20 }, 1, new Bridge(() => now), (_to, frame) => sent.push(frame), () => {});
  const segment = encodeTcp({ srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: { syn: false, ack: true, fin: false, rst: false, psh: false }, window: 100, payload: new Uint8Array(44 * 1460) }, '10.0.0.1', '10.0.0.2');
  const frame = encodeEthernet({ dst: '02:00:0a:00:00:02', src: '02:00:0a:00:00:01', type: etherTypes.ipv4, payload: encodeIpv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: ipProtocols.tcp, ttl: 64, id: 1, dontFragment: true, payload: segment }) });
  uplink.deliver(frame);
  const stats = uplink.stats();
  // at 1 MB/s the bucket's burst lets a few packets out at once; the rest wait
  t.is(stats.queueDrops, 24);
  t.is(sent.length + stats.backlog, 20);
  t.true(sent.every((f) => f.length <= 1514), 'packets, not the segment');
  // the owner's timer, as HostNetwork runs it
  for (let at = uplink.nextTimerAt(); at !== undefined; at = uplink.nextTimerAt()) uplink.tick((now = at));
  t.is(uplink.stats().txPackets, 20);
  t.is(sent.length, 20);
});

test('a namespace locked for a checkpoint hears and says nothing, so its saved streams stay true; unlocked, it goes on', async (t) => {
  const { nets, sender, receiver, receiverNic: nic } = twoHosts(1000);
  const listener = receiver.socket('stream');
  receiver.bind(listener, 7);
  receiver.listen(listener, 1);
  const client = sender.socket('stream');
  const deadline = performance.now() + 10_000;
  while (!sender.connect(client, { ip: '10.0.0.2', port: 7 }) && performance.now() < deadline) await turn();
  let accepted: number | undefined;
  while (accepted === undefined && performance.now() < deadline) {
    accepted = receiver.accept(listener)?.fd;
    await turn();
  }
  nets['h2'].lock(receiver);
  const saved = JSON.stringify(receiver.save(0).sockets.map((s) => s.stream?.tcp.receive.nxt));
  sender.write(client, new Uint8Array(100_000).fill(7));
  for (let i = 0; i < 50; i++) await turn();
  t.is(JSON.stringify(receiver.save(0).sockets.map((s) => s.stream?.tcp.receive.nxt)), saved, 'nothing arrived while locked');
  t.true(nic.counters.rxDropped > 0, 'what came was dropped');
  t.is(sender.tcpInfo(client).bytesAcked, 0, 'and nothing was acknowledged');
  nets['h2'].unlock(receiver);
  let received = 0;
  while (received < 100_000 && performance.now() < deadline + 10_000) {
    received += receiver.read(accepted!, 1 << 20)?.length ?? 0;
    await turn();
  }
  for (const net of Object.values(nets)) net.close();
  t.is(received, 100_000, 'the sender\'s retransmissions got through once unlocked');
});
