/**
 * The host's claims (protocol/claims.ts): the container names it runs, and its own name.
 *
 * Container names are unique in the cluster: a check in the client followed by an act let two hosts take
 * one name at once (4 of 5 tries); the atomic create does not. A host that starts has no containers, so
 * the names an earlier run of it held are given back.
 *
 * A host's name is held by one instance (one process) at a time: a second `slicelab host --name h1` is
 * refused while the first renews its claim. A host paused past the claim's life (SIGSTOP) that finds its
 * name free again takes it back and is the same host; one that finds it taken stops.
 */
import type { NatsConnection } from '@nats-io/transport-node';

import { SlicelabError, errorMessage, hostClaims, isAlive, nameClaims, type ClaimBucket, type Holder } from '@slicelab/protocol';

export class NameClaims {
  private readonly bucket: ClaimBucket;

  constructor(nc: NatsConnection, readonly cluster: string, private readonly host: string) {
    this.bucket = nameClaims(nc, cluster);
  }

  /** Claims `name` for this host; returns the claim's revision. EEXIST names the host that holds it. */
  async claim(name: string): Promise<number> {
    try {
      return await this.bucket.claim(name, { host: this.host, at: Date.now() }, 'container name');
    } catch (error) {
      if (error instanceof SlicelabError && error.code === 'EEXIST') {
        const holder = (await this.bucket.read(name).catch(() => undefined))?.holder.host ?? 'another host';
        throw new SlicelabError('EEXIST', `a container named "${name}" exists on ${holder}`);
      }
      throw error;
    }
  }

  /** The revision of this host's claim on `name` (what a migration's destination takes over); ESTALE if it is not this host's. */
  async held(name: string): Promise<number> {
    const current = await this.bucket.read(name);
    if (current?.holder.host !== this.host) throw new SlicelabError('ESTALE', `the container name "${name}" is not held by ${this.host} (${current ? `held by ${current.holder.host}` : 'free'})`);
    return current.revision;
  }

  /**
   * A migration's commit: the name passes to this host in one compare-and-set on the revision the source
   * held, so at every moment exactly one host holds it. ESTALE when it changed since.
   */
  async takeOver(name: string, revision: number): Promise<number> {
    try {
      return await this.bucket.renew(name, { host: this.host, at: Date.now() }, revision);
    } catch (error) {
      throw new SlicelabError('ESTALE', `the container name "${name}" changed hands during the migration: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** A commit that could not start the container: the name goes back to `host`, the source, which runs it on. */
  async handBack(name: string, revision: number, host: string): Promise<void> {
    await this.bucket.renew(name, { host, at: Date.now() }, revision);
  }

  /** Who holds `name` now. */
  async holder(name: string): Promise<string | undefined> {
    return (await this.bucket.read(name))?.holder.host;
  }

  /** Gives the name back, if this host holds it. */
  async release(name: string): Promise<void> {
    await this.bucket.release(name, (holder) => holder.host === this.host);
  }

  /** Gives back every name this host held: a host that starts has no containers, whatever an earlier run of it left. */
  async releaseAll(): Promise<number> {
    let released = 0;
    for (const [name, holder] of await this.bucket.all()) {
      if (holder.host !== this.host) continue;
      if (await this.bucket.release(name, (h) => h.host === this.host).catch(() => false)) released++;
    }
    return released;
  }
}

/** What renewing the host's claim found. */
export type Renewal = 'held' | 'retaken' | 'taken';

export class HostClaim {
  private readonly bucket: ClaimBucket;
  private revision = 0;
  /** false on a bus without JetStream, where no claim can be made: the registry then trusts the first instance */
  held = false;

  constructor(nc: NatsConnection, cluster: string, private readonly holder: Holder) {
    this.bucket = hostClaims(nc, cluster);
  }

  get instance(): string {
    return this.holder.instance!;
  }

  /**
   * Takes the host's name. Refused in one line while another live instance holds it; an instance that
   * died on this machine (its pid gone) is replaced at once instead of after the claim's life. On a bus
   * without JetStream nothing can be claimed: `held` stays false and the host runs unclaimed.
   */
  async take(): Promise<void> {
    const name = this.holder.host;
    if (!(await this.bucket.usable())) return;
    this.held = true;
    try {
      this.revision = await this.bucket.claim(name, this.stamp(), 'host name');
      return;
    } catch (error) {
      if (!(error instanceof SlicelabError) || error.code !== 'EEXIST') throw error;
    }
    const current = await this.bucket.read(name);
    if (current && current.holder.machine === this.holder.machine && current.holder.pid !== undefined && !isAlive(current.holder.pid)) {
      this.revision = await this.bucket.renew(name, this.stamp(), current.revision);
      return;
    }
    if (!current) return this.take();
    const other = current.holder;
    throw new SlicelabError('EEXIST', `host ${name} is already running (pid ${other.pid ?? '?'} on ${other.machine ?? '?'}, renewed ${Math.round((Date.now() - other.at) / 1000)} s ago); a second one cannot join`);
  }

  /** Renews the claim (every heartbeat). 'retaken': it had expired and this instance holds it again; 'taken': another instance holds it. */
  async renew(): Promise<Renewal> {
    if (!this.held) return 'held';
    try {
      this.revision = await this.bucket.renew(this.holder.host, this.stamp(), this.revision);
      return 'held';
    } catch (error) {
      const current = await this.bucket.read(this.holder.host);
      if (current && current.holder.instance !== this.instance) return 'taken';
      if (current) throw error;
      this.revision = await this.bucket.claim(this.holder.host, this.stamp(), 'host name');
      return 'retaken';
    }
  }

  async release(): Promise<void> {
    if (!this.held) return;
    await this.bucket.release(this.holder.host, (holder) => holder.instance === this.instance).catch((error: unknown) => {
      throw new SlicelabError('EUNAVAILABLE', `cannot give back the host name: ${errorMessage(error)}`);
    });
  }

  private stamp(): Holder {
    return { ...this.holder, at: Date.now() };
  }
}
