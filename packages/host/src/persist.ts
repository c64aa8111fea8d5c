/**
 * A container written down: the one save/restore shape that checkpoint, restore and clone move (and live
 * migration will move in another order). The record is the sum of its parts' states, each made by that
 * part's own `save` and taken back by its own `restore`/`load` (memory, scheduler group, cpu.max and
 * credit limiters, PSI, disk group, rootfs); the pages travel beside it, in an image's pages section.
 *
 * Plain data with a format version. Times are relative (a sleep's remaining ms, a period's elapsed ms,
 * the container's clock), never a raw performance.now(), which means nothing on another host.
 * Cluster-wide identities stay (name, uid_map); host-local ones (host pids, the group id) are remapped
 * on restore. A record read back is validated against the schema below before anything is made of it.
 */
import { Type, type Static } from '@sinclair/typebox';
import { validator } from '@slicelab/protocol';
import type { Container, Process } from './container.js';
import type { MemoryState } from './memory.js';

export const recordFormat = 3;

const Num = Type.Number();
const Int = Type.Integer({ minimum: 0 });
const NullableNum = Type.Union([Type.Number(), Type.Null()]);
const Bytes = Type.Uint8Array();
const Endpoint = Type.Object({ ip: Type.String(), port: Int });
const Ret = Type.Union([
  Type.Undefined(),
  Type.Null(),
  Type.Object({
    ok: Type.Literal(true), value: Type.Optional(Num), data: Type.Optional(Type.String()), bytes: Type.Optional(Type.Uint8Array()),
    from: Type.Optional(Endpoint), seq: Type.Optional(Int), ttl: Type.Optional(Int), info: Type.Optional(Type.Record(Type.String(), Num)),
  }),
  Type.Object({ ok: Type.Literal(false), errno: Type.String() }),
]);
const Args = Type.Record(Type.String(), Type.Union([Type.String(), Num]));

const Fd = Int;
const NetCallRecord = Type.Union([
  Type.Object({ sys: Type.Literal('recvfrom'), fd: Fd, timeoutMs: Type.Optional(Num) }),
  Type.Object({ sys: Type.Literal('accept'), fd: Fd, timeoutMs: Type.Optional(Num) }),
  Type.Object({ sys: Type.Literal('connect'), fd: Fd, ip: Type.String(), port: Int, timeoutMs: Type.Optional(Num) }),
  Type.Object({ sys: Type.Literal('send'), fd: Fd, data: Type.Optional(Type.Uint8Array()), bytes: Type.Optional(Int) }),
  Type.Object({ sys: Type.Literal('recv'), fd: Fd, max: Type.Optional(Int), timeoutMs: Type.Optional(Num) }),
]);

const ProcessRecord = Type.Object({
  pid: Type.Integer({ minimum: 1 }),
  ppid: Int,
  program: Type.String(),
  args: Args,
  regs: Type.Record(Type.String(), Type.Unknown()),
  ret: Ret,
  rand: Int,
  /** running processes are saved off their cores: a checkpoint waits until every quantum ended */
  state: Type.Union([Type.Literal('runnable'), Type.Literal('sleeping'), Type.Literal('io')]),
  uid: Int,
  cpuMs: Num,
  startedAt: Num,
  wait: Type.Union([
    Type.Null(),
    Type.Object({ kind: Type.Literal('sleep'), remainingMs: Num, ret: Ret }),
    Type.Object({ kind: Type.Literal('io'), op: Type.Union([Type.Literal('read'), Type.Literal('write')]), bytes: Int }),
    /** a socket call that would block, with the time it had left (null: for ever) */
    Type.Object({ kind: Type.Literal('net'), fd: Int, remainingMs: NullableNum, call: NetCallRecord }),
  ]),
});
export type ProcessRecord = Static<typeof ProcessRecord>;

const Positive = Type.Number({ exclusiveMinimum: 0 });
/** cpu.weight and io.weight: the kernel's 1..10000; a weight of 0 would divide virtual time by zero */
const Weight = Type.Number({ minimum: 1, maximum: 10_000 });

