/**
 * The TypeScript API people script experiments with; the CLI is built on it. Connect by run file (the
 * cluster's name, or the only one running) or by a bus URL, then ask about hosts and follow their events.
 *
 *   const cluster = await ClusterClient.connect();
 *   for (const host of await cluster.hosts()) console.log(host.name, host.state);
 *   await cluster.close();
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { nuid, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  SlicelabError, clusterSubjects, connectBus, decode, inboxPrefix, loadCredential, decodeImage, encode, errorMessage, listen, checkName, nameClaims, newCounters, receiveBytes, request,
  sendBytes, validate, validateMigration, migrationDefaults,
  type BusAccess, type BusCounters, type ErrorCode, type Holder, type CaptureResult, type CgroupFiles, type CheckpointResult, type ClaimBucket, type ClusterSubjects, type ContainerInfo, type ContainerInspected,
  type ContainerOp, type ContainerRun, type Heartbeat, type HostArp, type HostEvent, type HostLinks, type HostList, type HostRecord, type HostStatus, type LinkSet,
  type LinkSettings, type MigrateStart, type MigrationOp, type MigrationStats, type NetOp, type NicSettings, type ProcessInfo, type RestoreResult, type SchedulerTrace, type TransferStats,
} from '@slicelab/protocol';
import { findRun, runHealth, type RunFile } from '@slicelab/launcher';

export interface ConnectOptions {
  /** the cluster's name; without a bus URL, its run file says where the bus is and which credential to use */
  cluster?: string;
  /** a bus URL (or several, comma-separated): join a cluster that has no run file here */
  nats?: string;
  /** with `nats`: how to authenticate (a credentials file, user and password, token, TLS files) */
  access?: Omit<BusAccess, 'servers'>;
  /** request timeout in ms (default 2000) */
  timeoutMs?: number;
}

/** What `ping` printed and the figures in it (iputils' names). */
export interface PingResult {
  from: string;
  to: string;
  target: string;
  lines: string[];
  replies: Array<{ bytes: number; seq: number; ttl: number; timeMs: number }>;
  transmitted: number;
  received: number;
  lossPercent: number;
  timeMs: number;
  rtt?: { min: number; avg: number; max: number; mdev: number };
}

const ipPattern = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** The figures in ping's lines. */
export function readPing(lines: string[]): Omit<PingResult, 'from' | 'to' | 'target'> {
  const replies: PingResult['replies'] = [];
  let counts: RegExpExecArray | null = null;
  let rtt: RegExpExecArray | null = null;
  for (const line of lines) {
    const reply = /^(\d+) bytes from \S+: icmp_seq=(\d+) ttl=(\d+) time=([\d.]+) ms$/.exec(line);
    if (reply) replies.push({ bytes: Number(reply[1]), seq: Number(reply[2]), ttl: Number(reply[3]), timeMs: Number(reply[4]) });
    counts ??= /^(\d+) packets transmitted, (\d+) received, ([\d.]+)% packet loss, time (\d+)ms$/.exec(line);
    rtt ??= /^rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms$/.exec(line);
  }
  return {
    lines, replies, transmitted: Number(counts?.[1] ?? 0), received: Number(counts?.[2] ?? 0), lossPercent: Number(counts?.[3] ?? 100), timeMs: Number(counts?.[4] ?? 0),
    rtt: rtt ? { min: Number(rtt[1]), avg: Number(rtt[2]), max: Number(rtt[3]), mdev: Number(rtt[4]) } : undefined,
  };
}

/** The object without its undefined fields: on the bus a field is there with a value or not there. */
function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** What `net iperf` ran and what it printed: iperf3's lines, or with json its figures as iperf3 -J names them. */
export interface IperfResult {
  client: string;
  server: string;
  target: string;
  port: number;
  lines: string[];
  json?: Iperf3Json;
}

interface IperfSum { start: number; end: number; seconds: number; bytes: number; bits_per_second: number; retransmits?: number }
export interface Iperf3Json {
  start: { connecting_to: { host: string; port: number }; connected: Array<{ socket: number; remote_host: string; remote_port: number }> };
  intervals: Array<{ streams: Array<IperfSum & { socket: number; snd_cwnd: number; omitted: boolean }>; sum: IperfSum & { omitted: boolean } }>;
  end: {
    streams: Array<{ sender: IperfSum & { socket: number }; receiver: IperfSum & { socket: number } }>;
    sum_sent: IperfSum & { retransmits: number };
    sum_received: IperfSum;
    /** UDP (-u): the receiver's jitter and loss */
    sum?: IperfSum & { jitter_ms: number; lost_packets: number; packets: number; lost_percent: number };
  };
}

