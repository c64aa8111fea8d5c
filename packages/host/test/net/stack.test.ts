/**
 * Two net namespaces on one bridge, driven by hand: ARP resolves, the stack answers echo requests, ping
 * and UDP sockets deliver with the kernel's errnos, and bad frames are counted drops.
 */
import test from 'ava';
import { SlicelabError } from '@slicelab/protocol';
import { Bridge } from '../../src/net/bridge.js';
import { decodeEthernet, encodeEthernet, encodeIpv4, etherTypes, ipProtocols } from '../../src/net/frame.js';
import { NetStack, type Nic } from '../../src/net/stack.js';

async function settle(): Promise<void> {
  // loopback delivery and nothing else is deferred (a microtask)
  await new Promise((resolve) => setImmediate(resolve));
}

function setup() {
  let now = 0;
  const clock = () => now;
  const bridge = new Bridge(clock);
  const woken: string[] = [];
  const frames: Uint8Array[] = [];
  // frames wait in the wire until `flush`, as the host delivers them on a later turn
  const wire: Array<() => void> = [];
  const make = (name: string, ip: string, mac: string) => {
    let nic!: Nic;
    const stack = new NetStack(clock, (from, frame) => {
      frames.push(frame);
      bridge.receive(name, frame, decodeEthernet(frame).dst, from.mac);
    }, (fd) => woken.push(`${name}:${fd}`));
    bridge.attach({ id: name, deliver: (frame) => wire.push(() => stack.receive(nic, frame)) });
    nic = stack.addNic('eth0', ip, mac);
    return { stack, nic };
  };
  const a = make('a', '10.0.0.1', '02:00:0a:00:00:01');
  const b = make('b', '10.0.0.2', '02:00:0a:00:00:02');
  const flush = () => {
    for (let i = 0; i < 100_000 && wire.length > 0; i++) wire.shift()!();
  };
  return { a, b, woken, frames, flush, advance: (ms: number) => (now += ms) };
}

test('ping: ARP resolves the address, the other stack answers the echo, the reply reaches the ping socket', (t) => {
  const { a, b, woken, flush } = setup();
  const fd = a.stack.socket('icmp');
  a.stack.sendTo(fd, { ip: '10.0.0.2', port: 0 }, new Uint8Array(56).fill(7), 1);
  flush();
  const reply = a.stack.recv(fd);
  t.truthy(reply, 'request, ARP, reply');
  t.deepEqual([reply!.from.ip, reply!.seq, reply!.ttl, reply!.bytes.length], ['10.0.0.2', 1, 64, 56]);
  t.deepEqual(woken, [`a:${fd}`]);
  t.deepEqual(a.stack.neighbours().map((n) => [n.ip, n.mac]), [['10.0.0.2', '02:00:0a:00:00:02']]);
  t.deepEqual(b.stack.neighbours().map((n) => [n.ip, n.mac]), [['10.0.0.1', '02:00:0a:00:00:01']], 'learned from the request');
  t.is(a.stack.recv(fd), undefined, 'nothing more: a receive would block');
});

test('UDP: a bound port receives with the sender\'s address; a taken port is EADDRINUSE; unknown fds EBADF', (t) => {
  const { a, b, flush } = setup();
  const server = b.stack.socket('dgram');
  b.stack.bind(server, 7);
  const other = b.stack.socket('dgram');
  const taken = t.throws(() => b.stack.bind(other, 7), { instanceOf: SlicelabError, message: /port 7 is in use/ });
  t.is(taken?.code, 'EADDRINUSE');
  const client = a.stack.socket('dgram');
  a.stack.sendTo(client, { ip: '10.0.0.2', port: 7 }, new TextEncoder().encode('hello'));
  flush();
  const got = b.stack.recv(server)!;
  t.is(new TextDecoder().decode(got.bytes), 'hello');
  t.is(got.from.ip, '10.0.0.1');
  t.true(got.from.port >= 32768 && got.from.port <= 60999, 'an ephemeral port, bound by the send');
  b.stack.sendTo(server, got.from, new TextEncoder().encode('echo'));
  flush();
  t.is(new TextDecoder().decode(a.stack.recv(client)!.bytes), 'echo');
  b.stack.close(server);
  t.throws(() => b.stack.recv(server), { message: /no socket/ });
  const reused = b.stack.socket('dgram');
  t.notThrows(() => b.stack.bind(reused, 7), 'a closed socket gives its port back');
});

test('a datagram for a port nobody holds, a frame for another MAC and garbage are counted drops', (t) => {
  const { a, b, flush } = setup();
  const client = a.stack.socket('dgram');
  a.stack.sendTo(client, { ip: '10.0.0.2', port: 9 }, new Uint8Array(3));
  flush();
  t.is(b.nic.counters.rxDropped, 1, 'no socket on port 9');
  b.stack.receive(b.nic, new Uint8Array([1, 2, 3]));
  b.stack.receive(b.nic, encodeEthernet({ dst: '02:00:0a:00:00:99', src: a.nic.mac, type: etherTypes.ipv4, payload: new Uint8Array(20) }));
  const badChecksum = encodeIpv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: ipProtocols.udp, ttl: 64, id: 1, dontFragment: true, payload: new Uint8Array(8) });
  badChecksum[10] ^= 0xff;
  b.stack.receive(b.nic, encodeEthernet({ dst: b.nic.mac, src: a.nic.mac, type: etherTypes.ipv4, payload: badChecksum }));
  t.is(b.nic.counters.rxDropped, 4);
});

