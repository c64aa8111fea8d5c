/**
 * The one harness for tests against real processes: it runs the CLI as a user would, starts real
 * nats-servers, gives every test file its own state root (SLICELAB_HOME), and on teardown kills
 * everything it started or that a run file under its root records. Readiness is always polled.
 */
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { isAlive, pollUntil, signal, startNatsServer, type NatsServer, type NatsServerOptions, type RunFile } from '@slicelab/launcher';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const cliBin = join(repoRoot, 'packages/cli/bin/run.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  output(): string;
  /** resolves with the exit code */
  exited: Promise<number | null>;
}

export class Harness {
  readonly home = mkdtempSync(join(tmpdir(), 'slicelab-test-'));
  private readonly children: ChildProcess[] = [];
  private readonly servers: NatsServer[] = [];

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, SLICELAB_HOME: this.home, NO_COLOR: '1' };
  }

  /** Runs `slicelab ARGS` to completion. */
  cli(args: string[], timeoutMs = 60_000): Promise<CliResult> {
    const run = this.start(args);
    const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
    return run.exited.then((code) => {
      clearTimeout(timer);
      const [stdout, stderr] = run.output().split('\u0000');
      return { code: code ?? -1, stdout: stdout ?? '', stderr: stderr ?? '' };
    });
  }

  /** Runs `slicelab ARGS --json` and parses what it printed. */
  async cliJson<T = Record<string, unknown>>(args: string[], timeoutMs = 60_000): Promise<T & { code: number; stderr: string }> {
    const result = await this.cli([...args, '--json'], timeoutMs);
    try {
      return { ...(JSON.parse(result.stdout) as T), code: result.code, stderr: result.stderr };
    } catch {
      throw new Error(`slicelab ${args.join(' ')} --json printed no JSON (exit ${result.code}): ${result.stdout}${result.stderr}`);
    }
  }

  /** Starts `slicelab ARGS` in the background (a foreground `up`, a lone `host`); tracked and killed on cleanup. */
  start(args: string[]): Running {
    const child = spawn(process.execPath, [cliBin, ...args], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    return { child, exited, output: () => `${stdout}\u0000${stderr}` };
  }

  /** A bus of someone else's (no slicelab credentials), with JetStream unless told otherwise. */
  async nats(options: Partial<NatsServerOptions> = {}): Promise<NatsServer> {
    const server = await startNatsServer({ dir: mkdtempSync(join(this.home, 'nats-')), jetstream: true, ...options });
    this.servers.push(server);
    return server;
  }

  /** `slicelab up --detach` of a config file: the cluster's run file once every host registered; throws what up printed if it failed. */
  async up(config: string): Promise<RunFile> {
    const up = await this.cli(['up', '--config', config, '--detach']);
    if (up.code !== 0) throw new Error(`up --detach failed (exit ${up.code}): ${up.stderr}${up.stdout}`);
    const cluster = (JSON.parse(readFileSync(config, 'utf8')) as { name: string }).name;
    return this.runFile(cluster)!;
  }

  /** A host credential of a running cluster, as a user hands one to another machine (`creds export`). */
  async hostCreds(cluster: string, host: string): Promise<string> {
    const file = join(this.home, `${cluster}-${host}.creds`);
    const result = await this.cli(['creds', 'export', '--cluster', cluster, '--role', 'host', '--host', host, '--out', file]);
    if (result.code !== 0) throw new Error(`creds export failed: ${result.stderr}`);
    return file;
  }

  writeConfig(name: string, config: unknown): string {
    const file = join(this.home, `${name}.json`);
    writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
    return file;
  }

  runFile(cluster: string): RunFile | undefined {
    try {
      return JSON.parse(readFileSync(join(this.home, cluster, 'run.json'), 'utf8')) as RunFile;
    } catch {
      return undefined;
    }
  }

  /** Every pid recorded in run files under this harness's root. */
  recordedPids(): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync(this.home, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const run = this.runFile(entry.name);
      if (!run) continue;
      pids.push(run.launcherPid, ...run.hosts.map((h) => h.pid));
      if (run.nats) pids.push(run.nats.pid);
    }
    return pids;
  }

  async cleanup(): Promise<void> {
    const pids = [...this.children.map((c) => c.pid!).filter((pid) => pid !== undefined), ...this.recordedPids()];
    for (const pid of pids) if (pid !== process.pid) signal(pid, 'SIGKILL');
    await Promise.all(this.servers.map((server) => server.stop()));
    await pollUntil(() => pids.every((pid) => pid === process.pid || !isAlive(pid)), 5000);
    rmSync(this.home, { recursive: true, force: true });
  }
}

export function hostConfig(name: string, hosts: string[], extra: Record<string, unknown> = {}) {
  return { name, ...extra, hosts: hosts.map((host) => ({ name: host, cores: 2, memory: '1GiB', uplink: '1gbit' })) };
}

/** Runs `probe` until `done` says so, at most `tries` times; returns the last value either way. */
export async function poll<T>(probe: () => Promise<T>, done: (value: T) => boolean, tries = 30, gapMs = 100): Promise<T> {
  let value = await probe();
  for (let i = 1; i < tries && !done(value); i++) {
    await sleep(gapMs);
    value = await probe();
  }
  return value;
}

/** "key value" lines (memory.events, cpu.stat, pids.events) as numbers. */
export function keyed(text: string | undefined): Record<string, number> {
  const values: Record<string, number> = {};
  for (const line of (text ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined) values[key] = Number(value);
  }
  return values;
}

/** The README's promise: every error is one line on stderr and a non-zero exit. */
export function oneLineError(t: ExecutionContext, result: CliResult, pattern: RegExp, what = ''): void {
  t.not(result.code, 0, `${what}: exit code`);
  t.is(result.stdout, '', `${what}: nothing on stdout`);
  const lines = result.stderr.trim().split('\n');
  t.is(lines.length, 1, `${what}: one line, got ${JSON.stringify(result.stderr)}`);
  t.regex(lines[0] ?? '', /^slicelab: /, what);
  t.regex(lines[0] ?? '', pattern, what);
}

export { isAlive, pollUntil };
