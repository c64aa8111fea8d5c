/**
 * Makes a cluster config real (Mininet's `Mininet` to its `Topo`): the bus (embedded nats-server with
 * the cluster's credentials unless the config names servers), the host registry, one OS process per
 * host; waits, by polling, until every host has registered; and takes it all down again in reverse
 * order. Whatever fails halfway is undone, so a failed `up` leaves nothing running.
 *
 * Supervision: a nats-server that dies is started again on the same port with the same JetStream store
 * and trust configuration; hosts and clients reconnect by themselves (the NATS client retries) and hosts
 * register again. If it cannot come back, the cluster is brought down and the run file says why.
 *
 * Division of labor:
 *   Launcher: starts, supervises and stops the processes of one cluster; owns the run file
 *   ClusterAuth: the cluster's keys and credentials (auth.ts)
 *   HostRegistry: what the bus says about hosts (registered, heartbeating, lost)
 *   host processes: everything inside a host (see @slicelab/host)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { SlicelabError, busVariable, connectBus, createLogger, errorMessage, type BusAccess, type Identity, type Logger } from '@slicelab/protocol';
import { ClusterAuth } from './auth.js';
import type { ClusterConfig, HostSpec } from './config.js';
import { startNatsServer, type NatsServer, type NatsServerOptions } from './nats-server.js';
import { isAlive, isOurs, pollUntil, stopProcess } from './processes.js';
import { HostRegistry } from './registry.js';
import { readRunFile, removeRunFile, runDir, writeRunFile, type RunFile } from './run-file.js';

export const hostMain = fileURLToPath(import.meta.resolve('@slicelab/host/bundle'));

/**
 * Node flags every host process starts with. V8 flags cannot change safely once the process runs (after
 * v8.setFlagsFromString a later collection aborts the process), hence the command line.
 * --single-threaded-gc: each core collects its garbage on its own thread, so the CPU goes to the
 * container that made it. By default V8 hands collections to helper threads shared by the whole
 * process, and a neighbour that allocates fast (a fork bomb's system calls) then takes CPU from every
 * container without cpu.stat seeing it.
 * --expose-gc: a removed container's memory is collected at once in every isolate that held it, so its
 * pages go back to the OS (host/src/memory.ts, collectGarbage).
 */
export const hostNodeFlags: readonly string[] = ['--single-threaded-gc', '--expose-gc'];

export interface LaunchOptions {
  detached?: boolean;
  /** called as hosts register: how many of how many */
  onProgress?: (registered: number, total: number) => void;
}

export interface LaunchTimings {
  /** ms from start until the bus accepted connections */
  bus: number;
  /** ms from start until each host registered */
  registered: Record<string, number>;
  /** ms from start until all hosts registered */
  total: number;
}

interface HostChild {
  spec: HostSpec;
  child: ChildProcess;
  exitCode?: number | null;
  exitSignal?: NodeJS.Signals | null;
}

/** how often a dead nats-server is started again before the cluster is given up */
const busRestarts = 3;

export class Launcher {
  private readonly children = new Map<string, HostChild>();
  private stopping?: Promise<void>;
  /** resolves with the reason when the cluster had to be brought down */
  readonly failed: Promise<string>;
  private fail!: (why: string) => void;

  private constructor(
    readonly config: ClusterConfig,
    readonly run: RunFile,
    readonly nc: NatsConnection,
    readonly registry: HostRegistry,
    readonly log: Logger,
    private nats: NatsServer | undefined,
    private readonly natsOptions: NatsServerOptions | undefined,
    readonly timings: LaunchTimings,
  ) {
    this.failed = new Promise((resolve) => (this.fail = resolve));
  }

  get natsUrl(): string {
    return this.run.natsUrl!;
  }

