import test from 'ava';
import { ProtocolError, clusterSubjects, decode, defaultDisk, defaultScheduler, encode, validate } from '@slicelab/protocol';

const info = {
  name: 'h1', cores: 2, memory: 1024 ** 3, uplink: { bandwidth: 1e9, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 },
  scheduler: defaultScheduler, disk: defaultDisk, cluster: 'default', pid: 42, version: '0.1.0', machine: 'box', startedAt: Date.now(),
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

test('subjects: every cluster has its own root and one token per name', (t) => {
  const a = clusterSubjects('lab');
  t.is(a.hostStatus('h1'), 'slicelab.lab.host.h1.status');
  t.is(a.anyHeartbeat, 'slicelab.lab.host.*.heartbeat');
  t.not(clusterSubjects('other').register, a.register);
});
