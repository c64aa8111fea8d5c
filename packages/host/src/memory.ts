/**
 * Guest memory: one SharedArrayBuffer of 4 KiB pages per container, shared by every core, with three
 * bitmaps in shared Int32Arrays: dirty (set on every write, with Atomics.or), present (cleared on a
 * postcopy destination until the page arrives), touched (first write charges the page to
 * memory.current; untouched pages read as zero and are never sent). The charge is checked against
 * memory.max atomically, so cores racing for the last page cannot overshoot it, and then against the
 * host's physical memory (`HostMemory`, one block shared by every container of the host): the sum of
 * all containers' touched pages never passes what the config gives the host.
 *
 * A write stores its bytes first and sets the dirty bit after (an Atomics operation after the store
 * orders them). A reader for a checkpoint or a migration (`takePage`) clears the bit first and copies
 * after: a write that races in sets the bit again and the page goes in the next round. The other order
 * (bit, then bytes) let the reader clear the bit, copy the old bytes and lose the write.
 *
 * The same class runs on the host's main thread and inside cores; only the shared buffers travel.
 */
import { pageSize, type MemoryAccess } from '@slicelab/programs';

/**
 * Control words shared with the cores. The container's pids counters ride in the same block, so a core
 * can refuse a fork at pids.max without a round trip to the host's main thread: a fork bomb spinning on
 * EAGAIN then costs its own CPU time, not the host's.
 */
const enum Ctl {
  Current = 0,
  /** memory.max in pages; -1 = max */
  Max = 1,
  Peak = 2,
  /** memory.events max: charges refused at the limit */
  EventsMax = 3,
  PidsCurrent = 4,
  /** pids.max; -1 = max */
  PidsMax = 5,
  /** pids.events max: forks refused at the limit */
  PidsEvents = 6,
  Words = 7,
}

/**
 * A full collection in this isolate, where the host runs with --expose-gc (the launcher's
 * hostNodeFlags). A container's memory is a SharedArrayBuffer held by the main thread and every core;
 * its pages go back to the OS only when the last isolate drops it, and an isolate that allocates little
 * (a core running lu) may not collect for minutes: removed containers stayed resident, 64 MiB each.
 */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** The host's physical memory, shared by all its containers: pages in use and the most there are. */
const enum HostCtl {
  Used = 0,
  Limit = 1,
  Words = 2,
}

export class HostMemory {
  private readonly control: Int32Array;

  constructor(readonly shared: SharedArrayBuffer) {
    this.control = new Int32Array(shared);
  }

  static create(bytes: number): HostMemory {
    const memory = new HostMemory(new SharedArrayBuffer(HostCtl.Words * 4));
    Atomics.store(memory.control, HostCtl.Limit, Math.min(0x7fffffff, Math.floor(bytes / pageSize)));
    return memory;
  }

  get usedBytes(): number {
    return Atomics.load(this.control, HostCtl.Used) * pageSize;
  }

  get limitBytes(): number {
    return Atomics.load(this.control, HostCtl.Limit) * pageSize;
  }

  get freeBytes(): number {
    return this.limitBytes - this.usedBytes;
  }

  /** Charges `pages` if they all fit; false (nothing charged) if not. */
  charge(pages: number): boolean {
    const used = Atomics.add(this.control, HostCtl.Used, pages) + pages;
    if (used <= Atomics.load(this.control, HostCtl.Limit)) return true;
    Atomics.sub(this.control, HostCtl.Used, pages);
    return false;
  }

  uncharge(pages: number): void {
    Atomics.sub(this.control, HostCtl.Used, pages);
  }
}

export interface MemoryShared {
  data: SharedArrayBuffer;
  dirty: SharedArrayBuffer;
  present: SharedArrayBuffer;
  touched: SharedArrayBuffer;
  control: SharedArrayBuffer;
  /** the host's HostMemory block */
  host: SharedArrayBuffer;
}

/**
 * A memory access that cannot complete now: the step stops and runs again later. `oom`: over the
 * container's memory.max; `host-oom`: the host's physical memory is all in use; `missing`: the page has
 * not arrived yet (postcopy).
 */
export class MemoryFault extends Error {
  constructor(readonly kind: 'oom' | 'host-oom' | 'missing', readonly page: number) {
    super(kind === 'oom' ? `page ${page} over memory.max` : kind === 'host-oom' ? `page ${page}: the host's memory is full` : `page ${page} not present`);
  }
}

