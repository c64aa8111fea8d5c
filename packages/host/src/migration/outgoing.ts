/**
 * A migration's source side: the container runs here while its pages go to the destination in rounds
 * (precopy), then it stops, the last dirty pages and its record go, and the destination commits (takes
 * the container's name and addresses in one compare-and-set each) and runs it. Postcopy commits first
 * and sends the pages after: those a process faults on when the destination asks (`pull`), the rest
 * pushed in order from just past the last fault. Until the commit the container is this host's: any
 * failure or a cancel leaves it running here as it was.
 *
 * Division of labor:
 *   Outgoing: the phases, the statistics, the throttle, the safety rules (this file)
 *   Convergence: when the rounds stop (convergence.ts)
 *   AckWindow: batches in flight, acknowledged, sent again when lost (window.ts)
 *   PageLedger: the digest of what was sent (pages.ts)
 *   Incoming: the destination's side (incoming.ts)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errors as natsErrors, type NatsConnection } from '@nats-io/transport-node';
import {
  SlicelabError, decode, encode, errorMessage, packNumbers, request, validate, validateMigration,
  type ClusterSubjects, type ErrorCode, type Logger, type MigrateStart, type MigratePeerOp, type MigrationState, type MigrationStats, type ResourceMove, type Validator,
} from '@slicelab/protocol';
import { pageSize } from '@slicelab/programs';
import type { Container } from '../container.js';
import type { Machine } from '../machine.js';
import type { NameClaims } from '../claims.js';
import type { Leases } from '../net/address.js';
import { TokenBucket } from '../shaping.js';
import { moveResources } from './bindings.js';
import { Convergence } from './convergence.js';
import { PageLedger, isZeroPage, pagesOf } from './pages.js';
import { AckWindow } from './window.js';

/** pages per batch: 256 KiB of data, well under the server's 1 MiB max_payload */
export const batchPages = 64;
/** batches in flight; fewer in postcopy, where a pulled page's reply queues behind them */
const windowBatches = 16;
const postcopyWindowBatches = 4;
const ackTimeoutMs = 2000;
/** how long the destination may take to set up, to take the switch-over and to commit */
const peerTimeoutMs = 10_000;

export interface MigrationDeps {
  nc: NatsConnection;
  subjects: ClusterSubjects;
  host: string;
  machine: Machine;
  names: NameClaims;
  leases: Leases;
  log: Logger;
}

/** --timeout passed during a precopy round */
class TimedOut extends Error {}

class Stop extends Error {
  constructor(readonly state: 'failed' | 'cancelled', message: string) {
    super(message);
  }
}

const now = () => performance.now();
/** replies whose body says nothing beyond success */
const anyBody: Validator<unknown> = (value) => value;

/** a batch's pages copied out: those with bytes (back to back in `data`) and the zero pages */
interface Packed {
  sent: number[];
  zeros: number[];
  data: Buffer;
}

/** a batch on its way: the encoded message and, in postcopy, the pages it carries (released here once acknowledged) */
interface Batch {
  message: Uint8Array;
  pages?: number[];
}

