import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import {
  SlicelabError,
  decode,
  decodeImage,
  encode,
  encodeImage,
  imageFormat,
  memoryDigest,
  readImageHeader,
  type ContainerImage,
} from '@slicelab/protocol';

const pageSize = 4096;

/** An image of `numbers` touched pages with random contents (never a zero page). */
function image(numbers: number[], stateBytes = 300): ContainerImage {
  const pageNumbers = Uint32Array.from(numbers);
  const pages = randomBytes(numbers.length * pageSize);
  const state = randomBytes(stateBytes);
  return {
    header: {
      format: imageFormat,
      container: 'web-1',
      sourceHost: 'h1',
      cluster: 'lab',
      createdAt: Date.now(),
      pageSize,
      pages: numbers.length,
      stateBytes,
      digest: memoryDigest(pageNumbers, pages),
    },
    state,
    pageNumbers,
    pages,
  };
}

/** Where each section starts in an encoded file, read the way a reader would. */
function layout(file: Uint8Array) {
  const view = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const headerLength = view.readUInt32LE(12);
  const dataStart = 16 + headerLength + 32;
  const stored = decode(view.subarray(16, 16 + headerLength)) as { sections: Array<{ name: string; offset: number; length: number }> };
  const at = Object.fromEntries(stored.sections.map((s) => [s.name, { start: dataStart + s.offset, length: s.length }]));
  return { headerLength, dataStart, at };
}

function flipped(file: Uint8Array, at: number): Uint8Array {
  const copy = Uint8Array.from(file);
  copy[at]! ^= 0x01;
  return copy;
}

function refusal(t: import('ava').ExecutionContext, bytes: Uint8Array, message: string | RegExp) {
  const error = t.throws(() => decodeImage(bytes), { instanceOf: SlicelabError, message });
  t.is(error?.code, 'EINVAL');
  t.false(error?.message.includes('\n'), 'one line');
}

test('an image round-trips: header, state, page numbers and pages, with views into the file', (t) => {
  const input = image([0, 1, 7, 4095, 100_000]);
  const file = encodeImage(input);
  const output = decodeImage(file);
  t.deepEqual(output.header, input.header);
  t.deepEqual(Buffer.from(output.state), Buffer.from(input.state));
  t.deepEqual(Array.from(output.pageNumbers), Array.from(input.pageNumbers));
  t.true(Buffer.from(output.pages).equals(Buffer.from(input.pages)));
  t.is(output.header.digest, memoryDigest(input.pageNumbers, input.pages));
  t.is(output.pages.buffer, file.buffer, 'pages are not copied');
  t.is(output.state.buffer, file.buffer, 'state is not copied');
  t.deepEqual(readImageHeader(file), input.header);
  t.true(file.subarray(0, 8).every((byte, i) => byte === 'SLCKIMG\n'.charCodeAt(i)));
});

test('an image with no pages and no state round-trips', (t) => {
  const input = image([], 0);
  const output = decodeImage(encodeImage(input));
  t.deepEqual(output.header, input.header);
  t.is(output.pages.length, 0);
  t.is(output.state.length, 0);
});

test('the header alone can be read from the start of the file', (t) => {
  const input = image([3, 4]);
  const file = encodeImage(input);
  const { dataStart } = layout(file);
  t.deepEqual(readImageHeader(file.subarray(0, dataStart)), input.header);
  t.throws(() => readImageHeader(file.subarray(0, dataStart - 1)), { message: /truncated/ });
});