const BandwidthState = Type.Object({
  quotaMs: Num, periodMs: Positive, burstMs: Num, runtime: Num, periodElapsedMs: Num, usedInPeriod: Num, periodRuntime: Num,
  throttledForMs: NullableNum,
  stats: Type.Object({ nrPeriods: Int, nrThrottled: Int, throttledMs: Num, nrBursts: Int, burstMs: Num, peakPeriodMs: Num }),
});
const StallPair = Type.Object({ some: Num, full: Num });
const PressureState = Type.Object({
  total: StallPair, averaged: StallPair, avg: Type.Object({ some: Type.Array(Num), full: Type.Array(Num) }), sinceUpdateMs: Num, untilUpdateMs: Num,
});
const TokenBucketState = Type.Object({ tokens: Num, sinceRefillMs: NullableNum });
const IoMax = Type.Object({ rbps: NullableNum, wbps: NullableNum, riops: NullableNum, wiops: NullableNum });

const NicCounters = Type.Object({ rxBytes: Int, rxPackets: Int, txBytes: Int, txPackets: Int, rxDropped: Int, txDropped: Int });
const Datagram = Type.Object({ from: Endpoint, bytes: Bytes, seq: Type.Optional(Int), ttl: Type.Optional(Int) });
const Ipv4Packet = Type.Object({ src: Type.String(), dst: Type.String(), protocol: Int, ttl: Int, id: Int, dontFragment: Type.Boolean(), payload: Bytes });
const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const NullableInt = Type.Union([Int, Type.Null()]);
const TcpStateName = Type.Union([
  Type.Literal('CLOSED'), Type.Literal('SYN_SENT'), Type.Literal('SYN_RECEIVED'), Type.Literal('ESTABLISHED'), Type.Literal('FIN_WAIT_1'),
  Type.Literal('FIN_WAIT_2'), Type.Literal('CLOSE_WAIT'), Type.Literal('CLOSING'), Type.Literal('LAST_ACK'), Type.Literal('TIME_WAIT'),
]);
const TcpCounters = Type.Object({
  bytesSent: Int, bytesAcked: Int, bytesReceived: Int, segmentsSent: Int, segmentsReceived: Int, retransmits: Int, fastRetransmits: Int, timeouts: Int, windowProbes: Int,
});
/** tcp.ts's TcpState: what a stream needs to go on where it stopped */
const TcpRecord = Type.Object({
  state: TcpStateName,
  error: Type.Union([Type.Literal('ECONNREFUSED'), Type.Literal('ECONNRESET'), Type.Literal('ETIMEDOUT'), Type.Null()]),
  config: Type.Object({
    mss: Type.Integer({ minimum: 64, maximum: 65495 }), sendBuffer: Type.Integer({ minimum: 1 }), receiveBuffer: Type.Integer({ minimum: 1 }), initialWindow: Type.Integer({ minimum: 1 }),
    rtoInitialMs: Positive, rtoMinMs: Positive, rtoMaxMs: Positive, synRetries: Int, dataRetries: Int, mslMs: Num, delayedAckMs: Num, sack: Type.Boolean(), segmentOffload: Type.Boolean(),
  }),
  localPort: Port, remotePort: Port, iss: Int, irs: Int, mss: Type.Integer({ minimum: 1 }),
  /** RFC 7323's shift counts, the peer's (send) and ours (receive); null: unscaled */
  windowShift: Type.Union([Type.Object({ send: Type.Integer({ minimum: 0, maximum: 14 }), receive: Type.Integer({ minimum: 0, maximum: 14 }) }), Type.Null()]),
  /** SACK in use (RFC 2018), and the sender's scoreboard of SACKed [start, end) offsets */
  sack: Type.Boolean(),
  send: Type.Object({
    una: Int, nxt: Int, max: Int, window: Int, wl1: Int, wl2: Int, written: Int, fin: Type.Boolean(), buffer: Bytes,
    sacked: Type.Array(Type.Tuple([Int, Int])),
  }),
  receive: Type.Object({
    nxt: Int, edge: Int, buffer: Bytes, outOfOrder: Type.Array(Type.Object({ offset: Int, bytes: Bytes })), fin: NullableInt, unacked: Int,
  }),
  congestion: Type.Object({ cwnd: Num, ssthresh: Num, avoidanceBytes: Num, dupAcks: Int, recovering: Type.Boolean(), recover: Int, partialAcked: Type.Boolean(), highRxt: Int }),
  rtt: Type.Object({ srtt: NullableNum, rttvar: Num, rto: Positive, min: NullableNum, timed: Type.Union([Type.Object({ end: Int, ageMs: Num }), Type.Null()]) }),
  retries: Int, probesOut: Int, probeBackoff: Int,
  timers: Type.Object({ retransmit: NullableNum, persist: NullableNum, delayedAck: NullableNum, timeWait: NullableNum }),
  counters: TcpCounters,
});
const StreamRecord = Type.Object({ remote: Endpoint, tcp: TcpRecord });
const NetRecord = Type.Object({
  nics: Type.Array(Type.Object({
    name: Type.String(), ip: Type.String(), mac: Type.String(), counters: NicCounters,
    shaping: Type.Union([Type.Object({ rate: Type.Number({ minimum: 0 }), ceil: Type.Union([Positive, Type.Null()]), weight: Weight }), Type.Null()]),
  }), { maxItems: 8 }),
  sockets: Type.Array(Type.Object({
    fd: Int, kind: Type.Union([Type.Literal('dgram'), Type.Literal('icmp'), Type.Literal('stream')]), port: Port, queue: Type.Array(Datagram),
    error: Type.Union([Type.String(), Type.Null()]),
    backlog: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]), pending: Type.Array(StreamRecord), stream: Type.Union([StreamRecord, Type.Null()]),
  })),
  closing: Type.Array(StreamRecord),
  arp: Type.Object({
    entries: Type.Array(Type.Object({ ip: Type.String(), mac: Type.String(), ageMs: Num })),
    pending: Type.Array(Type.Object({ ip: Type.String(), queue: Type.Array(Ipv4Packet), sent: Int, inMs: Num })),
  }),
  nextFd: Int,
  nextEphemeral: Int,
  ipId: Int,
});

