/**
 * Claims: keys of a JetStream key-value bucket that one holder owns, made with the bucket's atomic
 * create (it fails if the key exists), renewed by compare-and-set on the revision, given back by a
 * delete that names the revision. Two uses, one mechanism:
 *
 *   container names (`namesBucket`): name → the host that runs it; the claim's revision, unique in the
 *     cluster, chooses the container's uid range
 *   host names (`hostsBucket`): host → the instance (one process) that is that host; renewed with every
 *     heartbeat and expiring `hostClaimTtlMs` after the last renewal, so a host that died frees its name
 *   addresses (`leasesBucket`): IPv4 address → the nic that holds it (its container and host)
 *
 * A bucket is opened (or made) on first use, so a process on a bus without JetStream still starts; what
 * needs the bucket then fails with one line saying why.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import { decode, encode } from './codec.js';
import { SlicelabError, errorMessage } from './errors.js';
import { clusterSubjects } from './subjects.js';

export interface Holder {
  host: string;
  at: number;
  /** for leases: the container and nic that hold the address */
  container?: string;
  nic?: string;
  /** for host claims: the process that is the host */
  instance?: string;
  pid?: number;
  machine?: string;
}

/** a host claim outlives its last renewal by this long (a heartbeat renews it every second) */
export const hostClaimTtlMs = 10_000;

export class ClaimBucket {
  private bucket?: Promise<KV>;

  constructor(private readonly nc: NatsConnection, readonly name: string, private readonly options: Partial<KvOptions> = {}) {}

  /** Claims `key` for `holder`; returns the revision. EEXIST names who holds it. */
  async claim(key: string, holder: Holder, what = 'name'): Promise<number> {
    const kv = await this.kv();
    try {
      return await kv.create(key, encode(holder));
    } catch (error) {
      const current = await this.read(key).catch(() => undefined);
      if (current) throw new SlicelabError('EEXIST', `the ${what} "${key}" is held by ${current.holder.host}`);
      throw new SlicelabError('EUNAVAILABLE', `cannot claim the ${what} "${key}": ${errorMessage(error)}`, { cause: error });
    }
  }

  /** Writes `holder` again over `revision` (compare-and-set); returns the new revision, or throws if another wrote since. */
  async renew(key: string, holder: Holder, revision: number): Promise<number> {
    return (await this.kv()).update(key, encode(holder), revision);
  }

  /** The claim on `key` and its revision, if someone holds it. */
  async read(key: string): Promise<{ holder: Holder; revision: number } | undefined> {
    const entry = await (await this.kv()).get(key);
    if (!entry || entry.operation !== 'PUT') return undefined;
    const holder = parse(entry.value);
    return holder ? { holder, revision: entry.revision } : undefined;
  }

  /** Gives `key` back if `mine` says the claim is ours; true when it was. */
  async release(key: string, mine: (holder: Holder) => boolean): Promise<boolean> {
    const current = await this.read(key);
    if (!current || !mine(current.holder)) return false;
    await (await this.kv()).delete(key, { previousSeq: current.revision });
    return true;
  }

  /** Every claim in the bucket. */
  async all(): Promise<Map<string, Holder>> {
    const kv = await this.kv();
    const claims = new Map<string, Holder>();
    for await (const key of await kv.keys()) {
      const current = await this.read(key).catch(() => undefined);
      if (current) claims.set(key, current.holder);
    }
    return claims;
  }

  /**
   * Whether the bucket can be opened at all (false on a bus without JetStream). JetStream's own account
   * request answers at once where it runs; on a routed bus without it the request goes unanswered, so it
   * gets a short timeout instead of JetStream's 5 s.
   */
  async usable(): Promise<boolean> {
    try {
      await this.nc.request('$JS.API.INFO', undefined, { timeout: 1500 });
    } catch {
      return false;
    }
    return this.kv().then(() => true, () => false);
  }

  private kv(): Promise<KV> {
    this.bucket ??= new Kvm(this.nc).create(this.name, { history: 1, ...this.options }).catch((error: unknown) => {
      this.bucket = undefined;
      throw new SlicelabError('EUNAVAILABLE', `claims live in the JetStream key-value bucket ${this.name}, which cannot be opened (${errorMessage(error)}); the bus needs JetStream (nats-server -js)`, { cause: error });
    });
    return this.bucket;
  }
}

function parse(value: Uint8Array): Holder | undefined {
  try {
    const holder = decode(value) as Partial<Holder>;
    return typeof holder?.host === 'string' && typeof holder.at === 'number' ? (holder as Holder) : undefined;
  } catch {
    return undefined;
  }
}

/** The cluster's two claim buckets, opened the same way by every process that uses them. */
export function nameClaims(nc: NatsConnection, cluster: string): ClaimBucket {
  return new ClaimBucket(nc, clusterSubjects(cluster).namesBucket);
}

export function leaseClaims(nc: NatsConnection, cluster: string): ClaimBucket {
  return new ClaimBucket(nc, clusterSubjects(cluster).leasesBucket);
}

export function hostClaims(nc: NatsConnection, cluster: string): ClaimBucket {
  return new ClaimBucket(nc, clusterSubjects(cluster).hostsBucket, { ttl: hostClaimTtlMs });
}
