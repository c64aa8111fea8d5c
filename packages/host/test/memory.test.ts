/**
 * Guest memory: pages, the dirty / present / touched bitmaps, memory.current / memory.max / memory.peak
 * charging and memory.events max. One test races two worker threads on the same shared buffers.
 */
import test from 'ava';
import { Worker } from 'node:worker_threads';
import { pageSize } from '@slicelab/programs';
import { GuestMemory, MemoryFault } from '../src/memory.js';

const bit = (buffer: SharedArrayBuffer, page: number) => (Atomics.load(new Int32Array(buffer), page >>> 5) & (1 << (page & 31))) !== 0;
const dirty = (memory: GuestMemory, page: number) => bit(memory.shared.dirty, page);
const present = (memory: GuestMemory, page: number) => bit(memory.shared.present, page);
const touched = (memory: GuestMemory, page: number) => memory.touchedPages(page * pageSize, pageSize) === 1;
const clearBit = (buffer: SharedArrayBuffer, page: number) => Atomics.and(new Int32Array(buffer), page >>> 5, ~(1 << (page & 31)));
const dirtyPages = (memory: GuestMemory) => Array.from({ length: memory.pages }, (_, p) => p).filter((p) => dirty(memory, p));

/** `length` bytes at `addr`, read into a buffer of their own */
function read(memory: GuestMemory, addr: number, length: number): Uint8Array {
  const into = new Uint8Array(length);
  memory.read(addr, into);
  return into;
}

function fault(fn: () => unknown): MemoryFault {
  try {
    fn();
  } catch (error) {
    if (error instanceof MemoryFault) return error;
    throw error;
  }
  throw new Error('expected a MemoryFault');
}

test('a fresh memory: all pages present, none touched or dirty, nothing charged', (t) => {
  const memory = GuestMemory.create(100 * pageSize + 1);
  t.is(memory.pages, 101);
  t.is(memory.size, 101 * pageSize);
  t.is(memory.currentBytes, 0);
  t.is(memory.peakBytes, 0);
  t.is(memory.maxEvents, 0);
  t.is(memory.touchedPages(0, memory.size), 0);
  t.deepEqual(dirtyPages(memory), []);
  for (const page of [0, 31, 32, 100]) t.true(present(memory, page));
});

test('writes mark their pages dirty and touched, and charge each page once', (t) => {
  const memory = GuestMemory.create(64 * pageSize);
  memory.writeU32(3 * pageSize + 8, 0xdeadbeef);
  t.true(dirty(memory, 3));
  t.true(touched(memory, 3));
  t.is(memory.currentBytes, pageSize);
  memory.writeU32(3 * pageSize + 100, 1);
  t.is(memory.currentBytes, pageSize, 'a second write to the same page costs nothing more');
  // a write straddling a page boundary touches both pages
  memory.write(40 * pageSize - 2, new Uint8Array([1, 2, 3, 4]));
  t.true(dirty(memory, 39) && dirty(memory, 40));
  t.is(memory.currentBytes, 3 * pageSize);
  memory.fill(10 * pageSize, 2 * pageSize, 7);
  memory.writeF64(20 * pageSize, Math.PI);
  t.deepEqual(dirtyPages(memory), [3, 10, 11, 20, 39, 40]);
  t.is(memory.touchedPages(0, memory.size), 6);
  t.is(memory.readU32(3 * pageSize + 8), 0xdeadbeef);
  t.is(memory.readF64(20 * pageSize), Math.PI);
  t.deepEqual([...read(memory, 40 * pageSize - 2, 4)], [1, 2, 3, 4]);
  t.is(read(memory, 11 * pageSize + 5, 1)[0], 7);
});

