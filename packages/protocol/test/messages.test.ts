import test from 'ava';
import { ProtocolError, clusterSubjects, decode, defaultDisk, defaultScheduler, encode, maxCaptureMs, netOps, permissionsFor, speaker, validate } from '@slicelab/protocol';

const info = {
  name: 'h1', cores: 2, memory: 1024 ** 3, uplink: { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 },
  scheduler: defaultScheduler, disk: defaultDisk, subnet: '10.0.0.0/16', cluster: 'default', pid: 42, version: '0.1.0', machine: 'box', startedAt: Date.now(), instance: 'a1',
};

test('the codec round-trips a message and owns its bytes', (t) => {
  const first = encode(info);
  const second = encode({ other: true });
  t.deepEqual(decode(first), info);
  t.deepEqual(decode(second), { other: true });
});

test('garbage does not decode: a ProtocolError, never a crash', (t) => {
  t.throws(() => decode(new Uint8Array()), { instanceOf: ProtocolError, message: 'empty message' });
  t.throws(() => decode(new Uint8Array([0xc1])), { instanceOf: ProtocolError });
  t.throws(() => decode(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])), { instanceOf: ProtocolError });
  // a deeply nested array overflows the decoder's stack: still just a ProtocolError
  t.throws(() => decode(new Uint8Array(200_000).fill(0x91)), { instanceOf: ProtocolError });
});

test('validation names the field that is wrong', (t) => {
  t.is(validate.hostInfo(info), info);
  t.throws(() => validate.hostInfo({ ...info, cores: -1 }), { instanceOf: ProtocolError, message: /\/cores/ });
  t.throws(() => validate.hostInfo({ ...info, name: 'H 1' }), { message: /\/name/ });
  t.throws(() => validate.hostInfo({ ...info, uplink: { ...info.uplink, loss: 101 } }), { message: /\/uplink\/loss/ });
  t.throws(() => validate.ping('hello'), { message: /bad Ping/ });
  t.throws(() => validate.heartbeat(null), { instanceOf: ProtocolError });
});

test('subjects: every cluster has its own root and one token per name; what a host says is under from.<host>', (t) => {
  const a = clusterSubjects('lab');
  t.is(a.hostStatus('h1'), 'slicelab.lab.host.h1.status');
  t.is(a.hostHeartbeat('h1'), 'slicelab.lab.from.h1.heartbeat');
  t.is(speaker(a.hostLeft('h-2')), 'h-2');
  t.is(a.anyHeartbeat, 'slicelab.lab.from.*.heartbeat');
  t.not(clusterSubjects('other').anyRegister, a.anyRegister);
  t.is(a.inbox({ role: 'host', host: 'admin' }), '_INBOX.lab.host.admin', 'a host named admin is not the admin');
});

/** Whether NATS subject `subject` matches the permission pattern `pattern` (`*` one token, `>` the rest). */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}
const may = (allow: string[], subject: string) => allow.some((pattern) => matches(pattern, subject));

test('permissions: a host says only its own things and hears only its own requests', (t) => {
  const s = clusterSubjects('lab');
  const h1 = permissionsFor('lab', { role: 'host', host: 'h1' });
  for (const subject of [s.hostHeartbeat('h1'), s.hostLeft('h1'), s.hostRegister('h1'), s.imageTransfer('h2', 'x1'), '$KV.slicelab_lab_hosts.h1']) t.true(may(h1.pub.allow, subject), subject);
  for (const subject of [s.hostHeartbeat('h2'), s.hostLeft('h2'), s.hostEvents, s.container('h2', 'run'), s.list, '$KV.slicelab_lab_hosts.h2', 'slicelab.other.from.h1.heartbeat']) {
    t.false(may(h1.pub.allow, subject), subject);
  }
  t.true(may(h1.sub.allow, s.container('h1', 'run')));
  t.false(may(h1.sub.allow, s.container('h2', 'run')));
  t.false(may(h1.sub.allow, '_INBOX.lab.admin.abc'), 'nor the admin\'s replies');
  const admin = permissionsFor('lab', { role: 'admin' });
  t.true(may(admin.pub.allow, s.container('h2', 'run')));
  for (const subject of [s.hostHeartbeat('h1'), s.hostRegister('h1'), s.hostEvents]) t.false(may(admin.pub.allow, subject), subject);
  const launcher = permissionsFor('lab', { role: 'launcher' });
  t.true(may(launcher.pub.allow, s.hostEvents));
  t.false(may(launcher.pub.allow, s.container('h1', 'run')));
});

