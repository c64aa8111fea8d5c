/**
 * The process around a host: start it, stop it on SIGTERM/SIGINT, and stop it by itself when its launcher
 * dies, the bus is gone for good, or another instance holds its name, so that no host outlives its
 * cluster and no two processes are one host. Resolves with the exit code and, when it failed, why.
 */
import { errorMessage, isAlive, type BusAccess, type HostSpec, type Logger } from '@slicelab/protocol';
import { Host } from './host.js';


export interface RunHostOptions {
  cluster: string;
  access: BusAccess;
  spec: HostSpec;
  log: Logger;
  /** exit when this process is gone */
  launcherPid?: number;
  onStarted?: (host: Host) => void;
}

export const exitCodes = { ok: 0, startFailed: 1, launcherGone: 2, busGone: 3, displaced: 4 } as const;

export interface HostExit {
  code: number;
  /** one line, when the host could not start or had to stop */
  reason?: string;
}

export async function runHost(options: RunHostOptions): Promise<HostExit> {
  const { log } = options;
  let host: Host;
  try {
    host = await Host.start({ cluster: options.cluster, access: options.access, spec: options.spec, log });
  } catch (error) {
    log.error({ err: errorMessage(error), nats: options.access.servers.join(',') }, 'cannot start');
    return { code: exitCodes.startFailed, reason: errorMessage(error) };
  }
  log.info({ cluster: options.cluster, nats: options.access.servers.join(','), instance: host.info.instance }, 'host started');
  options.onStarted?.(host);

  return new Promise<HostExit>((resolve) => {
    let done = false;
    const finish = (code: number, why: string) => {
      if (done) return;
      done = true;
      clearInterval(watch);
      log.info({ why }, 'host stopping');
      // the signal listeners stay until the host has left: a second Ctrl-C must not cut the goodbye short
      void host.stop().then(() => {
        for (const name of ['SIGINT', 'SIGTERM'] as const) process.removeListener(name, onSignal);
        resolve({ code, reason: code === exitCodes.ok ? undefined : why });
      });
    };
    const onSignal = (name: NodeJS.Signals) => finish(exitCodes.ok, name);
    for (const name of ['SIGINT', 'SIGTERM'] as const) process.on(name, onSignal);
    const watch = setInterval(() => {
      if (options.launcherPid !== undefined && !isAlive(options.launcherPid)) finish(exitCodes.launcherGone, 'the launcher is gone');
    }, 500);
    void host.busLost.then(() => finish(exitCodes.busGone, 'the bus is gone'));
    void host.displaced.then((why) => finish(exitCodes.displaced, why));
  });
}