test('reads cost nothing: untouched pages read as zero and are neither charged nor dirtied', (t) => {
  const memory = GuestMemory.create(32 * pageSize);
  t.is(memory.readU32(5 * pageSize), 0);
  t.is(memory.readF64(6 * pageSize), 0);
  t.deepEqual([...read(memory, 0, 16)], new Array(16).fill(0));
  t.is(memory.currentBytes, 0);
  t.is(memory.touchedPages(0, memory.size), 0);
  t.deepEqual(dirtyPages(memory), []);
  // a read copies into the caller's buffer
  memory.writeU32(0, 42);
  const copy = read(memory, 0, 4);
  t.is(copy[0], 42);
  copy[0] = 0;
  t.is(memory.readU32(0), 42);
});

test('memory.max refuses the charge with MemoryFault("oom") and counts memory.events max', (t) => {
  const memory = GuestMemory.create(64 * pageSize);
  memory.setMax(4 * pageSize + 100); // rounded down to 4 pages
  for (let page = 0; page < 4; page++) memory.writeU32(page * pageSize, page);
  t.is(memory.currentBytes, 4 * pageSize);
  const error = fault(() => memory.writeU32(9 * pageSize, 1));
  t.is(error.kind, 'oom');
  t.is(error.page, 9);
  t.is(memory.maxEvents, 1);
  t.is(memory.currentBytes, 4 * pageSize);
  t.false(touched(memory, 9));
  t.false(dirty(memory, 9));
  t.is(memory.readU32(9 * pageSize), 0);
  // writes to pages already charged still work at the limit
  memory.writeU32(2 * pageSize + 4, 99);
  t.is(memory.readU32(2 * pageSize + 4), 99);
  // each refused charge counts
  t.is(fault(() => memory.fill(20 * pageSize, 10, 1)).kind, 'oom');
  t.is(memory.maxEvents, 2);
  // lifting the limit lets the page in
  memory.setMax(null);
  memory.writeU32(9 * pageSize, 1);
  t.is(memory.currentBytes, 5 * pageSize);
});

test('a write spanning pages stops at the first page over memory.max', (t) => {
  const memory = GuestMemory.create(16 * pageSize);
  memory.setMax(2 * pageSize);
  memory.writeU32(0, 1);
  const error = fault(() => memory.fill(pageSize, 3 * pageSize, 9));
  t.is(error.kind, 'oom');
  t.is(error.page, 2);
  t.is(memory.currentBytes, 2 * pageSize);
  t.true(memory.currentBytes <= 2 * pageSize);
});

test('memory.peak tracks the highest charge; resetPeak starts again from now', (t) => {
  const memory = GuestMemory.create(64 * pageSize);
  for (let page = 1; page <= 10; page++) memory.writeU32(page * pageSize, page);
  t.is(memory.peakBytes, 10 * pageSize);
  memory.release(pageSize, 6 * pageSize);
  t.is(memory.currentBytes, 4 * pageSize);
  t.is(memory.peakBytes, 10 * pageSize);
  memory.writeU32(30 * pageSize, 1);
  t.is(memory.peakBytes, 10 * pageSize);
  memory.resetPeak();
  t.is(memory.peakBytes, 5 * pageSize);
  memory.writeU32(31 * pageSize, 1);
  t.is(memory.peakBytes, 6 * pageSize);
});

test('release zeroes, uncharges and cleans its pages, and leaves the others alone', (t) => {
  const memory = GuestMemory.create(64 * pageSize);
  memory.fill(8 * pageSize, 8 * pageSize, 0xab);
  memory.writeU32(20 * pageSize, 5);
  t.is(memory.currentBytes, 9 * pageSize);
  // a region of 4 pages of which only 3 were touched: three come back
  memory.release(14 * pageSize, 4 * pageSize);
  t.is(memory.currentBytes, 7 * pageSize);
  for (const page of [14, 15, 16, 17]) {
    t.false(touched(memory, page));
    t.false(dirty(memory, page));
  }
  t.is(read(memory, 15 * pageSize, 1)[0], 0);
  t.is(read(memory, 13 * pageSize + pageSize - 1, 1)[0], 0xab);
  t.true(dirty(memory, 13));
  t.true(dirty(memory, 20));
  t.is(memory.readU32(20 * pageSize), 5);
  // released pages cost again when written again
  memory.writeU32(15 * pageSize, 1);
  t.is(memory.currentBytes, 8 * pageSize);
  // a region of a byte count that is not whole pages releases its last partial page too
  memory.fill(30 * pageSize, 2 * pageSize, 1);
  memory.release(30 * pageSize, pageSize + 1);
  t.is(memory.touchedPages(30 * pageSize, 2 * pageSize), 0);
  t.is(memory.currentBytes, 8 * pageSize);
  // releasing what was never touched changes nothing
  memory.release(50 * pageSize, 10 * pageSize);
  t.is(memory.currentBytes, 8 * pageSize);
});