/** iperf3 -J's document from the program's `json {…}` lines: exact bytes, rates in bits per second. */
export function iperf3Json(lines: string[], host: string, port: number): Iperf3Json {
  const figures = lines.filter((line) => line.startsWith('json ')).map((line) => JSON.parse(line.slice(5)) as Record<string, any>);
  const sum = (start: number, end: number, bytes: number, retransmits?: number): IperfSum => {
    const seconds = end - start;
    return { start, end, seconds, bytes, bits_per_second: seconds > 0 ? (bytes * 8) / seconds : 0, ...(retransmits === undefined ? {} : { retransmits }) };
  };
  const intervals = figures.filter((f) => f['interval']).map((f) => {
    const { start, end, omitted = false, streams } = f['interval'] as { start: number; end: number; omitted?: boolean; streams: Array<{ socket: number; bytes: number; retransmits: number; snd_cwnd: number }> };
    return {
      streams: streams.map((s) => ({ socket: s.socket, ...sum(start, end, s.bytes, s.retransmits), snd_cwnd: s.snd_cwnd, omitted })),
      sum: { ...sum(start, end, streams.reduce((n, s) => n + s.bytes, 0), streams.reduce((n, s) => n + s.retransmits, 0)), omitted },
    };
  });
  const end = figures.find((f) => f['end'])?.['end'] as { seconds: number; streams: Array<{ socket: number; sent: number; received: number; retransmits: number }> } | undefined;
  const seconds = end?.seconds ?? 0;
  const streams = end?.streams ?? [];
  return {
    start: {
      connecting_to: { host, port },
      connected: figures.filter((f) => f['connected']).map((f) => ({ socket: f['connected'].socket as number, remote_host: host, remote_port: port })),
    },
    intervals,
    end: {
      streams: streams.map((s) => ({ sender: { socket: s.socket, ...sum(0, seconds, s.sent, s.retransmits) }, receiver: { socket: s.socket, ...sum(0, seconds, s.received) } })),
      sum_sent: { ...sum(0, seconds, streams.reduce((n, s) => n + s.sent, 0)), retransmits: streams.reduce((n, s) => n + s.retransmits, 0) },
      sum_received: sum(0, seconds, streams.reduce((n, s) => n + s.received, 0)),
    },
  };
}

/** A container a host holds by name but that nobody can report on now, and why. */
export interface UnknownContainer {
  name: string;
  host: string;
  /** 'host lost', 'host left', 'host not answering' */
  reason: string;
}

/** What a cluster-wide question found: the answers, the containers of hosts that did not answer, and those hosts. */
export interface ContainerSurvey {
  containers: ContainerInfo[];
  unknown: UnknownContainer[];
  missing: Array<{ host: string; reason: string }>;
}

/** What `net links` found: the hosts that answered, and those that did not with why. */
export interface LinksSurvey {
  hosts: HostLinks[];
  missing: Array<{ host: string; reason: string }>;
}

/** called as an image moves: bytes so far, of the total */
export type ProgressListener = (bytes: number, total: number) => void;

/** A checkpoint or a restore moves the whole memory: its requests wait this long, not the usual 2 s. */
const imageTimeoutMs = 300_000;

/**
 * How long one attempt of each container operation waits for its reply, sized to what it does (starting
 * a container on a host of many cores starts its cores' threads), and how often an operation that changes
 * something is sent again (with the same request id, so the host answers a retry with the first outcome).
 * Questions (ps, logs) use the client's own timeout: one slow host costs a cluster-wide question that much.
 */
const operations: Partial<Record<ContainerOp, { timeoutMs: number; retries: number }>> = {
  run: { timeoutMs: 15_000, retries: 2 },
  exec: { timeoutMs: 5000, retries: 2 },
  stop: { timeoutMs: 5000, retries: 2 },
  start: { timeoutMs: 5000, retries: 2 },
  kill: { timeoutMs: 5000, retries: 2 },
  rm: { timeoutMs: 5000, retries: 2 },
  inspect: { timeoutMs: imageTimeoutMs, retries: 0 },
  checkpoint: { timeoutMs: imageTimeoutMs, retries: 0 },
  restore: { timeoutMs: imageTimeoutMs, retries: 0 },
};
/** how long past its duration a capture's reply may take: the pcap file comes first */
const captureSlackMs = 60_000;
/** the largest image a client or a host takes in */
const imageMaxBytes = 2 ** 32 - 1;

/** A host that did not answer a request (as opposed to one that answered with an error); `why` completes "host h1 …". */
export class HostUnreachable extends SlicelabError {
  constructor(code: ErrorCode, message: string, readonly why: string) {
    super(code, message);
  }
}

