/**
 * The checkpoint image file, like CRIU's images: one file per checkpointed container, versioned and
 * checksummed so that a restore on another host refuses a file it cannot trust instead of running a
 * container with torn memory.
 *
 * Division of labor:
 *   the caller (checkpoint, restore): encodes the container record into `state` and collects the touched pages
 *   this module: lays them out, checksums them, and on reading verifies every byte before handing them back
 *
 * Layout: magic `SLCKIMG\n` | u32 LE format | u32 LE header length H | header (msgpack: ImageHeader plus
 * `sections`) | sha256 of the header bytes | sections back to back: state, pagemap (u32 LE page numbers),
 * pages. Section offsets count from the first byte after the header checksum. The format number comes
 * right after the magic and is checked before anything else, so a newer file is refused by its version,
 * not as corrupted. The image holds no zero page: `encodeImage` is the one place that refuses one.
 * Pages are copied once on writing (into the one buffer of the whole file) and never on reading: the
 * decoded pages are a view into the file's bytes.
 */
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { decode, encode } from './codec.js';
import { SlicelabError, errorMessage } from './errors.js';
import { namePattern } from './names.js';
import { validator } from './messages.js';

export const imageFormat = 1;
export const imageMagic = 'SLCKIMG\n';

const magicBytes = Buffer.from(imageMagic, 'ascii');
/** magic, format, header length */
const prefixBytes = magicBytes.length + 8;
const checksumBytes = 32;
/** a real header is a few hundred bytes; a length past this is a damaged length field, not a header to read */
const maxHeaderBytes = 64 * 1024;

const ImageName = Type.String({ pattern: namePattern.source });
const Count = Type.Integer({ minimum: 0 });
const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });

export const ImageHeader = Type.Object({
  format: Type.Literal(imageFormat),
  container: ImageName,
  sourceHost: ImageName,
  cluster: ImageName,
  createdAt: Type.Number({ minimum: 0 }),
  pageSize: Type.Integer({ minimum: 512, maximum: 1024 * 1024, multipleOf: 512 }),
  /** touched pages in the pages section */
  pages: Count,
  stateBytes: Count,
  /** `memoryDigest` of the pages */
  digest: Sha256Hex,
});
export type ImageHeader = Static<typeof ImageHeader>;

const sectionNames = ['state', 'pagemap', 'pages'] as const;
type SectionName = (typeof sectionNames)[number];

const Section = <N extends SectionName>(name: N) =>
  Type.Object({ name: Type.Literal(name), offset: Count, length: Count, sha256: Sha256Hex });

/** The header as stored: the ImageHeader and where each section is. */
const StoredHeader = Type.Composite([
  ImageHeader,
  Type.Object({ sections: Type.Tuple([Section('state'), Section('pagemap'), Section('pages')]) }),
]);
type StoredHeader = Static<typeof StoredHeader>;
type SectionEntry = StoredHeader['sections'][number];

const checkHeader = validator('checkpoint image header', ImageHeader);
const checkStoredHeader = validator('checkpoint image header', StoredHeader);

export interface ContainerImage {
  header: ImageHeader;
  /** opaque here: the container record, already encoded by the caller */
  state: Uint8Array;
  /** ascending page numbers of the touched pages */
  pageNumbers: Uint32Array;
  /** pageNumbers.length * pageSize bytes, page i at i * pageSize */
  pages: Uint8Array;
}

/**
 * The whole file as one buffer. Throws EINVAL for an image that breaks the rules: a header that does not
 * validate or does not match the sections, page numbers not strictly ascending, a zero page, a digest
 * that is not the pages' `memoryDigest`.
 */
