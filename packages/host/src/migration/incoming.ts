/**
 * A migration's destination side: room is checked at `prepare`, pages land in a memory of their own as
 * batches arrive (PageSink), the switch-over brings the record and builds the container without running
 * it, and `commit` takes the container's name and addresses from the source (one compare-and-set each)
 * and runs it, announcing its nics (gratuitous ARP). In postcopy the pages the source still has are
 * marked missing: a process that touches one waits alone while this side pulls it, ahead of the push.
 *
 * Until the commit nothing here is visible: an abort, or a source that goes quiet, gives back the memory.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  SlicelabError, decode, errorMessage, packNumbers, request, unpackNumbers, validateMigration,
  type MigratePrepare, type PageBatch, type Switchover, type FinishResult,
} from '@slicelab/protocol';
import { pageSize } from '@slicelab/programs';
import { validateRecord } from '../persist.js';
import type { GuestMemory } from '../memory.js';
import type { StagedContainer } from '../machine.js';
import type { MigrationDeps } from './outgoing.js';
import { PageSink } from './pages.js';
import { macFor } from '../net/address.js';

/** a destination that hears nothing from its source for this long before the commit lets everything go */
const quietMs = 60_000;
/** how long a pull waits for its pages before asking again */
const pullTimeoutMs = 1000;
/** how long `finish` waits for the heartbeats inside the container to beat twice after the switch-over */
const heartbeatWaitMs = 2000;

type Phase = 'receiving' | 'staged' | 'running' | 'finished' | 'aborted';

export class Incoming {
  phase: Phase = 'receiving';
  readonly memory: GuestMemory;
  private readonly sink: PageSink;
  private staged?: StagedContainer;
  private switchover?: Switchover;
  private quiet: NodeJS.Timeout;
  /** postcopy: how many pages are still missing (not present in memory), and when a process first waited for each */
  private missing = 0;
  private waitingSince = new Map<number, number>();
  private wanted = new Set<number>();
  private pulling = false;
  private readonly latencies: number[] = [];
  faults = 0;
  private finished?: FinishResult;
  private observing?: Promise<{ heartbeat: number | null; network: number | null }>;
  private paused = false;
  private pauses = 0;
  /**
   * the probes inside the container, by pid, as the record had them: `heartbeat` counts its own stamps,
   * `net-heartbeat` the datagrams it heard from its peer (the network's view of the pause)
   */
  private probes = new Map<number, { network: boolean; beats: number; pausedMs: number }>();

  constructor(private readonly deps: MigrationDeps, readonly prepared: MigratePrepare, private readonly onEnd: () => void) {
    const free = deps.machine.hostMemory.freeBytes;
    if (prepared.pages * pageSize > free) {
      throw new SlicelabError('ENOMEM', `container "${prepared.name}" needs ${prepared.pages * pageSize} bytes of memory; ${deps.host} has ${free} free of ${deps.machine.hostMemory.limitBytes}`);
    }
    if (prepared.memoryMax !== null && prepared.memoryMax > deps.machine.options.memory) {
      throw new SlicelabError('ENOMEM', `memory.max of "${prepared.name}" (${prepared.memoryMax} bytes) is more than ${deps.host}'s memory (${deps.machine.options.memory} bytes)`);
    }
    if (deps.machine.has(prepared.name)) throw new SlicelabError('EEXIST', `a container named "${prepared.name}" exists on ${deps.host}`);
    // its address space as large as it was, or as this host's memory if that is smaller and holds every region
    const size = Math.min(prepared.size, deps.machine.options.memory);
    if (prepared.highest > size) {
      throw new SlicelabError('ENOMEM', `container "${prepared.name}" uses addresses up to ${prepared.highest}; ${deps.host} has ${deps.machine.options.memory} bytes of memory`);
    }
    this.memory = deps.machine.arrivingMemory(size);
    this.sink = new PageSink(this.memory);
    this.quiet = setTimeout(() => this.abort(`no word from ${prepared.source} for ${quietMs} ms`), quietMs);
  }

  get id(): string {
    return this.prepared.id;
  }

  /** One batch of pages; its ack is the reply. In postcopy a page is taken only while it is still missing. */
  pages(batch: PageBatch): { seq: number } {
    this.heard();
    if (this.phase === 'aborted' || this.phase === 'finished') throw new SlicelabError('EINVAL', `migration ${this.id} has ended here`);
    const numbers = unpackNumbers(batch.numbers);
    const zeros = unpackNumbers(batch.zeros);
    if (this.phase === 'running') this.postcopyPages(numbers, batch.data, zeros);
    // a late copy of a precopy batch (sent again, its first ack lost): every batch had arrived before the switch-over
    else if (this.phase === 'receiving') this.sink.apply(batch.seq, numbers, batch.data, zeros);
    return { seq: batch.seq };
  }

