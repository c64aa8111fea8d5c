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
import { nuid, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  Outcomes, SlicelabError, checkName, maxCaptureFrames, maxNics, clusterSubjects, connectBus, decode, decodeImage, encode, encodeImage, errorMessage, imageFormat, loadCredential, memoryDigest, newCounters,
  publish, receiveBytes, request, sendBytes, serve, validate, version,
  type BusAccess, type BusCounters, type CaptureResult, type CheckpointResult, type ContainerRun, type ClusterSubjects, type ContainerInspected, type HostInfo, type HostLoad, type HostSpec,
  type HostStatus, type Logger, type NetCapture, type Receiver, type RestoreResult, type Validator, validateMigration,
} from '@slicelab/protocol';
import { pageSize } from '@slicelab/programs';
import { HostClaim, NameClaims } from './claims.js';
import { Leases, parseSubnet, type Lease } from './net/address.js';
import { Fabric } from './net/fabric.js';
import { Machine } from './machine.js';
import { validateRecord } from './persist.js';
import { Migrations } from './migration/migrations.js';

export interface HostOptions {
  cluster: string;
  /** the bus and this host's credential */
  access: BusAccess;
  spec: HostSpec;
  log: Logger;
  /** give up on the bus after this long without a connection (default 10 s) */
  busGraceMs?: number;
}

