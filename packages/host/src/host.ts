/**
 * A host: one emulated physical machine, one OS process. It joins the cluster's bus, registers with the
 * launcher's registry (retrying until one answers, so a lone host may join before or after the launcher),
 * heartbeats every second, and answers status, ping and discovery requests.
 *
 * Division of labor:
 *   Host: the bus side of a host (registration, heartbeats, requests) and the order its parts start and stop
 *   Machine: the inside (cores, scheduler, containers; machine.ts)
 *   run.ts: the process around a host (signals, the launcher watch, exit codes)
 */
import { availableParallelism, hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, nuid, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  SlicelabError, checkName, clusterSubjects, decode, decodeImage, encode, encodeImage, errorMessage, imageFormat, memoryDigest, newCounters, publish,
  receiveBytes, request, sendBytes, serve, validate, version,
  type BusCounters, type CheckpointResult, type ClusterSubjects, type ContainerInspected, type HostInfo, type HostLoad, type HostSpec, type HostStatus,
  type Logger, type Receiver, type RestoreResult,
} from '@slicelab/protocol';
import { pageSize } from '@slicelab/programs';
import { NameClaims } from './claims.js';
import { Machine } from './machine.js';
import { validateRecord } from './persist.js';

export interface HostOptions {
  cluster: string;
  nats: string;
  spec: HostSpec;
  log: Logger;
  /** give up on the bus after this long without a connection (default 10 s) */
  busGraceMs?: number;
}

/** The kernel's load average: exponentially damped, sampled every 5 s, over a 1-minute window. */
const loadSampleMs = 5000;
const loadDecay = Math.exp(-loadSampleMs / 60_000);
/** how long an opened image receiver waits for its image and its restore before it is dropped */
const imageSlotMs = 120_000;