  /** Starts the cluster described by `config`; throws EEXIST if it already runs, ESTALE if a crashed run left processes. */
  static async start(config: ClusterConfig, options: LaunchOptions = {}): Promise<Launcher> {
    assertNotRunning(config.name);
    const dir = runDir(config.name);
    mkdirSync(join(dir, 'logs'), { recursive: true });
    const log = createLogger('launcher', join(dir, 'launcher.log'));
    const run: RunFile = {
      cluster: config.name, config: config.file, state: 'starting', startedAt: Date.now(),
      detached: options.detached ?? false, launcherPid: process.pid, hosts: [],
    };
    writeRunFile(run);
    const began = performance.now();
    let nats: NatsServer | undefined;
    let nc: NatsConnection | undefined;
    let registry: HostRegistry | undefined;
    const children = new Map<string, HostChild>();
    let natsOptions: NatsServerOptions | undefined;
    try {
      let accessFor: (who: Identity) => Promise<BusAccess>;
      if (config.nats?.servers) {
        const { servers, creds, user, password, token, tls } = config.nats;
        const access: BusAccess = { servers, creds, user, password, token, tls };
        accessFor = async () => access;
      } else {
        const auth = ClusterAuth.open(join(dir, 'auth'), config.name);
        const [address, port] = config.nats?.listen?.split(':') ?? [];
        const tls = config.nats?.tls;
        natsOptions = {
          dir: join(dir, 'nats'), jetstream: true, name: `slicelab-${config.name}`, host: address, port: port === undefined ? undefined : Number(port),
          config: await auth.writeServerConfig(tls ? `tls: { cert_file: ${JSON.stringify(tls.cert)}, key_file: ${JSON.stringify(tls.key)}${tls.ca ? `, ca_file: ${JSON.stringify(tls.ca)}` : ''} }` : ''),
        };
        nats = await startNatsServer(natsOptions);
        // a restart comes back on the same port, where hosts and clients look for it
        natsOptions.port = nats.port;
        run.nats = { pid: nats.pid, port: nats.port, storeDir: nats.storeDir, restarts: 0 };
        const url = nats.url;
        mkdirSync(join(dir, 'auth', 'hosts'), { recursive: true, mode: 0o700 });
        accessFor = async (who) => {
          const file = join(dir, 'auth', who.role === 'host' ? join('hosts', `${who.host}.creds`) : `${who.role}.creds`);
          return { servers: [url], creds: await auth.writeCredential(who, file), tls: tls?.ca ? { ca: tls.ca } : undefined };
        };
      }
      run.access = await accessFor({ role: 'admin' });
      run.natsUrl = run.access.servers.join(',');
      writeRunFile(run);
      nc = await connectBus(await accessFor({ role: 'launcher' }), { name: `launcher:${config.name}` });
      const busReady = performance.now() - began;
      registry = new HostRegistry(nc, config.name, new Set(config.hosts.map((h) => h.name)));
      await registry.start();
      await nc.flush();
      log.info({ nats: run.natsUrl, hosts: config.hosts.length }, 'bus ready');

      for (const spec of config.hosts) {
        const entry = spawnHost(spec, config.name, await accessFor({ role: 'host', host: spec.name }), dir);
        children.set(spec.name, entry);
        entry.child.once('exit', (code, signal) => {
          entry.exitCode = code;
          entry.exitSignal = signal;
          registry?.markExited(spec.name);
          log.warn({ host: spec.name, code, signal }, 'host process exited');
        });
        run.hosts.push({ name: spec.name, pid: entry.child.pid! });
      }
      writeRunFile(run);

      const registered: Record<string, number> = {};
      const deadline = 20_000 + 500 * config.hosts.length;
      let crashed: HostChild | undefined;
      let reported = -1;
      const allUp = await pollUntil(() => {
        for (const [name, entry] of children) {
          if (registered[name] === undefined && registry!.isUp(name)) registered[name] = performance.now() - began;
          if (entry.exitCode !== undefined && registered[name] === undefined) crashed = entry;
        }
        const count = Object.keys(registered).length;
        if (count !== reported) options.onProgress?.((reported = count), children.size);
        return crashed !== undefined || Object.keys(registered).length === children.size;
      }, deadline, 20);
      if (crashed) throw new SlicelabError('EUNAVAILABLE', `host ${crashed.spec.name} exited (${crashed.exitSignal ?? `code ${crashed.exitCode}`}) before registering: ${lastLogLine(dir, crashed.spec.name)}`);
      if (!allUp) {
        const missing = [...children.keys()].filter((name) => registered[name] === undefined);
        throw new SlicelabError('ETIMEDOUT', `hosts ${missing.join(', ')} did not register within ${deadline / 1000} s; see ${join(dir, 'logs')}`);
      }
      run.state = 'running';
      writeRunFile(run);
      const timings = { bus: busReady, registered, total: performance.now() - began };
      log.info({ ms: Math.round(timings.total) }, 'all hosts registered');
      const launcher = new Launcher(config, run, nc, registry, log, nats, natsOptions, timings);
      for (const [name, entry] of children) launcher.children.set(name, entry);
      launcher.superviseBus();
      return launcher;
    } catch (error) {
      log.error({ err: errorMessage(error) }, 'launch failed; undoing');
      await takeDown(children, registry, nc, nats);
      removeRunFile(config.name);
      log.flush();
      throw error;
    }
  }

