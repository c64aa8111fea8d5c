/** Tables and small formatting shared by commands. */
import Table from 'cli-table3';
import { formatDuration, formatRate, formatSize, type HostRecord, type SchedulerSpec } from '@slicelab/protocol';

/** "1 host", "3 hosts" */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

export function table(head: string[], rows: Array<Array<string | number>>): string {
  const t = new Table({ head, style: { head: [], border: [] }, chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' } });
  t.push(...rows.map((row) => row.map(String)));
  return t.toString();
}

/** A host's scheduler as people read it: the policy, and the seed where draws depend on it. */
export function schedulerText(scheduler: SchedulerSpec): string {
  return scheduler.policy === 'lottery' ? `lottery (seed ${scheduler.seed})` : scheduler.policy;
}

export function hostsTable(hosts: HostRecord[], now = Date.now()): string {
  return table(
    ['host', 'pid', 'cores', 'memory', 'uplink', 'scheduler', 'state', 'heartbeat', 'load', 'cpu', 'rss'],
    hosts.map((h) => [
      h.name, h.pid, h.cores, formatSize(h.memory), formatRate(h.uplink.bandwidth),
      schedulerText(h.scheduler), h.state,
      `${formatDuration(Math.max(0, now - h.lastHeartbeat))} ago`, h.load1.toFixed(2), `${(h.elu * 100).toFixed(1)}%`, formatSize(h.rss),
    ]),
  );
}

/** A host record as --json prints it: with the heartbeat's age, which a reader cannot compute without our clock. */
export function hostJson(host: HostRecord, now = Date.now()) {
  return { ...host, heartbeatAgeMs: Math.max(0, now - host.lastHeartbeat) };
}
