/**
 * tnetstrings (https://tnetstrings.info): `LEN:payload` followed by one type byte.
 *
 *   `,` string   `#` integer   `^` float   `!` boolean   `~` null   `}` dict   `]` list
 *
 * String representation (the protocol layer's one rule): a tnetstring string is a sequence of BYTES,
 * and it is represented in JS as a latin1 "byte string" — one char per byte, U+0000..U+00FF — exactly
 * as Node's http module presents raw header values. `Buffer.from(s, 'latin1')` gives the bytes back.
 * `parseTnetstring` returns strings in that form; `dumpTnetstring` writes a JS string as latin1 (and
 * refuses a string with a char above U+00FF, which cannot be a byte string: pass a Buffer, e.g.
 * `Buffer.from(text, 'utf8')`, for text) and writes a Uint8Array's bytes unchanged.
 * So `parseTnetstring(dumpTnetstring(v)).value` deep-equals `v` when `v` holds no Uint8Array.
 *
 * Numbers: `dumpTnetstring` writes a safe integer as `#` and any other finite number as `^`;
 * NaN/Infinity are refused. `parseTnetstring` refuses integers outside Number.MAX_SAFE_INTEGER.
 */
import { ProtocolError } from './types.js';
import { hex, readLengthPrefix } from './netstring.js';

/** A value a tnetstring can carry. Uint8Array is accepted by dumpTnetstring only (parsing yields strings). */
export type TnetValue =
  | string
  | Uint8Array
  | number
  | boolean
  | null
  | readonly TnetValue[]
  | { readonly [key: string]: TnetValue };

/** Result of a parse: the value and the offset just after it. */
export interface TnetParseResult {
  readonly value: TnetValue;
  readonly next: number;
}

/** Nesting deeper than this is refused (protects the stack against hostile input). */
export const MAX_TNET_DEPTH = 64;

export const TAG_STRING = 0x2c; // ,
export const TAG_INT = 0x23; // #
export const TAG_FLOAT = 0x5e; // ^
export const TAG_BOOL = 0x21; // !
export const TAG_NULL = 0x7e; // ~
export const TAG_DICT = 0x7d; // }
export const TAG_LIST = 0x5d; // ]

/** One raw tnetstring item: payload `[start, end)`, type byte `tag` (at `end`), next item at `next`. @internal */
export interface TnetItem {
  start: number;
  end: number;
  tag: number;
  next: number;
}

/**
 * Reads the frame of one item without interpreting its payload, into `out` (a fresh object unless
 * the caller passes a scratch one: the header parser does, to allocate nothing per item). @internal
 */
export function readTnetItem(
  buf: Buffer,
  offset: number,
  limit: number,
  out: TnetItem = { start: 0, end: 0, tag: 0, next: 0 },
): TnetItem {
  // Fast path for the common short length prefix (up to 4 digits), then the general reader.
  let pos = offset;
  let length = 0;
  let c = 0;
  while (pos < limit && pos - offset < 5) {
    c = buf[pos]!;
    if (c < 0x30 || c > 0x39) break;
    length = length * 10 + (c - 0x30);
    pos++;
  }
  let start: number;
  if (c === 0x3a && pos > offset && pos < limit && pos + 1 + length < limit) {
    start = pos + 1;
  } else {
    const r = readLengthPrefix(buf, offset, limit, 'M2_ERR_TNETSTRING', 'tnetstring');
    start = r.start;
    length = r.length;
  }
  const end = start + length;
  const tag = buf[end]!;
  switch (tag) {
    case TAG_STRING:
    case TAG_INT:
    case TAG_FLOAT:
    case TAG_BOOL:
    case TAG_NULL:
    case TAG_DICT:
    case TAG_LIST:
      out.start = start;
      out.end = end;
      out.tag = tag;
      out.next = end + 1;
      return out;
    default:
      throw new ProtocolError(
        'M2_ERR_TNETSTRING',
        `tnetstring: unknown type byte 0x${hex(tag)} at offset ${end} (item starting at offset ${offset})`,
      );
  }
}

/**
 * Parses one tnetstring at `offset` (default 0) within `buf[0, limit)`. Trailing bytes after the
 * item are allowed; check `next` if the item must fill the buffer.
 */
export function parseTnetstring(buf: Buffer, offset = 0, limit = buf.length): TnetParseResult {
  const item = readTnetItem(buf, offset, limit);
  return { value: decodeItem(buf, item, offset, 0), next: item.next };
}

function latin1(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, end);
}

function decodeItem(buf: Buffer, item: TnetItem, at: number, depth: number): TnetValue {
  const { start, end } = item;
  switch (item.tag) {
    case TAG_STRING:
      return latin1(buf, start, end);
    case TAG_INT:
      return decodeInt(buf, start, end, at);
    case TAG_FLOAT:
      return decodeFloat(buf, start, end, at);
    case TAG_BOOL: {
      const s = latin1(buf, start, end);
      if (s === 'true') return true;
      if (s === 'false') return false;
      throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: boolean at offset ${at} is neither 'true' nor 'false'`);
    }
    case TAG_NULL:
      if (end !== start) {
        throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: null at offset ${at} must have length 0`);
      }
      return null;
    case TAG_LIST: {
      if (depth >= MAX_TNET_DEPTH) {
        throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: nesting deeper than ${MAX_TNET_DEPTH} at offset ${at}`);
      }
      const list: TnetValue[] = [];
      let pos = start;
      while (pos < end) {
        const child = readTnetItem(buf, pos, end + 1);
        if (child.next > end) {
          throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: list element at offset ${pos} overruns its list`);
        }
        list.push(decodeItem(buf, child, pos, depth + 1));
        pos = child.next;
      }
      return list;
    }
    default: {
      // TAG_DICT (readTnetItem admits no other tag)
      if (depth >= MAX_TNET_DEPTH) {
        throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: nesting deeper than ${MAX_TNET_DEPTH} at offset ${at}`);
      }
      const dict: Record<string, TnetValue> = {};
      let pos = start;
      while (pos < end) {
        const key = readTnetItem(buf, pos, end + 1);
        if (key.tag !== TAG_STRING) {
          throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: dict key at offset ${pos} is not a string`);
        }
        if (key.next >= end) {
          throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: dict key at offset ${pos} has no value`);
        }
        const vAt = key.next;
        const val = readTnetItem(buf, vAt, end + 1);
        if (val.next > end) {
          throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: dict value at offset ${vAt} overruns its dict`);
        }
        setOwn(dict, latin1(buf, key.start, key.end), decodeItem(buf, val, vAt, depth + 1));
        pos = val.next;
      }
      return dict;
    }
  }
}

