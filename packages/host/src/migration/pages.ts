/**
 * Pages on the move: the digest both sides keep of what crossed, and the destination's sink that puts
 * batches into the container's memory in the right order whatever order they arrive in.
 *
 * The digest is a sum over touched pages of a 64-bit hash of (page number, bytes), kept up to date page
 * by page: the source hashes each copy it sends (its memory still holds those bytes until the page is
 * dirtied again, and then it is sent again), the destination hashes each page as it lands in its memory.
 * Comparing the sums before the source lets go costs nothing at switch-over; hashing 256 MiB there
 * (sha256 over the address space, what a checkpoint image carries) would take a few hundred ms of
 * downtime.
 */
import { pageSize } from '@slicelab/programs';
import { wordsOf, type GuestMemory } from '../memory.js';

/**
 * A 64-bit hash of one page and its number, as two u32 lanes, written into `out` at `at`. Four
 * multiply-rotate lanes over interleaved words, so the CPU runs them side by side (1.7 times as fast as
 * one lane: 110 ms per 256 MiB here, on both sides of every migration).
 */
export function hashPage(page: number, bytes: Uint8Array, out: Uint32Array, at: number): void {
  const words = bytes.byteOffset % 4 === 0 ? new Int32Array(bytes.buffer, bytes.byteOffset, pageSize / 4) : new Int32Array(new Uint8Array(bytes).buffer);
  let a = (page ^ 0x9e3779b9) | 0;
  let b = Math.imul(page, 0x85ebca6b) ^ 0x27d4eb2f;
  let c = a ^ 0x5bd1e995;
  let d = b ^ 0x1b873593;
  for (let i = 0; i < words.length; i += 4) {
    a = Math.imul(a ^ words[i]!, 0x01000193);
    b = Math.imul(b ^ words[i + 1]!, 0xcc9e2d51);
    c = Math.imul(c ^ words[i + 2]!, 0x01000193);
    d = Math.imul(d ^ words[i + 3]!, 0xcc9e2d51);
    a = (a << 13) | (a >>> 19);
    b = (b << 15) | (b >>> 17);
    c = (c << 11) | (c >>> 21);
    d = (d << 17) | (d >>> 15);
  }
  out[at] = mix(a ^ ((c << 7) | (c >>> 25)));
  out[at + 1] = mix(b ^ ((d << 9) | (d >>> 23))) | 1;
}

/** murmur3's finalizer: every input bit reaches every output bit */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The digest of a set of pages: each page's hash kept, their sum maintained as pages are set, replaced
 * and dropped. A page's hash is never 0 (its low lane's low bit is set), so 0 means "not in the set".
 */
export class PageLedger {
  private readonly hashes: Uint32Array;
  /** one bit per page in the set, so whole words of pages are compared at once */
  private readonly member: Int32Array;
  private sumA = 0;
  private sumB = 0;
  private pages = 0;

  constructor(pageCount: number) {
    this.hashes = new Uint32Array(pageCount * 2);
    this.member = new Int32Array(Math.ceil(pageCount / 32));
  }

  has(page: number): boolean {
    return (this.member[page >>> 5]! & (1 << (page & 31))) !== 0;
  }

  set(page: number, bytes: Uint8Array): void {
    this.drop(page);
    hashPage(page, bytes, this.hashes, page * 2);
    this.sumA = (this.sumA + this.hashes[page * 2]!) >>> 0;
    this.sumB = (this.sumB + this.hashes[page * 2 + 1]!) >>> 0;
    this.member[page >>> 5]! |= 1 << (page & 31);
    this.pages++;
  }

  drop(page: number): void {
    if (!this.has(page)) return;
    this.sumA = (this.sumA - this.hashes[page * 2]!) >>> 0;
    this.sumB = (this.sumB - this.hashes[page * 2 + 1]!) >>> 0;
    this.member[page >>> 5]! &= ~(1 << (page & 31));
    this.pages--;
  }

  /** Drops every page of the set that `bitmap` has (one bit per page): pages dirtied since they were sent. */
  dropAll(bitmap: Uint8Array): void {
    this.compare(bitmap, (mine, theirs) => mine & theirs).forEach((page) => this.drop(page));
  }

  /** `lacking` as a bitmap, one bit per page: what a postcopy destination marks missing. */
  lackingBitmap(touched: Uint8Array): Uint8Array {
    const theirs = wordsOf(touched, this.member.length);
    const lacking = new Int32Array(this.member.length);
    for (let w = 0; w < theirs.length; w++) lacking[w] = theirs[w]! & ~this.member[w]!;
    return new Uint8Array(lacking.buffer);
  }

