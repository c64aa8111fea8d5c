/**
 * Every message type that crosses the bus, as TypeBox schemas compiled to fast validators. Units on the
 * wire are plain numbers in base units: bytes, bits per second, milliseconds, epoch milliseconds.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ProtocolError } from './errors.js';

const Name = Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$' });
const Text = Type.String({ maxLength: 256 });
const Count = Type.Integer({ minimum: 0 });
const NonNegative = Type.Number({ minimum: 0 });
const EpochMs = Type.Number({ minimum: 0 });

export const Uplink = Type.Object({
  bandwidth: Type.Number({ exclusiveMinimum: 0 }),
  delay: NonNegative,
  jitter: NonNegative,
  loss: Type.Number({ minimum: 0, maximum: 100 }),
  maxQueue: Type.Integer({ minimum: 1 }),
});
export type Uplink = Static<typeof Uplink>;

export const PolicyName = Type.Union([Type.Literal('wfq'), Type.Literal('lottery'), Type.Literal('credit')]);

export const SchedulerSpec = Type.Object({
  policy: PolicyName,
  quantumMs: Type.Number({ minimum: 0.1, maximum: 1000 }),
  /** seeds the lottery draws and the programs' random numbers, so a run can be repeated */
  seed: Type.Integer({ minimum: 0 }),
  /** how much faster than real time T2 credits are earned and spent */
  creditSpeed: Type.Number({ exclusiveMinimum: 0 }),
});
export type SchedulerSpec = Static<typeof SchedulerSpec>;

export const defaultScheduler: SchedulerSpec = { policy: 'wfq', quantumMs: 10, seed: 1, creditSpeed: 1 };

/** The host's virtual disk: bytes per second and operations per second. */
export const DiskSpec = Type.Object({ bandwidth: Type.Number({ exclusiveMinimum: 0 }), iops: Type.Number({ exclusiveMinimum: 0 }) });
export type DiskSpec = Static<typeof DiskSpec>;
/** 200 MB/s and 5000 IOPS: a SATA SSD of the PlanetLab era's successors, shared by the host's containers */
export const defaultDisk: DiskSpec = { bandwidth: 200e6, iops: 5000 };

/**
 * The most cores one host may have. Each core is a worker thread with its own V8 isolate: measured here,
 * 7.4–10 MiB resident each once a container runs (8 cores: 142 MiB, 128: 1.0 GiB, 256: 1.9 GiB, and its
 * first container took 4 s to start), and a host of 1,000 cores reached 5 GiB and stopped answering its
 * requests. More cores than this belong on more hosts.
 */
export const maxCores = 256;

/** the most nics one container may have */
export const maxNics = 8;

/** The cluster's subnet, from which every nic's address is leased. */
export const defaultSubnet = '10.0.0.0/16';

/** What a host is: the resolved form of one `hosts[]` entry of the cluster config. */
export const HostSpec = Type.Object({
  name: Name,
  cores: Type.Integer({ minimum: 1, maximum: maxCores }),
  memory: Type.Integer({ minimum: 1 }),
  uplink: Uplink,
  scheduler: SchedulerSpec,
  disk: DiskSpec,
  /** the cluster's subnet (the same for every host): nics lease their addresses from it */
  subnet: Type.String({ pattern: '^\\d+\\.\\d+\\.\\d+\\.\\d+/\\d+$' }),
});
export type HostSpec = Static<typeof HostSpec>;

export const HostInfo = Type.Composite([
  HostSpec,
  Type.Object({
    cluster: Name, pid: Type.Integer({ minimum: 1 }), version: Text, machine: Text, startedAt: EpochMs,
    /** the process that is this host now: the holder of the host's name claim */
    instance: Text,
  }),
]);
export type HostInfo = Static<typeof HostInfo>;

/** What a host measures of itself; load1 is the kernel's 1-minute load average over runnable processes. */
export const HostLoad = Type.Object({
  load1: NonNegative,
  elu: Type.Number({ minimum: 0, maximum: 1 }),
  rss: Count,
  containers: Count,
});
export type HostLoad = Static<typeof HostLoad>;

