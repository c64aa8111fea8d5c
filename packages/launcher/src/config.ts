/**
 * The cluster config: a pure-data description of a cluster (Mininet's Topo), validated before anything
 * starts. `cluster.config.json` carries `$schema` pointing at the JSON Schema generated from this same
 * validator (`npm run schema`), so editors check what `up` checks.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, errorMessage, parseDuration, parseRate, parseSize, namePattern, nameRule, defaultDisk, defaultScheduler, defaultSubnet, maxCores, type DiskSpec, type HostSpec, type SchedulerSpec, type Uplink } from '@slicelab/protocol';

/** A value in units, checked by the one units parser; only sizes may be bare numbers (bytes). */
function units<T>(parser: (text: string | number) => T, bareNumber: boolean) {
  return (bareNumber ? z.union([z.string(), z.number()]) : z.string()).transform((value, ctx) => {
    try {
      return parser(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: errorMessage(error) });
      return z.NEVER;
    }
  });
}

const name = z.string().regex(namePattern, { error: `must be ${nameRule}` });
const size = units(parseSize, true).pipe(z.number().min(1, { error: 'must be at least 1 byte' }));
const rate = units(parseRate, false).pipe(z.number().positive({ error: 'must be above zero' }));
const duration = units(parseDuration, false);

const uplinkObject = z.strictObject({
  bandwidth: rate.describe('link bandwidth, as tc writes it: "1gbit", "100mbit"'),
  delay: duration.optional().describe('one-way delay: "5ms"'),
  jitter: duration.optional().describe('delay jitter: "1ms"'),
  loss: z.number().min(0).max(100).optional().describe('loss in percent, 0..100'),
  maxQueue: z.number().int().min(1).optional().describe('queue length in frames (tc txqueuelen, default 1000)'),
});

const uplink = z
  .union([rate, uplinkObject])
  .transform((value): Uplink =>
    typeof value === 'number'
      ? { bandwidth: value, delay: 0, jitter: 0, loss: 0, maxQueue: 1000 }
      : { bandwidth: value.bandwidth, delay: value.delay ?? 0, jitter: value.jitter ?? 0, loss: value.loss ?? 0, maxQueue: value.maxQueue ?? 1000 },
  )
  .describe('the host\'s emulated physical NIC: a bandwidth ("1gbit") or {bandwidth, delay, jitter, loss, maxQueue}');

/** the uplink a host gets when its entry names none, as `slicelab host --uplink` */
export const defaultUplink = '1gbit';

/** why cores stop at maxCores, for the line that refuses more */
export const coresLimit = `must be at most ${maxCores}: each core is a worker thread with its own V8 isolate (7–10 MiB resident each; 256 cores take 1.9 GiB), and a host of 1,000 cores grew to 5 GiB and stopped answering; spread more cores over more hosts`;

const file = z.string().min(1);
const nats = z
  .strictObject({
    servers: z.array(z.string().regex(/^(nats|tls):\/\/[^\s]+$/, { error: 'must be a nats:// or tls:// URL' })).min(1).optional()
      .describe('existing NATS servers to join; absent, slicelab starts its own embedded nats-server'),
    listen: z.string().regex(/^[^\s:]+:\d{1,5}$/, { error: 'must be HOST:PORT, e.g. "0.0.0.0:4222"' }).optional()
      .describe('where the embedded nats-server listens (default a free port on 127.0.0.1); other machines join with: slicelab host --nats nats://THIS-MACHINE:PORT --creds FILE'),
    creds: file.optional().describe('a NATS credentials file to join the servers with'),
    user: z.string().optional().describe('user name to join the servers with'),
    password: z.string().optional().describe('password of that user'),
    token: z.string().optional().describe('token to join the servers with'),
    tls: z.strictObject({ ca: file.optional(), cert: file.optional(), key: file.optional() }).optional()
      .describe('PEM files: ca to verify the server, cert and key to present (with listen: the embedded server\'s own certificate)'),
  })
  .superRefine((value, ctx) => {
    const embedded = value.servers === undefined;
    for (const field of ['creds', 'user', 'password', 'token'] as const) {
      if (embedded && value[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'is for joining existing servers; the embedded server makes its own credentials' });
    }
    if (!embedded && value.listen !== undefined) ctx.addIssue({ code: 'custom', path: ['listen'], message: 'is for the embedded server; with servers, slicelab starts none' });
    if (value.password !== undefined && value.user === undefined) ctx.addIssue({ code: 'custom', path: ['password'], message: 'needs a user' });
    if (value.tls && (value.tls.cert === undefined) !== (value.tls.key === undefined)) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'cert and key go together' });
    if (embedded && value.tls && !value.tls.cert) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'the embedded server needs a cert and key to speak TLS' });
  });

const scheduler = z
  .strictObject({
    policy: z.enum(['wfq', 'lottery', 'credit']).optional().describe('wfq (default), lottery or credit'),
    quantum: duration.optional().describe('scheduling quantum, default "10ms"'),
    seed: z.number().int().min(0).optional().describe('seed of lottery draws and programs\' random numbers (default 1)'),
    creditSpeed: z.number().positive().optional().describe('how much faster than real time T2 credits are earned and spent (default 1)'),
  })
  .transform((value): SchedulerSpec => ({
    policy: value.policy ?? defaultScheduler.policy,
    quantumMs: value.quantum ?? defaultScheduler.quantumMs,
    seed: value.seed ?? defaultScheduler.seed,
    creditSpeed: value.creditSpeed ?? defaultScheduler.creditSpeed,
  }))
  .refine((value) => value.quantumMs >= 0.1 && value.quantumMs <= 1000, { error: 'quantum must be between 100us and 1s', path: ['quantum'] });