/** What a container's memory is, besides its pages (which travel in their own section of an image). */
export interface MemoryState {
  /** bytes of address space */
  size: number;
  peakPages: number;
  eventsMax: number;
  pidsEvents: number;
  /** the dirty and present bitmaps, one bit per page */
  dirty: Uint8Array;
  present: Uint8Array;
}

/** A copy of the touched pages: ascending page numbers and their bytes back to back. */
export interface PageSet {
  pageNumbers: Uint32Array;
  pages: Uint8Array;
}

/**
 * A copy of a shared bitmap, word by word with Atomics (a word another core sets meanwhile is either
 * before or after, never torn). A plain loop: Int32Array.from with a mapping function goes through the
 * iterator protocol and took 2.5–7 ms for the 8192 words of 1 GiB, inside a migration's downtime.
 */
function snapshot(words: Int32Array): Int32Array {
  const copy = new Int32Array(words.length);
  for (let i = 0; i < words.length; i++) copy[i] = Atomics.load(words, i);
  return copy;
}

/** A bitmap's bytes as at most `words` 32-bit words (a bitmap off the bus may not be 4-byte aligned). */
export function wordsOf(bitmap: Uint8Array, words: number): Int32Array {
  const aligned = bitmap.byteOffset % 4 === 0 ? bitmap : new Uint8Array(bitmap);
  return new Int32Array(aligned.buffer, aligned.byteOffset, Math.min(words, aligned.length >>> 2));
}

function popcount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

export class GuestMemory implements MemoryAccess {
  readonly size: number;
  readonly pages: number;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly dirty: Int32Array;
  private readonly present: Int32Array;
  private readonly touched: Int32Array;
  private readonly control: Int32Array;
  private readonly host: HostMemory;
  /** pages handed out as f64 views during the current step, as address, length pairs; marked dirty again when the step ends */
  private readonly viewed: number[] = [];

  constructor(readonly shared: MemoryShared) {
    this.size = shared.data.byteLength;
    this.pages = this.size / pageSize;
    this.bytes = new Uint8Array(shared.data);
    this.view = new DataView(shared.data);
    this.dirty = new Int32Array(shared.dirty);
    this.present = new Int32Array(shared.present);
    this.touched = new Int32Array(shared.touched);
    this.control = new Int32Array(shared.control);
    this.host = new HostMemory(shared.host);
  }

  /**
   * Reserves `size` bytes of address space; pages cost nothing until first written. Without a host, the
   * memory has a host of its own as large as its address space.
   */
  static create(size: number, host = HostMemory.create(size)): GuestMemory {
    const pages = Math.ceil(size / pageSize);
    const words = Math.ceil(pages / 32) * 4;
    const memory = new GuestMemory({
      data: new SharedArrayBuffer(pages * pageSize),
      dirty: new SharedArrayBuffer(words),
      present: new SharedArrayBuffer(words),
      touched: new SharedArrayBuffer(words),
      control: new SharedArrayBuffer(Ctl.Words * 4),
      host: host.shared,
    });
    new Int32Array(memory.shared.present).fill(-1);
    memory.control[Ctl.Max] = -1;
    memory.control[Ctl.PidsMax] = -1;
    return memory;
  }

  /** pids.max (null = max); the host keeps pids.current here as processes come and go. */
  setPidsMax(max: number | null): void {
    Atomics.store(this.control, Ctl.PidsMax, max === null ? -1 : Math.min(max, 0x7fffffff));
  }

  setPidsCurrent(current: number): void {
    Atomics.store(this.control, Ctl.PidsCurrent, current);
  }

  /** Counts a fork refused at pids.max and says whether there is room for one more process. */
  forkAllowed(): boolean {
    const max = Atomics.load(this.control, Ctl.PidsMax);
    if (max < 0 || Atomics.load(this.control, Ctl.PidsCurrent) < max) return true;
    Atomics.add(this.control, Ctl.PidsEvents, 1);
    return false;
  }

  get pidsEvents(): number {
    return Atomics.load(this.control, Ctl.PidsEvents);
  }

  get currentBytes(): number {
    return Atomics.load(this.control, Ctl.Current) * pageSize;
  }