/** every second; it carries what can change while the host runs: the scheduler (`host set-scheduler`) and the uplink (`net set-link`) */
export const Heartbeat = Type.Composite([Type.Object({ name: Name, instance: Text, seq: Count, at: EpochMs, scheduler: SchedulerSpec, uplink: Uplink }), HostLoad]);
export type Heartbeat = Static<typeof Heartbeat>;

/** a host says goodbye */
export const HostLeft = Type.Object({ name: Name, instance: Text, at: EpochMs });
export type HostLeft = Static<typeof HostLeft>;

export const HostStatus = Type.Composite([
  HostInfo,
  HostLoad,
  Type.Object({
    uptime: NonNegative,
    dropped: Count,
    bus: Text,
    policy: PolicyName,
    runnable: Count,
    /** emulated cores over the real cores of the machine the host runs on */
    overcommit: NonNegative,
    /** share of one real core the scheduler's own work took since the host started */
    schedulerCost: NonNegative,
    /** quanta since the host started: handed to a core, and renewed on the core they ran on */
    quanta: Type.Object({ dispatched: Count, renewed: Count }),
  }),
]);
export type HostStatus = Static<typeof HostStatus>;

export const HostState = Type.Union([Type.Literal('up'), Type.Literal('lost'), Type.Literal('left')]);
export type HostState = Static<typeof HostState>;

/** The launcher's record of a host: what it registered, what its heartbeats said, and its state. */
export const HostRecord = Type.Composite([
  HostInfo,
  HostLoad,
  Type.Object({ state: HostState, lastHeartbeat: EpochMs, managed: Type.Boolean() }),
]);
export type HostRecord = Static<typeof HostRecord>;

/** The registry's answer; `dropped` counts the bad messages the registry itself received. */
export const HostList = Type.Object({ cluster: Name, hosts: Type.Array(HostRecord), dropped: Count });
export type HostList = Static<typeof HostList>;

export const Registered = Type.Object({ heartbeatMs: Type.Integer({ minimum: 1 }) });
export type Registered = Static<typeof Registered>;

export const Ping = Type.Object({ sentAt: EpochMs });
export type Ping = Static<typeof Ping>;
export const Pong = Type.Object({ sentAt: EpochMs, host: Name });
export type Pong = Static<typeof Pong>;

export const NoBody = Type.Object({});
export type NoBody = Static<typeof NoBody>;

const Args = Type.Record(Type.String({ maxLength: 64 }), Type.Union([Type.String({ maxLength: 4096 }), Type.Number()]));
const ProgramName = Type.String({ minLength: 1, maxLength: 64 });
const CgroupValues = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 4096 }));

/**
 * A resource a container declares, for migration's binding table (Fuggetta et al.): bound by identifier
 * (this very one), by value (any with these contents) or by type (any of this kind), and unattached
 * (free to move), fastened (movable at a cost) or fixed (cannot move). `location` is the host it is on.
 */
export const resourceBindings = ['identifier', 'value', 'type'] as const;
export const resourceAttachments = ['unattached', 'fastened', 'fixed'] as const;
export const Resource = Type.Object({
  name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
  binding: Type.Union(resourceBindings.map((b) => Type.Literal(b))),
  attachment: Type.Union(resourceAttachments.map((a) => Type.Literal(a))),
  value: Type.String({ minLength: 1, maxLength: 256 }),
  location: Name,
});
export type Resource = Static<typeof Resource>;
/** the most resources one container declares */
export const maxResources = 16;

export const ContainerRun = Type.Object({
  name: Name,
  program: ProgramName,
  args: Args,
  /** cgroup files written before the first process starts */
  cgroup: CgroupValues,
  hostname: Type.Optional(Name),
  /** nics in its net namespace (eth0, eth1, …), each with an address leased from the cluster's subnet; default 1 */
  nics: Type.Optional(Type.Integer({ minimum: 0, maximum: maxNics })),
  /** resources it uses (their location is the host it runs on) */
  resources: Type.Optional(Type.Array(Type.Omit(Resource, ['location']), { maxItems: maxResources })),
});
export type ContainerRun = Static<typeof ContainerRun>;

