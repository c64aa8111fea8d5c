/**
 * Live migration's messages: what a client asks of the source host, the statistics it gets back (QEMU's
 * `query-migrate` names and units), and what the source and destination hosts say to each other.
 *
 *   client → source  host.<src>.migration.<op>  start status list cancel postcopy
 *   source → dest    host.<dst>.migrate.<op>    prepare pages switchover (which commits) finish abort
 *   dest → source    host.<src>.migrate.pull    the pages a faulting process waits for (postcopy)
 *
 * Page numbers travel as little-endian u32 arrays in msgpack bin fields, the pages back to back in one
 * bin field: a batch decodes as views into its message, with no per-page object.
 */
import { Type, type Static } from '@sinclair/typebox';
import { validator } from './messages.js';

const Name = Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$' });
const Id = Type.String({ pattern: '^[A-Za-z0-9]{1,64}$' });
const Count = Type.Integer({ minimum: 0 });
const NonNegative = Type.Number({ minimum: 0 });
const Positive = Type.Number({ exclusiveMinimum: 0 });
const NullableNumber = Type.Union([Type.Number({ minimum: 0 }), Type.Null()]);
const Text = Type.String({ maxLength: 4096 });

export const migrationModes = ['precopy', 'postcopy', 'hybrid'] as const;
export type MigrationMode = (typeof migrationModes)[number];
export const timeoutActions = ['abort', 'postcopy', 'suspend'] as const;
export type TimeoutAction = (typeof timeoutActions)[number];
/** QEMU's migration states */
export const migrationStates = ['setup', 'active', 'postcopy-active', 'postcopy-paused', 'completed', 'failed', 'cancelling', 'cancelled'] as const;
export type MigrationState = (typeof migrationStates)[number];

const Mode = Type.Union([Type.Literal('precopy'), Type.Literal('postcopy'), Type.Literal('hybrid')]);
const State = Type.Union([
  Type.Literal('setup'), Type.Literal('active'), Type.Literal('postcopy-active'), Type.Literal('postcopy-paused'), Type.Literal('completed'),
  Type.Literal('failed'), Type.Literal('cancelling'), Type.Literal('cancelled'),
]);

/** QEMU's defaults: downtime-limit 300 ms, max-bandwidth 128 MiB/s; P.Haul's round cap. */
export const migrationDefaults = { downtimeLimitMs: 300, bandwidth: 128 * 1024 * 1024 * 8, maxRounds: 30 } as const;
/** auto-converge: the first throttle, each step up, and the most (QEMU's cpu-throttle-initial, -increment, max-cpu-throttle) */
export const throttleSteps = { initial: 20, increment: 10, max: 99 } as const;

export const MigrateStart = Type.Object({
  name: Name,
  to: Name,
  mode: Mode,
  /** bits per second; null: as fast as the bus goes */
  bandwidth: Type.Union([Positive, Type.Null()]),
  downtimeLimitMs: Positive,
  maxRounds: Type.Integer({ minimum: 1, maximum: 10_000 }),
  autoConverge: Type.Boolean(),
  /** hybrid: switch to postcopy after this many precopy rounds (null: only when precopy stops converging, on command or on timeout) */
  postcopyAfter: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
  timeoutMs: Type.Union([Positive, Type.Null()]),
  onTimeout: Type.Union([Type.Literal('abort'), Type.Literal('postcopy'), Type.Literal('suspend')]),
});
export type MigrateStart = Static<typeof MigrateStart>;

export const MigrationRef = Type.Object({ id: Id });
export type MigrationRef = Static<typeof MigrationRef>;
export const MigrationQuery = Type.Object({ id: Type.Optional(Id) });

/** One precopy round (QEMU's dirty sync): what it sent, how long it took, and the dirty pages found after it. */
export const RoundStats = Type.Object({ round: Count, pages: Count, bytes: Count, ms: NonNegative, dirtyPages: Count, throttle: Count });
export type RoundStats = Static<typeof RoundStats>;

/** What migration did with one of the container's declared resources (the classic binding table). */
export const ResourceMove = Type.Object({
  name: Text, binding: Text, attachment: Text,
  action: Type.Union([Type.Literal('move'), Type.Literal('copy'), Type.Literal('global-reference'), Type.Literal('rebind')]),
  before: Text, after: Text,
});
export type ResourceMove = Static<typeof ResourceMove>;

export const MigrationStats = Type.Object({
  id: Id,
  container: Name,
  source: Name,
  destination: Name,
  mode: Mode,
  status: State,
  'started-at': NonNegative,
  /** from the start to the container running on the destination with every page there (ms), as QEMU's */
  'total-time': NonNegative,
  'setup-time': NonNegative,
  /** from the container's freeze on the source to its processes running on the destination (ms) */
  downtime: NullableNumber,
  'expected-downtime': NullableNumber,
  'downtime-limit': Positive,
  'max-bandwidth': NullableNumber,
  ram: Type.Object({
    transferred: Count,
    remaining: Count,
    total: Count,
    duplicate: Count,
    normal: Count,
    'normal-bytes': Count,
    'dirty-pages-rate': NonNegative,
    mbps: NonNegative,
    'pages-per-second': NonNegative,
    'dirty-sync-count': Count,
    'precopy-bytes': Count,
    'downtime-bytes': Count,
    'postcopy-bytes': Count,
    'postcopy-requests': Count,
    retransmits: Count,
  }),
  'fault-latency': Type.Union([Type.Object({ p50: NonNegative, p99: NonNegative }), Type.Null()]),
  'cpu-throttle-percentage': Count,
  /** how often postcopy paused because the peer stopped answering, and went on when it came back */
  'postcopy-pauses': Count,
  /**
   * the pause seen across the switch-over (ms) by a `heartbeat` inside the container, and over the network
   * by a `net-heartbeat` inside it (the gap in its peer's datagrams); null without such a process
   */
  'observed-downtime': Type.Object({ heartbeat: NullableNumber, network: NullableNumber }),
  digest: Type.Object({ source: Type.Union([Text, Type.Null()]), destination: Type.Union([Text, Type.Null()]) }),
  resources: Type.Array(ResourceMove),
  rounds: Type.Array(RoundStats),
  error: Type.Optional(Text),
});
export type MigrationStats = Static<typeof MigrationStats>;
export const MigrationList = Type.Object({ host: Name, migrations: Type.Array(MigrationStats) });
export type MigrationList = Static<typeof MigrationList>;