export class Outgoing {
  readonly id: string;
  state: MigrationState = 'setup';
  private readonly startedAt = Date.now();
  private readonly began = now();
  private setupMs = 0;
  private endedMs?: number;
  /** when the container ran on the destination with every page there: QEMU's end of total-time */
  private completedMs?: number;
  private activeSince?: number;
  private downtimeMs: number | null = null;
  private expectedDowntimeMs: number | null = null;
  private error?: string;
  private readonly container: Container;
  private readonly convergence: Convergence;
  private readonly ledger: PageLedger;
  private readonly bucket?: TokenBucket;
  private window?: AckWindow<Batch>;
  private seq = 0;
  private cancelWhy?: string;
  private postcopyAsked = false;
  private originalCpuMax?: string;
  private resourceMoves: ResourceMove[] = [];
  private digests = { source: null as string | null, destination: null as string | null };
  private observed = { heartbeat: null as number | null, network: null as number | null };
  private fault: { count: number; latency: { p50: number; p99: number } | null } = { count: 0, latency: null };
  private pauses = 0;
  private readonly ram = {
    transferred: 0, remainingPages: 0, totalPages: 0, duplicate: 0, normal: 0, precopyBytes: 0, downtimeBytes: 0, postcopyBytes: 0, pulls: 0,
  };
  /** postcopy: per page, 0 not needed, 1 to push, 2 pushed and in flight, 3 acknowledged (released here), 4 pulled */
  private need?: Uint8Array;
  private cursor = 0;
  private committed = false;
  private claims?: { nameRevision: number; leases: Array<{ ip: string; revision: number }> };
  private readonly timeoutAt: number;
  /** where a batch's pages are copied before they are encoded (4 KiB aligned, for the hash's word view) */
  private readonly scratch = Buffer.allocUnsafeSlow(batchPages * pageSize);

  constructor(private readonly deps: MigrationDeps, readonly request: MigrateStart, id: string) {
    this.id = id;
    this.container = deps.machine.container(request.name);
    const cap = request.bandwidth === null ? undefined : request.bandwidth / 8;
    this.convergence = new Convergence(request, cap === undefined ? undefined : cap / 1000);
    this.ledger = new PageLedger(this.container.memory.pages);
    this.timeoutAt = request.timeoutMs === null ? Infinity : this.began + request.timeoutMs;
    if (cap !== undefined) {
      // a bucket of 10 ms of the cap, at least one batch, full at the start
      const burst = Math.max(batchPages * pageSize * 1.01, cap / 100);
      this.bucket = new TokenBucket(cap, burst, burst);
    }
  }

  /** Asks the destination for room; throws its refusal (nothing changed anywhere then). */
  async prepare(): Promise<void> {
    const memory = this.container.memory;
    // what the destination takes over at commit, read now, not in the downtime (nobody else writes them meanwhile)
    this.claims = {
      nameRevision: await this.deps.names.held(this.request.name),
      leases: await Promise.all(this.container.net.nics.map(async (nic) => ({ ip: nic.ip, revision: await this.deps.leases.held(nic.ip) }))),
    };
    const touched = memory.touchedPageNumbers();
    const pages = touched.length;
    const regionsEnd = Math.max(0, ...[...this.container.regions.values()].map((r) => r.addr + r.bytes));
    const highest = Math.max(regionsEnd, pages === 0 ? 0 : (touched[pages - 1]! + 1) * pageSize);
    this.ram.totalPages = pages;
    this.ram.remainingPages = pages;
    await this.peer('prepare', {
      id: this.id, source: this.deps.host, name: this.request.name, mode: this.request.mode, size: memory.size, highest, pages,
      memoryMax: this.container.limits.memoryMax, processes: this.container.live().length,
    }, anyBody, peerTimeoutMs);
    this.setupMs = now() - this.began;
  }