const ContainerRecord = Type.Object({
  format: Type.Literal(recordFormat),
  name: Type.String(),
  spec: Type.Object({
    name: Type.String(), program: Type.String(), args: Args, hostname: Type.Optional(Type.String()),
    resources: Type.Optional(Type.Array(Type.Object({
      name: Type.String(), binding: Type.Union([Type.Literal('identifier'), Type.Literal('value'), Type.Literal('type')]),
      attachment: Type.Union([Type.Literal('unattached'), Type.Literal('fastened'), Type.Literal('fixed')]), value: Type.String(), location: Type.String(),
    }))),
  }),
  hostname: Type.String(),
  createdAt: Num,
  uidMap: Type.Array(Type.Object({ inside: Int, outside: Int, length: Type.Integer({ minimum: 1 }) }), { minItems: 1 }),
  nextPid: Type.Integer({ minimum: 1 }),
  pidsPeak: Int,
  /** the container's monotonic clock when it was saved (its time namespace) */
  clockMs: Num,
  limits: Type.Object({
    cpuWeight: Weight,
    cpuMax: Type.Object({ quota: Type.Union([Type.Number({ minimum: 1000 }), Type.Null()]), period: Type.Number({ minimum: 1000, maximum: 1_000_000 }) }),
    cpuMaxBurst: Num,
    cpus: Type.Union([Type.Array(Int), Type.Null()]),
    memoryMax: NullableNum, memoryHigh: NullableNum, memoryLow: NullableNum,
    pidsMax: NullableNum,
    ioWeight: Weight,
    ioMax: IoMax,
    frozen: Type.Boolean(),
  }),
  credit: Type.Object({
    size: Type.String(),
    mode: Type.Union([Type.Literal('standard'), Type.Literal('unlimited')]),
    account: Type.Union([Type.Null(), Type.Object({
      size: Type.String(), mode: Type.Union([Type.Literal('standard'), Type.Literal('unlimited')]), speed: Positive,
      balance: Num, launch: Num, earned: Num, spent: Num, surplus: Num, charged: Num,
    })]),
  }),
  sched: Type.Object({ vtimeLead: Num, usageMs: Num, systemMs: Num, waitedMs: Num, holdForMs: Num }),
  cpuMax: Type.Union([BandwidthState, Type.Null()]),
  baseline: Type.Union([BandwidthState, Type.Null()]),
  io: Type.Object({
    vtimeLead: Num, sinceDoneMs: NullableNum, thinkMs: Num,
    stat: Type.Object({ rbytes: Num, wbytes: Num, rios: Num, wios: Num, waitedMs: Num }),
    buckets: Type.Object({ rbps: TokenBucketState, wbps: TokenBucketState, riops: TokenBucketState, wiops: TokenBucketState }),
  }),
  memory: Type.Object({ size: Type.Integer({ minimum: 4096, multipleOf: 4096 }), peakPages: Int, eventsMax: Int, pidsEvents: Int, dirty: Bytes, present: Bytes }),
  regions: Type.Array(Type.Object({ addr: Int, bytes: Int, ownerPid: Type.Integer({ minimum: 1 }) })),
  events: Type.Object({ low: Int, high: Int, oom: Int, oomKill: Int }),
  pressure: Type.Object({ cpu: PressureState, memory: PressureState, io: PressureState }),
  lastStalls: Type.Object({ cpu: Num, io: Num }),
  processes: Type.Array(ProcessRecord, { minItems: 1 }),
  rootfs: Type.Object({
    capacity: Int,
    nodes: Type.Array(Type.Tuple([Type.String(), Type.Union([
      Type.Object({ kind: Type.Literal('dir') }),
      Type.Object({ kind: Type.Literal('file'), data: Bytes }),
    ])])),
  }),
  net: NetRecord,
  logs: Type.Array(Type.String()),
});
export type ContainerRecord = Static<typeof ContainerRecord> & { memory: MemoryState };

