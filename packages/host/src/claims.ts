/**
 * Container names, unique in the cluster: a name is a claim in a JetStream key-value bucket, made with
 * the bucket's atomic create (it fails if the key exists), held by the host that runs the container and
 * given back when the container is removed. A check in the client followed by an act let two hosts take
 * one name at once (4 of 5 tries). The claim's revision is a number no other claim in the cluster has:
 * the container's uid range is chosen from it.
 *
 * The bucket is opened on first use, so a host on a bus without JetStream still starts; its container
 * commands then fail with one line saying why.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { SlicelabError, decode, encode, errorMessage } from '@slicelab/protocol';

interface Claim {
  host: string;
  at: number;
}

export class NameClaims {
  private bucket?: Promise<KV>;

  constructor(private readonly nc: NatsConnection, readonly cluster: string, private readonly host: string) {}

  /** Claims `name` for this host; returns the claim's revision. EEXIST names the host that holds it. */
  async claim(name: string): Promise<number> {
    const kv = await this.kv();
    try {
      return await kv.create(name, encode({ host: this.host, at: Date.now() } satisfies Claim));
    } catch (error) {
      const holder = await this.holder(kv, name);
      if (holder) throw new SlicelabError('EEXIST', `a container named "${name}" exists on ${holder}`);
      throw new SlicelabError('EUNAVAILABLE', `cannot claim the name "${name}": ${errorMessage(error)}`, { cause: error });
    }
  }

  /** Gives the name back, if this host holds it. */
  async release(name: string): Promise<void> {
    const kv = await this.kv();
    const entry = await kv.get(name);
    if (!entry || entry.operation !== 'PUT' || this.read(entry.value)?.host !== this.host) return;
    await kv.delete(name, { previousSeq: entry.revision });
  }

  /** Gives back every name this host held: a host that starts has no containers, whatever an earlier run of it left. */
  async releaseAll(): Promise<number> {
    const kv = await this.kv();
    let released = 0;
    for await (const name of await kv.keys()) {
      const entry = await kv.get(name);
      if (!entry || entry.operation !== 'PUT' || this.read(entry.value)?.host !== this.host) continue;
      await kv.delete(name, { previousSeq: entry.revision }).then(() => released++, () => {});
    }
    return released;
  }

  private async holder(kv: KV, name: string): Promise<string | undefined> {
    const entry = await kv.get(name).catch(() => null);
    return entry && entry.operation === 'PUT' ? this.read(entry.value)?.host ?? 'another host' : undefined;
  }

  private read(value: Uint8Array): Claim | undefined {
    try {
      const claim = decode(value) as Partial<Claim>;
      return typeof claim?.host === 'string' ? (claim as Claim) : undefined;
    } catch {
      return undefined;
    }
  }

  private kv(): Promise<KV> {
    this.bucket ??= new Kvm(this.nc).create(`slicelab_${this.cluster}_names`, { history: 1 }).catch((error: unknown) => {
      this.bucket = undefined;
      throw new SlicelabError('EUNAVAILABLE', `container names are claimed in a JetStream key-value bucket, and the bus has no JetStream (${errorMessage(error)}); start nats-server with -js`, { cause: error });
    });
    return this.bucket;
  }
}
