/**
 * Addresses of nics: each holds an IPv4 address of the cluster's subnet, leased cluster-wide as a claim in
 * the JetStream bucket `slicelab_<cluster>_leases` (atomic create: hosts on several machines never hand
 * out the same address), and a MAC made from it, locally administered (02:00 + the four address bytes,
 * Mininet's deterministic style), so MACs are unique wherever addresses are.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { SlicelabError, defaultSubnet, errorMessage, leaseClaims, type ClaimBucket } from '@slicelab/protocol';
import { ipFromNumber, ipToNumber } from './frame.js';

export interface Subnet {
  /** the network address, as a number */
  base: number;
  prefix: number;
  /** usable addresses: all but the network and broadcast ones */
  usable: number;
  text: string;
}

export function parseSubnet(text: string): Subnet {
  const match = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(text);
  const prefix = match ? Number(match[2]) : NaN;
  if (!match || prefix < 8 || prefix > 30) throw new SlicelabError('EINVAL', `subnet "${text}" must be an IPv4 network with a prefix of 8 to 30 bits, e.g. ${defaultSubnet}`);
  const base = ipToNumber(match[1]!);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((base & ~mask) >>> 0 !== 0) throw new SlicelabError('EINVAL', `subnet "${text}" has host bits set (the network is ${ipFromNumber((base & mask) >>> 0)}/${prefix})`);
  return { base, prefix, usable: 2 ** (32 - prefix) - 2, text };
}

export function contains(subnet: Subnet, ip: string): boolean {
  const offset = ipToNumber(ip) - subnet.base;
  return offset >= 1 && offset <= subnet.usable;
}

/** The MAC of the nic that holds `ip`: 02:00 and the address's four bytes. */
export function macFor(ip: string): string {
  return ['02', '00', ...ip.split('.').map((octet) => Number(octet).toString(16).padStart(2, '0'))].join(':');
}

export interface Lease {
  ip: string;
  mac: string;
}

/** A host's leases in the cluster's bucket. */
export class Leases {
  private readonly bucket: ClaimBucket;

  constructor(nc: NatsConnection, cluster: string, private readonly host: string, readonly subnet: Subnet) {
    this.bucket = leaseClaims(nc, cluster);
  }

  /**
   * A free address for `container`'s nic, tried from `hint` on (a number unique in the cluster, such as
   * the container name's claim revision, so that the first try is almost always free).
   */
  async lease(container: string, nic: string, hint: number): Promise<Lease> {
    for (let tried = 0; tried < Math.min(this.subnet.usable, 4096); tried++) {
      const ip = ipFromNumber(this.subnet.base + 1 + ((hint + tried) % this.subnet.usable));
      try {
        await this.bucket.claim(ip, { host: this.host, at: Date.now(), container, nic }, 'address');
        return { ip, mac: macFor(ip) };
      } catch (error) {
        if (!(error instanceof SlicelabError) || error.code !== 'EEXIST') throw error;
      }
    }
    throw new SlicelabError('EADDRNOTAVAIL', `no free address in ${this.subnet.text} near the ${hint}th`);
  }

  /** Takes exactly `ip` again (a restore keeps its addresses); EADDRINUSE when another nic holds it. */
  async claim(ip: string, container: string, nic: string): Promise<Lease> {
    if (!contains(this.subnet, ip)) throw new SlicelabError('EADDRNOTAVAIL', `${ip} is not in the cluster's subnet ${this.subnet.text}`);
    try {
      await this.bucket.claim(ip, { host: this.host, at: Date.now(), container, nic }, 'address');
    } catch (error) {
      if (error instanceof SlicelabError && error.code === 'EEXIST') throw new SlicelabError('EADDRINUSE', `${ip} is held by another nic`);
      throw error;
    }
    return { ip, mac: macFor(ip) };
  }

  /** The revision of this host's lease on `ip` (what a migration's destination takes over). */
  async held(ip: string): Promise<number> {
    const current = await this.bucket.read(ip);
    if (current?.holder.host !== this.host) throw new SlicelabError('ESTALE', `${ip} is not leased by ${this.host}`);
    return current.revision;
  }

  /** A migration's commit: the address passes to this host with its container, compare-and-set on `revision`. */
  async takeOver(ip: string, revision: number, container: string, nic: string): Promise<Lease> {
    try {
      await this.bucket.renew(ip, { host: this.host, at: Date.now(), container, nic }, revision);
    } catch (error) {
      throw new SlicelabError('ESTALE', `the address ${ip} changed hands during the migration: ${errorMessage(error)}`, { cause: error });
    }
    return { ip, mac: macFor(ip) };
  }

  async release(ip: string): Promise<void> {
    await this.bucket.release(ip, (holder) => holder.host === this.host);
  }

  /** Gives back every address this host held: a host that starts has no nics. */
  async releaseAll(): Promise<number> {
    let released = 0;
    for (const [ip, holder] of await this.bucket.all()) {
      if (holder.host === this.host && (await this.bucket.release(ip, (h) => h.host === this.host).catch(() => false))) released++;
    }
    return released;
  }
}
