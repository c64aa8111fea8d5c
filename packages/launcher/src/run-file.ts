/**
 * Where a cluster's run lives and the run file that lets every command find it. The state root is
 * `$SLICELAB_HOME`, else the nearest `.slicelab` folder from the current directory upwards, else
 * `./.slicelab`; each cluster has its run folder `<root>/<cluster>/` with `run.json`, logs and the
 * embedded NATS store.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SlicelabError, type BusAccess } from '@slicelab/protocol';

export interface RunFile {
  cluster: string;
  config: string;
  /** recovering: the embedded nats-server died and is being started again */
  state: 'starting' | 'running' | 'recovering' | 'stopping' | 'failed';
  error?: string;
  startedAt: number;
  detached: boolean;
  launcherPid: number;
  natsUrl?: string;
  /** how an admin (the CLI, the client library) joins the bus: URLs and credential */
  access?: BusAccess;
  /** the embedded nats-server, when slicelab started it; restarts: how often the launcher started it again */
  nats?: { pid: number; port: number; storeDir: string; restarts: number };
  hosts: Array<{ name: string; pid: number }>;
}

export function stateRoot(cwd = process.cwd()): string {
  const fromEnv = process.env['SLICELAB_HOME'];
  if (fromEnv) return resolve(fromEnv);
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, '.slicelab'))) return join(dir, '.slicelab');
    if (dirname(dir) === dir) break;
  }
  return resolve(cwd, '.slicelab');
}

export function runDir(cluster: string): string {
  return join(stateRoot(), cluster);
}

export function runFilePath(cluster: string): string {
  return join(runDir(cluster), 'run.json');
}

export function readRunFile(cluster: string): RunFile | undefined {
  try {
    return JSON.parse(readFileSync(runFilePath(cluster), 'utf8')) as RunFile;
  } catch {
    return undefined;
  }
}

/** Written atomically (rename), so a reader never sees half a file; only its owner reads it (it may name a password). */
export function writeRunFile(run: RunFile): void {
  const path = runFilePath(run.cluster);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, `${JSON.stringify(run, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

export function removeRunFile(cluster: string): void {
  rmSync(runFilePath(cluster), { force: true });
}

export function listRunFiles(): RunFile[] {
  const root = stateRoot();
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => readRunFile(entry.name))
    .filter((run): run is RunFile => run !== undefined);
}

/**
 * The run a command means: the named cluster, or the only one there is. Throws ENOTRUNNING when there is
 * none, EINVAL when several run and none was named.
 */
export function findRun(cluster?: string): RunFile {
  if (cluster) {
    const run = readRunFile(cluster);
    if (!run) throw new SlicelabError('ENOTRUNNING', `cluster "${cluster}" is not running (no run file in ${runDir(cluster)})`);
    return run;
  }
  const runs = listRunFiles();
  if (runs.length === 0) throw new SlicelabError('ENOTRUNNING', `no cluster is running (no run file under ${stateRoot()}); start one with: slicelab up`);
  if (runs.length > 1) throw new SlicelabError('EINVAL', `several clusters are running (${runs.map((r) => r.cluster).join(', ')}); name one with --cluster`);
  return runs[0]!;
}