test('encodeImage refuses a zero page, unsorted or repeated page numbers, and sizes that do not add up', (t) => {
  const zero = image([1, 2, 3]);
  zero.pages.fill(0, pageSize, 2 * pageSize);
  t.throws(() => encodeImage(zero), { instanceOf: SlicelabError, message: /page 2 is all zero bytes/ });

  const unsorted = image([5, 3]);
  t.throws(() => encodeImage(unsorted), { message: /not strictly ascending \(5 then 3\)/ });
  const repeated = image([5, 5]);
  t.throws(() => encodeImage(repeated), { message: /not strictly ascending \(5 then 5\)/ });

  const short = image([1, 2]);
  t.throws(() => encodeImage({ ...short, pages: short.pages.subarray(0, pageSize + 1) }), { message: /2 pages of 4096 bytes are 8192 bytes, not 4097/ });
  t.throws(() => encodeImage({ ...short, header: { ...short.header, pages: 3 } }), { message: /header says 3 pages/ });
  t.throws(() => encodeImage({ ...short, header: { ...short.header, stateBytes: 1 } }), { message: /header says 1 state bytes/ });
  t.throws(() => encodeImage({ ...short, header: { ...short.header, digest: 'ab'.repeat(32) } }), { message: /digest/ });
  const badName = t.throws(() => encodeImage({ ...short, header: { ...short.header, container: 'Web 1' } }), { instanceOf: SlicelabError });
  t.is(badName?.code, 'EINVAL');
  t.regex(badName!.message, /\/container/);
});

test('a file that is not an image, or of another format, is refused by that name', (t) => {
  const file = encodeImage(image([1]));
  refusal(t, flipped(file, 0), 'not a slicelab checkpoint image');
  refusal(t, Buffer.from('{"hello": "json"}\n'), 'not a slicelab checkpoint image');
  refusal(t, new Uint8Array(), 'checkpoint image is truncated (0 of 16 bytes)');

  const newer = Uint8Array.from(file);
  Buffer.from(newer.buffer).writeUInt32LE(2, 8);
  refusal(t, newer, 'checkpoint image format 2 is not one this slicelab reads (it reads 1)');
  // the version is read before anything else: even a newer file cut short says so
  refusal(t, newer.subarray(0, 12), 'checkpoint image format 2 is not one this slicelab reads (it reads 1)');
});

test('a truncated image says how much of it is there', (t) => {
  const file = encodeImage(image([1, 2, 9]));
  const { dataStart, at } = layout(file);
  const cuts: Array<[number, number]> = [
    [5, 16],
    [14, 16],
    [40, dataStart],
    [dataStart - 1, dataStart],
    [dataStart + 10, file.length],
    [at['pagemap']!.start + 2, file.length],
    [at['pages']!.start + pageSize, file.length],
    [file.length - 1, file.length],
  ];
  for (const [cut, of] of cuts) refusal(t, file.subarray(0, cut), `checkpoint image is truncated (${cut} of ${of} bytes)`);
});

test('one flipped byte anywhere is caught and the damaged part named', (t) => {
  const file = encodeImage(image([1, 2, 9]));
  const { headerLength, at } = layout(file);
  refusal(t, flipped(file, 16 + 5), 'checkpoint image is corrupted: the header fails its checksum');
  refusal(t, flipped(file, 16 + headerLength + 3), 'checkpoint image is corrupted: the header fails its checksum');
  for (const name of ['state', 'pagemap', 'pages']) {
    const { start, length } = at[name]!;
    refusal(t, flipped(file, start), `checkpoint image is corrupted: section ${name} fails its checksum`);
    refusal(t, flipped(file, start + length - 1), `checkpoint image is corrupted: section ${name} fails its checksum`);
  }
  refusal(t, Buffer.concat([file, Buffer.from([0])]), 'checkpoint image is corrupted: 1 bytes after the last section');
  // a damaged header length field: the checksum is then read from the wrong place
  const length = Uint8Array.from(file);
  Buffer.from(length.buffer).writeUInt32LE(headerLength - 1, 12);
  refusal(t, length, 'checkpoint image is corrupted: the header fails its checksum');
  Buffer.from(length.buffer).writeUInt32LE(0x7fffffff, 12);
  refusal(t, length, /checkpoint image is corrupted: header length \d+ is not plausible/);
});

/**
 * Files whose checksums are all right but whose contents break the rules, as a buggy writer would make
 * them: built with the real encoder, then one part rewritten and its checksum recomputed.
 */