  hostPid(name: string): number | undefined {
    return this.children.get(name)?.child.pid;
  }

  /** Stops hosts gracefully (SIGTERM, then SIGKILL after a grace period), then the bus; removes the run file. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.run.state = 'stopping';
      writeRunFile(this.run);
      this.log.info('stopping');
      await takeDown(this.children, this.registry, this.nc, this.nats);
      removeRunFile(this.config.name);
      this.log.info('stopped');
      this.log.flush();
    })();
    return this.stopping;
  }

  /** Watches the embedded nats-server: started again when it dies, the cluster given up when it cannot be. */
  private superviseBus(): void {
    const nats = this.nats;
    if (!nats || !this.natsOptions) return;
    void nats.exited.then(async () => {
      if (this.stopping) return;
      this.log.error({ pid: nats.pid, port: nats.port }, 'nats-server exited; starting it again on the same port and store');
      this.run.state = 'recovering';
      writeRunFile(this.run);
      let problem = '';
      for (let attempt = 1; attempt <= busRestarts && !this.stopping; attempt++) {
        try {
          this.nats = await startNatsServer(this.natsOptions!);
          this.run.nats = { pid: this.nats.pid, port: this.nats.port, storeDir: this.nats.storeDir, restarts: (this.run.nats?.restarts ?? 0) + 1 };
          this.run.state = 'running';
          writeRunFile(this.run);
          this.log.info({ pid: this.nats.pid, attempt }, 'nats-server is back');
          this.superviseBus();
          return;
        } catch (error) {
          problem = errorMessage(error);
          this.log.error({ err: problem, attempt }, 'nats-server did not come back');
          await sleep(500 * attempt);
        }
      }
      if (this.stopping) return;
      const why = `the embedded nats-server died and could not be started again on port ${nats.port} (${problem}); the cluster was brought down`;
      this.stopping = (async () => {
        await takeDown(this.children, this.registry, this.nc, undefined);
        Object.assign(this.run, { state: 'failed', error: why, hosts: [], nats: undefined });
        writeRunFile(this.run);
        this.log.error(why);
        this.log.flush();
      })();
      await this.stopping;
      this.fail(why);
    });
  }
}

function spawnHost(spec: HostSpec, cluster: string, access: BusAccess, dir: string): HostChild {
  const logFd = openSync(join(dir, 'logs', `${spec.name}.log`), 'a');
  try {
    const child = spawn(
      process.execPath,
      [...hostNodeFlags, hostMain, '--cluster', cluster, '--spec', JSON.stringify(spec), '--launcher-pid', String(process.pid)],
      { stdio: ['ignore', logFd, logFd], env: { ...process.env, [busVariable]: JSON.stringify(access) } },
    );
    return { spec, child };
  } finally {
    closeSync(logFd);
  }
}