  /**
   * The source stopped: the container is built from its record around the memory and, once the digests
   * agree (precopy), committed and run here.
   */
  async switchTo(message: Switchover): Promise<{ digest: string; missing: number }> {
    this.heard();
    if (this.phase !== 'receiving') throw new SlicelabError('EINVAL', `migration ${this.id} is ${this.phase} here, not receiving`);
    for (let seq = 0; seq < message.batches; seq++) {
      if (!this.sink.batches.has(seq)) throw new SlicelabError('EPROTO', `batch ${seq} of migration ${this.id} has not arrived`);
    }
    const record = validateRecord(decode(message.record));
    if (record.name !== this.prepared.name) throw new SlicelabError('EPROTO', `the record is of "${record.name}", not "${this.prepared.name}"`);
    this.deps.machine.checkRecord(record, record.name, false);
    this.sink.dropUntouched(message.touched);
    if (message.postcopy) {
      const inside = Math.ceil(this.memory.pages / 8);
      if (message.missing.subarray(inside).some((byte) => byte !== 0)) throw new SlicelabError('EPROTO', 'a missing page lies outside the container\'s memory');
      const marked = this.memory.markMissingPages(message.missing);
      if (marked === undefined) throw new SlicelabError('ENOMEM', `${this.deps.host} has no room left for "${record.name}"`);
      this.sink.ledger.dropAll(message.missing);
      this.missing = marked;
    } else {
      const lacking = this.sink.ledger.lacking(message.touched);
      if (lacking.length > 0) throw new SlicelabError('EPROTO', `${lacking.length} pages never arrived (page ${lacking[0]} first)`);
    }
    this.memory.adopt(record.memory);
    for (const process of record.processes) {
      if (process.program !== 'heartbeat' && process.program !== 'net-heartbeat') continue;
      const network = process.program === 'net-heartbeat';
      this.probes.set(process.pid, { network, beats: beats(process.regs, network), pausedMs: pausedMs(process.regs) });
    }
    const digest = this.sink.ledger.digest();
    if (message.digest !== null && message.digest !== digest) {
      throw new SlicelabError('EIO', `memory digests differ: source ${message.digest}, destination ${digest}; the container stays on ${this.prepared.source}`);
    }
    this.staged = this.deps.machine.stage(record, this.memory);
    this.switchover = message;
    this.phase = 'staged';
    try {
      await this.commit();
    } catch (error) {
      // not committed (the name changed hands meanwhile) or not started: this side lets everything go
      this.abort(errorMessage(error));
      throw error;
    }
    return { digest, missing: this.missing };
  }

  /** The commit point: the name passes to this host, then the container runs here, then its addresses follow. */
  private async commit(): Promise<void> {
    if (!this.staged || !this.switchover) throw new SlicelabError('EINVAL', `migration ${this.id} is ${this.phase} here, not ready to commit`);
    const { name } = this.prepared;
    const revision = await this.deps.names.takeOver(name, this.switchover.nameRevision);
    const staged = this.staged;
    const nics = this.switchover.leases.map((lease) => ({ ip: lease.ip, mac: macFor(lease.ip) }));
    try {
      if (this.missing > 0) staged.container.missing = (page) => this.want(page);
      this.deps.machine.startStaged(staged, nics, this.switchover.savedAt);
    } catch (error) {
      // not started: the name goes back to the source, which runs the container on
      await this.deps.names.handBack(name, revision, this.prepared.source).catch(() => {});
      throw error;
    }
    clearTimeout(this.quiet);
    this.phase = 'running';
    // what the probes inside saw across the switch-over, read as soon as they beat again (not after a postcopy push)
    this.observing = this.observedPauses();
    // the addresses follow the name; the container already answers on them, so this is off the downtime
    void Promise.all(this.switchover.leases.map((lease, i) => this.deps.leases.takeOver(lease.ip, lease.revision, name, staged.record.net.nics[i]?.name ?? `eth${i}`)))
      .catch((error: unknown) => this.deps.log.warn({ migration: this.id, err: errorMessage(error) }, 'the container runs here, but its addresses are still leased to its source'));
  }

  /** The source is done: every page must be here; the digest of what arrived and what the container saw. */
  async finish(): Promise<FinishResult> {
    if (this.finished) return this.finished;
    if (this.phase !== 'running') throw new SlicelabError('EINVAL', `migration ${this.id} is ${this.phase} here, not running`);
    if (!this.here()) throw new SlicelabError('ENOENT', `container "${this.prepared.name}" was removed from ${this.deps.host} before its pages had all arrived`);
    if (this.missing > 0) throw new SlicelabError('EAGAIN', `${this.missing} pages are still missing on ${this.deps.host}`);
    this.phase = 'finished';
    const observed = await this.observing!;
    this.onEnd();
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    this.finished = {
      digest: this.sink.ledger.digest(), heartbeatMs: observed.heartbeat, networkMs: observed.network, faults: this.faults, pauses: this.pauses,
      faultLatency: sorted.length === 0 ? null : { p50: at(0.5), p99: at(0.99) },
    };
    return this.finished;
  }

  /** Before the commit: everything made here is given back. */
  abort(reason: string): void {
    if (this.phase === 'running' || this.phase === 'finished' || this.phase === 'aborted') return;
    clearTimeout(this.quiet);
    if (this.staged) this.deps.machine.discard(this.staged);
    else this.memory.releaseHost();
    this.phase = 'aborted';
    this.deps.log.info({ migration: this.id, reason }, 'incoming migration aborted');
    this.onEnd();
  }