export const validateRecord = validator('container record', ContainerRecord) as (value: unknown) => ContainerRecord;

/** Where the record's relative times and positions are measured from on this host, now. */
export interface SaveClock {
  /** the host's clock (performance.timeOrigin + performance.now()) */
  now: number;
  /** Date.now(), which PSI runs on */
  wallMs: number;
  /** the scheduler policy's reference virtual time */
  reference: number;
  /** the disk's virtual time */
  deviceVtime: number;
}

function saveProcess(process: Process, now: number): ProcessRecord {
  const wait = process.wait;
  let saved: ProcessRecord['wait'] = null;
  if (wait?.kind === 'sleep') saved = { kind: 'sleep', remainingMs: Math.max(0, wait.until - now), ret: wait.ret };
  else if (wait?.kind === 'io') saved = { kind: 'io', op: wait.op, bytes: wait.bytes };
  else if (wait?.kind === 'net') saved = { kind: 'net', fd: wait.fd, call: wait.call, remainingMs: wait.until === undefined ? null : Math.max(0, wait.until - now) };
  // waiting for an OOM victim's pages, or for a page in flight, is waiting to run: the step tries again on the other side
  const state = process.state === 'running' || wait?.kind === 'memory' || wait?.kind === 'page' ? 'runnable' : process.state;
  if (state === 'exited') throw new RangeError(`process ${process.pid} has exited`);
  return {
    pid: process.pid, ppid: process.ppid, program: process.program, args: process.args, regs: process.regs, ret: process.ret,
    rand: process.rand, state, uid: process.uid, cpuMs: process.cpuMs, startedAt: process.startedAt, wait: saved,
  };
}

/** The container as a record; its pages are taken separately (GuestMemory.touchedCopy). */
export function saveContainer(container: Container, at: SaveClock): ContainerRecord {
  const group = container.group;
  const owners = new Map([...container.processes.values()].map((p) => [p.gpid, p.pid]));
  return {
    format: recordFormat,
    name: container.name,
    spec: { ...container.spec, resources: container.spec.resources?.map((r) => ({ ...r })) },
    hostname: container.hostname,
    createdAt: container.createdAt,
    uidMap: container.userns.uidMap.map((m) => ({ ...m })),
    nextPid: container.nextPid,
    pidsPeak: container.pidsPeak,
    clockMs: at.now + container.clockOffset,
    limits: structuredClone(container.limits),
    credit: { ...container.credit, account: group.credit?.save(at.now) ?? null },
    sched: group.save(at.now, at.reference),
    cpuMax: group.cpuMax?.save(at.now) ?? null,
    baseline: group.baseline?.save(at.now) ?? null,
    io: container.io.save(at.now, at.deviceVtime),
    memory: container.memory.save(),
    regions: [...container.regions.values()].flatMap((r) => {
      const ownerPid = owners.get(r.owner);
      // a region of a process that already exited is on its way back (freed at that process's last report)
      return ownerPid === undefined ? [] : [{ addr: r.addr, bytes: r.bytes, ownerPid }];
    }),
    events: { ...container.events },
    pressure: {
      cpu: container.pressure.cpu.save(at.wallMs), memory: container.pressure.memory.save(at.wallMs), io: container.pressure.io.save(at.wallMs),
    },
    lastStalls: { ...container.lastStalls },
    processes: container.live().map((p) => saveProcess(p, at.now)),
    rootfs: container.rootfs.save(),
    net: container.net.save(at.now),
    logs: [...container.logs],
  };
}