test('an address nobody answers: ARP is asked three times, then the sender learns EHOSTUNREACH', (t) => {
  const { a, advance, woken } = setup();
  const fd = a.stack.socket('dgram');
  a.stack.sendTo(fd, { ip: '10.0.0.99', port: 5 }, new Uint8Array(1));
  t.is(a.stack.recv(fd), undefined);
  for (let i = 0; i < 3; i++) {
    advance(1000);
    a.stack.tick(1000 * (i + 1));
  }
  t.true(woken.includes(`a:${fd}`), 'the socket is woken to report it');
  t.throws(() => a.stack.recv(fd), { message: /EHOSTUNREACH/ });
  t.is(a.stack.recv(fd), undefined, 'reported once');
});

test('a datagram to its own address goes through the loopback, not the wire', async (t) => {
  const { a, frames } = setup();
  const fd = a.stack.socket('dgram');
  a.stack.bind(fd, 5000);
  a.stack.sendTo(fd, { ip: '10.0.0.1', port: 5000 }, new Uint8Array([42]));
  await settle();
  t.deepEqual([...a.stack.recv(fd)!.bytes], [42]);
  t.is(frames.length, 0);
});

test('a namespace saves and loads: sockets with their ports and queued datagrams, neighbours, counters', (t) => {
  const { a, b, flush } = setup();
  const server = b.stack.socket('dgram');
  b.stack.bind(server, 53);
  const client = a.stack.socket('dgram');
  a.stack.sendTo(client, { ip: '10.0.0.2', port: 53 }, new Uint8Array([1, 2, 3]));
  flush();
  const state = structuredClone(b.stack.save(0));
  t.deepEqual(state.nics.map((n) => [n.name, n.ip, n.counters.rxPackets > 0]), [['eth0', '10.0.0.2', true]]);
  const copy = new NetStack(() => 5000, () => {}, () => {});
  copy.load(state, 5000);
  t.deepEqual([...copy.recv(server)!.bytes], [1, 2, 3], 'the queued datagram came along');
  const again = copy.socket('dgram');
  t.true(again > server, 'descriptors go on from where they were');
  t.throws(() => copy.bind(again, 53), { message: /in use/ });
  t.deepEqual(copy.neighbours().map((n) => n.ip), ['10.0.0.1']);
});

/** Runs the stacks' timers (delayed ACKs, retransmissions) up to `ms` ahead, as the host's one timer would. */
function timers(stacks: NetStack[], advance: (ms: number) => number, flush: () => void, ms: number): void {
  for (let i = 0; i < ms; i += 10) {
    flush();
    const now = advance(10);
    for (const stack of stacks) stack.tick(now);
    flush();
  }
}

test('TCP: listen, connect, accept, bytes both ways in order, EOF after close; a closed port refuses', (t) => {
  const { a, b, advance, flush } = setup();
  const run = (ms: number) => timers([a.stack, b.stack], advance, flush, ms);
  const listener = b.stack.socket('stream');
  b.stack.bind(listener, 80);
  b.stack.listen(listener, 8);
  const client = a.stack.socket('stream');
  t.is(a.stack.connect(client, { ip: '10.0.0.2', port: 80 }), undefined, 'the handshake runs');
  run(50);
  t.true(a.stack.connect(client, { ip: '10.0.0.2', port: 80 }));
  const accepted = b.stack.accept(listener)!;
  t.is(accepted.from.ip, '10.0.0.1');
  t.is(b.stack.accept(listener), undefined, 'one connection, accepted once');
  const message = new Uint8Array(100_000).map((_, i) => i % 251);
  let sent = 0;
  const got: number[] = [];
  for (let round = 0; round < 200 && got.length < message.length; round++) {
    if (sent < message.length) sent += a.stack.write(client, message.subarray(sent));
    run(50);
    const bytes = b.stack.read(accepted.fd, 1 << 20);
    if (bytes) got.push(...bytes);
  }
  t.deepEqual(Uint8Array.from(got), message, 'every byte, in order');
  b.stack.write(accepted.fd, new TextEncoder().encode('bye'));
  b.stack.close(accepted.fd);
  run(100);
  t.is(new TextDecoder().decode(a.stack.read(client, 100)), 'bye');
  t.deepEqual(a.stack.read(client, 100), new Uint8Array(0), 'then the end of the stream');

  const refused = a.stack.socket('stream');
  a.stack.connect(refused, { ip: '10.0.0.2', port: 81 });
  run(50);
  const error = t.throws(() => a.stack.connect(refused, { ip: '10.0.0.2', port: 81 }));
  t.is((error as SlicelabError).code, 'ECONNREFUSED');
  const idle = a.stack.socket('stream');
  t.throws(() => a.stack.read(idle, 1), { message: /not connected/ });
});

test('a refused or finished stream leaves the connection table when its socket closes', (t) => {
  const { a, advance, flush } = setup();
  const refused = a.stack.socket('stream');
  a.stack.connect(refused, { ip: '10.0.0.2', port: 81 });
  timers([a.stack], advance, flush, 50);
  t.throws(() => a.stack.connect(refused, { ip: '10.0.0.2', port: 81 }), { message: /ECONNREFUSED/ });
  a.stack.close(refused);
  t.is(a.stack.save(0).closing.length, 0, 'nothing left closing');
  t.is(a.stack.nextTimerAt(), undefined, 'and no timer kept for it');
});