  /** Runs the migration to its end; never throws (the outcome is in the state and the statistics). */
  async run(): Promise<void> {
    this.state = 'active';
    this.activeSince = now();
    this.window = this.newWindow(false);
    let frozen = false;
    try {
      let postcopy = this.request.mode === 'postcopy';
      if (!postcopy) postcopy = await this.precopy();
      this.checkCancel();
      // stop-and-copy
      const downtimeBegan = now();
      await this.deps.machine.freeze(this.request.name, this.id);
      frozen = true;
      await this.restoreCpuMax();
      const memory = this.container.memory;
      const touched = memory.touchedBitmap();
      // pages freed after they were sent are not in the container any more
      for (const page of this.ledger.outside(touched)) this.ledger.drop(page);
      // what the destination lacks: pages dirtied since they were sent, and pages never sent (a round the timeout cut short)
      this.ledger.dropAll(memory.dirtyBitmap());
      const lacking = this.ledger.lackingBitmap(touched);
      // the last pages are on their way while the record is made: the switch-over follows them on the same connection
      if (!postcopy) {
        await this.sendPages(pagesOf(lacking), 'downtime');
        this.ram.remainingPages = 0;
      }
      const savedAt = Date.now();
      const record = this.deps.machine.save(this.request.name);
      const moved = moveResources(this.container.spec.resources ?? [], this.request.to);
      record.spec.resources = moved.resources;
      this.resourceMoves = moved.moves;
      const missing = postcopy ? this.needPages(lacking) : new Uint8Array(0);
      this.checkCancel();
      // precopy: every page has gone, so the digest of what was sent is final and the destination compares it
      const digest = postcopy ? null : this.ledger.digest();
      const ready = await this.switchOver({
        id: this.id, record: encode(record), touched, savedAt, postcopy, batches: this.seq, ...this.claims!,
        missing, resources: this.resourceMoves, digest,
      });
      this.committed = true;
      if (digest !== null) this.digests = { source: digest, destination: ready.digest };
      this.downtimeMs = now() - downtimeBegan;
      if (!postcopy) this.completedMs = now();
      if (postcopy) {
        this.state = 'postcopy-active';
        await this.postcopy();
        this.completedMs = now();
      }
      const finish = await this.finish(postcopy).catch((error: unknown) => {
        // precopy is over at the commit: what finish would add is only what the destination observed
        if (postcopy) throw error;
        this.deps.log.warn({ migration: this.id, err: errorMessage(error) }, 'the destination did not report what it observed');
        return undefined;
      });
      if (finish) {
        this.digests = { source: this.ledger.digest(), destination: postcopy ? finish.digest : this.digests.destination };
        this.observed = { heartbeat: finish.heartbeatMs, network: finish.networkMs };
        this.fault = { count: finish.faults, latency: finish.faultLatency };
        // the destination's pulls that went unanswered are pauses too
        this.pauses += finish.pauses;
      }
      this.deps.machine.release(this.request.name);
      if (postcopy && finish!.digest !== this.digests.source) throw new Stop('failed', `memory digests differ after postcopy: source ${this.digests.source}, destination ${finish!.digest}`);
      this.state = 'completed';
      this.deps.log.info({ migration: this.id, container: this.request.name, to: this.request.to, downtimeMs: this.downtimeMs }, 'migration completed');
    } catch (error) {
      this.window.fail(error);
      if (this.committed) {
        // the container is the destination's now: what is left of it here goes
        this.state = 'failed';
        this.error = errorMessage(error);
        if (this.deps.machine.has(this.request.name) && this.deps.machine.container(this.request.name) === this.container) this.deps.machine.release(this.request.name);
      } else {
        this.state = error instanceof Stop ? error.state : 'failed';
        this.error = errorMessage(error);
        await this.giveBack(frozen);
      }
      this.deps.log.warn({ migration: this.id, container: this.request.name, err: this.error }, `migration ${this.state}`);
    } finally {
      this.endedMs = now();
      this.container.migrating = undefined;
    }
  }

  /** Cancels before the commit (QEMU's migrate_cancel); a postcopy that has committed cannot be. */
  cancel(): void {
    if (this.committed || this.state === 'postcopy-active' || this.state === 'postcopy-paused') {
      throw new SlicelabError('EBUSY', `migration ${this.id} is in postcopy: the container runs on ${this.request.to} and its pages are only there and here; it cannot be cancelled`);
    }
    if (this.state === 'completed' || this.state === 'failed' || this.state === 'cancelled') throw new SlicelabError('EINVAL', `migration ${this.id} has ended (${this.state})`);
    this.cancelWhy = 'cancelled by request';
    this.state = 'cancelling';
    this.window?.fail(new Stop('cancelled', this.cancelWhy));
  }