/** The kernel's load average: exponentially damped, sampled every 5 s, over a 1-minute window. */
const loadSampleMs = 5000;
const loadDecay = Math.exp(-loadSampleMs / 60_000);
/** how long a stopping host tries to say goodbye on the bus */
const leaveMs = 3000;
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
  /** resolves when a registry first accepted this host */
  readonly joined: Promise<void>;
  private join!: () => void;
  /** resolves when the bus is gone for good (not when the host stops) */
  readonly busLost: Promise<void>;
  /** resolves with the reason when this host must stop: its name is held by another instance now */
  readonly displaced: Promise<string>;
  private displace!: (why: string) => void;
  /** replies by request id: a retried request is carried out once */
  private readonly outcomes = new Outcomes();
  /** subscriptions the server refused (a credential without the permission) */
  private readonly denied: string[] = [];

  readonly machine: Machine;
  private readonly claims: NameClaims;
  /** frames to and from other hosts' uplinks */
  private readonly fabric: Fabric;
  /** the addresses of this host's nics, leased in the cluster */
  private readonly leases: Leases;
  /** containers moving to and from this host */
  private readonly migrations: Migrations;
  /** images being received, by transfer id, until restored or expired */
  private readonly images = new Map<string, { receiver: Receiver; expires: NodeJS.Timeout }>();

  private constructor(private readonly nc: NatsConnection, private readonly options: HostOptions, private readonly claim: HostClaim) {
    const { spec, log } = options;
    this.machine = new Machine({
      host: spec.name, cores: spec.cores, memory: spec.memory, quantumMs: spec.scheduler.quantumMs, policy: spec.scheduler.policy,
      seed: spec.scheduler.seed, creditSpeed: spec.scheduler.creditSpeed, disk: spec.disk, uplink: spec.uplink, log,
      send: (to, frame) => this.fabric.send(to, frame),
    });
    this.fabric = new Fabric(nc, options.cluster, spec.name, this.counters, (from, frames) => this.machine.network.fromFabric(from, frames));
    this.leases = new Leases(nc, options.cluster, spec.name, parseSubnet(spec.subnet));
    this.subjects = clusterSubjects(options.cluster);
    this.claims = new NameClaims(nc, options.cluster, spec.name);
    this.migrations = new Migrations({ nc, subjects: this.subjects, host: spec.name, machine: this.machine, names: this.claims, leases: this.leases, log });
    this.info = {
      ...options.spec, cluster: options.cluster, pid: process.pid, version, machine: hostname(), startedAt: Date.now(), instance: claim.instance,
    };
    this.busLost = nc.closed().then(() => {
      if (!this.stopping) options.log.error('the bus is gone for good');
    });
    this.displaced = new Promise((resolve) => (this.displace = resolve));
    this.joined = new Promise((resolve) => (this.join = resolve));
  }

  /**
   * Joins the bus, takes the host's name (refused while another instance holds it), answers its
   * subjects and registers. Any failure closes the connection again and throws one line.
   */
  static async start(options: HostOptions): Promise<Host> {
    const credential = loadCredential(options.access)?.credential;
    const want = `host ${options.spec.name} of cluster ${options.cluster}`;
    if (credential && (credential.cluster !== options.cluster || credential.identity.role !== 'host' || credential.identity.host !== options.spec.name)) {
      const is = credential.identity.role === 'host' ? `host ${credential.identity.host}` : `the ${credential.identity.role}`;
      throw new SlicelabError('EACCES', `the credential in ${options.access.creds} is for ${is} of cluster ${credential.cluster}, not for ${want}`);
    }
    const nc = await connectBus(options.access, {
      name: `host:${options.cluster}.${options.spec.name}`,
      reconnectWaitMs: 500, reconnectForMs: options.busGraceMs ?? 10_000,
    });
    const claim = new HostClaim(nc, options.cluster, { host: options.spec.name, at: Date.now(), instance: nuid.next(), pid: process.pid, machine: hostname() });
    let host: Host;
    try {
      await claim.take();
      if (!claim.held) options.log.warn('the bus has no JetStream: the host name is not claimed, and a second host of this name would be refused only by a registry');
      host = new Host(nc, options, claim);
      host.serveRequests();
      // the server has seen every subscription (and refused those the credential does not allow)
      await nc.flush();
      if (host.denied.length > 0) throw new SlicelabError('EACCES', `the bus does not let ${want} answer its requests (${host.denied[0]})`);
    } catch (error) {
      await claim.release().catch(() => {});
      await nc.close();
      throw error;
    }
    host.watchBus();
    void host.registerUntilAnswered();
    host.timers.push(
      setInterval(() => {
        host.heartbeat();
        void host.renewClaim();
      }, 1000),
      setInterval(() => host.sampleLoad(), loadSampleMs),
    );
    // a host that starts has no containers: names and addresses an earlier run of it claimed are free again
    void Promise.all([host.claims.releaseAll(), host.leases.releaseAll()]).then(
      ([names, addresses]) => names + addresses > 0 && options.log.info({ names, addresses }, 'released the container names and addresses of an earlier run'),
      (error: unknown) => options.log.warn({ err: errorMessage(error) }, 'container names and addresses cannot be claimed'),
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
    this.migrations.close();
    await this.machine.close();
    this.fabric.close();
    if (this.nc.isClosed()) return;
    // a goodbye on a bus that is gone would wait for ever: it gets a few seconds, then the connection is closed
    const goodbye = (async () => {
      publish(this.nc, this.subjects.hostLeft(this.info.name), { name: this.info.name, instance: this.info.instance, at: Date.now() });
      await this.claim.release();
      await this.nc.drain();
    })();
    goodbye.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SlicelabError('ETIMEDOUT', `the bus did not take the goodbye within ${leaveMs} ms`)), leaveMs);
    });
    try {
      await Promise.race([goodbye, late]);
    } catch (error) {
      this.options.log.warn({ err: errorMessage(error) }, 'left without a goodbye');
      await this.nc.close().catch(() => {});
    } finally {
      clearTimeout(timer);
    }
  }

  private serveRequests(): void {
    const { nc, subjects } = this;
    const name = this.info.name;
    // a request is carried out once per request id, so a retry after a late reply is not a second act
    const options = { outcomes: this.outcomes, onDenied: (problem: string) => this.denied.push(problem) };
    const answer = <Q, R>(subject: string, check: Validator<Q>, handler: (request: Q) => R | Promise<R>) => serve(nc, subject, check, handler, this.counters, options);
    this.subscriptions.push(
      answer(subjects.hostStatus(name), validate.noBody, () => this.status()),
      answer(subjects.hostPing(name), validate.ping, (ping) => ({ sentAt: ping.sentAt, host: name })),
      answer(subjects.discover, validate.noBody, () => this.status()),
      answer(subjects.container(name, 'run'), validate.containerRun, (r) => this.run(r)),
      answer(subjects.container(name, 'exec'), validate.containerExec, (r) => this.machine.exec(r.name, r.program, r.args)),
      answer(subjects.container(name, 'stop'), validate.containerRef, (r) => this.machine.stop(r.name)),
      answer(subjects.container(name, 'start'), validate.containerRef, (r) => this.machine.start(r.name)),
      answer(subjects.container(name, 'kill'), validate.containerRef, (r) => this.machine.kill(r.name)),
      answer(subjects.container(name, 'rm'), validate.containerRm, async (r) => {
        await this.remove(r.name, r.force);
        return {};
      }),
      answer(subjects.container(name, 'inspect'), validate.containerInspect, (r) => this.inspect(r.name, r.digest)),
      answer(subjects.container(name, 'checkpoint'), validate.containerCheckpoint, (r) => this.checkpoint(r.name, r.leaveRunning, r.to)),
      answer(subjects.imageReceive(name), validate.imageReceive, (r) => this.receiveImage(r.bytes)),
      answer(subjects.container(name, 'restore'), validate.containerRestore, (r) => this.restore(r.transfer, r.name)),
      answer(subjects.container(name, 'ps'), validate.noBody, () => ({ host: name, policy: this.machine.policy, containers: this.machine.ps() })),
      answer(subjects.container(name, 'logs'), validate.containerRef, (r) => ({ name: r.name, lines: this.machine.logs(r.name) })),
      answer(subjects.cgroupGet(name), validate.cgroupGet, (r) => ({ files: this.machine.cgroupGet(r.name, r.file) })),
      answer(subjects.cgroupSet(name), validate.cgroupSet, (r) => ({ files: { [r.file]: this.machine.cgroupSet(r.name, r.file, r.value) } })),
      answer(subjects.schedulerTrace(name), validate.traceRequest, (r) => this.machine.trace(r.action)),
      answer(subjects.schedulerSet(name), validate.schedulerSet, (r) => {
        this.machine.setPolicy(r.policy, r.seed);
        // what status and the heartbeats report from now on
        this.info.scheduler = { ...this.info.scheduler, policy: this.machine.policy, seed: r.seed ?? this.options.spec.scheduler.seed };
        return this.status();
      }),
      answer(subjects.net(name, 'links'), validate.noBody, () => {
        const links = this.machine.network.links(name);
        const { messagesSent, framesSent, bytesSent, framesLost, lastError } = this.fabric.stats;
        const fabric = { messages: messagesSent, frames: framesSent, bytes: bytesSent, framesLost };
        const warnings = framesLost === 0 ? links.warnings : [...links.warnings, `${name}: the bus lost ${framesLost} frames handed to it (last: ${lastError})`];
        return { ...links, fabric, warnings };
      }),
      answer(subjects.net(name, 'set-link'), validate.linkSet, (r) => {
        const uplink = this.machine.network.setLink(r);
        // what status says from now on
        this.info.uplink = uplink;
        return { host: name, uplink };
      }),
      answer(subjects.net(name, 'set-nic'), validate.nicSet, (r) => ({ host: name, ...this.machine.network.setNic(r.name, r.nic, r) })),
      answer(subjects.net(name, 'arp'), validate.noBody, () => this.machine.network.arp(name)),
      answer(subjects.net(name, 'capture'), validate.netCapture, (r) => this.capture(r)),
      answer(subjects.migration(name, 'start'), validateMigration.start, (r) => this.migrations.start(r)),
      answer(subjects.migration(name, 'status'), validateMigration.query, (r) => this.migrations.status(r.id)),
      answer(subjects.migration(name, 'list'), validate.noBody, () => ({ host: name, migrations: this.migrations.list() })),
      answer(subjects.migration(name, 'cancel'), validateMigration.ref, (r) => this.migrations.cancel(r.id)),
      answer(subjects.migration(name, 'postcopy'), validateMigration.ref, (r) => this.migrations.postcopy(r.id)),
      answer(subjects.migrate(name, 'prepare'), validateMigration.prepare, (r) => this.migrations.prepare(r)),
      answer(subjects.migrate(name, 'pages'), validateMigration.batch, (r) => this.migrations.pages(r)),
      answer(subjects.migrate(name, 'switchover'), validateMigration.switchover, (r) => this.migrations.switchover(r)),
      answer(subjects.migrate(name, 'finish'), validateMigration.finish, (r) => this.migrations.finish(r.id)),
      answer(subjects.migrate(name, 'abort'), validateMigration.abort, (r) => this.migrations.abort(r.id, r.reason)),
      answer(subjects.migrate(name, 'pull'), validateMigration.pull, (r) => this.migrations.pull(r.id, r.pages)),
    );
  }

  /**
   * `tcpdump -w`: records for the duration, or until `count` frames, then sends the pcap file to the
   * requester's receiver (a capture may be larger than one message) and answers.
   */
  private async capture(request: NetCapture): Promise<CaptureResult> {
    const began = performance.now();
    const capture = this.machine.network.capture(request.container, request.count ?? maxCaptureFrames);
    let timer: NodeJS.Timeout | undefined;
    const elapsed = new Promise<'duration'>((resolve) => (timer = setTimeout(() => resolve('duration'), request.durationMs)));
    const stoppedBy = await Promise.race([elapsed, capture.full.then(() => 'count' as const)]);
    clearTimeout(timer);
    const pcap = capture.stop();
    const durationMs = performance.now() - began;
    const transfer = await sendBytes(this.nc, request.to, pcap);
    return { host: this.info.name, container: request.container, frames: capture.writer.frames, bytes: pcap.length, durationMs, stoppedBy, transfer };
  }

  /** A container under a name claimed in the cluster; the claim is given back if the run fails. */
  /** A container under a name claimed in the cluster, its nics' addresses leased; both are given back if the run fails. */
  private async run(request: ContainerRun) {
    if (this.machine.has(request.name)) throw new SlicelabError('EEXIST', `a container named "${request.name}" exists on ${this.info.name}`);
    const revision = await this.claims.claim(request.name);
    const leases: Lease[] = [];
    try {
      for (let i = 0; i < (request.nics ?? 1); i++) leases.push(await this.leases.lease(request.name, `eth${i}`, revision * maxNics + i));
      return this.machine.run({ ...request, uidSlot: revision, nics: leases });
    } catch (error) {
      await Promise.all(leases.map((lease) => this.leases.release(lease.ip)));
      await this.claims.release(request.name);
      throw error;
    }
  }

  /** Takes a container off the host and gives back its name and addresses. */
  private async remove(name: string, force: boolean): Promise<void> {
    const addresses = this.machine.inspect(name).nics.map((nic) => nic.ip);
    this.machine.rm(name, force);
    await Promise.all(addresses.map((ip) => this.leases.release(ip)));
    await this.claims.release(name);
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
    if (!leaveRunning) await this.remove(name, true);
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
    const revision = await this.claims.claim(name);
    const leases: Lease[] = [];
    let info;
    try {
      // the same container keeps its addresses (a name and addresses free again after its checkpoint); a copy gets its own
      for (const [i, nic] of record.net.nics.entries()) {
        leases.push(name === record.name ? await this.leases.claim(nic.ip, name, nic.name) : await this.leases.lease(name, nic.name, revision * maxNics + i));
      }
      info = this.machine.restore(record, image, name, image.header.digest, leases);
    } catch (error) {
      await Promise.all(leases.map((lease) => this.leases.release(lease.ip)));
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
        await request(this.nc, this.subjects.hostRegister(this.info.name), this.info, validate.registered, 1000);
        this.join();
        this.options.log.info({ cluster: this.info.cluster, bus: this.nc.getServer() }, 'registered');
        this.heartbeat();
        return;
      } catch (error) {
        if (error instanceof SlicelabError && (error.code === 'EEXIST' || error.code === 'EACCES')) {
          // the registry refused this instance: another one is this host
          this.displace(error.message);
          return;
        }
        if (!warned) this.options.log.warn({ err: errorMessage(error) }, 'no registry answers yet; retrying every second');
        warned = true;
        await sleep(1000);
      }
    }
  }

  private heartbeat(): void {
    if (this.stopping || this.nc.isClosed()) return;
    publish(this.nc, this.subjects.hostHeartbeat(this.info.name), {
      name: this.info.name, instance: this.info.instance, seq: this.heartbeatSeq++, at: Date.now(), scheduler: this.info.scheduler, uplink: this.info.uplink, ...this.load(),
    });
  }

  /** Renews the host's name claim (with each heartbeat); another instance holding it now stops this one. */
  private async renewClaim(): Promise<void> {
    if (this.stopping || this.nc.isClosed()) return;
    try {
      const renewal = await this.claim.renew();
      if (renewal === 'retaken') this.options.log.warn('the host name had expired (the host was paused or cut off); holding it again');
      if (renewal === 'taken') this.displace(`host ${this.info.name} is now held by another instance`);
    } catch (error) {
      this.options.log.warn({ err: errorMessage(error) }, 'cannot renew the host name claim; trying again with the next heartbeat');
    }
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
