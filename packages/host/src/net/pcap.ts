/**
 * Captures in the classic libpcap file format, so a nic's traffic opens in tcpdump and Wireshark
 * (REFERENCE.md, wire formats). Division of labor: frame.ts makes the frames, this file only stamps
 * them in time: a 24-byte file header, then per frame a 16-byte record header and the frame's bytes.
 * Fields are little-endian, as tcpdump writes them on x86 (magic bytes d4 c3 b2 a1); readers take either
 * byte order from the magic. Timestamps are in microseconds, the resolution of that magic.
 */
import { SlicelabError } from '@slicelab/protocol';

/** The most bytes of a frame a record keeps: tcpdump's default, more than any frame (a segment a nic offloaded is up to 64 KiB). */
export const pcapSnaplen = 262144;
const linktypeEthernet = 1;
const recordHeader = 16;

/** The file header: magic 0xa1b2c3d4, version 2.4, UTC, snaplen, linktype Ethernet. */
export function pcapHeader(): Uint8Array {
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0xa1b2c3d4, true);
  view.setUint16(4, 2, true);
  view.setUint16(6, 4, true);
  // thiszone and sigfigs stay 0: timestamps are UTC
  view.setUint32(16, pcapSnaplen, true);
  view.setUint32(20, linktypeEthernet, true);
  return bytes;
}

/** One record: the frame seen at `atMs` (epoch ms, fractional for sub-millisecond times), cut at the snaplen. */
export function pcapRecord(frame: Uint8Array, atMs: number): Uint8Array {
  const us = Math.round(atMs * 1000);
  const seconds = Math.floor(us / 1e6);
  if (!(seconds >= 0 && seconds <= 0xffffffff)) throw new SlicelabError('EINVAL', `capture time ${atMs} ms is outside pcap's 1970 to 2106`);
  const kept = Math.min(frame.length, pcapSnaplen);
  const bytes = new Uint8Array(recordHeader + kept);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, seconds, true);
  view.setUint32(4, us - seconds * 1e6, true);
  view.setUint32(8, kept, true);
  view.setUint32(12, frame.length, true);
  bytes.set(frame.subarray(0, kept), recordHeader);
  return bytes;
}

/**
 * A capture kept in memory, as `tcpdump -w` with `-c`: the first `maxFrames` frames are recorded and
 * later ones only counted, so a forgotten capture cannot take the host's memory. Each record is a copy:
 * the frame's bytes may be reused by the nic after `add` returns.
 */
export class PcapWriter {
  private readonly records: Uint8Array[] = [pcapHeader()];
  private length = this.records[0]!.length;
  private over = 0;

  constructor(readonly maxFrames = Infinity) {}

  /** Frames recorded. */
  get frames(): number {
    return this.records.length - 1;
  }

  /** Frames seen past `maxFrames`, not recorded. */
  get dropped(): number {
    return this.over;
  }

  /** Records the frame seen at `atMs` (epoch ms); false when the capture is full. */
  add(frame: Uint8Array, atMs: number): boolean {
    if (this.frames >= this.maxFrames) {
      this.over += 1;
      return false;
    }
    const record = pcapRecord(frame, atMs);
    this.records.push(record);
    this.length += record.length;
    return true;
  }

  /** The capture so far, as the bytes of a .pcap file. */
  bytes(): Uint8Array {
    const file = new Uint8Array(this.length);
    let at = 0;
    for (const record of this.records) {
      file.set(record, at);
      at += record.length;
    }
    return file;
  }
}
