/**
 * Guest memory: one SharedArrayBuffer of 4 KiB pages per container, shared by every core, with three
 * bitmaps in shared Int32Arrays: dirty (set on every write, with Atomics.or), present (cleared on a
 * postcopy destination until the page arrives), touched (first write charges the page to
 * memory.current; untouched pages read as zero and are never sent). The charge is checked against
 * memory.max atomically, so cores racing for the last page cannot overshoot it.
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

export interface MemoryShared {
  data: SharedArrayBuffer;
  dirty: SharedArrayBuffer;
  present: SharedArrayBuffer;
  touched: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

/** A memory access that cannot complete now: the step stops and runs again later. */
export class MemoryFault extends Error {
  constructor(readonly kind: 'oom' | 'missing', readonly page: number) {
    super(kind === 'oom' ? `page ${page} over memory.max` : `page ${page} not present`);
  }
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
  }

  /** Reserves `size` bytes of address space; pages cost nothing until first written. */
  static create(size: number): GuestMemory {
    const pages = Math.ceil(size / pageSize);
    const words = Math.ceil(pages / 32) * 4;
    const memory = new GuestMemory({
      data: new SharedArrayBuffer(pages * pageSize),
      dirty: new SharedArrayBuffer(words),
      present: new SharedArrayBuffer(words),
      touched: new SharedArrayBuffer(words),
      control: new SharedArrayBuffer(Ctl.Words * 4),
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

  /** memory.events max: a charge refused at the limit, counted where the host refuses it itself */
  countMaxEvent(): void {
    Atomics.add(this.control, Ctl.EventsMax, 1);
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
  }

  fill(addr: number, length: number, byte: number): void {
    this.check(addr, length, true);
    this.bytes.fill(byte, addr, addr + length);
  }

  readU32(addr: number): number {
    this.check(addr, 4, false);
    return this.view.getUint32(addr, true);
  }

  writeU32(addr: number, value: number): void {
    this.check(addr, 4, true);
    this.view.setUint32(addr, value, true);
  }

  readF64(addr: number): number {
    this.check(addr, 8, false);
    return this.view.getFloat64(addr, true);
  }

  writeF64(addr: number, value: number): void {
    this.check(addr, 8, true);
    this.view.setFloat64(addr, value, true);
  }

  f64(addr: number, count: number): Float64Array {
    if (addr % 8 !== 0) throw new RangeError(`f64 view at ${addr} is not 8-byte aligned`);
    this.check(addr, count * 8, true);
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

  /** Gives pages back: zeroed, uncharged, clean. Main thread only, for free, exit and OOM kills. */
  release(addr: number, length: number): void {
    const first = addr / pageSize;
    const last = Math.ceil((addr + length) / pageSize);
    let uncharged = 0;
    for (let page = first; page < last; page++) {
      const word = page >>> 5;
      const bit = 1 << (page & 31);
      if (Atomics.and(this.touched, word, ~bit) & bit) uncharged++;
      Atomics.and(this.dirty, word, ~bit);
    }
    this.bytes.fill(0, first * pageSize, last * pageSize);
    Atomics.sub(this.control, Ctl.Current, uncharged);
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
      if (!write) continue;
      if (!(Atomics.load(this.touched, word) & bit)) this.charge(page, word, bit);
      Atomics.or(this.dirty, word, bit);
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
    // another core may have charged the same page first: then this charge is given back
    if (Atomics.or(this.touched, word, bit) & bit) {
      Atomics.sub(this.control, Ctl.Current, 1);
      return;
    }
    for (let peak = Atomics.load(this.control, Ctl.Peak); now > peak; peak = Atomics.load(this.control, Ctl.Peak)) {
      if (Atomics.compareExchange(this.control, Ctl.Peak, peak, now) === peak) break;
    }
  }
}
