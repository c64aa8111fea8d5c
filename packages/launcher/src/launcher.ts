/**
 * Makes a cluster config real (Mininet's `Mininet` to its `Topo`): the bus (embedded nats-server unless
 * the config names servers), the host registry, one OS process per host; waits, by polling, until every
 * host has registered; and takes it all down again in reverse order. Whatever fails halfway is undone,
 * so a failed `up` leaves nothing running.
 *
 * Division of labor:
 *   Launcher: starts, supervises and stops the processes of one cluster; owns the run file
 *   HostRegistry: what the bus says about hosts (registered, heartbeating, lost)
 *   host processes: everything inside a host (see @slicelab/host)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SlicelabError, createLogger, errorMessage, type Logger } from '@slicelab/protocol';
import type { ClusterConfig, HostSpec } from './config.js';
import { startNatsServer, type NatsServer } from './nats-server.js';
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

export class Launcher {
  private readonly children = new Map<string, HostChild>();
  private stopping?: Promise<void>;

  private constructor(
    readonly config: ClusterConfig,
    readonly run: RunFile,
    readonly nc: NatsConnection,
    readonly registry: HostRegistry,
    readonly log: Logger,
    private readonly nats: NatsServer | undefined,
    readonly timings: LaunchTimings,
  ) {}

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
    try {
      if (config.nats) {
        run.natsUrl = config.nats.servers.join(',');
      } else {
        nats = await startNatsServer({ dir: join(dir, 'nats'), jetstream: true, name: `slicelab-${config.name}` });
        run.nats = { pid: nats.pid, port: nats.port, storeDir: nats.storeDir };
        run.natsUrl = nats.url;
      }
      writeRunFile(run);
      nc = await connect({ servers: run.natsUrl.split(','), name: `launcher:${config.name}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      const busReady = performance.now() - began;
      registry = new HostRegistry(nc, config.name, new Set(config.hosts.map((h) => h.name)));
      registry.start();
      await nc.flush();
      log.info({ nats: run.natsUrl, hosts: config.hosts.length }, 'bus ready');

      for (const spec of config.hosts) {
        const entry = spawnHost(spec, config.name, run.natsUrl, dir);
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
      const launcher = new Launcher(config, run, nc, registry, log, nats, timings);
      for (const [name, entry] of children) launcher.children.set(name, entry);
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
}

function spawnHost(spec: HostSpec, cluster: string, natsUrl: string, dir: string): HostChild {
  const logFd = openSync(join(dir, 'logs', `${spec.name}.log`), 'a');
  try {
    const child = spawn(
      process.execPath,
      [...hostNodeFlags, hostMain, '--nats', natsUrl, '--cluster', cluster, '--spec', JSON.stringify(spec), '--launcher-pid', String(process.pid)],
      { stdio: ['ignore', logFd, logFd] },
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
  if (isAlive(run.launcherPid) && run.state !== 'failed') {
    throw new SlicelabError('EEXIST', `cluster "${cluster}" is already running (launcher pid ${run.launcherPid}, bus ${run.natsUrl ?? 'starting'}); leaving it alone`);
  }
  const leftovers = leftoverPids(run);
  if (leftovers.length > 0) {
    throw new SlicelabError('ESTALE', `a crashed run of cluster "${cluster}" left processes ${leftovers.join(', ')}; run: slicelab clean`);
  }
  removeRunFile(cluster);
}

/** Processes a run file records that are still alive and still ours. */
export function leftoverPids(run: RunFile): number[] {
  const pids: number[] = [];
  if (run.nats && isOurs(run.nats.pid, 'nats-server')) pids.push(run.nats.pid);
  for (const host of run.hosts) if (isOurs(host.pid, hostMain)) pids.push(host.pid);
  return pids;
}