async function takeDown(children: Map<string, HostChild>, registry?: HostRegistry, nc?: NatsConnection, nats?: NatsServer): Promise<void> {
  await Promise.all(
    [...children.values()].map(async (entry) => {
      const pid = entry.child.pid;
      if (pid === undefined || entry.exitCode !== undefined) return;
      await stopProcess(pid, 5000, () => entry.exitCode !== undefined);
    }),
  );
  registry?.stop();
  await nc?.close().catch(() => undefined);
  await nats?.stop();
}

function lastLogLine(dir: string, host: string): string {
  try {
    const lines = readFileSync(join(dir, 'logs', `${host}.log`), 'utf8').trim().split('\n');
    const last = lines.at(-1) ?? '';
    try {
      const parsed = JSON.parse(last) as { msg?: string; err?: string };
      return [parsed.msg, parsed.err].filter(Boolean).join(': ') || last;
    } catch {
      return last || 'no log output';
    }
  } catch {
    return 'no log output';
  }
}

/** Throws EEXIST when the cluster runs, ESTALE when a crashed run left processes; removes a run file that only files remain of. */
export function assertNotRunning(cluster: string): void {
  const run = readRunFile(cluster);
  if (!run) return;
  const health = runHealth(run);
  if (health.verdict === 'half-dead' || (health.verdict === 'failed' && health.alive.length > 0)) throw new SlicelabError('ESTALE', health.summary);
  if (health.verdict !== 'dead' && health.verdict !== 'failed') {
    throw new SlicelabError('EEXIST', `cluster "${cluster}" is already running (launcher pid ${run.launcherPid}, bus ${run.natsUrl ?? 'starting'}); leaving it alone`);
  }
  removeRunFile(cluster);
}

/**
 * What is left of a run, from its run file and the process table:
 *   running     the launcher and the bus live (hosts may still be lost: the registry says which)
 *   starting / recovering / stopping   the launcher is at it
 *   half-dead   some of it lives: the launcher without its nats-server, or processes without their launcher
 *   dead        nothing of it runs; only files remain
 *   failed      the launcher gave the cluster up; `error` says why
 */
export interface RunHealth {
  verdict: 'running' | 'starting' | 'recovering' | 'stopping' | 'half-dead' | 'dead' | 'failed';
  /** one line for people */
  summary: string;
  /** processes of the run still alive (and still ours) */
  alive: number[];
}

export function runHealth(run: RunFile): RunHealth {
  const name = `cluster "${run.cluster}"`;
  const launcher = isAlive(run.launcherPid);
  const leftovers = leftoverPids(run);
  if (run.state === 'failed') return { verdict: 'failed', summary: `${name} failed: ${run.error ?? 'no reason recorded'}; run: slicelab clean`, alive: leftovers };
  if (!launcher) {
    if (leftovers.length === 0) return { verdict: 'dead', summary: `${name} is dead: its launcher (pid ${run.launcherPid}) is gone and nothing of it runs; run: slicelab clean`, alive: [] };
    return { verdict: 'half-dead', summary: `${name} is half-dead: its launcher (pid ${run.launcherPid}) is gone but processes ${leftovers.join(', ')} still run; run: slicelab clean`, alive: leftovers };
  }
  const alive = [run.launcherPid, ...leftovers];
  if (run.state !== 'running') return { verdict: run.state, summary: `${name} is ${run.state}`, alive };
  if (run.nats && !isOurs(run.nats.pid, 'nats-server')) {
    return { verdict: 'half-dead', summary: `${name} is half-dead: the launcher (pid ${run.launcherPid}) runs but its nats-server (pid ${run.nats.pid}) is gone; run: slicelab clean`, alive };
  }
  return { verdict: 'running', summary: `${name} is running (launcher pid ${run.launcherPid}, bus ${run.natsUrl ?? '?'})`, alive };
}

/** Processes a run file records that are still alive and still ours. */
export function leftoverPids(run: RunFile): number[] {
  const pids: number[] = [];
  if (run.nats && isOurs(run.nats.pid, 'nats-server')) pids.push(run.nats.pid);
  for (const host of run.hosts) if (isOurs(host.pid, hostMain)) pids.push(host.pid);
  return pids;
}
