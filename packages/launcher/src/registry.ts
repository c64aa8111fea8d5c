/**
 * The launcher's host table: hosts register over the bus (launched ones and lone ones that joined), their
 * heartbeats keep the record fresh, and a host whose heartbeats stop for `lostAfterMs` is marked lost.
 * Served on `hosts.list`; state changes are published as host events.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  clusterSubjects, listen, newCounters, publish, serve, validate,
  type BusCounters, type HostEvent, type HostInfo, type HostList, type HostRecord, type Registered,
} from '@slicelab/protocol';

export const heartbeatMs = 1000;
export const lostAfterMs = 3 * heartbeatMs;

export class HostRegistry {
  readonly counters: BusCounters = newCounters();
  private readonly records = new Map<string, HostRecord>();
  private readonly subscriptions: Subscription[] = [];
  private readonly subjects;
  private sweeper?: NodeJS.Timeout;

  constructor(private readonly nc: NatsConnection, readonly cluster: string, private readonly managed: ReadonlySet<string>) {
    this.subjects = clusterSubjects(cluster);
  }

  start(): void {
    this.subscriptions.push(
      serve(this.nc, this.subjects.register, validate.hostInfo, (info) => this.register(info), this.counters),
      serve(this.nc, this.subjects.list, validate.noBody, () => this.list(), this.counters),
      listen(this.nc, this.subjects.anyHeartbeat, validate.heartbeat, (beat) => {
        const record = this.records.get(beat.name);
        if (!record) return;
        Object.assign(record, { load1: beat.load1, elu: beat.elu, rss: beat.rss, containers: beat.containers, scheduler: beat.scheduler, lastHeartbeat: Date.now() });
        if (record.state === 'lost') this.transition(record, 'up', 'joined');
      }, this.counters),
      listen(this.nc, this.subjects.hostEvents, validate.hostEvent, (event) => {
        const record = this.records.get(event.host);
        if (event.kind === 'left' && record && record.state !== 'left') record.state = 'left';
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

  private register(info: HostInfo): Registered {
    const now = Date.now();
    const previous = this.records.get(info.name);
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