  get peakBytes(): number {
    return Atomics.load(this.control, Ctl.Peak) * pageSize;
  }

  get maxEvents(): number {
    return Atomics.load(this.control, Ctl.EventsMax);
  }

  /** memory.max in bytes (null = max), rounded down to whole pages as the kernel does. */
  setMax(bytes: number | null): void {
    Atomics.store(this.control, Ctl.Max, bytes === null ? -1 : Math.min(this.pages, Math.floor(bytes / pageSize)));
  }

  resetPeak(): void {
    Atomics.store(this.control, Ctl.Peak, Atomics.load(this.control, Ctl.Current));
  }

  read(addr: number, into: Uint8Array): void {
    this.check(addr, into.length, false);
    into.set(this.bytes.subarray(addr, addr + into.length));
  }

  write(addr: number, bytes: Uint8Array): void {
    this.check(addr, bytes.length, true);
    this.bytes.set(bytes, addr);
    this.markDirty(addr, bytes.length);
  }

  fill(addr: number, length: number, byte: number): void {
    this.check(addr, length, true);
    this.bytes.fill(byte, addr, addr + length);
    this.markDirty(addr, length);
  }

  readU32(addr: number): number {
    this.check(addr, 4, false);
    return this.view.getUint32(addr, true);
  }

  writeU32(addr: number, value: number): void {
    this.check(addr, 4, true);
    this.view.setUint32(addr, value, true);
    this.markDirty(addr, 4);
  }

  readF64(addr: number): number {
    this.check(addr, 8, false);
    return this.view.getFloat64(addr, true);
  }

  writeF64(addr: number, value: number): void {
    this.check(addr, 8, true);
    this.view.setFloat64(addr, value, true);
    this.markDirty(addr, 8);
  }

  f64(addr: number, count: number): Float64Array {
    if (addr % 8 !== 0) throw new RangeError(`f64 view at ${addr} is not 8-byte aligned`);
    this.check(addr, count * 8, true);
    // dirty now for ps and digests, and again at endStep, after the step's stores
    this.markDirty(addr, count * 8);
    this.viewed.push(addr, count * 8);
    return new Float64Array(this.shared.data, addr, count);
  }

  /**
   * Called by the core after every step: pages written through views are marked dirty again, because a
   * migration round may have read and cleaned them while the step was still writing.
   */
  endStep(): void {
    for (let i = 0; i < this.viewed.length; i += 2) this.markDirty(this.viewed[i]!, this.viewed[i + 1]!);
    this.viewed.length = 0;
  }

  /**
   * Gives pages back: zeroed, uncharged, clean. Main thread only, for free, exit and OOM kills. Only
   * touched pages are zeroed: writing zeros over untouched ones would make the OS back them.
   */
  release(addr: number, length: number): void {
    const first = Math.floor(addr / pageSize);
    const last = Math.ceil((addr + length) / pageSize);
    let uncharged = 0;
    for (let page = first; page < last; page++) {
      const word = page >>> 5;
      const bit = 1 << (page & 31);
      Atomics.and(this.dirty, word, ~bit);
      if (!(Atomics.and(this.touched, word, ~bit) & bit)) continue;
      uncharged++;
      this.bytes.fill(0, page * pageSize, (page + 1) * pageSize);
    }
    Atomics.sub(this.control, Ctl.Current, uncharged);
    this.host.uncharge(uncharged);
  }

  /** The container is gone: its pages no longer count against the host. */
  releaseHost(): void {
    this.host.uncharge(Atomics.exchange(this.control, Ctl.Current, 0));
  }

