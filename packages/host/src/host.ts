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
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  clusterSubjects, errorMessage, newCounters, publish, request, serve, validate, version,
  type BusCounters, type ClusterSubjects, type HostInfo, type HostLoad, type HostSpec, type HostStatus, type Logger,
} from '@slicelab/protocol';
import { Machine } from './machine.js';

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

  private constructor(private readonly nc: NatsConnection, private readonly options: HostOptions) {
    const { spec, log } = options;
    this.machine = new Machine({
      host: spec.name, cores: spec.cores, memory: spec.memory, quantumMs: spec.scheduler.quantumMs, policy: spec.scheduler.policy,
      seed: spec.scheduler.seed, creditSpeed: spec.scheduler.creditSpeed, disk: spec.disk, log,
    });
    this.subjects = clusterSubjects(options.cluster);
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
      serve(nc, subjects.container(name, 'run'), validate.containerRun, (r) => this.machine.run(r), counters),
      serve(nc, subjects.container(name, 'exec'), validate.containerExec, (r) => this.machine.exec(r.name, r.program, r.args), counters),
      serve(nc, subjects.container(name, 'stop'), validate.containerRef, (r) => this.machine.stop(r.name), counters),
      serve(nc, subjects.container(name, 'start'), validate.containerRef, (r) => this.machine.start(r.name), counters),
      serve(nc, subjects.container(name, 'kill'), validate.containerRef, (r) => this.machine.kill(r.name), counters),
      serve(nc, subjects.container(name, 'rm'), validate.containerRm, (r) => {
        this.machine.rm(r.name, r.force);
        return {};
      }, counters),
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