  /** A process faulted on `page`: it waits (syscalls.ts) while the page is pulled, with others that fault meanwhile. */
  private want(page: number): void {
    if (!this.isMissing(page)) return;
    if (!this.waitingSince.has(page)) {
      this.waitingSince.set(page, performance.now());
      this.faults++;
    }
    this.wanted.add(page);
    if (!this.pulling) void this.pull();
  }

  /** Pulls what processes wait for, until nothing is wanted; a pull that goes unanswered is asked again (postcopy-paused). */
  private async pull(): Promise<void> {
    this.pulling = true;
    try {
      while (this.wanted.size > 0 && this.phase === 'running') {
        const pages = [...this.wanted].filter((page) => this.isMissing(page));
        this.wanted.clear();
        if (pages.length === 0) break;
        try {
          const reply = await request(this.deps.nc, this.deps.subjects.migrate(this.prepared.source, 'pull'), { id: this.id, pages: packNumbers(pages) },
            validateMigration.pulled, pullTimeoutMs);
          if (this.paused) {
            this.paused = false;
            this.deps.log.info({ migration: this.id }, 'postcopy resumed: the source answers again');
          }
          this.postcopyPages(unpackNumbers(reply.numbers), reply.data, unpackNumbers(reply.zeros));
        } catch (error) {
          if (!this.paused) {
            this.paused = true;
            this.pauses++;
            this.deps.log.warn({ migration: this.id, err: errorMessage(error) }, 'postcopy paused: the source does not answer pulls');
          }
          await sleep(200);
        }
        // what is still missing and waited for is asked again
        for (const page of pages) if (this.isMissing(page)) this.wanted.add(page);
      }
    } finally {
      this.pulling = false;
    }
  }

  /** Postcopy pages, pulled or pushed: each fills a page still missing, and the processes waiting on it run. */
  private postcopyPages(numbers: Uint32Array, data: Uint8Array, zeros: Uint32Array): void {
    const container = this.staged!.container;
    // removed here meanwhile (rm --force): its pages have nowhere to go, and `finish` says so
    if (!this.here()) return;
    const place = (page: number, bytes: Uint8Array | undefined) => {
      if (!this.isMissing(page)) return;
      this.sink.place(page, bytes);
      this.missing--;
      const since = this.waitingSince.get(page);
      if (since !== undefined) {
        this.latencies.push(performance.now() - since);
        this.waitingSince.delete(page);
      }
      this.deps.machine.pageArrived(container, page);
    };
    if (data.length !== numbers.length * pageSize) throw new SlicelabError('EPROTO', `${numbers.length} pages carry ${data.length} bytes`);
    numbers.forEach((page, i) => place(page, data.subarray(i * pageSize, (i + 1) * pageSize)));
    zeros.forEach((page) => place(page, undefined));
    if (this.missing === 0) container.missing = undefined;
  }

  /**
   * The pause the probes inside the container saw across the switch-over: what their paused time grew
   * by (each gap over two intervals counts, less one interval), read once each has beaten twice more
   * (or heard its peer twice more), the largest per kind.
   */
  private async observedPauses(): Promise<{ heartbeat: number | null; network: number | null }> {
    const seen = { heartbeat: null as number | null, network: null as number | null };
    const container = this.staged?.container;
    if (!container || this.probes.size === 0) return seen;
    const deadline = performance.now() + heartbeatWaitMs;
    const waiting = new Map(this.probes);
    while (waiting.size > 0 && performance.now() < deadline) {
      for (const [pid, before] of waiting) {
        const regs = container.processes.get(pid)?.regs;
        if (!regs) {
          waiting.delete(pid);
          continue;
        }
        if (beats(regs, before.network) < before.beats + 2) continue;
        const kind = before.network ? 'network' : 'heartbeat';
        seen[kind] = Math.max(seen[kind] ?? 0, pausedMs(regs) - before.pausedMs);
        waiting.delete(pid);
      }
      if (waiting.size > 0) await sleep(1);
    }
    return seen;
  }

  /** Postcopy: a page of the container still on the source (not present here). */
  private isMissing(page: number): boolean {
    return page < this.memory.pages && !this.memory.isPresent(page);
  }

  /** Whether the container this migration made still runs on this host. */
  private here(): boolean {
    const { machine } = this.deps;
    return machine.has(this.prepared.name) && machine.container(this.prepared.name) === this.staged?.container;
  }

  private heard(): void {
    if (this.phase === 'receiving' || this.phase === 'staged') this.quiet.refresh();
  }
}

type ProbeRegs = { metrics?: { stamps?: number; heard?: number; pausedMs?: number } };

function beats(regs: unknown, network: boolean): number {
  const metrics = (regs as ProbeRegs).metrics;
  return (network ? metrics?.heard : metrics?.stamps) ?? 0;
}

function pausedMs(regs: unknown): number {
  return (regs as ProbeRegs).metrics?.pausedMs ?? 0;
}