export function encodeImage(image: ContainerImage): Uint8Array {
  const header = asEinval(() => checkHeader(image.header));
  const { state, pageNumbers, pages } = image;
  const count = pageNumbers.length;
  if (header.pages !== count) refuse(`header says ${header.pages} pages, the pagemap holds ${count}`);
  if (header.stateBytes !== state.length) refuse(`header says ${header.stateBytes} state bytes, the state is ${state.length}`);
  checkPages(pageNumbers, pages, header.pageSize);
  if (header.digest !== memoryDigest(pageNumbers, pages, header.pageSize)) refuse('header digest is not the memory digest of its pages');

  const pagemap = Buffer.alloc(count * 4);
  for (let i = 0; i < count; i++) pagemap.writeUInt32LE(pageNumbers[i]!, i * 4);
  const bodies: Record<SectionName, Uint8Array> = { state, pagemap, pages };
  let offset = 0;
  const sections = sectionNames.map((name) => {
    const body = bodies[name];
    const entry = { name, offset, length: body.length, sha256: sha256(body) };
    offset += body.length;
    return entry;
  });
  const headerBytes = encode({
    format: imageFormat,
    container: header.container,
    sourceHost: header.sourceHost,
    cluster: header.cluster,
    createdAt: header.createdAt,
    pageSize: header.pageSize,
    pages: header.pages,
    stateBytes: header.stateBytes,
    digest: header.digest,
    sections,
  });

  const dataStart = prefixBytes + headerBytes.length + checksumBytes;
  // every byte is written below, so the buffer need not be zeroed first
  const file = Buffer.allocUnsafe(dataStart + offset);
  magicBytes.copy(file, 0);
  file.writeUInt32LE(imageFormat, magicBytes.length);
  file.writeUInt32LE(headerBytes.length, magicBytes.length + 4);
  file.set(headerBytes, prefixBytes);
  createHash('sha256').update(headerBytes).digest().copy(file, prefixBytes + headerBytes.length);
  for (const section of sections) file.set(bodies[section.name], dataStart + section.offset);
  return file;
}

/** Reads and verifies a whole image; the state and pages returned are views into `bytes`. */
export function decodeImage(bytes: Uint8Array): ContainerImage {
  const { stored, dataStart } = readStoredHeader(bytes);
  const [state, pagemap, pages] = stored.sections;
  const expected = dataStart + pages.offset + pages.length;
  if (bytes.length < expected) truncated(bytes.length, expected);
  if (bytes.length > expected) corrupted(`${bytes.length - expected} bytes after the last section`);
  const body = (section: SectionEntry) => bytes.subarray(dataStart + section.offset, dataStart + section.offset + section.length);
  for (const section of stored.sections) {
    if (sha256(body(section)) !== section.sha256) corrupted(`section ${section.name} fails its checksum`);
  }
  const pageNumbers = readPagemap(body(pagemap));
  const pageBytes = body(pages);
  if (memoryDigest(pageNumbers, pageBytes, stored.pageSize) !== stored.digest) corrupted('the pages do not match the memory digest in the header');
  return { header: plainHeader(stored), state: body(state), pageNumbers, pages: pageBytes };
}

/**
 * The header alone, verified (magic, format, checksum, fields, section layout): a quick look at an image.
 * `bytes` may be just the start of the file, as long as it holds the whole header and its checksum.
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  return plainHeader(readStoredHeader(bytes).stored);
}

/**
 * sha256 over, for each page in ascending order, its u32 LE page number followed by its bytes: the same
 * memory gives the same digest wherever it lives, and a page moved to another number changes it. The
 * default page size is the emulated hosts' 4096.
 */
export function memoryDigest(pageNumbers: Uint32Array, pages: Uint8Array, pageSize = 4096): string {
  if (pages.length !== pageNumbers.length * pageSize) {
    throw new SlicelabError('EINVAL', `${pageNumbers.length} pages of ${pageSize} bytes are ${pageNumbers.length * pageSize} bytes, not ${pages.length}`);
  }
  return digestPages(pageNumbers, (i) => pages.subarray(i * pageSize, (i + 1) * pageSize));
}

/**
 * The same digest, of pages read where they lie in a whole address space (page n at n × pageSize):
 * a live container's memory, hashed without copying it first.
 */
export function addressSpaceDigest(pageNumbers: Uint32Array, memory: Uint8Array, pageSize = 4096): string {
  return digestPages(pageNumbers, (i) => memory.subarray(pageNumbers[i]! * pageSize, (pageNumbers[i]! + 1) * pageSize));
}

function digestPages(pageNumbers: Uint32Array, page: (i: number) => Uint8Array): string {
  const hash = createHash('sha256');
  const number = Buffer.alloc(4);
  for (let i = 0; i < pageNumbers.length; i++) {
    number.writeUInt32LE(pageNumbers[i]!, 0);
    hash.update(number);
    hash.update(page(i));
  }
  return hash.digest('hex');
}

