/**
 * The OOM killer, as the kernel's: when a container's memory.max is hit it kills the process of that
 * container holding the most memory (memory.events oom, oom_kill); when the host's own memory is all in
 * use it kills the process holding the most on the whole host (counted in its container's oom_kill).
 *
 * A victim still on a core gives its pages back only when its quantum ends. Until then the pages it
 * holds count as being freed, and a process that faults meanwhile waits for them instead of choosing a
 * second victim: on several cores the killer otherwise killed a process per core for one shortfall.
 */
import type { Logger } from '@slicelab/protocol';
import { pageSize } from '@slicelab/programs';
import { exitCodes, type Container, type Process } from './container.js';
import type { Processes } from './processes.js';

export class OomKiller {
  /** processes waiting for pages that victims still on a core are giving back */
  private readonly waiting = new Set<Process>();

  constructor(private readonly processes: Processes, private readonly containers: () => Iterable<Container>, private readonly log?: Logger) {}

  /**
   * `faulting` went over its container's memory.max. A fault reported after another one's victim already
   * made room is stale: the step just runs again (else two cores faulting at once killed two processes).
   */
  containerOom(faulting: Process): void {
    const container = faulting.container;
    const max = container.limits.memoryMax;
    if (max === null || container.memory.currentBytes + pageSize <= max) return this.processes.ready(faulting, faulting.ret);
    container.events.oom++;
    this.resolve(faulting, [container], `memory.max ${max}`);
  }

  /** `faulting` needed a page and the host had none left. */
  hostOom(faulting: Process, free: number, hostBytes: number): void {
    if (free >= pageSize) return this.processes.ready(faulting, faulting.ret);
    this.resolve(faulting, [...this.containers()], `the host's memory (${hostBytes} bytes) is full`);
  }

  /**
   * memory.max written below memory.current: with nothing to reclaim (no page cache, no swap), the
   * kernel's memory_max_write goes straight to the OOM killer, once per process, biggest first, until
   * usage fits. What killed processes still on a core hold is counted off at once.
   */
  shrinkTo(container: Container, maxBytes: number | null): void {
    if (maxBytes === null) return;
    const held = this.held([container]);
    let current = container.memory.currentBytes - this.freeing([container]) * pageSize;
    while (current > maxBytes) {
      const victim = this.biggest(held);
      if (!victim) return;
      container.events.oom++;
      this.kill(victim, `memory.max ${maxBytes}`);
      current -= (held.get(victim) ?? 0) * pageSize;
      held.delete(victim);
    }
  }

  /** A victim's pages came back: whoever waited for them tries again (one that was killed meanwhile stays dead). */
  freed(): void {
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const process of waiting) this.processes.ready(process, process.ret);
  }

  private resolve(faulting: Process, scope: Container[], why: string): void {
    if (this.freeing(scope) === 0) {
      const victim = this.biggest(this.held(scope), faulting) ?? faulting;
      this.kill(victim, why);
      if (victim === faulting) return;
    }
    // the faulting step runs again once there is room: now, or when a victim on a core gives its pages back
    if (this.freeing(scope) > 0) {
      this.waiting.add(faulting);
      this.processes.wait(faulting, { kind: 'memory' });
    } else {
      this.processes.ready(faulting, faulting.ret);
    }
  }

  /** Pages that killed processes still on a core hold. */
  private freeing(scope: Iterable<Container>): number {
    let pages = 0;
    for (const container of scope) for (const process of container.dying) pages += this.processes.heldPages(process);
    return pages;
  }

  /** Touched pages of every live process in scope. */
  private held(scope: Iterable<Container>): Map<Process, number> {
    const held = new Map<Process, number>();
    for (const container of scope) for (const process of container.live()) held.set(process, this.processes.heldPages(process));
    return held;
  }

  /** The OOM killer's choice: the process holding the most pages; ties go to `first`, else the lowest pid. */
  private biggest(held: Map<Process, number>, first?: Process): Process | undefined {
    let victim = first;
    for (const [process, pages] of held) if (!victim || pages > (held.get(victim) ?? 0)) victim = process;
    return victim;
  }

  private kill(victim: Process, why: string): void {
    const container = victim.container;
    container.events.oomKill++;
    victim.killedBy = 'oom';
    container.log(`[${victim.pid}] ${victim.program} killed by the OOM killer (${why})`);
    this.log?.warn({ container: container.name, pid: victim.pid, why }, 'oom kill');
    this.processes.exit(victim, exitCodes.sigkill);
  }
}