  isDirty(page: number): boolean {
    return (Atomics.load(this.dirty, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /**
   * Copies page `page` into `into` for a checkpoint or a migration round: the dirty bit is cleared first,
   * so a write that lands during the copy leaves it set and the page is sent again.
   */
  takePage(page: number, into: Uint8Array): void {
    Atomics.and(this.dirty, page >>> 5, ~(1 << (page & 31)));
    into.set(this.bytes.subarray(page * pageSize, (page + 1) * pageSize));
  }

  /** The touched pages' numbers, ascending. */
  touchedPageNumbers(): Uint32Array {
    const numbers: number[] = [];
    for (let word = 0; word < this.touched.length; word++) {
      const bits = Atomics.load(this.touched, word);
      if (bits === 0) continue;
      for (let b = 0; b < 32; b++) if (bits & (1 << b)) numbers.push(word * 32 + b);
    }
    return Uint32Array.from(numbers);
  }

  /** Every touched page, copied through takePage (a page written during the copy stays dirty). */
  touchedCopy(): PageSet {
    const pageNumbers = this.touchedPageNumbers();
    const pages = new Uint8Array(pageNumbers.length * pageSize);
    for (let i = 0; i < pageNumbers.length; i++) this.takePage(pageNumbers[i]!, pages.subarray(i * pageSize, (i + 1) * pageSize));
    return { pageNumbers, pages };
  }

  save(): MemoryState {
    const bitmap = (words: Int32Array) => new Uint8Array(snapshot(words).buffer);
    return {
      size: this.size, peakPages: Atomics.load(this.control, Ctl.Peak), eventsMax: Atomics.load(this.control, Ctl.EventsMax),
      pidsEvents: Atomics.load(this.control, Ctl.PidsEvents), dirty: bitmap(this.dirty), present: bitmap(this.present),
    };
  }

  /**
   * A memory as `state` and `pageSet` describe it, on `host`. The pages are charged to the host first,
   * all or none: a host without room for them refuses (ENOMEM, from the caller) before anything is made.
   */
  static restore(state: MemoryState, pageSet: PageSet, host: HostMemory): GuestMemory | undefined {
    const count = pageSet.pageNumbers.length;
    if (!host.charge(count)) return undefined;
    const memory = GuestMemory.create(state.size, host);
    const words = memory.dirty.length;
    const bitmap = (bytes: Uint8Array) => new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + words * 4));
    memory.dirty.set(bitmap(state.dirty));
    memory.present.set(bitmap(state.present));
    for (let i = 0; i < count; i++) {
      const page = pageSet.pageNumbers[i]!;
      memory.bytes.set(pageSet.pages.subarray(i * pageSize, (i + 1) * pageSize), page * pageSize);
      memory.touched[page >>> 5]! |= 1 << (page & 31);
    }
    memory.control[Ctl.Current] = count;
    memory.control[Ctl.Peak] = Math.max(count, state.peakPages);
    memory.control[Ctl.EventsMax] = state.eventsMax;
    memory.control[Ctl.PidsEvents] = state.pidsEvents;
    return memory;
  }

  isTouched(page: number): boolean {
    return (Atomics.load(this.touched, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  isPresent(page: number): boolean {
    return (Atomics.load(this.present, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /** The touched bitmap as bytes, one bit per page (what a migration's switch-over carries). */
  touchedBitmap(): Uint8Array {
    return new Uint8Array(snapshot(this.touched).buffer);
  }

  /** Touched pages whose dirty bit is set, ascending: one precopy round's work (QEMU's dirty sync). */
  dirtyPageNumbers(): Uint32Array {
    const numbers: number[] = [];
    for (let word = 0; word < this.dirty.length; word++) {
      const bits = Atomics.load(this.dirty, word) & Atomics.load(this.touched, word);
      if (bits === 0) continue;
      for (let b = 0; b < 32; b++) if (bits & (1 << b)) numbers.push(word * 32 + b);
    }
    return Uint32Array.from(numbers);
  }

  /** The bytes of page `page`, in place (a view: valid while nobody writes it). */
  pageView(page: number): Uint8Array {
    return this.bytes.subarray(page * pageSize, (page + 1) * pageSize);
  }

  /**
   * A migrated page lands here (`bytes`, or zeros for a zero page): charged on first arrival, its bytes
   * stored, and only then marked present, so a core that waited for it reads the whole page. False,
   * with nothing charged, when the host has no room for it.
   */
  receivePage(page: number, bytes: Uint8Array | undefined): boolean {
    const word = page >>> 5;
    const bit = 1 << (page & 31);
    if (!(Atomics.load(this.touched, word) & bit)) {
      if (!this.host.charge(1)) return false;
      Atomics.or(this.touched, word, bit);
      const now = Atomics.add(this.control, Ctl.Current, 1) + 1;
      if (now > Atomics.load(this.control, Ctl.Peak)) Atomics.store(this.control, Ctl.Peak, now);
    }
    if (bytes) this.bytes.set(bytes, page * pageSize);
    else this.bytes.fill(0, page * pageSize, (page + 1) * pageSize);
    Atomics.or(this.present, word, bit);
    return true;
  }

  /**
   * Postcopy: the pages of `bitmap` (one bit per page) are the container's (charged, touched) but still
   * on the source; a process that touches one faults ('missing') until `receivePage`. A word at a time:
   * the switch-over marks every page of the container at once, inside the downtime. Returns the pages
   * marked, or undefined (nothing changed) when the host has no room for the ones not yet charged.
   */
  markMissingPages(bitmap: Uint8Array): number | undefined {
    const bits = wordsOf(bitmap, this.touched.length);
    let charge = 0;
    let marked = 0;
    for (let w = 0; w < bits.length; w++) {
      const word = bits[w]!;
      if (word === 0) continue;
      charge += popcount(word & ~Atomics.load(this.touched, w));
      marked += popcount(word);
    }
    if (!this.host.charge(charge)) return undefined;
    for (let w = 0; w < bits.length; w++) {
      const word = bits[w]!;
      if (word === 0) continue;
      Atomics.or(this.touched, w, word);
      Atomics.and(this.present, w, ~word);
    }
    Atomics.add(this.control, Ctl.Current, charge);
    return marked;
  }

  /** The dirty bitmap as bytes, one bit per page. */
  dirtyBitmap(): Uint8Array {
    return new Uint8Array(snapshot(this.dirty).buffer);
  }

  /** A migrated memory takes on the counters of the record it moved with; its dirty bits start clean. */
  adopt(state: MemoryState): void {
    Atomics.store(this.control, Ctl.Peak, Math.max(Atomics.load(this.control, Ctl.Current), state.peakPages));
    Atomics.store(this.control, Ctl.EventsMax, state.eventsMax);
    Atomics.store(this.control, Ctl.PidsEvents, state.pidsEvents);
    this.dirty.fill(0);
  }

  /** Touched pages in [addr, addr+length): what a region really costs. */
  touchedPages(addr: number, length: number): number {
    let count = 0;
    for (let page = addr / pageSize, last = Math.ceil((addr + length) / pageSize); page < last; page++) {
      if (Atomics.load(this.touched, page >>> 5) & (1 << (page & 31))) count++;
    }
    return count;
  }

  private check(addr: number, length: number, write: boolean): void {
    if (!(addr >= 0 && length >= 0 && addr + length <= this.size) || !Number.isInteger(addr)) {
      throw new RangeError(`memory access at ${addr}+${length} outside ${this.size} bytes`);
    }
    const last = length === 0 ? addr : addr + length - 1;
    for (let page = Math.floor(addr / pageSize), end = Math.floor(last / pageSize); page <= end; page++) {
      const word = page >>> 5;
      const bit = 1 << (page & 31);
      if (!(Atomics.load(this.present, word) & bit)) throw new MemoryFault('missing', page);
      if (write && !(Atomics.load(this.touched, word) & bit)) this.charge(page, word, bit);
    }
  }

  private markDirty(addr: number, length: number): void {
    for (let page = Math.floor(addr / pageSize), end = Math.floor((addr + length - 1) / pageSize); page <= end; page++) {
      Atomics.or(this.dirty, page >>> 5, 1 << (page & 31));
    }
  }

  private charge(page: number, word: number, bit: number): void {
    const now = Atomics.add(this.control, Ctl.Current, 1) + 1;
    const max = Atomics.load(this.control, Ctl.Max);
    if (max >= 0 && now > max) {
      Atomics.sub(this.control, Ctl.Current, 1);
      Atomics.add(this.control, Ctl.EventsMax, 1);
      throw new MemoryFault('oom', page);
    }
    if (!this.host.charge(1)) {
      Atomics.sub(this.control, Ctl.Current, 1);
      throw new MemoryFault('host-oom', page);
    }
    // another core may have charged the same page first: then this charge is given back
    if (Atomics.or(this.touched, word, bit) & bit) {
      Atomics.sub(this.control, Ctl.Current, 1);
      this.host.uncharge(1);
      return;
    }
    for (let peak = Atomics.load(this.control, Ctl.Peak); now > peak; peak = Atomics.load(this.control, Ctl.Peak)) {
      if (Atomics.compareExchange(this.control, Ctl.Peak, peak, now) === peak) break;
    }
  }
}
