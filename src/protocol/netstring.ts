/**
 * Netstrings (`LEN:bytes,`) and the length-prefix scanner shared by the tnetstring reader.
 * Lengths are decimal BYTE counts; everything here works on Buffers, never on decoded text.
 */
import { ProtocolError, type ProtocolErrorCode } from './types.js';

/** Longest length prefix accepted: 9 digits (< 1 GB), far beyond anything mongrel2 sends. */
export const MAX_LENGTH_DIGITS = 9;

const COLON = 0x3a;
const COMMA = 0x2c;

/** Location of a netstring-like item: payload `[start, end)`, the type byte at `end`, next item at `next`. */
export interface Span {
  readonly start: number;
  readonly end: number;
  readonly next: number;
}

/**
 * Reads `LEN:` at `offset` and checks that LEN bytes plus one terminator byte fit before `limit`.
 * Returns the payload start; the payload ends at `start + length`, the terminator is right after.
 * @internal
 */
export function readLengthPrefix(
  buf: Uint8Array,
  offset: number,
  limit: number,
  code: ProtocolErrorCode,
  what: string,
): { start: number; length: number } {
  let pos = offset;
  let length = 0;
  const maxDigitsEnd = Math.min(limit, offset + MAX_LENGTH_DIGITS);
  while (pos < maxDigitsEnd) {
    const c = buf[pos]!;
    if (c < 0x30 || c > 0x39) break;
    length = length * 10 + (c - 0x30);
    pos++;
  }
  if (pos === offset) {
    if (offset >= limit) throw new ProtocolError(code, `${what}: expected a length at offset ${offset}, found end of data`);
    throw new ProtocolError(code, `${what}: expected a decimal length at offset ${offset}, found byte 0x${hex(buf[offset]!)}`);
  }
  if (pos >= limit) throw new ProtocolError(code, `${what}: truncated length prefix at offset ${offset}`);
  if (buf[pos] !== COLON) {
    const c = buf[pos]!;
    if (c >= 0x30 && c <= 0x39) {
      throw new ProtocolError(code, `${what}: length prefix at offset ${offset} is longer than ${MAX_LENGTH_DIGITS} digits`);
    }
    throw new ProtocolError(code, `${what}: expected ':' after the length at offset ${pos}, found byte 0x${hex(c)}`);
  }
  const start = pos + 1;
  // The payload plus its one-byte terminator must fit.
  if (start + length >= limit) {
    throw new ProtocolError(
      code,
      `${what}: length ${length} at offset ${offset} runs past the end of the data (${limit - start} bytes left)`,
    );
  }
  return { start, length };
}

/** Parses a netstring `LEN:bytes,` at `offset`. Returns the payload span (no copy). */
export function parseNetstring(buf: Buffer, offset = 0): Span {
  const { start, length } = readLengthPrefix(buf, offset, buf.length, 'M2_ERR_NETSTRING', 'netstring');
  const end = start + length;
  if (buf[end] !== COMMA) {
    throw new ProtocolError(
      'M2_ERR_NETSTRING',
      `netstring: expected ',' at offset ${end} after ${length} bytes, found byte 0x${hex(buf[end]!)}`,
    );
  }
  return { start, end, next: end + 1 };
}

/** Encodes bytes as a netstring. */
export function dumpNetstring(body: Uint8Array): Buffer {
  const prefix = `${body.length}:`;
  const out = Buffer.allocUnsafe(prefix.length + body.length + 1);
  out.write(prefix, 0, 'latin1');
  out.set(body, prefix.length);
  out[out.length - 1] = COMMA;
  return out;
}

/** @internal two-digit hex of a byte, for error messages. */
export function hex(byte: number): string {
  return byte < 16 ? `0${byte.toString(16)}` : byte.toString(16);
}
