/**
 * The commands' side of a run: keep a launcher until a signal stops it, start one detached, stop one
 * through its run file (`down`), and clean up after a crashed one (`clean`, Mininet's `mn -c`).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SlicelabError } from '@slicelab/protocol';
import { loadConfig } from './config.js';
import { Launcher, assertNotRunning, leftoverPids, runHealth } from './launcher.js';
import { isAlive, pollUntil, signal } from './processes.js';
import { listRunFiles, readRunFile, removeRunFile, runDir, stateRoot, type RunFile } from './run-file.js';
import { stalePortsFiles } from './nats-server.js';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const daemonMain = fileURLToPath(new URL('./daemon.js', import.meta.url));

/**
 * Resolves once SIGINT, SIGTERM or SIGHUP arrived and the launcher stopped (with undefined), or once the
 * launcher gave the cluster up (with the reason, which the run file keeps too).
 */
export function stopOnSignal(launcher: Launcher): Promise<string | undefined> {
  return new Promise((resolve) => {
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const stop = () => {
      for (const name of signals) process.removeListener(name, stop);
      void launcher.stop().then(() => resolve(undefined));
    };
    for (const name of signals) process.on(name, stop);
    void launcher.failed.then((why) => {
      for (const name of signals) process.removeListener(name, stop);
      resolve(why);
    });
  });
}

/**
 * Starts the cluster of `configFile` in a detached launcher process and returns its run file once every
 * host registered. The launcher reports success or the reason it failed over an IPC channel, then this
 * process lets go of it.
 */
export async function startDetached(configFile: string, onProgress?: (registered: number, total: number) => void): Promise<RunFile> {
  const config = loadConfig(configFile);
  assertNotRunning(config.name);
  mkdirSync(runDir(config.name), { recursive: true });
  // the launcher logs with pino; this file catches only what escapes it (a crash before the logger exists)
  const errors = openSync(join(runDir(config.name), 'launcher.err'), 'a');
  const child = spawn(process.execPath, [daemonMain, '--config', resolve(configFile)], {
    detached: true,
    stdio: ['ignore', 'ignore', errors, 'ipc'],
    env: { ...process.env, SLICELAB_HOME: stateRoot() },
  });
  closeSync(errors);
  try {
    return await new Promise<RunFile>((resolve, reject) => {
      child.on('message', (message: DaemonMessage) => {
        if (message.kind === 'progress') onProgress?.(message.registered, message.total);
        if (message.kind === 'ready') resolve(message.run);
        if (message.kind === 'failed') reject(new SlicelabError(message.code as never, message.message));
      });
      child.once('exit', (code) => reject(new SlicelabError('EUNAVAILABLE', `the launcher exited (code ${code}) before the cluster was up; see ${join(runDir(config.name), 'launcher.log')}`)));
    });
  } finally {
    child.removeAllListeners();
    if (child.connected) child.disconnect();
    child.unref();
  }
}

export type DaemonMessage =
  | { kind: 'progress'; registered: number; total: number }
  | { kind: 'ready'; run: RunFile }
  | { kind: 'failed'; code: string; message: string };

export interface DownResult {
  cluster: string;
  stopped: boolean;
  killed: number[];
}

/** `down`: asks the launcher to stop (SIGTERM) and waits until it and everything it recorded is gone. */
export async function stopRun(run: RunFile, timeoutMs = 30_000): Promise<DownResult> {
  if (isAlive(run.launcherPid) && run.launcherPid !== process.pid) {
    signal(run.launcherPid, 'SIGTERM');
    await pollUntil(() => !isAlive(run.launcherPid), timeoutMs, 50);
  }
  const latest = readRunFile(run.cluster) ?? run;
  const killed = leftoverPids(latest);
  for (const pid of killed) signal(pid, 'SIGKILL');
  await pollUntil(() => killed.every((pid) => !isAlive(pid)), 5000);
  removeRunFile(run.cluster);
  return { cluster: run.cluster, stopped: true, killed };
}

export interface CleanResult {
  cluster: string;
  killed: number[];
  removed: string[];
}

/**
 * `clean`: for every run that is not running (dead, half-dead, failed), kills what is left of it, the
 * launcher included, and removes its run and ports files. Running ones, and ones their launcher is
 * starting, recovering or stopping, are left alone.
 */
export async function cleanStaleRuns(): Promise<{ cleaned: CleanResult[]; running: string[] }> {
  const cleaned: CleanResult[] = [];
  const running: string[] = [];
  for (const run of listRunFiles()) {
    const health = runHealth(run);
    if (!['half-dead', 'dead', 'failed'].includes(health.verdict)) {
      running.push(run.cluster);
      continue;
    }
    const killed = health.alive;
    for (const pid of killed) signal(pid, 'SIGKILL');
    await pollUntil(() => killed.every((pid) => !isAlive(pid)), 5000);
    const removed = [join(runDir(run.cluster), 'run.json'), ...stalePortsFiles(join(runDir(run.cluster), 'nats'))];
    for (const file of removed) rmSync(file, { force: true });
    cleaned.push({ cluster: run.cluster, killed, removed });
  }
  return { cleaned, running };
}
