/**
 * The process around a host: start it, stop it on SIGTERM/SIGINT, and stop it by itself when its launcher
 * dies or the bus is gone for good, so that no host outlives its cluster. Resolves with the exit code.
 */
import { errorMessage, type HostSpec, type Logger } from '@slicelab/protocol';
import { Host } from './host.js';

export interface RunHostOptions {
  cluster: string;
  nats: string;
  spec: HostSpec;
  log: Logger;
  /** exit when this process is gone */
  launcherPid?: number;
  onStarted?: (host: Host) => void;
}

export const exitCodes = { ok: 0, startFailed: 1, launcherGone: 2, busGone: 3 } as const;

export async function runHost(options: RunHostOptions): Promise<number> {
  const { log } = options;
  let host: Host;
  try {
    host = await Host.start({ cluster: options.cluster, nats: options.nats, spec: options.spec, log });
  } catch (error) {
    log.error({ err: errorMessage(error), nats: options.nats }, 'cannot join the bus');
    return exitCodes.startFailed;
  }
  log.info({ cluster: options.cluster, nats: options.nats }, 'host started');
  options.onStarted?.(host);

  return new Promise<number>((resolve) => {
    let done = false;
    const finish = (code: number, why: string) => {
      if (done) return;
      done = true;
      clearInterval(watch);
      log.info({ why }, 'host stopping');
      // the signal listeners stay until the host has left: a second Ctrl-C must not cut the goodbye short
      void host.stop().then(() => {
        for (const name of ['SIGINT', 'SIGTERM'] as const) process.removeListener(name, onSignal);
        resolve(code);
      });
    };
    const onSignal = (name: NodeJS.Signals) => finish(exitCodes.ok, name);
    for (const name of ['SIGINT', 'SIGTERM'] as const) process.on(name, onSignal);
    const watch = setInterval(() => {
      if (options.launcherPid !== undefined && !alive(options.launcherPid)) finish(exitCodes.launcherGone, 'launcher gone');
    }, 500);
    void host.busLost.then(() => finish(exitCodes.busGone, 'bus gone'));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
