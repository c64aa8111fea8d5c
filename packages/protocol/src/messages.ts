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

/** What a host is: the resolved form of one `hosts[]` entry of the cluster config. */
export const HostSpec = Type.Object({
  name: Name,
  cores: Type.Integer({ minimum: 1, maximum: 1024 }),
  memory: Type.Integer({ minimum: 1 }),
  uplink: Uplink,
});
export type HostSpec = Static<typeof HostSpec>;

export const HostInfo = Type.Composite([
  HostSpec,
  Type.Object({ cluster: Name, pid: Type.Integer({ minimum: 1 }), version: Text, machine: Text, startedAt: EpochMs }),
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

export const Heartbeat = Type.Composite([Type.Object({ name: Name, seq: Count, at: EpochMs }), HostLoad]);
export type Heartbeat = Static<typeof Heartbeat>;

export const HostStatus = Type.Composite([
  HostInfo,
  HostLoad,
  Type.Object({ uptime: NonNegative, dropped: Count, bus: Text }),
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
  reply: validator('reply', Reply),
};
