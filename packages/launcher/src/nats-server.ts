/**
 * The embedded bus: a `nats-server` child on a free loopback port (`-p -1`, the port read back from the
 * ports file) or the address the config asks for, JetStream on with its store in the run folder, and
 * the cluster's trust configuration (auth.ts). Optionally a cluster member with routes to others, which
 * is how tests join two servers as one bus the way several machines would.
 *
 * The server dies with the process that started it (`setpriv --pdeathsig KILL`, util-linux): a launcher
 * killed with SIGKILL leaves no server behind. Its JetStream store stays, so a server started again on
 * the same port and store is the same bus.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SlicelabError } from '@slicelab/protocol';
import { isAlive, pollUntil, stopProcess } from './processes.js';

export interface NatsServerOptions {
  /** folder for the ports file, the log and the JetStream store */
  dir: string;
  jetstream?: boolean;
  name?: string;
  /** join a NATS cluster: its name and the route URLs of the members started before this one */
  cluster?: { name: string; routes: string[] };
  /** a configuration file (auth.ts writes the cluster's) */
  config?: string;
  /** listen address, default 127.0.0.1 */
  host?: string;
  /** client port, default a free one */
  port?: number;
}

export interface NatsServer {
  pid: number;
  url: string;
  port: number;
  /** this server's route URL, when it is a cluster member */
  routeUrl?: string;
  storeDir: string;
  /** resolves when the process is gone, whoever ended it */
  exited: Promise<void>;
  stop(): Promise<void>;
}

export const natsInstallHint = 'nats-server is not installed: run `apt-get install -y nats-server` as root (npm install does it where it can)';

export function findNatsServer(): string {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/bin'];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new SlicelabError('ENOENT', natsInstallHint);
}

export async function startNatsServer(options: NatsServerOptions): Promise<NatsServer> {
  const binary = findNatsServer();
  mkdirSync(options.dir, { recursive: true });
  const storeDir = join(options.dir, 'jetstream');
  const args = ['-a', options.host ?? '127.0.0.1', '-p', String(options.port ?? -1), '--ports_file_dir', options.dir, '-l', join(options.dir, 'nats-server.log')];
  if (options.config) args.unshift('-c', options.config);
  if (options.name) args.push('-n', options.name);
  if (options.jetstream) args.push('-js', '-sd', storeDir);
  if (options.cluster) {
    args.push('--cluster_name', options.cluster.name, '--cluster', 'nats://127.0.0.1:-1');
    if (options.cluster.routes.length > 0) args.push('--routes', options.cluster.routes.join(','));
  }
  const guard = deathGuard();
  const child = guard ? spawn(guard, ['--pdeathsig', 'KILL', '--', binary, ...args], { stdio: 'ignore' }) : spawn(binary, args, { stdio: 'ignore' });
  const pid = child.pid;
  if (pid === undefined) throw new SlicelabError('EUNAVAILABLE', `could not start ${binary}`);
  let exited = false;
  const gone = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  const portsFile = join(options.dir, `nats-server_${pid}.ports`);
  const ready = await pollUntil(() => exited || existsSync(portsFile), 10_000);
  if (!ready || exited) {
    if (!exited) child.kill('SIGKILL');
    throw new SlicelabError('EUNAVAILABLE', `nats-server did not start; see ${join(options.dir, 'nats-server.log')}`);
  }
  const ports = await readPorts(portsFile);
  const url = ports.nats[0]!;
  return {
    pid,
    url,
    port: Number(new URL(url).port),
    routeUrl: ports.cluster?.[0],
    storeDir,
    exited: gone,
    stop: async () => {
      await stopProcess(pid, 5000, () => exited || !isAlive(pid));
    },
  };
}

/** setpriv, which makes the server die with its parent, where util-linux has it */
function deathGuard(): string | undefined {
  for (const candidate of ['/usr/bin/setpriv', '/bin/setpriv']) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function readPorts(file: string): Promise<{ nats: string[]; cluster?: string[] }> {
  // the server may still be writing the file when it first appears
  let parsed: { nats?: string[]; cluster?: string[] } = {};
  await pollUntil(() => {
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
      return (parsed.nats?.length ?? 0) > 0;
    } catch {
      return false;
    }
  }, 5000);
  if (!parsed.nats?.length) throw new SlicelabError('EUNAVAILABLE', `nats-server wrote no client port to ${file}`);
  return { nats: parsed.nats, cluster: parsed.cluster };
}

/** Ports files of servers that are gone, left by crashed runs. */
export function stalePortsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => /^nats-server_\d+\.ports$/.test(name))
    .filter((name) => !isAlive(Number(/_(\d+)\./.exec(name)![1])))
    .map((name) => join(dir, name));
}