test('permissions: a host sends frames only as itself and hears only those for it and broadcasts', (t) => {
  const s = clusterSubjects('lab');
  const h1 = permissionsFor('lab', { role: 'host', host: 'h1' });
  t.true(may(h1.pub.allow, s.frames('h1', 'h2')));
  t.true(may(h1.pub.allow, s.broadcast('h1')));
  t.false(may(h1.pub.allow, s.frames('h2', 'h1')), 'not as h2');
  t.false(may(h1.pub.allow, s.broadcast('h2')));
  t.true(may(h1.sub.allow, s.frames('h2', 'h1')));
  t.true(may(h1.sub.allow, s.broadcast('h3')));
  t.false(may(h1.sub.allow, s.frames('h2', 'h3')), 'not frames between others');
});

test('permissions: net requests are a host\'s own requests: an admin sends them, only that host answers', (t) => {
  const s = clusterSubjects('lab');
  t.is(s.net('h1', 'set-link'), 'slicelab.lab.host.h1.net.set-link');
  const h1 = permissionsFor('lab', { role: 'host', host: 'h1' });
  const admin = permissionsFor('lab', { role: 'admin' });
  const launcher = permissionsFor('lab', { role: 'launcher' });
  for (const op of netOps) {
    t.true(may(admin.pub.allow, s.net('h2', op)), op);
    t.true(may(h1.sub.allow, s.net('h1', op)), op);
    t.false(may(h1.sub.allow, s.net('h2', op)), `${op}: not another host's`);
    t.false(may(h1.pub.allow, s.net('h2', op)), `${op}: a host does not ask another`);
    t.false(may(launcher.pub.allow, s.net('h1', op)), op);
  }
  // a capture's pcap file comes back in chunks to the requester's inbox
  t.true(may(h1.pub.allow, `${s.inbox({ role: 'admin' })}.x1`));
});

test('net messages are checked at the edge, naming the field', (t) => {
  t.deepEqual(validate.linkSet({ delay: 20 }), { delay: 20 }, 'a change names only what changes');
  t.throws(() => validate.linkSet({ loss: 150 }), { message: /\/loss/ });
  t.throws(() => validate.linkSet({ bandwidth: 0 }), { message: /\/bandwidth/ });
  t.throws(() => validate.linkSet({ maxQueue: 0.5 }), { message: /\/maxQueue/ });
  t.throws(() => validate.nicSet({ name: 'a', nic: 'eth0', weight: 0 }), { message: /\/weight/ });
  t.throws(() => validate.nicSet({ name: 'a', nic: 'eth0', weight: 10_001 }), { message: /\/weight/ });
  t.throws(() => validate.nicSet({ name: 'a', nic: 'eth0', ceil: 0 }), { message: /\/ceil/ });
  t.throws(() => validate.netCapture({ durationMs: maxCaptureMs + 1, to: '_INBOX.lab.admin.x' }), { message: /\/durationMs/ });
  t.throws(() => validate.netCapture({ durationMs: 1000, to: 'a subject with spaces' }), { message: /\/to/ });
  const health = { windowMs: 1000, waitingMs: 0, sentBps: 0, allowedBps: 0, lateP99Ms: 0, lateMaxMs: 0, limited: false };
  const uplink = { spec: info.uplink, txBytes: 0, txPackets: 0, rxBytes: 0, rxPackets: 0, queueDrops: 0, lossDrops: 0, backlog: 0, inFlight: 0, rateBps: 0, health };
  const links = { host: 'h1', uplink, nics: [], fabric: { messages: 3, frames: 40, bytes: 60_000, framesLost: 0 }, warnings: [] };
  t.deepEqual(validate.hostLinks(decode(encode(links))), links);
  t.throws(() => validate.hostLinks({ ...links, fabric: { ...links.fabric, framesLost: -1 } }), { message: /\/fabric\/framesLost/ });
  t.throws(() => validate.hostLinks({ ...links, uplink: { ...uplink, health: { ...health, limited: 'yes' } } }), { message: /\/uplink\/health\/limited/ });
});