export class Host {
  readonly counters: BusCounters = newCounters();
  readonly info: HostInfo;
  private readonly subjects: ClusterSubjects;
  private readonly subscriptions: Subscription[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private heartbeatSeq = 0;
  private load1 = 0;
  private elu = performance.eventLoopUtilization();
  private lastElu = 0;
  private stopping = false;
  private registered = false;
  /** resolves when the bus is gone for good (not when the host stops) */
  readonly busLost: Promise<void>;

  readonly machine: Machine;
  private readonly claims: NameClaims;
  /** images being received, by transfer id, until restored or expired */
  private readonly images = new Map<string, { receiver: Receiver; expires: NodeJS.Timeout }>();

  private constructor(private readonly nc: NatsConnection, private readonly options: HostOptions) {
    const { spec, log } = options;
    this.machine = new Machine({
      host: spec.name, cores: spec.cores, memory: spec.memory, quantumMs: spec.scheduler.quantumMs, policy: spec.scheduler.policy,
      seed: spec.scheduler.seed, creditSpeed: spec.scheduler.creditSpeed, disk: spec.disk, log,
    });
    this.subjects = clusterSubjects(options.cluster);
    this.claims = new NameClaims(nc, options.cluster, spec.name);
    this.info = {
      ...options.spec, cluster: options.cluster, pid: process.pid, version, machine: hostname(), startedAt: Date.now(),
    };
    this.busLost = nc.closed().then(() => {
      if (!this.stopping) options.log.error('the bus is gone for good');
    });
  }

  static async start(options: HostOptions): Promise<Host> {
    const grace = options.busGraceMs ?? 10_000;
    const nc = await connect({
      servers: options.nats.split(','),
      name: `host:${options.cluster}.${options.spec.name}`,
      reconnectTimeWait: 500,
      maxReconnectAttempts: Math.max(1, Math.round(grace / 500)),
    });
    const host = new Host(nc, options);
    host.serveRequests();
    host.watchBus();
    void host.registerUntilAnswered();
    host.timers.push(setInterval(() => host.heartbeat(), 1000), setInterval(() => host.sampleLoad(), loadSampleMs));
    // a host that starts has no containers: names an earlier run of it claimed are free again
    void host.claims.releaseAll().then(
      (released) => released > 0 && options.log.info({ released }, 'released the container names of an earlier run'),
      (error: unknown) => options.log.warn({ err: errorMessage(error) }, 'container names cannot be claimed'),
    );
    return host;
  }

  /** Processes ready to run or running. */
  get runnable(): number {
    return this.machine.runnable;
  }

  get containers(): number {
    return this.machine.containerCount;
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  status(): HostStatus {
    return {
      ...this.info, ...this.load(), uptime: (Date.now() - this.info.startedAt) / 1000,
      dropped: this.counters.dropped, bus: this.nc.getServer(), policy: this.machine.policy, runnable: this.runnable,
      overcommit: this.info.cores / availableParallelism(),
      schedulerCost: this.machine.scheduler.busyMs / Math.max(1, Date.now() - this.info.startedAt),
      quanta: { dispatched: this.machine.scheduler.dispatches, renewed: this.machine.scheduler.renewals },
    };
  }

  /** Says goodbye on the bus and closes the connection; idempotent. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const { receiver, expires } of this.images.values()) {
      clearTimeout(expires);
      receiver.cancel('the host is stopping');
    }
    await this.machine.close();
    if (this.nc.isClosed()) return;
    try {
      publish(this.nc, this.subjects.hostEvents, { kind: 'left', host: this.info.name, at: Date.now() });
      await this.nc.drain();
    } catch (error) {
      this.options.log.warn({ err: errorMessage(error) }, 'bus closed while leaving');
    }
  }

  private serveRequests(): void {
    const { nc, subjects, counters } = this;
    const name = this.info.name;
    this.subscriptions.push(
      serve(nc, subjects.hostStatus(name), validate.noBody, () => this.status(), counters),
      serve(nc, subjects.hostPing(name), validate.ping, (ping) => ({ sentAt: ping.sentAt, host: name }), counters),
      serve(nc, subjects.discover, validate.noBody, () => this.status(), counters),
      serve(nc, subjects.container(name, 'run'), validate.containerRun, (r) => this.run(r), counters),
      serve(nc, subjects.container(name, 'exec'), validate.containerExec, (r) => this.machine.exec(r.name, r.program, r.args), counters),
      serve(nc, subjects.container(name, 'stop'), validate.containerRef, (r) => this.machine.stop(r.name), counters),
      serve(nc, subjects.container(name, 'start'), validate.containerRef, (r) => this.machine.start(r.name), counters),
      serve(nc, subjects.container(name, 'kill'), validate.containerRef, (r) => this.machine.kill(r.name), counters),
      serve(nc, subjects.container(name, 'rm'), validate.containerRm, async (r) => {
        this.machine.rm(r.name, r.force);
        await this.claims.release(r.name);
        return {};
      }, counters),
      serve(nc, subjects.container(name, 'inspect'), validate.containerInspect, (r) => this.inspect(r.name, r.digest), counters),
      serve(nc, subjects.container(name, 'checkpoint'), validate.containerCheckpoint, (r) => this.checkpoint(r.name, r.leaveRunning, r.to), counters),
      serve(nc, subjects.imageReceive(name), validate.imageReceive, (r) => this.receiveImage(r.bytes), counters),
      serve(nc, subjects.container(name, 'restore'), validate.containerRestore, (r) => this.restore(r.transfer, r.name), counters),
      serve(nc, subjects.container(name, 'ps'), validate.noBody, () => ({ host: name, policy: this.machine.policy, containers: this.machine.ps() }), counters),
      serve(nc, subjects.container(name, 'logs'), validate.containerRef, (r) => ({ name: r.name, lines: this.machine.logs(r.name) }), counters),
      serve(nc, subjects.cgroupGet(name), validate.cgroupGet, (r) => ({ files: this.machine.cgroupGet(r.name, r.file) }), counters),
      serve(nc, subjects.cgroupSet(name), validate.cgroupSet, (r) => ({ files: { [r.file]: this.machine.cgroupSet(r.name, r.file, r.value) } }), counters),
      serve(nc, subjects.schedulerTrace(name), validate.traceRequest, (r) => this.machine.trace(r.action), counters),
      serve(nc, subjects.schedulerSet(name), validate.schedulerSet, (r) => {
        this.machine.setPolicy(r.policy, r.seed);
        // what status and the heartbeats report from now on
        this.info.scheduler = { ...this.info.scheduler, policy: this.machine.policy, seed: r.seed ?? this.options.spec.scheduler.seed };
        return this.status();
      }, counters),
    );
  }

  /** A container under a name claimed in the cluster; the claim is given back if the run fails. */
  private async run(request: Parameters<Machine['run']>[0]) {
    if (this.machine.has(request.name)) throw new SlicelabError('EEXIST', `a container named "${request.name}" exists on ${this.info.name}`);
    const revision = await this.claims.claim(request.name);
    try {
      return this.machine.run({ ...request, uidSlot: revision });
    } catch (error) {
      await this.claims.release(request.name);
      throw error;
    }
  }

  private inspect(name: string, digest: boolean): ContainerInspected {
    const info = this.machine.inspect(name);
    return digest ? { ...info, ...this.machine.digest(name) } : info;
  }

  /**
   * `criu dump`: the image goes to `to` (a receiver's subject) while the container stays frozen; only
   * once it has arrived whole is the container ended and its name freed. With leaveRunning it runs on as
   * soon as its state is copied. A failure before the image arrived leaves it running, as it was.
   */
  private async checkpoint(name: string, leaveRunning: boolean, to: string): Promise<CheckpointResult> {
    const began = performance.now();
    const { record, pages, frozenMs } = await this.machine.checkpoint(name);
    if (leaveRunning) this.machine.thaw(name);
    let transfer;
    let image: Uint8Array;
    let digest: string;
    try {
      const state = encode(record);
      digest = memoryDigest(pages.pageNumbers, pages.pages);
      image = encodeImage({
        header: {
          format: imageFormat, container: name, sourceHost: this.info.name, cluster: this.options.cluster, createdAt: Date.now(), pageSize,
          pages: pages.pageNumbers.length, stateBytes: state.length, digest,
        },
        state, pageNumbers: pages.pageNumbers, pages: pages.pages,
      });
      transfer = await sendBytes(this.nc, to, image);
    } catch (error) {
      this.machine.thaw(name);
      throw error;
    }
    if (!leaveRunning) {
      this.machine.rm(name, true);
      await this.claims.release(name);
    }
    this.options.log.info({ container: name, pages: pages.pageNumbers.length, bytes: image.length, frozenMs, leaveRunning }, 'container checkpointed');
    return {
      name, host: this.info.name, pages: pages.pageNumbers.length, imageBytes: image.length, touchedBytes: pages.pages.length,
      frozenMs, totalMs: performance.now() - began, digest, leftRunning: leaveRunning, transfer,
    };
  }

  /** Opens a receiver for an image of `bytes`; the sender sends to its subject, then asks for the restore. */
  private async receiveImage(bytes: number) {
    const transfer = nuid.next();
    const subject = this.subjects.imageTransfer(this.info.name, transfer);
    const receiver = receiveBytes(this.nc, subject, { maxBytes: bytes, counters: this.counters });
    receiver.done.catch(() => {});
    const expires = setTimeout(() => {
      this.images.delete(transfer);
      receiver.cancel(`no restore asked for within ${imageSlotMs} ms`);
    }, imageSlotMs);
    this.images.set(transfer, { receiver, expires });
    // the subscription is known to the server before the sender is told where to send
    await this.nc.flush();
    return { transfer, subject };
  }

  /**
   * `criu restore`: the image received under `transfer` is checked (its checksums, its format, the record
   * inside), its name claimed, and the container brought back; the memory digest is taken again on this
   * side and must equal the image's. Any failure leaves nothing on this host.
   */
  private async restore(transfer: string, newName?: string): Promise<RestoreResult> {
    const slot = this.images.get(transfer);
    if (!slot) throw new SlicelabError('ENOENT', `no image transfer "${transfer}" on ${this.info.name} (expired, or never opened)`);
    let bytes: Uint8Array;
    try {
      bytes = await slot.receiver.done;
    } finally {
      clearTimeout(slot.expires);
      this.images.delete(transfer);
    }
    const began = performance.now();
    const image = decodeImage(bytes);
    const record = validateRecord(decode(image.state));
    const name = newName ?? record.name;
    checkName('container name', name);
    if (this.machine.has(name)) throw new SlicelabError('EEXIST', `a container named "${name}" exists on ${this.info.name}`);
    await this.claims.claim(name);
    let info;
    try {
      info = this.machine.restore(record, image, name, image.header.digest);
    } catch (error) {
      await this.claims.release(name);
      throw error;
    }
    this.options.log.info({ container: name, from: image.header.sourceHost, pages: image.header.pages }, 'container restored');
    return {
      info, digest: image.header.digest, pages: image.header.pages, imageBytes: bytes.length, restoreMs: performance.now() - began,
      sourceHost: image.header.sourceHost, checkpointedAt: image.header.createdAt,
    };
  }

  private watchBus(): void {
    void (async () => {
      for await (const event of this.nc.status()) {
        if (event.type === 'disconnect') this.options.log.warn({ server: event.server }, 'bus disconnected');
        if (event.type === 'reconnect') {
          this.options.log.info({ server: event.server }, 'bus reconnected; registering again');
          void this.registerUntilAnswered();
        }
      }
    })();
  }

  private async registerUntilAnswered(): Promise<void> {
    let warned = false;
    while (!this.stopping && !this.nc.isClosed()) {
      try {
        await request(this.nc, this.subjects.register, this.info, validate.registered, 1000);
        this.registered = true;
        this.options.log.info({ cluster: this.info.cluster, bus: this.nc.getServer() }, 'registered');
        this.heartbeat();
        return;
      } catch (error) {
        if (!warned) this.options.log.warn({ err: errorMessage(error) }, 'no registry answers yet; retrying every second');
        warned = true;
        await sleep(1000);
      }
    }
  }

  private heartbeat(): void {
    if (this.stopping || this.nc.isClosed()) return;
    publish(this.nc, this.subjects.hostHeartbeat(this.info.name), {
      name: this.info.name, seq: this.heartbeatSeq++, at: Date.now(), scheduler: this.info.scheduler, ...this.load(),
    });
  }

  private load(): HostLoad {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, this.elu);
    if (delta.idle + delta.active > 500) {
      this.lastElu = delta.utilization;
      this.elu = now;
    }
    return { load1: this.load1, elu: Math.min(1, Math.max(0, this.lastElu)), rss: process.memoryUsage.rss(), containers: this.containers };
  }

  private sampleLoad(): void {
    this.load1 = this.load1 * loadDecay + this.runnable * (1 - loadDecay);
  }
}