  /** QEMU's migrate-start-postcopy: a hybrid migration goes to postcopy after the round in progress. */
  startPostcopy(): void {
    if (this.request.mode !== 'hybrid') throw new SlicelabError('EINVAL', `migration ${this.id} is ${this.request.mode}; only a hybrid migration switches to postcopy on command (--mode hybrid)`);
    if (this.state !== 'active' && this.state !== 'setup') throw new SlicelabError('EINVAL', `migration ${this.id} is ${this.state}, not in precopy`);
    this.postcopyAsked = true;
  }

  /** A destination's pull: the pages a process there waits for, ahead of the push. */
  pull(numbers: Uint32Array): { numbers: Uint8Array; data: Uint8Array; zeros: Uint8Array } {
    if (!this.need) throw new SlicelabError('EINVAL', `migration ${this.id} is not in postcopy`);
    const need = this.need;
    const memory = this.container.memory;
    // pages pushed and acknowledged are there already (and released here)
    const pages = [...numbers].filter((page) => page < memory.pages && need[page] !== 0 && need[page] !== 3);
    const { sent, zeros, data } = this.pack(pages, (page, slot) => slot.set(memory.pageView(page)), Buffer.allocUnsafeSlow(pages.length * pageSize));
    for (const page of pages) {
      if (need[page] === 1) this.ram.remainingPages--;
      need[page] = 4;
      // the push goes on from just past the fault: the pages a process reads next are likely there
      this.cursor = page + 1;
    }
    this.ram.pulls++;
    const bytes = sent.length * pageSize;
    this.ram.postcopyBytes += bytes;
    this.ram.transferred += bytes;
    this.ram.normal += sent.length;
    this.ram.duplicate += zeros.length;
    return { numbers: packNumbers(sent), data, zeros: packNumbers(zeros) };
  }

  stats(): MigrationStats {
    const t = this.completedMs ?? this.endedMs ?? now();
    const activeMs = this.activeSince === undefined ? 0 : t - this.activeSince;
    const pagesSent = this.ram.normal + this.ram.duplicate;
    return {
      id: this.id, container: this.request.name, source: this.deps.host, destination: this.request.to, mode: this.request.mode, status: this.state,
      'started-at': this.startedAt, 'total-time': t - this.began, 'setup-time': this.setupMs, downtime: this.downtimeMs,
      'expected-downtime': this.expectedDowntimeMs, 'downtime-limit': this.request.downtimeLimitMs, 'max-bandwidth': this.request.bandwidth,
      ram: {
        transferred: this.ram.transferred, remaining: this.ram.remainingPages * pageSize, total: this.ram.totalPages * pageSize,
        duplicate: this.ram.duplicate, normal: this.ram.normal, 'normal-bytes': this.ram.normal * pageSize,
        'dirty-pages-rate': this.convergence.dirtyRate,
        mbps: activeMs > 0 ? (this.ram.transferred * 8) / 1000 / activeMs : 0,
        'pages-per-second': activeMs > 0 ? (pagesSent * 1000) / activeMs : 0,
        'dirty-sync-count': this.convergence.rounds.length,
        'precopy-bytes': this.ram.precopyBytes, 'downtime-bytes': this.ram.downtimeBytes, 'postcopy-bytes': this.ram.postcopyBytes,
        'postcopy-requests': Math.max(this.fault.count, this.ram.pulls), retransmits: this.window?.retransmits ?? 0,
      },
      'fault-latency': this.fault.latency,
      'cpu-throttle-percentage': this.convergence.throttle,
      'postcopy-pauses': this.pauses,
      'observed-downtime': { ...this.observed },
      digest: this.digests,
      resources: this.resourceMoves,
      rounds: this.convergence.rounds.map((r) => ({ ...r })),
      ...(this.error === undefined ? {} : { error: this.error }),
    };
  }