/** A nic as `ip addr` shows it: its name in the namespace, address and MAC. */
export const NicInfo = Type.Object({ name: Text, ip: Text, mac: Text });
export type NicInfo = Static<typeof NicInfo>;

export const ContainerRef = Type.Object({ name: Name });
export type ContainerRef = Static<typeof ContainerRef>;
export const ContainerRm = Type.Object({ name: Name, force: Type.Boolean() });
export type ContainerRm = Static<typeof ContainerRm>;
export const ContainerExec = Type.Object({ name: Name, program: ProgramName, args: Args });
export type ContainerExec = Static<typeof ContainerExec>;

export const ProcessInfo = Type.Object({
  pid: Count,
  gpid: Count,
  ppid: Count,
  program: Text,
  state: Text,
  uid: Count,
  hostUid: Count,
  cpuMs: NonNegative,
  exitCode: Type.Optional(Type.Integer()),
  metrics: Type.Record(Type.String(), Type.Number()),
});
export type ProcessInfo = Static<typeof ProcessInfo>;

export const ContainerInfo = Type.Object({
  name: Name,
  host: Name,
  id: Count,
  program: Text,
  state: Text,
  exitCode: Type.Optional(Type.Integer()),
  /** cgroup.freeze is 1 (docker pause): its processes stay off the cores */
  frozen: Type.Boolean(),
  hostname: Text,
  createdAt: EpochMs,
  cpuWeight: NonNegative,
  cpuUsageMs: NonNegative,
  cpuPercent: NonNegative,
  memoryCurrent: Count,
  memoryMax: Type.Union([Count, Type.Null()]),
  pids: Count,
  pidsMax: Type.Union([Count, Type.Null()]),
  uidMap: Text,
  nics: Type.Array(NicInfo),
  processes: Type.Array(ProcessInfo),
  resources: Type.Array(Resource),
  /** the migration moving it away, while one does */
  migrating: Type.Optional(Type.String({ maxLength: 64 })),
});
export type ContainerInfo = Static<typeof ContainerInfo>;

/** A container with the digest of its touched memory (`container inspect --digest`). */
export const ContainerInspect = Type.Object({ name: Name, digest: Type.Boolean() });
export type ContainerInspect = Static<typeof ContainerInspect>;
export const ContainerInspected = Type.Composite([ContainerInfo, Type.Object({ digest: Type.Optional(Text), pages: Type.Optional(Count) })]);
export type ContainerInspected = Static<typeof ContainerInspected>;

const Subject = Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_.-]+$' });
const TransferStatsBody = Type.Object({ bytes: Count, chunks: Count, ms: NonNegative, retransmits: Count, bytesPerSecond: NonNegative });

/**
 * `criu dump`: freeze, write the image, send it to `to` (a subject a receiver listens on, see
 * transfer.ts), then end the container and free its name, or (leaveRunning) let it run on.
 */
export const ContainerCheckpoint = Type.Object({ name: Name, leaveRunning: Type.Boolean(), to: Subject });
export type ContainerCheckpoint = Static<typeof ContainerCheckpoint>;
export const CheckpointResult = Type.Object({
  name: Name,
  host: Name,
  /** touched pages written (a zero page is never written) */
  pages: Count,
  imageBytes: Count,
  /** memory.current when it was frozen */
  touchedBytes: Count,
  /** how long its processes were held still */
  frozenMs: NonNegative,
  totalMs: NonNegative,
  digest: Text,
  leftRunning: Type.Boolean(),
  transfer: TransferStatsBody,
});
export type CheckpointResult = Static<typeof CheckpointResult>;

/** A host opens a receiver for an image of `bytes`; the image is then sent to `subject` and restored by `transfer`. */
export const ImageReceive = Type.Object({ bytes: Count });
export type ImageReceive = Static<typeof ImageReceive>;
export const ImageSlot = Type.Object({ transfer: Type.String({ pattern: '^[A-Za-z0-9]{1,64}$' }), subject: Subject });
export type ImageSlot = Static<typeof ImageSlot>;