test('f64 views charge their pages when made, and endStep marks them dirty again', (t) => {
  const memory = GuestMemory.create(64 * pageSize);
  const count = (2 * pageSize) / 8 + 1; // three pages: 4..6
  const view = memory.f64(4 * pageSize, count);
  t.is(view.length, count);
  t.is(memory.currentBytes, 3 * pageSize);
  t.deepEqual(dirtyPages(memory), [4, 5, 6]);
  // a migration round reads and cleans the pages while the step still writes through the view
  for (const page of [4, 5, 6]) clearBit(memory.shared.dirty, page);
  view[0] = 1.5;
  view[count - 1] = 2.5;
  t.deepEqual(dirtyPages(memory), []);
  memory.endStep();
  t.deepEqual(dirtyPages(memory), [4, 5, 6]);
  t.is(memory.readF64(4 * pageSize), 1.5);
  t.is(memory.readF64(4 * pageSize + (count - 1) * 8), 2.5);
  // the views are forgotten once the step ended
  for (const page of [4, 5, 6]) clearBit(memory.shared.dirty, page);
  memory.endStep();
  t.deepEqual(dirtyPages(memory), []);
  // an f64 view over memory.max faults before handing anything out
  memory.setMax(4 * pageSize);
  t.is(fault(() => memory.f64(10 * pageSize, 1024)).kind, 'oom');
  t.throws(() => memory.f64(12 * pageSize + 4, 1), { instanceOf: RangeError });
});

test('a page whose present bit is cleared faults with MemoryFault("missing") on read and write', (t) => {
  const memory = GuestMemory.create(64 * pageSize);
  memory.writeU32(7 * pageSize, 77);
  clearBit(memory.shared.present, 7);
  clearBit(memory.shared.present, 40);
  const onRead = fault(() => memory.readU32(7 * pageSize));
  t.is(onRead.kind, 'missing');
  t.is(onRead.page, 7);
  t.is(fault(() => read(memory, 6 * pageSize, pageSize + 1)).page, 7);
  t.is(fault(() => memory.readF64(40 * pageSize + 8)).kind, 'missing');
  const charged = memory.currentBytes;
  t.is(fault(() => memory.writeU32(40 * pageSize, 1)).kind, 'missing');
  t.is(memory.currentBytes, charged, 'a missing page is not charged');
  t.is(fault(() => memory.f64(40 * pageSize, 1)).kind, 'missing');
  // the neighbours are fine, and the page is back once its bit is set
  t.is(memory.readU32(8 * pageSize), 0);
  Atomics.or(new Int32Array(memory.shared.present), 0, 1 << 7);
  t.is(memory.readU32(7 * pageSize), 77);
});

test('out-of-range and malformed accesses throw RangeError', (t) => {
  const memory = GuestMemory.create(8 * pageSize);
  const size = memory.size;
  t.throws(() => memory.readU32(size - 2), { instanceOf: RangeError });
  t.throws(() => memory.readU32(-4), { instanceOf: RangeError });
  t.throws(() => memory.writeU32(size, 1), { instanceOf: RangeError });
  t.throws(() => memory.write(size - 1, new Uint8Array(2)), { instanceOf: RangeError });
  t.throws(() => memory.fill(0, size + 1, 0), { instanceOf: RangeError });
  t.throws(() => read(memory, 0.5, 1), { instanceOf: RangeError });
  t.throws(() => read(memory, Number.NaN, 1), { instanceOf: RangeError });
  t.throws(() => memory.fill(0, -1, 0), { instanceOf: RangeError });
  t.throws(() => memory.f64(size - 8, 2), { instanceOf: RangeError });
  t.throws(() => memory.f64(4, 1), { instanceOf: RangeError });
  t.is(memory.currentBytes, 0, 'a refused access charges nothing');
  // the last byte is fine
  memory.write(size - 1, new Uint8Array([9]));
  t.is(read(memory, size - 1, 1)[0], 9);
});

