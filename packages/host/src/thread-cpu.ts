/**
 * The CPU time the calling thread has run, in ms, as the kernel charges it to a cgroup: schedstat's
 * sum_exec_runtime. That leaves out time the thread waited, runnable, for a real CPU, and in a VM with
 * paravirtual steal accounting (KVM, Firecracker) time the hypervisor gave the CPU to another guest, so
 * a core charges only what its process really ran, even when emulated cores outnumber real ones.
 *
 * The kernel brings the field up to date only at ticks and context switches, so a plain read at the end
 * of a quantum misses up to a tick (4 ms at HZ=250). getrusage(RUSAGE_SELF), which is process.cpuUsage(),
 * first updates the calling thread's runtime (thread_group_cputime calls task_sched_runtime on current),
 * so the read right after it is exact: measured here within 0.02 ms of wall time less run_delay over
 * 10 ms windows. The file stays open and is read with pread, 3 µs in all against 19 µs for open, read
 * and close. Where there is no schedstat, the clock stands in and a thread is charged its wall time.
 */
import { openSync, readSync } from 'node:fs';

export function threadCpuClock(): () => number {
  try {
    const fd = openSync('/proc/thread-self/schedstat', 'r');
    const buffer = Buffer.alloc(128);
    const read = () => {
      process.cpuUsage();
      return Number(buffer.toString('latin1', 0, readSync(fd, buffer, 0, buffer.length, 0)).split(' ', 1)[0]) / 1e6;
    };
    if (Number.isFinite(read())) return read;
  } catch {
    // no schedstat on this kernel
  }
  return () => performance.now();
}