export const ContainerRestore = Type.Object({ transfer: Type.String({ pattern: '^[A-Za-z0-9]{1,64}$' }), name: Type.Optional(Name) });
export type ContainerRestore = Static<typeof ContainerRestore>;
export const RestoreResult = Type.Object({
  info: ContainerInfo,
  digest: Text,
  pages: Count,
  imageBytes: Count,
  /** from the whole image being there to the container running */
  restoreMs: NonNegative,
  /** the source host and the time of the checkpoint, from the image's header */
  sourceHost: Name,
  checkpointedAt: EpochMs,
});
export type RestoreResult = Static<typeof RestoreResult>;

export const ContainerList = Type.Object({ host: Name, policy: PolicyName, containers: Type.Array(ContainerInfo) });
export type ContainerList = Static<typeof ContainerList>;

/** A container's log: its last lines, oldest first. */
export const ContainerLogs = Type.Object({ name: Name, lines: Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 1000 }) });
export type ContainerLogs = Static<typeof ContainerLogs>;

export const CgroupGet = Type.Object({ name: Name, file: Type.Optional(Type.String({ maxLength: 64 })) });
export type CgroupGet = Static<typeof CgroupGet>;
export const CgroupSet = Type.Object({ name: Name, file: Type.String({ maxLength: 64 }), value: Type.String({ maxLength: 4096 }) });
export type CgroupSet = Static<typeof CgroupSet>;
export const CgroupFiles = Type.Object({ files: CgroupValues });
export type CgroupFiles = Static<typeof CgroupFiles>;

export const SchedulerSet = Type.Object({ policy: Type.String({ maxLength: 32 }), seed: Type.Optional(Type.Integer({ minimum: 0 })) });
export type SchedulerSet = Static<typeof SchedulerSet>;

export const TraceRequest = Type.Object({ action: Type.Union([Type.Literal('start'), Type.Literal('stop')]) });
export type TraceRequest = Static<typeof TraceRequest>;
/** [ms since start, group id, kind (0 charged, 1 runnable, 2 idle, 3 dispatched), value (ms used or core), virtual time] */
export const SchedulerTrace = Type.Object({
  events: Type.Array(Type.Tuple([
    Type.Number(), Type.Integer(), Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2), Type.Literal(3)]), Type.Number(), Type.Number(),
  ])),
  groups: Type.Record(Type.String(), Type.Object({ name: Name, peakPeriodMs: NonNegative })),
});
export type SchedulerTrace = Static<typeof SchedulerTrace>;

/** A nic's counters, as `ip -s link` shows them: frames it could not take or send counted as dropped. */
export const NicCounters = Type.Object({ rxBytes: Count, rxPackets: Count, txBytes: Count, txPackets: Count, rxDropped: Count, txDropped: Count });
export type NicCounters = Static<typeof NicCounters>;

/**
 * What an uplink's last full window (about a second) showed of slicelab itself: how long frames waited in
 * its shaper, the rate it sent at meanwhile and the rate it was allowed (its bandwidth, or less when the
 * waiting nics' ceilings sum to less), how late its timer woke (p99, max). `limited` when the emulator,
 * not the link model, held it back; the rule is uplink.ts's.
 */
export const LinkHealth = Type.Object({
  windowMs: NonNegative,
  waitingMs: NonNegative,
  sentBps: NonNegative,
  allowedBps: NonNegative,
  lateP99Ms: NonNegative,
  lateMaxMs: NonNegative,
  limited: Type.Boolean(),
});
export type LinkHealth = Static<typeof LinkHealth>;

/** An uplink: as configured now, and what it did (frames, bytes, drops at the queue's tail and by netem's loss, frames waiting and in flight). */
export const UplinkStats = Type.Object({
  spec: Uplink,
  txBytes: Count,
  txPackets: Count,
  rxBytes: Count,
  rxPackets: Count,
  queueDrops: Count,
  lossDrops: Count,
  backlog: Count,
  inFlight: Count,
  /** bits per second sent, over about the last second */
  rateBps: NonNegative,
  health: LinkHealth,
});
export type UplinkStats = Static<typeof UplinkStats>;