  /** Precopy rounds while the container runs; true when they end in postcopy (hybrid), false for stop-and-copy. */
  private async precopy(): Promise<boolean> {
    const memory = this.container.memory;
    let pages = memory.touchedPageNumbers();
    for (;;) {
      const before = { bytes: this.ram.transferred, at: now() };
      this.ram.remainingPages = pages.length;
      try {
        await this.sendPages(pages, 'precopy');
        await this.window!.drain();
      } catch (error) {
        // the timeout cuts a round short (a round on a slow link may take minutes): its unsent pages go at the stop
        if (!(error instanceof TimedOut)) throw error;
        return this.timedOut();
      }
      this.checkCancel();
      const dirty = memory.dirtyPageNumbers();
      this.ram.remainingPages = dirty.length;
      const decision = this.convergence.after({ pages: pages.length, bytes: this.ram.transferred - before.bytes, ms: now() - before.at, dirtyPages: dirty.length });
      this.expectedDowntimeMs = this.convergence.expectedDowntimeMs(dirty.length);
      if (this.postcopyAsked) return true;
      if (now() >= this.timeoutAt) return this.timedOut();
      if (decision.next === 'postcopy') return true;
      if (decision.next === 'stop-and-copy') return false;
      if (decision.throttle !== undefined) await this.throttle(decision.throttle);
      pages = dirty;
    }
  }

  /** --timeout has passed in precopy: abort, go to postcopy (true) or stop and copy (false), as --on-timeout says. */
  private timedOut(): boolean {
    const action = this.request.onTimeout;
    if (action === 'abort') throw new Stop('failed', `did not converge within ${this.request.timeoutMs} ms (--on-timeout abort)`);
    return action === 'postcopy';
  }

  /** Sends `pages` (reading each just before, which clears its dirty bit) in batches under the window and the cap. */
  private async sendPages(pages: Uint32Array, phase: 'precopy' | 'downtime' | 'postcopy'): Promise<void> {
    const memory = this.container.memory;
    for (let i = 0; i < pages.length; i += batchPages) {
      this.checkCancel();
      if (phase === 'precopy' && now() >= this.timeoutAt) throw new TimedOut();
      const count = Math.min(batchPages, pages.length - i);
      // a page freed since the round began has nothing to send
      const batch = [...pages.subarray(i, i + count)].filter((page) => memory.isTouched(page));
      await this.sendBatch(this.pack(batch, (page, slot) => memory.takePage(page, slot), this.scratch), phase);
      this.ram.remainingPages = Math.max(0, this.ram.remainingPages - count);
    }
  }

  /**
   * Copies `pages` one after another into `into` with `copy`, each hashed into the ledger as it is sent; a
   * page whose bytes are all zero goes as its number only, and its slot is taken by the next page.
   */
  private pack(pages: readonly number[], copy: (page: number, slot: Buffer) => void, into: Buffer): Packed {
    const sent: number[] = [];
    const zeros: number[] = [];
    for (const page of pages) {
      const slot = into.subarray(sent.length * pageSize, (sent.length + 1) * pageSize);
      copy(page, slot);
      this.ledger.set(page, slot);
      (isZeroPage(slot) ? zeros : sent).push(page);
    }
    return { sent, zeros, data: into.subarray(0, sent.length * pageSize) };
  }

  /** Sends one batch under the cap and the window; `pages` (postcopy) are released here once acknowledged. */
  private async sendBatch({ sent, zeros, data }: Packed, phase: 'precopy' | 'downtime' | 'postcopy', pages?: number[]): Promise<void> {
    if (sent.length + zeros.length === 0) return;
    const message = encode({ id: this.id, seq: this.seq++, numbers: packNumbers(sent), data, zeros: packNumbers(zeros) });
    if (this.bucket) {
      const at = this.bucket.readyAt(now(), message.length);
      if (at > now()) await sleep(at - now());
      this.bucket.take(message.length, now());
    }
    await this.window!.send({ message, pages });
    this.ram.transferred += message.length;
    this.ram[phase === 'precopy' ? 'precopyBytes' : phase === 'downtime' ? 'downtimeBytes' : 'postcopyBytes'] += message.length;
    this.ram.normal += sent.length;
    this.ram.duplicate += zeros.length;
  }