export class ClusterClient {
  /** bad messages this client received (events, heartbeats) */
  readonly counters: BusCounters = newCounters();
  readonly subjects: ClusterSubjects;
  private readonly names: ClaimBucket;

  private constructor(
    readonly nc: NatsConnection,
    readonly cluster: string,
    readonly url: string,
    readonly run: RunFile | undefined,
    private readonly timeoutMs: number,
    /** where this connection may receive (checkpoint images come here) */
    private readonly inbox: string,
  ) {
    this.subjects = clusterSubjects(cluster);
    this.names = nameClaims(nc, cluster);
  }

  static async connect(options: ConnectOptions = {}): Promise<ClusterClient> {
    let run: RunFile | undefined;
    let access: BusAccess;
    let cluster = options.cluster;
    if (options.nats) {
      access = { ...options.access, servers: options.nats.split(',') };
    } else {
      run = findRun(cluster);
      const health = runHealth(run);
      if (health.verdict !== 'running' || !run.access) throw new SlicelabError('ENOTRUNNING', health.summary);
      access = run.access;
      cluster = run.cluster;
    }
    cluster ??= loadCredential(access)?.credential?.cluster ?? 'default';
    // a few seconds of reconnecting ride out a nats-server that its launcher is starting again
    const nc = await connectBus(access, { name: `client:${cluster}`, timeoutMs: 2000, reconnectForMs: 5000 });
    return new ClusterClient(nc, cluster, access.servers.join(','), run, options.timeoutMs ?? 2000, inboxPrefix(access));
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
      throw this.noSuchHost(name, error);
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

  /**
   * Starts a container on a host. Container names are unique in the cluster: the host claims the name in
   * the cluster's key-value bucket, and a name held anywhere is refused with EEXIST.
   */
  async runContainer(host: string, spec: Omit<ContainerRun, 'args' | 'cgroup'> & Partial<Pick<ContainerRun, 'args' | 'cgroup'>>): Promise<ContainerInfo> {
    checkName('container name', spec.name);
    if (spec.hostname !== undefined) checkName('hostname', spec.hostname);
    return this.hostRequest(host, 'run', { args: {}, cgroup: {}, ...spec }, validate.containerInfo);
  }

  /** A container, and with `digest` the digest of its touched memory (what checkpoint images carry). */
  async inspect(name: string, options: { digest?: boolean } = {}): Promise<ContainerInspected> {
    return this.containerRequest(name, 'inspect', { name, digest: options.digest ?? false }, validate.containerInspected);
  }

  /**
   * `criu dump` / `docker checkpoint create`: the container's image comes back over the bus. By default
   * the container then ends and its name is free (CRIU's default); with leaveRunning it runs on.
   */
  async checkpoint(name: string, options: { leaveRunning?: boolean; onProgress?: ProgressListener } = {}): Promise<{ result: CheckpointResult; image: Uint8Array }> {
    const host = await this.locate(name);
    const receiver = receiveBytes(this.nc, `${this.inbox}.${nuid.next()}`, { maxBytes: imageMaxBytes, idleTimeoutMs: imageTimeoutMs, counters: this.counters });
    receiver.done.catch(() => {});
    await this.nc.flush();
    const progress = options.onProgress && setInterval(() => options.onProgress!(receiver.received(), 0), 200);
    try {
      const result = await this.hostRequest(host, 'checkpoint', { name, leaveRunning: options.leaveRunning ?? false, to: receiver.subject }, validate.checkpointResult);
      return { result, image: await receiver.done };
    } catch (error) {
      receiver.cancel(errorMessage(error));
      throw error;
    } finally {
      clearInterval(progress);
    }
  }

  /**
   * `criu restore` / `docker start --checkpoint`: the image (checked here first: a truncated or corrupted
   * file never leaves this process) is sent to `host` over the bus and the container resumes there.
   */
  async restore(host: string, image: Uint8Array, options: { name?: string; onProgress?: ProgressListener } = {}): Promise<RestoreResult & { transfer: TransferStats }> {
    decodeImage(image);
    if (options.name !== undefined) checkName('container name', options.name);
    const slot = await request(this.nc, this.subjects.imageReceive(host), { bytes: image.length }, validate.imageSlot, this.timeoutMs).catch((error: unknown) => {
      throw this.noSuchHost(host, error);
    });
    const transfer = await sendBytes(this.nc, slot.subject, image, { onProgress: options.onProgress });
    const result = await this.hostRequest(host, 'restore', { transfer: slot.transfer, name: options.name }, validate.restoreResult);
    return { ...result, transfer };
  }

  /**
   * A copy of a running container on `toHost` under `newName`: a checkpoint that leaves it running, its
   * image sent from host to host over the bus, and a restore. Both then run on, independently.
   */
  async clone(name: string, toHost: string, newName: string): Promise<{ checkpoint: CheckpointResult; restore: RestoreResult }> {
    checkName('container name', newName);
    const source = await this.locate(name);
    const slot = await request(this.nc, this.subjects.imageReceive(toHost), { bytes: imageMaxBytes }, validate.imageSlot, this.timeoutMs).catch((error: unknown) => {
      throw this.noSuchHost(toHost, error);
    });
    const checkpoint = await this.hostRequest(source, 'checkpoint', { name, leaveRunning: true, to: slot.subject }, validate.checkpointResult);
    const restore = await this.hostRequest(toHost, 'restore', { transfer: slot.transfer, name: newName }, validate.restoreResult);
    return { checkpoint, restore };
  }

  /** The containers of every host that answers, or of one host. */
  async containers(host?: string): Promise<ContainerInfo[]> {
    return (await this.survey(host)).containers;
  }

  /**
   * Every container of the cluster (or of one host): what the hosts that answer report, and, from the
   * cluster's name claims, the containers of hosts that are lost, gone or do not answer within the
   * timeout, as unknown. Hosts are asked at once, so a hung host costs one timeout, not the answer.
   */
  async survey(host?: string): Promise<ContainerSurvey> {
    const records = await this.hosts();
    const asked = host ? [records.find((r) => r.name === host) ?? { name: host, state: 'up' as const }] : records;
    const missing: ContainerSurvey['missing'] = [];
    const answered = new Set<string>();
    const lists = await Promise.all(asked.filter((r) => r.state === 'up').map(async (r) => {
      try {
        const list = await this.hostRequest(r.name, 'ps', {}, validate.containerList);
        answered.add(r.name);
        return list.containers;
      } catch (error) {
        missing.push({ host: r.name, reason: errorMessage(error) });
        return [];
      }
    }));
    const stateOf = new Map(records.map((r) => [r.name, r.state]));
    const unknown: UnknownContainer[] = [];
    // on a bus without JetStream there are no name claims (and no containers: running one claims its name)
    const claims = await this.names.all().catch(() => new Map<string, Holder>());
    for (const [name, holder] of claims) {
      if (answered.has(holder.host) || (host && holder.host !== host)) continue;
      const state = stateOf.get(holder.host);
      const reason = state === 'lost' ? 'host lost' : state === 'left' ? 'host left' : state === 'up' ? 'host not answering' : 'host unknown';
      unknown.push({ name, host: holder.host, reason });
    }
    unknown.sort((a, b) => a.name.localeCompare(b.name));
    return { containers: lists.flat(), unknown, missing };
  }

  /** The host a container runs on, from the cluster's name claims (ENOENT when no host has it). */
  async locate(name: string): Promise<string> {
    checkName('container name', name);
    const claim = await this.names.read(name);
    if (!claim) throw new SlicelabError('ENOENT', `no container "${name}" in cluster "${this.cluster}"`);
    return claim.holder.host;
  }

  /**
   * Live migration (`virsh migrate --live`): starts moving a running container to `to` and returns its
   * first statistics once the destination has agreed to take it; `waitForMigration` follows it to the end.
   * Options default to QEMU's: precopy, 128 MiB/s, a 300 ms downtime limit.
   */
  async migrate(name: string, to: string, options: Partial<Omit<MigrateStart, 'name' | 'to'>> = {}): Promise<MigrationStats> {
    const source = await this.locate(name);
    const body: MigrateStart = {
      name, to, mode: 'precopy', bandwidth: migrationDefaults.bandwidth, downtimeLimitMs: migrationDefaults.downtimeLimitMs, maxRounds: migrationDefaults.maxRounds,
      autoConverge: false, postcopyAfter: null, timeoutMs: null, onTimeout: 'abort', ...options,
    };
    validateMigration.start(body);
    return this.migrationRequest(source, 'start', body, validateMigration.stats, 30_000);
  }

  /** A migration's statistics now, asked of its source host; without an id, the host's latest. */
  async migrationStatus(id: string, host?: string): Promise<MigrationStats> {
    if (host) return this.migrationRequest(host, 'status', { id }, validateMigration.stats);
    const found = (await this.migrations()).find((m) => m.id === id);
    if (!found) throw new SlicelabError('ENOENT', `no migration "${id}" in cluster "${this.cluster}" (migrate list shows them)`);
    return found;
  }

  /** Recent migrations from every host that answers, oldest first. */
  async migrations(): Promise<MigrationStats[]> {
    const hosts = (await this.hosts()).filter((h) => h.state === 'up');
    const lists = await Promise.all(hosts.map((h) => this.migrationRequest(h.name, 'list', {}, validateMigration.list).catch(() => undefined)));
    return lists.flatMap((list) => list?.migrations ?? []).sort((a, b) => a['started-at'] - b['started-at']);
  }

  /** QEMU's migrate_cancel: before the commit the container stays on its source, running. */
  async cancelMigration(id: string): Promise<MigrationStats> {
    const migration = await this.migrationStatus(id);
    return this.migrationRequest(migration.source, 'cancel', { id }, validateMigration.stats);
  }

  /** QEMU's migrate-start-postcopy: a hybrid migration goes on as postcopy after its current round. */
  async startPostcopy(id: string): Promise<MigrationStats> {
    const migration = await this.migrationStatus(id);
    return this.migrationRequest(migration.source, 'postcopy', { id }, validateMigration.stats);
  }

  /** Polls a migration's statistics until it has ended (completed, failed or cancelled); `onProgress` sees each poll. */
  async waitForMigration(started: MigrationStats, onProgress?: (stats: MigrationStats) => void, everyMs = 200): Promise<MigrationStats> {
    let stats = started;
    while (!['completed', 'failed', 'cancelled'].includes(stats.status)) {
      onProgress?.(stats);
      await sleep(everyMs);
      stats = await this.migrationRequest(started.source, 'status', { id: started.id }, validateMigration.stats).catch((error: unknown) => {
        // a source that stops answering for a while (a bus link lost) is asked again
        if (error instanceof HostUnreachable) return stats;
        throw error;
      });
    }
    return stats;
  }

  /** A new process in the container's namespaces (like docker exec). */
  async exec(name: string, program: string, args: Record<string, string | number> = {}): Promise<ProcessInfo> {
    return this.containerRequest(name, 'exec', { name, program, args }, validate.processInfo);
  }

  /**
   * `ping` from container `from` to `to` (a container's name, or an IPv4 address): the ping program runs
   * in `from`'s namespaces, and its lines (as iputils' ping prints them) come back from the container's
   * log as they are written, with the figures read from them.
   */
  async netPing(from: string, to: string, options: { count?: number; intervalMs?: number; size?: number; waitMs?: number; onLine?: (line: string) => void } = {}): Promise<PingResult> {
    const target = await this.address(to);
    const count = options.count ?? 4;
    const intervalMs = options.intervalMs ?? 1000;
    const waitMs = options.waitMs ?? 1000;
    const { pid } = await this.exec(from, 'ping', { target, count, interval: `${intervalMs}ms`, size: options.size ?? 56, wait: `${waitMs}ms` });
    // the statistics are ping's last lines, written in one step
    const lines = await this.follow(from, pid, (line) => / packets transmitted, /.test(line), count * intervalMs + waitMs + 10_000, options.onLine);
    return { from, to, target, ...readPing(lines) };
  }

  /**
   * iperf between two containers: a one-off server in `server` for the streams, then the client in
   * `client` for `durationMs`; the client's lines as iperf3 prints them, or with `json` its figures
   * under iperf3 -J's field names (`end.sum_sent.bits_per_second`, `end.sum_received`, retransmits).
   */
  async netIperf(client: string, server: string, options: { durationMs?: number; omitMs?: number; parallel?: number; port?: number; json?: boolean; udpBitrate?: number; onLine?: (line: string) => void } = {}): Promise<IperfResult> {
    if (options.udpBitrate !== undefined) return this.netIperfUdp(client, server, { ...options, udpBitrate: options.udpBitrate });
    const target = await this.address(server);
    const parallel = options.parallel ?? 1;
    const port = options.port ?? 5201;
    const durationMs = options.durationMs ?? 10_000;
    const listening = await this.exec(server, 'iperf', { mode: 'server', port, streams: parallel });
    const serverLines = await this.follow(server, listening.pid, (line) => /^Server listening|^iperf3: error/.test(line), 10_000);
    const refused = serverLines.find((line) => line.startsWith('iperf3: error'));
    if (refused) throw new SlicelabError('EADDRINUSE', `iperf server in "${server}": ${refused.replace(/^iperf3: error - /, '')}`);
    const omitMs = options.omitMs ?? 0;
    const { pid } = await this.exec(client, 'iperf', { mode: 'client', target, port, time: `${durationMs}ms`, omit: `${omitMs}ms`, parallel, json: options.json ? 1 : 0 });
    const done = (line: string) => /^iperf Done\.|^json \{"done"|^iperf3: error/.test(line);
    const lines = await this.follow(client, pid, done, omitMs + durationMs + 30_000, options.json ? undefined : options.onLine);
    const failed = lines.find((line) => line.startsWith('iperf3: error'));
    if (failed) throw new SlicelabError('EIO', `iperf in "${client}": ${failed.replace(/^iperf3: error - /, '')}`);
    // the server has read every stream to its end and given its port back: the next run may take it.
    // What the send buffers still held goes first: up to 4 MiB a stream, a while on a slow or lossy link
    await this.follow(server, listening.pid, (line) => / receiver$/.test(line), 60_000);
    return { client, server, target, port, lines: options.json ? [] : lines, json: options.json ? iperf3Json(lines, target, port) : undefined };
  }

  /** iperf -u: datagrams at a set bitrate; the sender's line, then the receiver's with jitter and loss (from the server's log). */
  private async netIperfUdp(client: string, server: string, options: { durationMs?: number; port?: number; json?: boolean; udpBitrate: number; onLine?: (line: string) => void }): Promise<IperfResult> {
    const target = await this.address(server);
    const port = options.port ?? 5201;
    const durationMs = options.durationMs ?? 10_000;
    const listening = await this.exec(server, 'iperf-udp', { mode: 'server', port });
    const ready = await this.follow(server, listening.pid, (line) => /^Server listening|^iperf3: error/.test(line), 10_000);
    const refused = ready.find((line) => line.startsWith('iperf3: error'));
    if (refused) throw new SlicelabError('EADDRINUSE', `iperf server in "${server}": ${refused.replace(/^iperf3: error - /, '')}`);
    const sender = await this.exec(client, 'iperf-udp', { mode: 'client', target, port, time: `${durationMs}ms`, bitrate: options.udpBitrate });
    const sent = await this.follow(client, sender.pid, (line) => /^json |^iperf3: error/.test(line), durationMs + 30_000, options.json ? undefined : (line) => !line.startsWith('json ') && options.onLine?.(line));
    const failed = sent.find((line) => line.startsWith('iperf3: error'));
    if (failed) throw new SlicelabError('EIO', `iperf in "${client}": ${failed.replace(/^iperf3: error - /, '')}`);
    const received = await this.follow(server, listening.pid, (line) => line.startsWith('json '), 15_000, options.json ? undefined : (line) => / receiver$/.test(line) && options.onLine?.(line));
    const lines = [...sent, ...received].filter((line) => !line.startsWith('json ') && !/^Server listening/.test(line));
    const figure = (all: string[], key: string) => all.filter((l) => l.startsWith('json ')).map((l) => JSON.parse(l.slice(5)) as Record<string, Record<string, number>>).find((f) => f[key])?.[key] ?? {};
    const tx = figure(sent, 'udpSender');
    const rx = figure(received, 'udpReceiver');
    const sum = (seconds: number, bytes: number) => ({ start: 0, end: seconds, seconds, bytes, bits_per_second: seconds > 0 ? (bytes * 8) / seconds : 0 });
    const json = {
      start: { connecting_to: { host: target, port }, connected: [] },
      intervals: [],
      end: {
        streams: [],
        sum: { ...sum(rx['seconds'] ?? 0, rx['bytes'] ?? 0), jitter_ms: rx['jitterMs'] ?? 0, lost_packets: rx['lost'] ?? 0, packets: rx['packets'] ?? 0, lost_percent: rx['lostPercent'] ?? 0 },
        sum_sent: { ...sum(tx['seconds'] ?? 0, tx['bytes'] ?? 0), retransmits: 0 },
        sum_received: sum(rx['seconds'] ?? 0, rx['bytes'] ?? 0),
      },
    };
    return { client, server, target, port, lines: options.json ? [] : lines, json: options.json ? json : undefined };
  }

  /** A container's first address, or the address itself. */
  private async address(to: string): Promise<string> {
    if (ipPattern.test(to)) return to;
    const ip = (await this.inspect(to)).nics[0]?.ip;
    if (!ip) throw new SlicelabError('EADDRNOTAVAIL', `container "${to}" has no nic`);
    return ip;
  }

  /**
   * The log lines of process `pid` in `container` as they are written, until `last` says one is the last
   * (or the process crashed, or `withinMs` passed).
   */
  private async follow(container: string, pid: number, last: (line: string) => boolean, withinMs: number, onLine?: (line: string) => void): Promise<string[]> {
    const prefix = `[${pid}] `;
    const lines: string[] = [];
    const deadline = Date.now() + withinMs;
    for (;;) {
      const mine = (await this.logs(container)).filter((line) => line.startsWith(prefix)).map((line) => line.slice(prefix.length));
      for (const line of mine.slice(lines.length)) {
        lines.push(line);
        onLine?.(line);
      }
      if (lines.some(last)) return lines;
      if (lines.some((line) => / crashed: /.test(line))) throw new SlicelabError('EINTERNAL', `${container}: ${lines.at(-1)}`);
      if (Date.now() > deadline) throw new SlicelabError('ETIMEDOUT', `the process in "${container}" did not finish (its last line: ${lines.at(-1) ?? 'none'})`);
      await sleep(100);
    }
  }

  /**
   * The uplinks and nics of every host that answers (or of one host: then a host that does not answer is
   * the error), asked at once: a hung host costs one timeout and is named in `missing`, as is a lost one.
   */
  async netLinks(host?: string): Promise<LinksSurvey> {
    if (host) return { hosts: [await this.netRequest(host, 'links', {}, validate.hostLinks)], missing: [] };
    const records = await this.hosts();
    const missing: LinksSurvey['missing'] = records.filter((r) => r.state === 'lost').map((r) => ({ host: r.name, reason: 'lost (its heartbeats stopped)' }));
    const answers = await Promise.all(records.filter((r) => r.state === 'up').map(async (r) => {
      try {
        return [await this.netRequest(r.name, 'links', {}, validate.hostLinks)];
      } catch (error) {
        missing.push({ host: r.name, reason: errorMessage(error) });
        return [];
      }
    }));
    return { hosts: answers.flat().sort((a, b) => a.host.localeCompare(b.host, 'en', { numeric: true })), missing };
  }

  /** Changes a host's uplink while it runs (bandwidth bits/s, delay and jitter ms, loss %, queue frames); only what is given changes. */
  async netSetLink(host: string, changes: LinkSet): Promise<LinkSettings> {
    return this.netRequest(host, 'set-link', definedOnly(changes), validate.linkSettings, { retries: 2 });
  }

  /** Changes a nic's class in its host's uplink shaper (rate and ceil bits/s, weight 1..10000); only what is given changes. */
  async netSetNic(name: string, changes: { nic?: string; rate?: number; ceil?: number; weight?: number }): Promise<NicSettings> {
    const host = await this.locate(name);
    return this.netRequest(host, 'set-nic', { ...definedOnly(changes), name, nic: changes.nic ?? 'eth0' }, validate.nicSettings, { retries: 2 });
  }

  /** The neighbour tables of a host's containers and its bridge's forwarding table. */
  async netArp(host: string): Promise<HostArp> {
    return this.netRequest(host, 'arp', {}, validate.hostArp);
  }

  /**
   * `tcpdump -w`: the frames of a container's nics, or of every port of a host's bridge, for `durationMs`
   * or until `count` frames; the pcap file comes over the bus like a checkpoint image. `target` is a
   * container's name, or a host's when no container has that name.
   */
  async netCapture(target: string, options: { durationMs: number; count?: number; onProgress?: ProgressListener }): Promise<{ result: CaptureResult; pcap: Uint8Array }> {
    const holder = await this.locate(target).catch((error: unknown) => {
      if (error instanceof SlicelabError && error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!holder && !(await this.hosts()).some((r) => r.name === target)) {
      throw new SlicelabError('ENOENT', `no container or host "${target}" in cluster "${this.cluster}"`);
    }
    const host = holder ?? target;
    const receiver = receiveBytes(this.nc, `${this.inbox}.${nuid.next()}`, { maxBytes: imageMaxBytes, idleTimeoutMs: options.durationMs + captureSlackMs, counters: this.counters });
    receiver.done.catch(() => {});
    await this.nc.flush();
    const progress = options.onProgress && setInterval(() => options.onProgress!(receiver.received(), 0), 200);
    try {
      const body = { container: holder ? target : undefined, durationMs: options.durationMs, count: options.count, to: receiver.subject };
      const result = await this.netRequest(host, 'capture', definedOnly(body), validate.captureResult, { timeoutMs: options.durationMs + captureSlackMs });
      return { result, pcap: await receiver.done };
    } catch (error) {
      receiver.cancel(errorMessage(error));
      throw error;
    } finally {
      clearInterval(progress);
    }
  }

  /** The container's log, oldest line first: what its processes logged, crashes and OOM kills included. */
  async logs(name: string): Promise<string[]> {
    return (await this.containerRequest(name, 'logs', { name }, validate.containerLogs)).lines;
  }

  async stopContainer(name: string): Promise<ContainerInfo> {
    return this.containerRequest(name, 'stop', { name }, validate.containerInfo);
  }

  async startContainer(name: string): Promise<ContainerInfo> {
    return this.containerRequest(name, 'start', { name }, validate.containerInfo);
  }

  async killContainer(name: string): Promise<ContainerInfo> {
    return this.containerRequest(name, 'kill', { name }, validate.containerInfo);
  }

  async removeContainer(name: string, force = false): Promise<void> {
    await this.containerRequest(name, 'rm', { name, force }, validate.noBody);
  }

  /** cgroup files of a container: all of them, or one, as the kernel prints them. */
  async cgroupGet(name: string, file?: string): Promise<Record<string, string>> {
    const host = await this.locate(name);
    return (await request<CgroupFiles>(this.nc, this.subjects.cgroupGet(host), { name, file }, validate.cgroupFiles, this.timeoutMs).catch((error: unknown) => {
      throw this.noSuchHost(host, error);
    })).files;
  }

  /** Writes a cgroup file; returns how it reads afterwards. A bad value throws ERANGE or EINVAL as the kernel would. */
  async cgroupSet(name: string, file: string, value: string): Promise<string> {
    const host = await this.locate(name);
    const files = (await request<CgroupFiles>(this.nc, this.subjects.cgroupSet(host), { name, file, value }, validate.cgroupFiles, this.timeoutMs, { retries: 2 }).catch((error: unknown) => {
      throw this.noSuchHost(host, error);
    })).files;
    return files[file] ?? '';
  }

  async setScheduler(host: string, policy: string, seed?: number): Promise<HostStatus> {
    return request(this.nc, this.subjects.schedulerSet(host), { policy, seed }, validate.hostStatus, this.timeoutMs, { retries: 2 }).catch((error: unknown) => {
      throw this.noSuchHost(host, error);
    });
  }

  /** Starts ('start') or fetches and stops ('stop') a host's scheduler trace (what the fairness benchmark checks). */
  async schedulerTrace(host: string, action: 'start' | 'stop'): Promise<SchedulerTrace> {
    return request(this.nc, this.subjects.schedulerTrace(host), { action }, validate.schedulerTrace, 10_000).catch((error: unknown) => {
      throw this.noSuchHost(host, error);
    });
  }

  private async hostRequest<R>(host: string, op: ContainerOp, body: unknown, check: (value: unknown) => R, timeoutMs = operations[op]?.timeoutMs ?? this.timeoutMs): Promise<R> {
    return request(this.nc, this.subjects.container(host, op), body, check, timeoutMs, { retries: operations[op]?.retries ?? 0 }).catch((error: unknown) => {
      throw this.noSuchHost(host, error);
    });
  }

  private async netRequest<R>(host: string, op: NetOp, body: unknown, check: (value: unknown) => R, options: { timeoutMs?: number; retries?: number } = {}): Promise<R> {
    return request(this.nc, this.subjects.net(host, op), body, check, options.timeoutMs ?? this.timeoutMs, { retries: options.retries ?? 0 }).catch((error: unknown) => {
      throw this.noSuchHost(host, error);
    });
  }

  /** A request about a container, sent to the host that holds its name; a host that does not answer is named with the container. */
  private async containerRequest<R>(name: string, op: ContainerOp, body: unknown, check: (value: unknown) => R): Promise<R> {
    const host = await this.locate(name);
    return this.hostRequest(host, op, body, check).catch((error: unknown) => {
      if (error instanceof HostUnreachable) throw new HostUnreachable(error.code, `container "${name}" is on host ${host}, which ${error.why}`, error.why);
      throw error;
    });
  }

  private async migrationRequest<R>(host: string, op: MigrationOp, body: unknown, check: (value: unknown) => R, timeoutMs = this.timeoutMs): Promise<R> {
    return request(this.nc, this.subjects.migration(host, op), body, check, timeoutMs).catch((error: unknown) => {
      throw this.noSuchHost(host, error);
    });
  }

  /** One line for a host that did not answer: gone (nobody listens on its subjects) or late. */
  private noSuchHost(host: string, error: unknown): unknown {
    if (error instanceof SlicelabError && error.code === 'EUNAVAILABLE') {
      return new HostUnreachable('ENOENT', `no host "${host}" answers in cluster "${this.cluster}"`, 'does not answer (lost, or gone)');
    }
    if (error instanceof SlicelabError && error.code === 'ETIMEDOUT') {
      const late = `did not answer within ${error.message.replace(/^no reply on \S+ within /, '')}`;
      return new HostUnreachable('ETIMEDOUT', `host ${host} ${late}`, late);
    }
    return error;
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