test('two views over the same shared buffers (main thread and a core) see one memory', (t) => {
  const a = GuestMemory.create(16 * pageSize);
  const b = new GuestMemory(a.shared);
  a.setMax(3 * pageSize);
  b.writeU32(pageSize, 11);
  t.is(a.readU32(pageSize), 11);
  t.is(a.currentBytes, pageSize);
  a.writeU32(2 * pageSize, 1);
  b.writeU32(3 * pageSize, 1);
  t.is(fault(() => b.writeU32(4 * pageSize, 1)).kind, 'oom');
  t.is(a.maxEvents, 1);
  a.release(pageSize, pageSize);
  t.is(b.currentBytes, 2 * pageSize);
  t.is(b.readU32(pageSize), 0);
});

// Two threads race on the same buffers through the compiled module (workers cannot load TypeScript):
// every page they both write must be charged once, and the limit must hold.
const raceWorker = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then(({ GuestMemory, MemoryFault }) => {
  const memory = new GuestMemory(workerData.shared);
  const start = new Int32Array(workerData.gate);
  Atomics.wait(start, 0, 0);
  let written = 0, oom = 0;
  for (let round = 0; round < workerData.rounds; round++) {
    for (let page = 0; page < workerData.pages; page++) {
      const p = workerData.reverse ? workerData.pages - 1 - page : page;
      try {
        memory.writeU32(p * 4096 + 4 * workerData.slot, round + 1);
        written++;
      } catch (error) {
        if (!(error instanceof MemoryFault) || error.kind !== 'oom') throw error;
        oom++;
      }
    }
  }
  parentPort.postMessage({ written, oom });
});
`;

test.serial('two threads writing the same pages charge each page once and never pass memory.max', async (t) => {
  const module = new URL('../dist/memory.js', import.meta.url).href;
  const pages = 512;
  const limit = 400;
  const memory = GuestMemory.create(pages * pageSize);
  memory.setMax(limit * pageSize);
  const gate = new SharedArrayBuffer(4);
  const run = (slot: number, reverse: boolean) =>
    new Promise<{ written: number; oom: number }>((resolve, reject) => {
      const worker = new Worker(raceWorker, { eval: true, workerData: { module, shared: memory.shared, gate, pages, rounds: 3, slot, reverse } });
      worker.once('message', (result) => {
        void worker.terminate();
        resolve(result as { written: number; oom: number });
      });
      worker.once('error', reject);
    });
  const results = Promise.all([run(0, false), run(1, true)]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  Atomics.store(new Int32Array(gate), 0, 1);
  Atomics.notify(new Int32Array(gate), 0);
  const [first, second] = await results;
  t.is(memory.currentBytes, limit * pageSize);
  t.is(memory.touchedPages(0, memory.size), limit);
  t.true(memory.peakBytes <= limit * pageSize);
  t.is(first!.written + first!.oom, 3 * pages);
  t.is(second!.written + second!.oom, 3 * pages);
  t.true(memory.maxEvents >= (pages - limit) * 2 * 3 - 0);
  // every touched page holds what the threads wrote, every untouched page is zero and clean
  for (let page = 0; page < pages; page++) {
    if (touched(memory, page)) t.true(dirty(memory, page));
    else t.is(memory.readU32(page * pageSize) + memory.readU32(page * pageSize + 4) + Number(dirty(memory, page)), 0);
  }
});