  /** Postcopy: the pages the destination lacks, pushed in order from the cursor, until every one is there. */
  private async postcopy(): Promise<void> {
    const need = this.need!;
    const memory = this.container.memory;
    // the push may stall while the link is down; it waits (postcopy-paused) and goes on when the peer is back
    this.window = this.newWindow(true);
    for (;;) {
      const batch: number[] = [];
      for (let scanned = 0; scanned < need.length && batch.length < batchPages; scanned++) {
        const page = (this.cursor + scanned) % need.length;
        if (need[page] === 1) batch.push(page);
      }
      if (batch.length === 0) break;
      this.cursor = (batch.at(-1)! + 1) % need.length;
      for (const page of batch) need[page] = 2;
      this.ram.remainingPages -= batch.length;
      // the source is frozen: a page's bytes are its last, and no dirty bit needs clearing
      await this.sendBatch(this.pack(batch, (page, slot) => slot.set(memory.pageView(page)), this.scratch), 'postcopy', batch);
    }
    await this.window.drain();
  }

  /**
   * Asks the destination for its digest and what it saw. In postcopy the destination may still wait for
   * a pulled page whose reply was lost, or the link may be down: ask again until it answers.
   */
  private async finish(postcopy: boolean) {
    for (;;) {
      try {
        const result = await this.peer('finish', { id: this.id, digest: this.ledger.digest() }, validateMigration.finishResult, peerTimeoutMs);
        if (this.state === 'postcopy-paused') this.state = 'postcopy-active';
        return result;
      } catch (error) {
        const code = error instanceof SlicelabError ? error.code : undefined;
        if (!postcopy || (code !== 'EAGAIN' && code !== 'ETIMEDOUT' && code !== 'EUNAVAILABLE')) throw error;
        // the destination is not there (EAGAIN: it still waits for a pulled page): postcopy waits for it to come back
        if (code !== 'EAGAIN' && this.state === 'postcopy-active') {
          this.state = 'postcopy-paused';
          this.pauses++;
        }
        await sleep(200);
      }
    }
  }

  /** Postcopy: marks the pages the destination lacks (a bitmap), to be pushed or pulled after the switch-over. */
  private needPages(lacking: Uint8Array): Uint8Array {
    const need = new Uint8Array(this.container.memory.pages);
    let count = 0;
    for (let byte = 0; byte < lacking.length; byte++) {
      const bits = lacking[byte]!;
      if (bits === 0) continue;
      for (let b = 0; b < 8; b++) {
        if (!(bits & (1 << b))) continue;
        need[byte * 8 + b] = 1;
        count++;
      }
    }
    this.need = need;
    this.ram.remainingPages = count;
    return lacking;
  }

  /**
   * The switch-over, which is also the commit: the destination checks that every batch arrived and (for
   * precopy) that its digest is the source's, then takes the container's name (the commit point) and
   * runs it, in one round trip of the downtime. A destination that lacks a batch still being sent again
   * says so (EPROTO) and is asked again once the window drained; a reply that is lost is settled by
   * asking who holds the name now.
   */
  private async switchOver(message: Record<string, unknown>): Promise<{ digest: string }> {
    const ask = () => this.peer('switchover', message, validateMigration.ready, peerTimeoutMs);
    try {
      try {
        return await ask();
      } catch (error) {
        if (!(error instanceof SlicelabError) || error.code !== 'EPROTO') throw error;
        await this.window!.drain();
        return await ask();
      }
    } catch (error) {
      const lost = error instanceof SlicelabError && (error.code === 'ETIMEDOUT' || error.code === 'EUNAVAILABLE');
      if (!lost || (await this.deps.names.holder(this.request.name).catch(() => undefined)) !== this.request.to) {
        throw error instanceof SlicelabError && error.code === 'EIO' ? new Stop('failed', error.message) : error;
      }
      return { digest: '' };
    } finally {
      await this.window!.drain().catch(() => {});
    }
  }