// source ↔ destination

export const MigratePrepare = Type.Object({
  id: Id,
  source: Name,
  name: Name,
  mode: Mode,
  /** bytes of address space */
  size: Type.Integer({ minimum: 4096, multipleOf: 4096 }),
  /** the end of its highest region or touched page: a smaller host may take it with an address space down to this */
  highest: Type.Integer({ minimum: 0 }),
  /** touched pages now: what the destination must have room for */
  pages: Count,
  memoryMax: NullableNumber,
  processes: Count,
});
export type MigratePrepare = Static<typeof MigratePrepare>;

export const PageBatch = Type.Object({
  id: Id,
  /** batches are numbered in the order their pages were read: a page in a later batch is newer */
  seq: Count,
  /** u32 LE page numbers of the pages in `data`, and of zero pages (sent as numbers only) */
  numbers: Type.Uint8Array(),
  data: Type.Uint8Array(),
  zeros: Type.Uint8Array(),
});
export type PageBatch = Static<typeof PageBatch>;
export const BatchAck = Type.Object({ seq: Count });

export const Switchover = Type.Object({
  id: Id,
  /** the container record (persist.ts), msgpack */
  record: Type.Uint8Array(),
  /** the source's touched bitmap when it stopped: the destination drops pages freed since they were sent */
  touched: Type.Uint8Array(),
  /** Date.now() on the source when the record was saved: the container's clock goes on through the downtime */
  savedAt: NonNegative,
  /** postcopy: pages the destination lacks arrive after the container runs */
  postcopy: Type.Boolean(),
  /** the batch seq after the last one sent: everything below it must have arrived */
  batches: Count,
  /** the name claim's revision the destination takes over at commit, and the leases' */
  nameRevision: Count,
  leases: Type.Array(Type.Object({ ip: Text, revision: Count })),
  /** postcopy: a bitmap, one bit per page, of the pages the destination lacks (never sent, or dirtied since) */
  missing: Type.Uint8Array(),
  resources: Type.Array(ResourceMove),
  /** precopy: the digest of every page sent, which the destination's must equal before it commits; null for postcopy */
  digest: Type.Union([Text, Type.Null()]),
});
export type Switchover = Static<typeof Switchover>;
export const SwitchoverReady = Type.Object({ digest: Text, missing: Count });

export const MigrateFinish = Type.Object({ id: Id, digest: Text });
export const FinishResult = Type.Object({
  digest: Text,
  heartbeatMs: NullableNumber,
  networkMs: NullableNumber,
  faults: Count,
  /** how often its pulls went unanswered (postcopy-paused on this side) */
  pauses: Count,
  faultLatency: Type.Union([Type.Object({ p50: NonNegative, p99: NonNegative }), Type.Null()]),
});
export type FinishResult = Static<typeof FinishResult>;
export const MigrateAbort = Type.Object({ id: Id, reason: Text });
export const PagePull = Type.Object({ id: Id, pages: Type.Uint8Array() });
export const PulledPages = Type.Object({ numbers: Type.Uint8Array(), data: Type.Uint8Array(), zeros: Type.Uint8Array() });
export type PulledPages = Static<typeof PulledPages>;

export const validateMigration = {
  start: validator('MigrateStart', MigrateStart),
  ref: validator('MigrationRef', MigrationRef),
  query: validator('MigrationQuery', MigrationQuery),
  stats: validator('MigrationStats', MigrationStats),
  list: validator('MigrationList', MigrationList),
  prepare: validator('MigratePrepare', MigratePrepare),
  batch: validator('PageBatch', PageBatch),
  batchAck: validator('BatchAck', BatchAck),
  switchover: validator('Switchover', Switchover),
  ready: validator('SwitchoverReady', SwitchoverReady),
  finish: validator('MigrateFinish', MigrateFinish),
  finishResult: validator('FinishResult', FinishResult),
  abort: validator('MigrateAbort', MigrateAbort),
  pull: validator('PagePull', PagePull),
  pulled: validator('PulledPages', PulledPages),
};

/** u32 page numbers as the bytes a batch carries them in, and back (a view when aligned). */
export function packNumbers(numbers: ArrayLike<number>): Buffer {
  const bytes = Buffer.allocUnsafe(numbers.length * 4);
  for (let i = 0; i < numbers.length; i++) bytes.writeUInt32LE(numbers[i]!, i * 4);
  return bytes;
}

export function unpackNumbers(bytes: Uint8Array): Uint32Array {
  if (bytes.length % 4 !== 0) throw new RangeError(`page numbers: ${bytes.length} bytes is not a whole number of u32`);
  if (bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return new Uint32Array(new Uint8Array(bytes).buffer);
}
