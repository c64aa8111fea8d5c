/**
 * The one codec for everything on the bus: msgpackr with plain maps (no shared record structures, so any
 * peer decodes any message without prior agreement). `encode` returns a view into msgpackr's buffer,
 * which msgpackr never writes over (it starts a new buffer when one runs out), so NATS may hold the
 * bytes until its next flush. (A Buffer's `slice()` is a view too: it copied nothing here.)
 */
import { C1, Packr } from 'msgpackr';
import { ProtocolError, errorMessage } from './errors.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: true });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes bytes off the bus; anything that is not one whole msgpack value is a ProtocolError. */
export function decode(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new ProtocolError('empty message');
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (error) {
    throw new ProtocolError(`not msgpack: ${errorMessage(error)}`);
  }
  // 0xc1 is the one byte msgpack never uses; msgpackr hands back a marker for it instead of failing
  if (value === C1) throw new ProtocolError('not msgpack: reserved byte 0xc1');
  return value;
}