test('a well-checksummed file with inconsistent contents is refused', (t) => {
  const input = image([1, 2, 9]);
  const file = Buffer.from(encodeImage(input));
  const { headerLength, dataStart } = layout(file);
  const stored = decode(file.subarray(16, 16 + headerLength)) as Record<string, unknown> & {
    sections: Array<{ name: string; offset: number; length: number; sha256: string }>;
  };
  const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
  const rebuild = (header: unknown, body: Buffer) => {
    const headerBytes = encode(header);
    const prefix = Buffer.alloc(16);
    file.copy(prefix, 0, 0, 8);
    prefix.writeUInt32LE(1, 8);
    prefix.writeUInt32LE(headerBytes.length, 12);
    return Buffer.concat([prefix, headerBytes, createHash('sha256').update(headerBytes).digest(), body]);
  };
  const body = file.subarray(dataStart);

  const badField = t.throws(() => decodeImage(rebuild({ ...stored, pageSize: 1000 }, body)), { instanceOf: SlicelabError });
  t.is(badField?.code, 'EINVAL');
  t.regex(badField!.message, /^bad checkpoint image header: \/pageSize: /);
  t.throws(() => decodeImage(rebuild({ ...stored, cluster: undefined }, body)), { message: /\/cluster/ });
  t.throws(() => decodeImage(rebuild({ ...stored, format: 2 }, body)), { message: /\/format/ });
  t.throws(() => decodeImage(rebuild({ ...stored, sections: stored.sections.slice(0, 2) }, body)), { message: /\/sections/ });
  refusal(t, rebuild({ ...stored, pages: 4 }, body), /checkpoint image is corrupted: section pagemap is 12 bytes, the header's counts make it 16/);
  refusal(t, rebuild('not a header', body), /bad checkpoint image header/);

  // page numbers out of order, with the pagemap's checksum made to match
  const reordered = Buffer.from(body);
  const pagemapStart = stored.sections[1]!.offset;
  reordered.writeUInt32LE(9, pagemapStart);
  reordered.writeUInt32LE(1, pagemapStart + 8);
  const sections = stored.sections.map((s) => (s.name === 'pagemap' ? { ...s, sha256: sha(reordered.subarray(s.offset, s.offset + s.length)) } : s));
  refusal(t, rebuild({ ...stored, sections }, reordered), 'checkpoint image is corrupted: the pagemap is not strictly ascending at entry 1');

  // right checksums, wrong digest
  refusal(t, rebuild({ ...stored, digest: 'cd'.repeat(32) }, body), 'checkpoint image is corrupted: the pages do not match the memory digest in the header');
});

test('the memory digest changes with one byte of one page and with a page number', (t) => {
  const input = image([1, 2, 9]);
  const digest = memoryDigest(input.pageNumbers, input.pages);
  const pages = Uint8Array.from(input.pages);
  pages[pageSize + 17]! ^= 0x80;
  t.not(memoryDigest(input.pageNumbers, pages), digest);
  t.not(memoryDigest(Uint32Array.from([1, 3, 9]), input.pages), digest);
  t.is(memoryDigest(Uint32Array.from(input.pageNumbers), Uint8Array.from(input.pages)), digest, 'same memory, same digest');
  t.throws(() => memoryDigest(input.pageNumbers, input.pages.subarray(1)), { instanceOf: SlicelabError });
});

test('pages in shared memory (as the host keeps them) encode the same', (t) => {
  const input = image([1, 2]);
  const shared = new Uint8Array(new SharedArrayBuffer(input.pages.length));
  shared.set(input.pages);
  t.deepEqual(Buffer.from(encodeImage({ ...input, pages: shared })), Buffer.from(encodeImage(input)));
});

test('a 64 MiB image encodes and decodes', (t) => {
  const count = (64 * 1024 * 1024) / pageSize;
  const numbers = Array.from({ length: count }, (_, i) => i * 3);
  const input = image(numbers, 64 * 1024);
  let started = performance.now();
  const file = encodeImage(input);
  const encodeMs = performance.now() - started;
  started = performance.now();
  const output = decodeImage(file);
  const decodeMs = performance.now() - started;
  t.is(output.pageNumbers.length, count);
  t.is(output.header.digest, input.header.digest);
  t.true(Buffer.from(output.pages).equals(Buffer.from(input.pages)));
  t.log(`64 MiB image: encode ${encodeMs.toFixed(0)} ms, decode ${decodeMs.toFixed(0)} ms (file ${(file.length / 2 ** 20).toFixed(2)} MiB)`);
});
