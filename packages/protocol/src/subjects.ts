/**
 * The subject naming scheme, in one place, with who may use each subject (permissions.ts). Every subject
 * of a cluster starts with `slicelab.<cluster>`, so several clusters share one bus without seeing each
 * other; cluster and host names are single tokens (see names.ts). What is said *to* a host lives under
 * `host.<host>` (only that host subscribes there); what a host says lives under `from.<host>` (only that
 * host may publish there), so nobody can speak as another host.
 *
 *   slicelab.<cluster>.host.<host>.status      request → HostStatus            (host answers)
 *   slicelab.<cluster>.host.<host>.ping        request → Pong                  (host answers; round trips)
 *   slicelab.<cluster>.host.<host>.container.<op>  request → ContainerInfo / ContainerList / ProcessInfo / ContainerLogs
 *                                              op: run exec stop start kill rm ps logs inspect checkpoint restore
 *   slicelab.<cluster>.host.<host>.image.receive  request ImageReceive → ImageSlot (a receiver for an image)
 *   slicelab.<cluster>.host.<host>.transfer.<id>  the chunks of one image (transfer.ts), each acknowledged
 *   slicelab.<cluster>.host.<host>.cgroup.get  request CgroupGet → CgroupFiles
 *   slicelab.<cluster>.host.<host>.cgroup.set  request CgroupSet → CgroupFiles (the file as it now reads)
 *   slicelab.<cluster>.host.<host>.scheduler.set  request SchedulerSet → HostStatus
 *   slicelab.<cluster>.host.<host>.scheduler.trace  request TraceRequest → SchedulerTrace (for benchmarks)
 *   slicelab.<cluster>.host.<host>.net.<op>    request → HostLinks / LinkSettings / NicSettings / HostArp / CaptureResult
 *                                              op: links set-link set-nic arp capture (capture sends its pcap to a receiver)
 *   slicelab.<cluster>.host.<host>.migration.<op>  request → MigrationStats / MigrationList (migration.ts)
 *                                              op: start status list cancel postcopy (the host is the source)
 *   slicelab.<cluster>.host.<host>.migrate.<op>    between the two hosts of a migration, the id in the body
 *                                              op: prepare pages switchover (and commit) finish abort (to the destination), pull (to the source)
 *   slicelab.<cluster>.from.<host>.register    request HostInfo → Registered   (launcher answers)
 *   slicelab.<cluster>.from.<host>.heartbeat   fire-and-forget Heartbeat, every second
 *   slicelab.<cluster>.from.<host>.left        fire-and-forget HostLeft, when the host stops
 *   slicelab.<cluster>.hosts.list              request → HostList               (launcher answers)
 *   slicelab.<cluster>.hosts.discover          request, every host answers with HostStatus (no launcher needed)
 *   slicelab.<cluster>.events.host             fire-and-forget HostEvent: joined, left, lost (launcher publishes)
 *   slicelab.<cluster>.bench.<what>            a benchmark's own traffic (the plain publisher beside a transfer)
 *   slicelab.<cluster>.frames.<from>.<to>      Ethernet frames from host <from>'s uplink to host <to>'s (the fabric);
 *                                              <to> is `_all` for broadcast (no host name starts with `_`)
 *   _INBOX.<cluster>.<identity>.…              replies to one identity's requests (inboxPrefix)
 *
 * JetStream key-value buckets: `slicelab_<cluster>_names` (container name → host), `slicelab_<cluster>_hosts`
 * (host name → the instance that holds it), `slicelab_<cluster>_leases` (IP address → the nic that holds it).
 */
export const subjectRoot = 'slicelab';

export const containerOps = ['run', 'exec', 'stop', 'start', 'kill', 'rm', 'ps', 'logs', 'inspect', 'checkpoint', 'restore'] as const;
export type ContainerOp = (typeof containerOps)[number];

export const netOps = ['links', 'set-link', 'set-nic', 'arp', 'capture'] as const;
export type NetOp = (typeof netOps)[number];

export const migrationOps = ['start', 'status', 'list', 'cancel', 'postcopy'] as const;
export type MigrationOp = (typeof migrationOps)[number];
export const migratePeerOps = ['prepare', 'pages', 'switchover', 'finish', 'abort', 'pull'] as const;
export type MigratePeerOp = (typeof migratePeerOps)[number];

/** Who is on the bus: the launcher (registry), an admin (the CLI, the client library) or one host. */
export type Identity = { role: 'launcher' } | { role: 'admin' } | { role: 'host'; host: string };

export function clusterSubjects(cluster: string) {
  const base = `${subjectRoot}.${cluster}`;
  return {
    all: `${base}.>`,
    hostAll: (host: string) => `${base}.host.${host}.>`,
    hostStatus: (host: string) => `${base}.host.${host}.status`,
    hostPing: (host: string) => `${base}.host.${host}.ping`,
    container: (host: string, op: ContainerOp) => `${base}.host.${host}.container.${op}`,
    imageReceive: (host: string) => `${base}.host.${host}.image.receive`,
    imageTransfer: (host: string, id: string) => `${base}.host.${host}.transfer.${id}`,
    cgroupGet: (host: string) => `${base}.host.${host}.cgroup.get`,
    cgroupSet: (host: string) => `${base}.host.${host}.cgroup.set`,
    schedulerSet: (host: string) => `${base}.host.${host}.scheduler.set`,
    schedulerTrace: (host: string) => `${base}.host.${host}.scheduler.trace`,
    net: (host: string, op: NetOp) => `${base}.host.${host}.net.${op}`,
    migration: (host: string, op: MigrationOp) => `${base}.host.${host}.migration.${op}`,
    /** `host` may be `*`: every host may speak to every other host's migration peer subjects */
    migrate: (host: string, op: MigratePeerOp | '*') => `${base}.host.${host}.migrate.${op}`,
    fromAll: (host: string) => `${base}.from.${host}.>`,
    hostRegister: (host: string) => `${base}.from.${host}.register`,
    hostHeartbeat: (host: string) => `${base}.from.${host}.heartbeat`,
    hostLeft: (host: string) => `${base}.from.${host}.left`,
    anyRegister: `${base}.from.*.register`,
    anyHeartbeat: `${base}.from.*.heartbeat`,
    anyLeft: `${base}.from.*.left`,
    list: `${base}.hosts.list`,
    discover: `${base}.hosts.discover`,
    hostEvents: `${base}.events.host`,
    bench: (what: string) => `${base}.bench.${what}`,
    frames: (from: string, to: string) => `${base}.frames.${from}.${to}`,
    broadcast: (from: string) => `${base}.frames.${from}._all`,
    /** where one identity's replies arrive; its credential lets it subscribe there and nowhere else's */
    inbox: (who: Identity) => `_INBOX.${cluster}.${who.role === 'host' ? `host.${who.host}` : who.role}`,
    namesBucket: `slicelab_${cluster}_names`,
    hostsBucket: `slicelab_${cluster}_hosts`,
    leasesBucket: `slicelab_${cluster}_leases`,
  };
}

/** The host a `from.<host>.…` subject speaks for. */
export function speaker(subject: string): string | undefined {
  return subject.split('.')[3];
}

export type ClusterSubjects = ReturnType<typeof clusterSubjects>;
