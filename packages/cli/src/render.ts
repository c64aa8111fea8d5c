/** Tables and small formatting shared by commands. */
import Table from 'cli-table3';
import { formatDuration, formatRate, formatSize, type HostRecord, type MigrationStats, type SchedulerSpec } from '@slicelab/protocol';

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

const ms = (value: number | null) => (value === null ? '-' : `${value.toFixed(value < 10 ? 2 : 1)} ms`);

/** One line of a running migration, as a progress bar: state, round, sent, left, dirty rate, expected downtime. */
export function migrationProgress(m: MigrationStats): string {
  const sent = m.ram.transferred;
  const done = sent + m.ram.remaining > 0 ? sent / (sent + m.ram.remaining) : 0;
  const width = 20;
  const filled = Math.round(done * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${m.status}, round ${m.ram['dirty-sync-count'] + 1}: ${formatSize(sent)} sent, ${formatSize(m.ram.remaining)} left, ` +
    `dirty ${m.ram['dirty-pages-rate'].toFixed(0)} pages/s, expected downtime ${ms(m['expected-downtime'])}` +
    (m['cpu-throttle-percentage'] > 0 ? `, throttled ${m['cpu-throttle-percentage']}%` : '');
}

/** A migration's statistics as `virsh domjobinfo` lays them out, with QEMU's names. */
export function migrationSummary(m: MigrationStats): string {
  const lines: Array<[string, string]> = [
    ['migration', `${m.id}: ${m.container} ${m.source} → ${m.destination}, ${m.mode}, ${m.status}`],
    ['total-time', `${ms(m['total-time'])} (setup-time ${ms(m['setup-time'])})`],
    ['downtime', `${ms(m.downtime)} (limit ${ms(m['downtime-limit'])}, expected ${ms(m['expected-downtime'])})` +
      (m['observed-downtime'].heartbeat === null ? '' : `; a heartbeat inside saw ${ms(m['observed-downtime'].heartbeat)}`) +
      (m['observed-downtime'].network === null ? '' : `; a net-heartbeat inside missed its peer for ${ms(m['observed-downtime'].network)}`)],
    ['transferred', `${formatSize(m.ram.transferred)} of ${formatSize(m.ram.total)} touched, ${formatSize(m.ram.remaining)} remaining`],
    ['pages', `${m.ram.normal} normal, ${m.ram.duplicate} duplicate (zero, sent as numbers only)`],
    ['rate', `${m.ram.mbps.toFixed(1)} Mbit/s, ${m.ram['pages-per-second'].toFixed(0)} pages/s` +
      (m['max-bandwidth'] === null ? ' (no cap)' : ` (cap ${formatRate(m['max-bandwidth'])})`) + (m.ram.retransmits > 0 ? `, ${m.ram.retransmits} batches sent again` : '')],
    ['dirty-sync-count', `${m.ram['dirty-sync-count']} rounds, dirty-pages-rate ${m.ram['dirty-pages-rate'].toFixed(0)} pages/s, cpu-throttle ${m['cpu-throttle-percentage']}%`],
    ['bytes', `precopy ${formatSize(m.ram['precopy-bytes'])}, downtime ${formatSize(m.ram['downtime-bytes'])}, postcopy ${formatSize(m.ram['postcopy-bytes'])}`],
  ];
  if (m.mode !== 'precopy') {
    const latency = m['fault-latency'];
    lines.push(['postcopy-requests', `${m.ram['postcopy-requests']}` + (latency ? `, fault latency p50 ${ms(latency.p50)} p99 ${ms(latency.p99)}` : '') +
      (m['postcopy-pauses'] > 0 ? `; paused ${m['postcopy-pauses']} times (the peer stopped answering) and went on` : '')]);
  }
  if (m.digest.source !== null) {
    lines.push(['digest', m.digest.source === m.digest.destination ? `${m.digest.source} (equal on both sides)` : `source ${m.digest.source}, destination ${m.digest.destination ?? '-'}: DIFFERENT`]);
  }
  for (const r of m.resources) lines.push([`resource ${r.name}`, `by ${r.binding}, ${r.attachment}: ${r.action} ${r.before} → ${r.after}`]);
  if (m.error) lines.push(['error', m.error]);
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n');
}

export function migrationsTable(migrations: MigrationStats[]): string {
  return table(
    ['id', 'container', 'from', 'to', 'mode', 'status', 'total-time', 'downtime', 'transferred', 'rounds'],
    migrations.map((m) => [m.id, m.container, m.source, m.destination, m.mode, m.status, ms(m['total-time']), ms(m.downtime), formatSize(m.ram.transferred), m.ram['dirty-sync-count']]),
  );
}