/** cpu.weight's range, used for a nic's share of the spare uplink bandwidth */
const NicWeight = Type.Integer({ minimum: 1, maximum: 10_000 });

/** A nic's class in its host's uplink shaper (HTB), bits per second: `rate` guaranteed, `ceil` at most (null: the link's bandwidth), `weight` of what is spare. */
export const NicShaping = Type.Object({ rate: NonNegative, ceil: Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Null()]), weight: NicWeight });
export type NicShaping = Static<typeof NicShaping>;

/** A nic as `net links` shows it: its counters and its class in the uplink's shaper with what the class sent, dropped, holds and its rate (bits/s). */
export const NicLink = Type.Object({
  container: Name,
  nic: Text,
  ip: Text,
  mac: Text,
  counters: NicCounters,
  shaping: Type.Composite([NicShaping, Type.Object({ bytes: Count, packets: Count, drops: Count, backlog: Count, rateBps: NonNegative })]),
});
export type NicLink = Static<typeof NicLink>;

/** `net links` of one host; `warnings` name what the emulator could not keep up with. */
/** What the host published on the fabric: messages, the frames and bytes in them, and frames of publishes that failed. */
export const FabricStats = Type.Object({ messages: Count, frames: Count, bytes: Count, framesLost: Count });
export type FabricStats = Static<typeof FabricStats>;

export const HostLinks = Type.Object({ host: Name, uplink: UplinkStats, nics: Type.Array(NicLink), fabric: FabricStats, warnings: Type.Array(Type.String({ maxLength: 1024 })) });
export type HostLinks = Static<typeof HostLinks>;

/** `tc qdisc change` on an uplink: only the fields given change. */
export const LinkSet = Type.Partial(Uplink);
export type LinkSet = Static<typeof LinkSet>;
export const LinkSettings = Type.Object({ host: Name, uplink: Uplink });
export type LinkSettings = Static<typeof LinkSettings>;

/** `tc class change` for one nic of a container: only the fields given change; ceil must stay at or above rate. */
export const NicSet = Type.Object({
  name: Name,
  nic: Type.String({ maxLength: 16 }),
  rate: Type.Optional(NonNegative),
  ceil: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  weight: Type.Optional(NicWeight),
});
export type NicSet = Static<typeof NicSet>;
export const NicSettings = Type.Composite([Type.Object({ container: Name, host: Name, nic: Text, ip: Text, mac: Text }), NicShaping]);
export type NicSettings = Static<typeof NicSettings>;

/** The neighbour tables of a host's containers (`ip neigh`) and its bridge's forwarding table (`bridge fdb`). */
export const HostArp = Type.Object({
  host: Name,
  neighbours: Type.Array(Type.Object({ container: Name, ip: Text, mac: Text, ageMs: NonNegative })),
  fdb: Type.Array(Type.Object({ mac: Text, port: Text, ageMs: NonNegative })),
});
export type HostArp = Static<typeof HostArp>;

/** the most frames one capture records (about 150 MiB of full-size frames), and its longest duration */
export const maxCaptureFrames = 100_000;
export const maxCaptureMs = 600_000;

/**
 * `tcpdump -w`: the frames of a container's nics (both directions), or without `container` of every port
 * of the host's bridge, for `durationMs` or until `count` frames; the pcap file goes to `to` (a receiver,
 * see transfer.ts), then the reply.
 */
export const NetCapture = Type.Object({
  container: Type.Optional(Name),
  durationMs: Type.Number({ exclusiveMinimum: 0, maximum: maxCaptureMs }),
  count: Type.Optional(Type.Integer({ minimum: 1, maximum: maxCaptureFrames })),
  to: Subject,
});
export type NetCapture = Static<typeof NetCapture>;
export const CaptureResult = Type.Object({
  host: Name,
  container: Type.Optional(Name),
  frames: Count,
  /** the pcap file's size */
  bytes: Count,
  durationMs: NonNegative,
  stoppedBy: Type.Union([Type.Literal('duration'), Type.Literal('count')]),
  transfer: TransferStatsBody,
});
export type CaptureResult = Static<typeof CaptureResult>;