const disk = z
  .strictObject({
    bandwidth: rate.optional().describe('as tc writes rates: "200mbps" is 200 MB/s, "1600mbit" the same'),
    iops: z.number().positive().optional().describe('operations per second (default 5000)'),
  })
  .transform((value): DiskSpec => ({ bandwidth: value.bandwidth === undefined ? defaultDisk.bandwidth : value.bandwidth / 8, iops: value.iops ?? defaultDisk.iops }));

const host = z.strictObject({
  name: name.describe('host name, one subject token: h1, h2, …'),
  cores: z.number().int({ error: 'must be a whole number' }).min(1, { error: 'must be at least 1' }).max(maxCores, { error: coresLimit }).describe('emulated cores (worker threads)'),
  memory: size.describe('memory of the host: "1GiB", "512MiB"'),
  uplink: uplink.optional().describe(`the host's emulated physical NIC, default "${defaultUplink}"`),
  scheduler: scheduler.optional().describe('CPU scheduler of the host'),
  disk: disk.optional().describe('the host\'s virtual disk'),
}).transform((value): Omit<HostSpec, 'subnet'> => ({
  ...value, uplink: value.uplink ?? uplink.parse(defaultUplink), scheduler: value.scheduler ?? { ...defaultScheduler }, disk: value.disk ?? { ...defaultDisk },
}));

const network = z
  .strictObject({
    subnet: z.string().regex(/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\/([89]|[12]\d|30)$/, { error: 'must be an IPv4 network with a prefix of 8 to 30 bits, e.g. "10.0.0.0/16"' }).optional()
      .describe(`the subnet every nic leases its address from, default "${defaultSubnet}"`),
  });

export const clusterConfigSchema = z
  .strictObject({
    $schema: z.string().optional(),
    name: name.describe('cluster name; its run folder is .slicelab/<name>/'),
    nats: nats.optional().describe('the bus: existing NATS servers to join, or where the embedded nats-server listens'),
    network: network.optional().describe('the cluster\'s virtual network'),
    hosts: z.array(host).min(1, { error: 'must name at least one host' }),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.hosts.forEach((h, index) => {
      if (seen.has(h.name)) ctx.addIssue({ code: 'custom', path: ['hosts', index, 'name'], message: `duplicate host name "${h.name}"` });
      seen.add(h.name);
    });
  });

export type ClusterConfig = Omit<z.output<typeof clusterConfigSchema>, 'hosts'> & { hosts: HostSpec[]; file: string; dir: string };
export type { HostSpec };

/** Reads and validates a config file; throws ConfigError naming the file, the field path and the problem. */
export function loadConfig(file: string): ClusterConfig {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(file, '', `cannot read: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(file, '', `not JSON: ${errorMessage(error)}`);
  }
  return parseConfig(raw, file, dirname(path));
}

export function parseConfig(raw: unknown, file: string, dir: string): ClusterConfig {
  const result = clusterConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = mostSpecific(result.error.issues[0]!);
    throw new ConfigError(file, formatPath(issue.path), describeIssue(issue, raw));
  }
  const subnet = result.data.network?.subnet ?? defaultSubnet;
  return { ...result.data, hosts: result.data.hosts.map((h) => ({ ...h, subnet })), nats: resolveFiles(result.data.nats, dir), file, dir };
}

/** Credential and TLS files are relative to the config file's folder. */
function resolveFiles<T extends { creds?: string; tls?: { ca?: string; cert?: string; key?: string } }>(nats: T | undefined, dir: string): T | undefined {
  if (!nats) return undefined;
  const at = (path?: string) => (path === undefined ? undefined : resolve(dir, path));
  return { ...nats, creds: at(nats.creds), tls: nats.tls && { ca: at(nats.tls.ca), cert: at(nats.tls.cert), key: at(nats.tls.key) } };
}

/**
 * A union (an uplink is a rate or an object) fails as a whole with "Invalid input"; the useful line is
 * that of the branch whose type matched, e.g. the unit the rate parser did not know.
 */
function mostSpecific(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union') return issue;
  for (const branch of issue.errors) {
    const inner = branch.find((candidate) => candidate.code !== 'invalid_type');
    if (inner) return mostSpecific({ ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue);
  }
  return issue;
}

function formatPath(path: PropertyKey[]): string {
  return path.map((key, index) => (typeof key === 'number' ? `[${key}]` : `${index === 0 ? '' : '.'}${String(key)}`)).join('');
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  if (issue.path.length > 0 && valueAt(raw, issue.path) === undefined) return 'missing';
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  const got = valueAt(raw, issue.path);
  const shown = got === undefined || typeof got === 'object' ? '' : ` (got ${JSON.stringify(got)})`;
  return `${issue.message}${shown}`;
}

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let node = raw;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** The JSON Schema of the config file, generated from the validator above. */
export function clusterConfigJsonSchema(): object {
  return z.toJSONSchema(clusterConfigSchema, { io: 'input', unrepresentable: 'any' });
}