/** What no image may hold: a pages section of the wrong size, unsorted or repeated page numbers, zero pages. */
function checkPages(pageNumbers: Uint32Array, pages: Uint8Array, pageSize: number): void {
  if (pages.length !== pageNumbers.length * pageSize) {
    refuse(`${pageNumbers.length} pages of ${pageSize} bytes are ${pageNumbers.length * pageSize} bytes, not ${pages.length}`);
  }
  const zeroPage = Buffer.alloc(pageSize);
  const view = Buffer.from(pages.buffer, pages.byteOffset, pages.byteLength);
  for (let i = 0; i < pageNumbers.length; i++) {
    const page = pageNumbers[i]!;
    if (i > 0 && page <= pageNumbers[i - 1]!) refuse(`page numbers are not strictly ascending (${pageNumbers[i - 1]} then ${page})`);
    if (view.compare(zeroPage, 0, pageSize, i * pageSize, (i + 1) * pageSize) === 0) refuse(`page ${page} is all zero bytes; zero pages are never written`);
  }
}

function readStoredHeader(bytes: Uint8Array): { stored: StoredHeader; dataStart: number } {
  const file = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magicSeen = file.subarray(0, magicBytes.length);
  if (!magicBytes.subarray(0, magicSeen.length).equals(magicSeen)) notAnImage();
  if (file.length < magicBytes.length + 4) truncated(file.length, prefixBytes);
  const format = file.readUInt32LE(magicBytes.length);
  if (format !== imageFormat) {
    throw new SlicelabError('EINVAL', `checkpoint image format ${format} is not one this slicelab reads (it reads ${imageFormat})`);
  }
  if (file.length < prefixBytes) truncated(file.length, prefixBytes);
  const headerLength = file.readUInt32LE(magicBytes.length + 4);
  if (headerLength === 0 || headerLength > maxHeaderBytes) corrupted(`header length ${headerLength} is not plausible`);
  const dataStart = prefixBytes + headerLength + checksumBytes;
  if (file.length < dataStart) truncated(file.length, dataStart);
  const headerBytes = file.subarray(prefixBytes, prefixBytes + headerLength);
  if (!createHash('sha256').update(headerBytes).digest().equals(file.subarray(prefixBytes + headerLength, dataStart))) {
    corrupted('the header fails its checksum');
  }
  let value: unknown;
  try {
    value = decode(headerBytes);
  } catch (error) {
    corrupted(`the header does not decode: ${errorMessage(error)}`);
  }
  const stored = asEinval(() => checkStoredHeader(value));
  checkLayout(stored);
  return { stored, dataStart };
}

/** The sections must be back to back in order and as long as the header's counts say. */
function checkLayout(stored: StoredHeader): void {
  const [state, pagemap, pages] = stored.sections;
  const lengths: Record<SectionName, number> = { state: stored.stateBytes, pagemap: stored.pages * 4, pages: stored.pages * stored.pageSize };
  let offset = 0;
  for (const section of [state, pagemap, pages]) {
    if (section.offset !== offset) corrupted(`section ${section.name} starts at ${section.offset}, not right after the one before (${offset})`);
    if (section.length !== lengths[section.name]) corrupted(`section ${section.name} is ${section.length} bytes, the header's counts make it ${lengths[section.name]}`);
    offset += section.length;
  }
}

function readPagemap(body: Uint8Array): Uint32Array {
  // copied, not viewed: the section need not be 4-byte aligned (the pagemap is 1/1024 of the pages)
  const view = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const pageNumbers = new Uint32Array(body.length / 4);
  for (let i = 0; i < pageNumbers.length; i++) {
    pageNumbers[i] = view.readUInt32LE(i * 4);
    if (i > 0 && pageNumbers[i]! <= pageNumbers[i - 1]!) corrupted(`the pagemap is not strictly ascending at entry ${i}`);
  }
  return pageNumbers;
}

function plainHeader(stored: StoredHeader): ImageHeader {
  const { sections: _sections, ...header } = stored;
  return header;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function asEinval<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new SlicelabError('EINVAL', errorMessage(error), { cause: error });
  }
}

function refuse(problem: string): never {
  throw new SlicelabError('EINVAL', `checkpoint image refused: ${problem}`);
}

function notAnImage(): never {
  throw new SlicelabError('EINVAL', 'not a slicelab checkpoint image');
}

function truncated(have: number, need: number): never {
  throw new SlicelabError('EINVAL', `checkpoint image is truncated (${have} of ${need} bytes)`);
}

function corrupted(problem: string): never {
  throw new SlicelabError('EINVAL', `checkpoint image is corrupted: ${problem}`);
}