/** Assigns without invoking the `__proto__` setter, so a key named `__proto__` is just a key. @internal */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

function decodeInt(buf: Buffer, start: number, end: number, at: number): number {
  let pos = start;
  let negative = false;
  if (pos < end && (buf[pos] === 0x2d || buf[pos] === 0x2b)) {
    negative = buf[pos] === 0x2d;
    pos++;
  }
  if (pos === end) throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: empty integer at offset ${at}`);
  let n = 0;
  for (; pos < end; pos++) {
    const c = buf[pos]!;
    if (c < 0x30 || c > 0x39) {
      throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: bad digit 0x${hex(c)} in integer at offset ${pos}`);
    }
    n = n * 10 + (c - 0x30);
  }
  if (!Number.isSafeInteger(n)) {
    throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: integer at offset ${at} is outside the safe integer range`);
  }
  return negative ? -n : n;
}

function decodeFloat(buf: Buffer, start: number, end: number, at: number): number {
  let digits = 0;
  for (let pos = start; pos < end; pos++) {
    const c = buf[pos]!;
    if (c >= 0x30 && c <= 0x39) digits++;
    else if (c !== 0x2b && c !== 0x2d && c !== 0x2e && c !== 0x65 && c !== 0x45) {
      throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: bad byte 0x${hex(c)} in float at offset ${pos}`);
    }
  }
  const n = digits === 0 ? NaN : Number(latin1(buf, start, end));
  if (!Number.isFinite(n)) {
    throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring: malformed float at offset ${at}`);
  }
  return n;
}

/** Encodes a value as a tnetstring (see the module comment for strings and numbers). */
export function dumpTnetstring(value: TnetValue): Buffer {
  const parts: Uint8Array[] = [];
  const total = emit(value, parts, 0);
  return Buffer.concat(parts, total);
}

/** Pushes the encoding of `value` onto `parts` and returns its byte length. */
function emit(value: TnetValue, parts: Uint8Array[], depth: number): number {
  if (depth > MAX_TNET_DEPTH) {
    throw new ProtocolError('M2_ERR_TNETSTRING', `dumpTnetstring: nesting deeper than ${MAX_TNET_DEPTH} (or a cycle)`);
  }
  if (typeof value === 'string') {
    for (let i = 0; i < value.length; i++) {
      if (value.charCodeAt(i) > 0xff) {
        throw new ProtocolError(
          'M2_ERR_TNETSTRING',
          `dumpTnetstring: string has char U+${value.charCodeAt(i).toString(16).toUpperCase()} at index ${i}; ` +
            'strings are latin1 byte strings, pass a Buffer for UTF-8 text',
        );
      }
    }
    return leaf(Buffer.from(value, 'latin1'), TAG_STRING, parts);
  }
  if (value instanceof Uint8Array) return leaf(value, TAG_STRING, parts);
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return leaf(Buffer.from(String(value), 'latin1'), TAG_INT, parts);
    if (Number.isFinite(value)) return leaf(Buffer.from(String(value), 'latin1'), TAG_FLOAT, parts);
    throw new ProtocolError('M2_ERR_TNETSTRING', `dumpTnetstring: cannot encode ${value}`);
  }
  if (typeof value === 'boolean') return leaf(Buffer.from(value ? 'true' : 'false', 'latin1'), TAG_BOOL, parts);
  if (value === null) return leaf(EMPTY, TAG_NULL, parts);
  const head = parts.length;
  parts.push(EMPTY); // placeholder for the length prefix
  let size = 0;
  let tag: number;
  if (Array.isArray(value)) {
    tag = TAG_LIST;
    for (const v of value as readonly TnetValue[]) size += emit(v, parts, depth + 1);
  } else if (typeof value === 'object') {
    tag = TAG_DICT;
    for (const key of Object.keys(value)) {
      size += emit(key, parts, depth + 1);
      size += emit((value as { readonly [key: string]: TnetValue })[key]!, parts, depth + 1);
    }
  } else {
    throw new ProtocolError('M2_ERR_TNETSTRING', `dumpTnetstring: cannot encode a ${typeof value}`);
  }
  const prefix = Buffer.from(`${size}:`, 'latin1');
  parts[head] = prefix;
  parts.push(Buffer.of(tag));
  return prefix.length + size + 1;
}

const EMPTY = Buffer.alloc(0);

function leaf(payload: Uint8Array, tag: number, parts: Uint8Array[]): number {
  const prefix = Buffer.from(`${payload.length}:`, 'latin1');
  parts.push(prefix, payload, Buffer.of(tag));
  return prefix.length + payload.length + 1;
}
