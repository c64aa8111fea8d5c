/**
 * The launcher's host table: hosts register over the bus (launched ones and lone ones that joined), their
 * heartbeats keep the record fresh, and a host whose heartbeats stop for `lostAfterMs` is marked lost.
 * Served on `hosts.list`; state changes are published as host events.
 *
 * A host speaks for itself only: what it says arrives on `from.<host>.…`, which only its credential may
 * publish to, and must name that same host. A registration is accepted only from the instance that holds
 * the host's name claim (protocol/claims.ts); heartbeats and goodbyes only from the instance registered.
 * Anything else is dropped and counted, so an impostor's `left` cannot mark a live host gone.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  SlicelabError, clusterSubjects, hostClaims, listen, newCounters, publish, serve, speaker, validate,
  type BusCounters, type ClaimBucket, type HostEvent, type HostInfo, type HostList, type HostRecord, type Registered,
} from '@slicelab/protocol';

export const heartbeatMs = 1000;
export const lostAfterMs = 3 * heartbeatMs;

export class HostRegistry {
  readonly counters: BusCounters = newCounters();
  private readonly records = new Map<string, HostRecord>();
  private readonly subscriptions: Subscription[] = [];
  private readonly subjects;
  private sweeper?: NodeJS.Timeout;
  private readonly claims: ClaimBucket;
  /** whether host names are claimed in JetStream on this bus */
  private claimed = false;

  constructor(private readonly nc: NatsConnection, readonly cluster: string, private readonly managed: ReadonlySet<string>) {
    this.subjects = clusterSubjects(cluster);
    this.claims = hostClaims(nc, cluster);
  }

  /** Serves the registry; first finds out whether the bus can hold host claims (JetStream), once. */
  async start(): Promise<void> {
    this.claimed = await this.claims.usable();
    this.subscriptions.push(
      serve(this.nc, this.subjects.anyRegister, validate.hostInfo, (info, msg) => this.register(info, msg), this.counters),
      serve(this.nc, this.subjects.list, validate.noBody, () => this.list(), this.counters),
      listen(this.nc, this.subjects.anyHeartbeat, validate.heartbeat, (beat, msg) => {
        const record = this.speaking(beat.name, beat.instance, msg);
        if (!record) return;
        Object.assign(record, { load1: beat.load1, elu: beat.elu, rss: beat.rss, containers: beat.containers, scheduler: beat.scheduler, uplink: beat.uplink, lastHeartbeat: Date.now() });
        if (record.state === 'lost') this.transition(record, 'up', 'joined');
      }, this.counters),
      listen(this.nc, this.subjects.anyLeft, validate.hostLeft, (left, msg) => {
        const record = this.speaking(left.name, left.instance, msg);
        if (record && record.state !== 'left') this.transition(record, 'left', 'left');
      }, this.counters),
    );
    this.sweeper = setInterval(() => this.sweep(), heartbeatMs / 4);
  }

  stop(): void {
    clearInterval(this.sweeper);
    for (const subscription of this.subscriptions) subscription.unsubscribe();
  }

  list(): HostList {
    return { cluster: this.cluster, dropped: this.counters.dropped, hosts: [...this.records.values()].sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true })) };
  }

  isUp(name: string): boolean {
    return this.records.get(name)?.state === 'up';
  }

  /** The launcher saw a host's process exit: certain knowledge, no need to wait for missed heartbeats. */
  markExited(name: string): void {
    const record = this.records.get(name);
    if (record?.state === 'up') this.transition(record, 'lost', 'lost');
  }

  /**
   * The record of the host a message speaks for, if it comes from that host's registered instance; one
   * from another instance, or naming another host than its subject, is counted as dropped. (A host not
   * registered yet heartbeats too: that is ignored.)
   */
  private speaking(name: string, instance: string, msg: Msg): HostRecord | undefined {
    const record = this.records.get(name);
    if (!record && speaker(msg.subject) === name) return undefined;
    if (record && speaker(msg.subject) === name && record.instance === instance) return record;
    this.counters.dropped += 1;
    this.counters.lastProblem = `${msg.subject}: not from the registered instance of host ${name}`;
    return undefined;
  }

  private async register(info: HostInfo, msg: Msg): Promise<Registered> {
    if (speaker(msg.subject) !== info.name) throw new SlicelabError('EACCES', `a registration on ${msg.subject} cannot be for host ${info.name}`);
    const previous = this.records.get(info.name);
    if (this.claimed) {
      const claim = await this.claims.read(info.name);
      if (claim?.holder.instance !== info.instance) {
        throw new SlicelabError('EEXIST', `host ${info.name} is held by ${claim ? `another instance (pid ${claim.holder.pid ?? '?'} on ${claim.holder.machine ?? '?'})` : 'no instance'}; claim the name first`);
      }
    } else if (previous && previous.state === 'up' && previous.instance !== info.instance) {
      // no JetStream to hold claims: the instance registered first keeps the name while it lives
      throw new SlicelabError('EEXIST', `host ${info.name} is already up (pid ${previous.pid} on ${previous.machine}); a second one cannot join`);
    }
    const now = Date.now();
    this.records.set(info.name, {
      ...info,
      load1: previous?.load1 ?? 0, elu: previous?.elu ?? 0, rss: previous?.rss ?? 0, containers: previous?.containers ?? 0,
      state: 'up', lastHeartbeat: now, managed: this.managed.has(info.name),
    });
    this.emit({ kind: 'joined', host: info.name, at: now });
    return { heartbeatMs };
  }

  private sweep(): void {
    const now = Date.now();
    for (const record of this.records.values()) {
      if (record.state === 'up' && now - record.lastHeartbeat > lostAfterMs) this.transition(record, 'lost', 'lost');
    }
  }

  private transition(record: HostRecord, state: HostRecord['state'], kind: HostEvent['kind']): void {
    record.state = state;
    this.emit({ kind, host: record.name, at: Date.now() });
  }

  private emit(event: HostEvent): void {
    try {
      publish(this.nc, this.subjects.hostEvents, event);
    } catch {
      // the bus is closing; the table itself is the truth
    }
  }
}