  /** Pages in the set that `touched` (a bitmap, one bit per page) lacks: pages freed after they were sent. */
  outside(touched: Uint8Array): number[] {
    return this.compare(touched, (mine, theirs) => mine & ~theirs);
  }

  /** Pages `touched` has that the set lacks: pages that never arrived. */
  lacking(touched: Uint8Array): number[] {
    return this.compare(touched, (mine, theirs) => theirs & ~mine);
  }

  get count(): number {
    return this.pages;
  }

  /** `<16 hex digits>/<pages>` */
  digest(): string {
    return `${this.sumA.toString(16).padStart(8, '0')}${this.sumB.toString(16).padStart(8, '0')}/${this.pages}`;
  }

  private compare(touched: Uint8Array, pick: (mine: number, theirs: number) => number): number[] {
    const words = wordsOf(touched, this.member.length);
    const pages: number[] = [];
    for (let w = 0; w < this.member.length; w++) {
      const bits = pick(this.member[w]!, words[w] ?? 0);
      if (bits === 0) continue;
      for (let b = 0; b < 32; b++) if (bits & (1 << b)) pages.push(w * 32 + b);
    }
    return pages;
  }
}

/**
 * The destination's side of the page stream: a batch's pages go into memory unless a later batch
 * already brought a newer copy (batches are retransmitted and overtake each other: a round's copy that
 * arrives after the next round's must not win).
 */
export class PageSink {
  readonly ledger: PageLedger;
  /** per page: 1 + the seq of the batch whose copy memory holds (0: none yet) */
  private readonly newest: Uint32Array;
  readonly batches = new Set<number>();
  pages = 0;
  bytes = 0;

  constructor(private readonly memory: GuestMemory) {
    this.ledger = new PageLedger(memory.pages);
    this.newest = new Uint32Array(memory.pages);
  }

  /**
   * Puts one batch in; false when the host ran out of memory for it. Returns the pages written (older
   * copies and duplicates are skipped).
   */
  apply(seq: number, numbers: Uint32Array, data: Uint8Array, zeros: Uint32Array): number {
    if (data.length !== numbers.length * pageSize) throw new RangeError(`a batch of ${numbers.length} pages carries ${data.length} bytes`);
    this.batches.add(seq);
    let written = 0;
    const put = (page: number, bytes: Uint8Array | undefined) => {
      if (page >= this.memory.pages) throw new RangeError(`page ${page} lies outside the container's ${this.memory.pages} pages`);
      if (this.newest[page]! > seq) return;
      if (!this.memory.receivePage(page, bytes)) throw new RangeError(`no room on this host for page ${page}`);
      this.newest[page] = seq + 1;
      this.ledger.set(page, this.memory.pageView(page));
      written++;
    };
    for (let i = 0; i < numbers.length; i++) put(numbers[i]!, data.subarray(i * pageSize, (i + 1) * pageSize));
    for (let i = 0; i < zeros.length; i++) put(zeros[i]!, undefined);
    this.pages += written;
    this.bytes += data.length;
    return written;
  }

  /** Postcopy: a page that was missing, whatever batch it came in (the source is frozen: every copy is the last). */
  place(page: number, bytes: Uint8Array | undefined): void {
    if (page >= this.memory.pages) throw new RangeError(`page ${page} lies outside the container's ${this.memory.pages} pages`);
    if (!this.memory.receivePage(page, bytes)) throw new RangeError(`no room on this host for page ${page}`);
    this.ledger.set(page, this.memory.pageView(page));
    this.pages++;
  }

  /** Pages the source freed after sending them: gone here too. */
  dropUntouched(touched: Uint8Array): number {
    const pages = this.ledger.outside(touched);
    for (const page of pages) {
      this.memory.release(page * pageSize, pageSize);
      this.ledger.drop(page);
      this.newest[page] = 0;
    }
    return pages.length;
  }
}

/** The pages a bitmap (one bit per page) has, ascending. */
export function pagesOf(bitmap: Uint8Array): Uint32Array {
  const pages: number[] = [];
  for (let byte = 0; byte < bitmap.length; byte++) {
    const bits = bitmap[byte]!;
    if (bits === 0) continue;
    for (let b = 0; b < 8; b++) if (bits & (1 << b)) pages.push(byte * 8 + b);
  }
  return Uint32Array.from(pages);
}

/** Whether every byte of a page is zero (a QEMU "duplicate" page, sent as its number only). */
export function isZeroPage(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).equals(zeroPage);
}
const zeroPage = Buffer.alloc(pageSize);
