/**
 * Small facts about OS processes: is a pid alive, is it still the program we started (pids get reused),
 * wait for it to go, stop it politely then firmly. Readiness and exit are always polled, never slept on.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from '@slicelab/protocol';

export { isAlive };

/** True when `pid` is alive and its command line contains `marker` (guards against a reused pid). */
export function isOurs(pid: number, marker: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(marker);
  } catch {
    return false;
  }
}

/** Polls until `done()` is true or `timeoutMs` passes; returns whether it became true. */
export async function pollUntil(done: () => boolean, timeoutMs: number, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (done()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL; resolves once the process is gone. */
export async function stopProcess(pid: number, graceMs: number, gone: () => boolean = () => !isAlive(pid)): Promise<void> {
  signal(pid, 'SIGTERM');
  if (await pollUntil(gone, graceMs)) return;
  signal(pid, 'SIGKILL');
  await pollUntil(gone, 5000);
}

export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Resident set size of a process in bytes, from /proc (0 when it is gone). */
export function residentBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
