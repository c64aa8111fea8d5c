/**
 * The TypeScript API people script experiments with; the CLI is built on it. Connect by run file (the
 * cluster's name, or the only one running) or by a bus URL, then ask about hosts and follow their events.
 *
 *   const cluster = await ClusterClient.connect();
 *   for (const host of await cluster.hosts()) console.log(host.name, host.state);
 *   await cluster.close();
 */
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  SlicelabError, clusterSubjects, decode, encode, errorMessage, listen, newCounters, request, validate,
  type BusCounters, type ClusterSubjects, type Heartbeat, type HostEvent, type HostList, type HostRecord, type HostStatus,
} from '@slicelab/protocol';
import { findRun, type RunFile } from '@slicelab/launcher';

export interface ConnectOptions {
  /** the cluster's name; without a bus URL, its run file says where the bus is */
  cluster?: string;
  /** a bus URL (or several, comma-separated): join a cluster that has no run file here */
  nats?: string;
  /** request timeout in ms (default 2000) */
  timeoutMs?: number;
}

export class ClusterClient {
  /** bad messages this client received (events, heartbeats) */
  readonly counters: BusCounters = newCounters();
  readonly subjects: ClusterSubjects;

  private constructor(
    readonly nc: NatsConnection,
    readonly cluster: string,
    readonly url: string,
    readonly run: RunFile | undefined,
    private readonly timeoutMs: number,
  ) {
    this.subjects = clusterSubjects(cluster);
  }

  static async connect(options: ConnectOptions = {}): Promise<ClusterClient> {
    let run: RunFile | undefined;
    let url = options.nats;
    let cluster = options.cluster;
    if (!url) {
      run = findRun(cluster);
      if (run.state !== 'running' || !run.natsUrl) throw new SlicelabError('ENOTRUNNING', `cluster "${run.cluster}" is ${run.state}, not running`);
      url = run.natsUrl;
      cluster = run.cluster;
    }
    cluster ??= 'default';
    try {
      const nc = await connect({ servers: url.split(','), name: `client:${cluster}`, timeout: 2000, maxReconnectAttempts: 3, reconnectTimeWait: 250 });
      return new ClusterClient(nc, cluster, url, run, options.timeoutMs ?? 2000);
    } catch (error) {
      throw new SlicelabError('EUNAVAILABLE', `cannot reach the bus at ${url}: ${errorMessage(error)}`, { cause: error });
    }
  }

  /**
   * Every host the cluster knows, from the launcher's registry (with lost and departed hosts). On a bus
   * without a launcher, the hosts that answer a discovery request.
   */
  async hosts(): Promise<HostRecord[]> {
    try {
      return (await this.registry()).hosts;
    } catch (error) {
      if (!(error instanceof SlicelabError) || error.code !== 'EUNAVAILABLE') throw error;
      return this.discover();
    }
  }

  /** The launcher's registry as it is: hosts and the count of bad messages it dropped. */
  registry(): Promise<HostList> {
    return request(this.nc, this.subjects.list, {}, validate.hostList, this.timeoutMs);
  }

  async hostStatus(name: string): Promise<HostStatus> {
    return request(this.nc, this.subjects.hostStatus(name), {}, validate.hostStatus, this.timeoutMs).catch((error: unknown) => {
      if (error instanceof SlicelabError && error.code === 'EUNAVAILABLE') throw new SlicelabError('ENOENT', `no host "${name}" answers in cluster "${this.cluster}"`);
      throw error;
    });
  }

  /** One request/reply round trip to a host over the bus, in milliseconds. */
  async ping(name: string): Promise<number> {
    const began = performance.now();
    await request(this.nc, this.subjects.hostPing(name), { sentAt: Date.now() }, validate.pong, this.timeoutMs);
    return performance.now() - began;
  }

  /** Calls `handler` for every host event (joined, left, lost); returns a function that stops it. */
  onHostEvent(handler: (event: HostEvent) => void): () => void {
    const subscription = listen(this.nc, this.subjects.hostEvents, validate.hostEvent, handler, this.counters);
    return () => subscription.unsubscribe();
  }

  /** Calls `handler` for every heartbeat of every host. */
  onHeartbeat(handler: (beat: Heartbeat) => void): () => void {
    const subscription: Subscription = listen(this.nc, this.subjects.anyHeartbeat, validate.heartbeat, handler, this.counters);
    return () => subscription.unsubscribe();
  }

  async close(): Promise<void> {
    await this.nc.close();
  }

  private async discover(): Promise<HostRecord[]> {
    const replies = await this.nc.requestMany(this.subjects.discover, encode({}), { strategy: 'stall', stall: 300, maxWait: this.timeoutMs });
    const hosts: HostRecord[] = [];
    for await (const msg of replies) {
      try {
        const reply = validate.reply(decode(msg.data));
        if (!reply.ok) continue;
        const status = validate.hostStatus(reply.body);
        const { uptime: _uptime, dropped: _dropped, bus: _bus, ...rest } = status;
        hosts.push({ ...rest, state: 'up', lastHeartbeat: Date.now(), managed: false });
      } catch {
        this.counters.dropped += 1;
      }
    }
    return hosts.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  }
}