export const HostEvent = Type.Object({
  kind: Type.Union([Type.Literal('joined'), Type.Literal('left'), Type.Literal('lost')]),
  host: Name,
  at: EpochMs,
});
export type HostEvent = Static<typeof HostEvent>;

export const ErrorBody = Type.Object({ code: Type.String({ maxLength: 32 }), message: Type.String({ maxLength: 4096 }) });
export const Reply = Type.Union([
  Type.Object({ ok: Type.Literal(true), body: Type.Unknown() }),
  Type.Object({ ok: Type.Literal(false), error: ErrorBody }),
]);
export type Reply = Static<typeof Reply>;

export type Validator<T> = (value: unknown) => T;

/** Compiles a schema into a validator that returns the value typed, or throws a ProtocolError naming the field. */
export function validator<S extends TSchema>(what: string, schema: S): Validator<Static<S>> {
  const check = TypeCompiler.Compile(schema);
  return (value) => {
    if (check.Check(value)) return value;
    const first = check.Errors(value).First();
    const where = first?.path ? first.path : '(message)';
    throw new ProtocolError(`bad ${what}: ${where}: ${first?.message ?? 'does not match'}`);
  };
}

export const validate = {
  hostSpec: validator('HostSpec', HostSpec),
  hostInfo: validator('HostInfo', HostInfo),
  heartbeat: validator('Heartbeat', Heartbeat),
  hostStatus: validator('HostStatus', HostStatus),
  hostList: validator('HostList', HostList),
  registered: validator('Registered', Registered),
  ping: validator('Ping', Ping),
  pong: validator('Pong', Pong),
  noBody: validator('request', NoBody),
  hostEvent: validator('HostEvent', HostEvent),
  hostLeft: validator('HostLeft', HostLeft),
  containerRun: validator('ContainerRun', ContainerRun),
  containerRef: validator('ContainerRef', ContainerRef),
  containerRm: validator('ContainerRm', ContainerRm),
  containerExec: validator('ContainerExec', ContainerExec),
  containerInfo: validator('ContainerInfo', ContainerInfo),
  containerList: validator('ContainerList', ContainerList),
  containerInspect: validator('ContainerInspect', ContainerInspect),
  containerInspected: validator('ContainerInspected', ContainerInspected),
  containerCheckpoint: validator('ContainerCheckpoint', ContainerCheckpoint),
  checkpointResult: validator('CheckpointResult', CheckpointResult),
  imageReceive: validator('ImageReceive', ImageReceive),
  imageSlot: validator('ImageSlot', ImageSlot),
  containerRestore: validator('ContainerRestore', ContainerRestore),
  restoreResult: validator('RestoreResult', RestoreResult),
  containerLogs: validator('ContainerLogs', ContainerLogs),
  processInfo: validator('ProcessInfo', ProcessInfo),
  cgroupGet: validator('CgroupGet', CgroupGet),
  cgroupSet: validator('CgroupSet', CgroupSet),
  cgroupFiles: validator('CgroupFiles', CgroupFiles),
  schedulerSet: validator('SchedulerSet', SchedulerSet),
  traceRequest: validator('TraceRequest', TraceRequest),
  schedulerTrace: validator('SchedulerTrace', SchedulerTrace),
  hostLinks: validator('HostLinks', HostLinks),
  linkSet: validator('LinkSet', LinkSet),
  linkSettings: validator('LinkSettings', LinkSettings),
  nicSet: validator('NicSet', NicSet),
  nicSettings: validator('NicSettings', NicSettings),
  hostArp: validator('HostArp', HostArp),
  netCapture: validator('NetCapture', NetCapture),
  captureResult: validator('CaptureResult', CaptureResult),
  reply: validator('reply', Reply),
};
