/**
 * The cluster config: a pure-data description of a cluster (Mininet's Topo), validated before anything
 * starts. `cluster.config.json` carries `$schema` pointing at the JSON Schema generated from this same
 * validator (`npm run schema`), so editors check what `up` checks.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, errorMessage, parseDuration, parseRate, parseSize, namePattern, nameRule, defaultDisk, defaultScheduler, type DiskSpec, type HostSpec, type SchedulerSpec, type Uplink } from '@slicelab/protocol';

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
  cores: z.number().int({ error: 'must be a whole number' }).min(1, { error: 'must be at least 1' }).max(1024, { error: 'must be at most 1024' }).describe('emulated cores (worker threads)'),
  memory: size.describe('memory of the host: "1GiB", "512MiB"'),
  uplink,
  scheduler: scheduler.optional().describe('CPU scheduler of the host'),
  disk: disk.optional().describe('the host\'s virtual disk'),
}).transform((value): HostSpec => ({ ...value, scheduler: value.scheduler ?? { ...defaultScheduler }, disk: value.disk ?? { ...defaultDisk } }));

export const clusterConfigSchema = z
  .strictObject({
    $schema: z.string().optional(),
    name: name.describe('cluster name; its run folder is .slicelab/<name>/'),
    nats: z
      .strictObject({ servers: z.array(z.string().regex(/^(nats|tls):\/\/[^\s]+$/, { error: 'must be a nats:// URL' })).min(1) })
      .optional()
      .describe('existing NATS servers to join; absent, slicelab starts its own embedded nats-server'),
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
  return { ...result.data, file, dir };
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
