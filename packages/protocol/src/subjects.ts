/**
 * The subject naming scheme, in one place. Every subject of a cluster starts with `slicelab.<cluster>`, so
 * several clusters share one bus without seeing each other; cluster and host names are single tokens
 * (see names.ts).
 *
 *   slicelab.<cluster>.host.<host>.status      request → HostStatus            (host answers)
 *   slicelab.<cluster>.host.<host>.ping        request → Pong                  (host answers; round trips)
 *   slicelab.<cluster>.host.<host>.heartbeat   fire-and-forget Heartbeat, every second
 *   slicelab.<cluster>.host.<host>.container.<op>  request → ContainerInfo / ContainerList / ProcessInfo / ContainerLogs
 *                                              op: run exec stop start kill rm ps logs inspect checkpoint restore
 *   slicelab.<cluster>.host.<host>.image.receive  request ImageReceive → ImageSlot (a receiver for an image)
 *   slicelab.<cluster>.host.<host>.image.<id>  the chunks of that image (transfer.ts), each acknowledged
 *   slicelab.<cluster>.host.<host>.cgroup.get  request CgroupGet → CgroupFiles
 *   slicelab.<cluster>.host.<host>.cgroup.set  request CgroupSet → CgroupFiles (the file as it now reads)
 *   slicelab.<cluster>.host.<host>.scheduler.set  request SchedulerSet → HostStatus
 *   slicelab.<cluster>.host.<host>.scheduler.trace  request TraceRequest → SchedulerTrace (for benchmarks)
 *   slicelab.<cluster>.hosts.register          request HostInfo → Registered   (launcher answers)
 *   slicelab.<cluster>.hosts.list             request → HostList               (launcher answers)
 *   slicelab.<cluster>.hosts.discover          request, every host answers with HostStatus (no launcher needed)
 *   slicelab.<cluster>.events.host             fire-and-forget HostEvent: joined, left, lost
 */
export const subjectRoot = 'slicelab';

export const containerOps = ['run', 'exec', 'stop', 'start', 'kill', 'rm', 'ps', 'logs', 'inspect', 'checkpoint', 'restore'] as const;
export type ContainerOp = (typeof containerOps)[number];

export function clusterSubjects(cluster: string) {
  const base = `${subjectRoot}.${cluster}`;
  return {
    all: `${base}.>`,
    hostAll: (host: string) => `${base}.host.${host}.>`,
    hostStatus: (host: string) => `${base}.host.${host}.status`,
    hostPing: (host: string) => `${base}.host.${host}.ping`,
    hostHeartbeat: (host: string) => `${base}.host.${host}.heartbeat`,
    container: (host: string, op: ContainerOp) => `${base}.host.${host}.container.${op}`,
    imageReceive: (host: string) => `${base}.host.${host}.image.receive`,
    imageTransfer: (host: string, id: string) => `${base}.host.${host}.image.${id}`,
    cgroupGet: (host: string) => `${base}.host.${host}.cgroup.get`,
    cgroupSet: (host: string) => `${base}.host.${host}.cgroup.set`,
    schedulerSet: (host: string) => `${base}.host.${host}.scheduler.set`,
    schedulerTrace: (host: string) => `${base}.host.${host}.scheduler.trace`,
    anyHeartbeat: `${base}.host.*.heartbeat`,
    register: `${base}.hosts.register`,
    list: `${base}.hosts.list`,
    discover: `${base}.hosts.discover`,
    hostEvents: `${base}.events.host`,
  };
}

export type ClusterSubjects = ReturnType<typeof clusterSubjects>;