  /** Before the commit, a failure gives the container back its CPU and its run, and the destination lets go. */
  private async giveBack(frozen: boolean): Promise<void> {
    await this.restoreCpuMax().catch(() => {});
    if (frozen) this.deps.machine.thaw(this.request.name);
    await this.peer('abort', { id: this.id, reason: this.error ?? this.state }, anyBody, 2000).catch(() => {});
  }

  /** auto-converge: the container's own cpu.max, cut to (100 − p) % of what it was allowed. */
  private async throttle(percent: number): Promise<void> {
    const name = this.request.name;
    this.originalCpuMax ??= this.deps.machine.cgroupGet(name, 'cpu.max')['cpu.max']!;
    const [quota, period] = this.originalCpuMax.split(/\s+/);
    const periodUs = Number(period);
    const allowedUs = quota === 'max' ? periodUs * this.deps.machine.options.cores : Number(quota);
    const throttled = Math.max(1000, Math.round((allowedUs * (100 - percent)) / 100));
    this.deps.machine.cgroupSet(name, 'cpu.max', `${throttled} ${periodUs}`);
    this.deps.log.info({ migration: this.id, container: name, throttle: percent }, 'auto-converge throttles the container');
  }

  private async restoreCpuMax(): Promise<void> {
    if (this.originalCpuMax === undefined) return;
    this.deps.machine.cgroupSet(this.request.name, 'cpu.max', this.originalCpuMax);
    this.originalCpuMax = undefined;
  }

  private checkCancel(): void {
    if (this.cancelWhy !== undefined) throw new Stop('cancelled', this.cancelWhy);
  }

  private newWindow(postcopy: boolean): AckWindow<Batch> {
    const subject = this.deps.subjects.migrate(this.request.to, 'pages');
    return new AckWindow<Batch>(async (batch, timeoutMs) => {
      const reply = await this.deps.nc.request(subject, batch.message, { timeout: timeoutMs });
      const answer = validate.reply(decode(reply.data));
      if (!answer.ok) throw new SlicelabError(answer.error.code as ErrorCode, answer.error.message);
      if (batch.pages) this.acknowledged(batch.pages);
    }, {
      window: postcopy ? postcopyWindowBatches : windowBatches, timeoutMs: ackTimeoutMs, retries: postcopy ? Infinity : 3,
      retryable: (error) => isTimeout(error) || (postcopy && isNoResponders(error)),
      backoffMs: 500,
      onStall: (stalled) => {
        if (!postcopy) return;
        if (stalled && this.state === 'postcopy-active') {
          this.state = 'postcopy-paused';
          this.pauses++;
          this.deps.log.warn({ migration: this.id }, 'postcopy paused: the destination does not acknowledge');
        } else if (!stalled && this.state === 'postcopy-paused') {
          this.state = 'postcopy-active';
          this.deps.log.info({ migration: this.id }, 'postcopy resumed');
        }
      },
    });
  }

  /** Postcopy: pushed pages the destination acknowledged are its only copy now; this host lets them go. */
  private acknowledged(pages: number[]): void {
    const need = this.need!;
    for (const page of pages) {
      if (need[page] !== 2) continue;
      need[page] = 3;
      this.container.memory.release(page * pageSize, pageSize);
    }
  }

  private peer<R>(op: MigratePeerOp, body: unknown, check: Validator<R>, timeoutMs: number): Promise<R> {
    return request(this.deps.nc, this.deps.subjects.migrate(this.request.to, op), body, check, timeoutMs);
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof natsErrors.TimeoutError || (error instanceof Error && error.cause instanceof natsErrors.TimeoutError);
}

export function isNoResponders(error: unknown): boolean {
  return error instanceof natsErrors.RequestError && error.isNoResponders();
}

