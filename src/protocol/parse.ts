/**
 * mongrel2 → handler messages: `SENDER SP CONN_ID SP PATH SP HEADERS BODY` (docs/MONGREL2.md §2).
 * Everything is scanned from the Buffer byte by byte; only the pieces we keep are decoded (latin1).
 */
import { ProtocolError } from './types.js';
import type { HeaderValue, MessageKind, Mongrel2Headers, Mongrel2Message } from './types.js';
import { hex, readLengthPrefix } from './netstring.js';
import { readTnetItem, setOwn, TAG_DICT, TAG_LIST, TAG_STRING, type TnetItem } from './tnetstring.js';
import { mergeValues, parseJsonHeaders } from './json-headers.js';

const SPACE = 0x20;
const COMMA = 0x2c;
const MAX_UINT32 = 0xffffffff;
let scannedId = 0;

/** True for a byte of `[A-Za-z0-9-]`, the only sender-id bytes mongrel2 accepts in replies. */
function isSenderByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
}

/** True when `s` is a sender id mongrel2 will accept in a reply: `[A-Za-z0-9-]+`. */
export function isValidSender(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isSenderByte(s.charCodeAt(i))) return false;
  return true;
}

/** Scans the sender at 0; returns the offset of the space after it. */
function scanSender(frame: Buffer): number {
  const n = frame.length;
  let i = 0;
  while (i < n) {
    const c = frame[i]!;
    if (c === SPACE) break;
    if (!isSenderByte(c)) {
      throw new ProtocolError('M2_ERR_SENDER', `sender id has byte 0x${hex(c)} at offset ${i}; expected [A-Za-z0-9-]`);
    }
    i++;
  }
  if (i === n) throw new ProtocolError('M2_ERR_FRAME', `no space after the sender id (frame of ${n} bytes)`);
  if (i === 0) throw new ProtocolError('M2_ERR_SENDER', 'empty sender id at offset 0');
  return i;
}

/**
 * Scans a decimal uint32 at `start` ending with a space; returns the offset of the space and leaves
 * the value in `scannedId` (a second result without allocating a tuple on the hot path).
 */
function scanConnId(frame: Buffer, start: number): number {
  const n = frame.length;
  let i = start;
  let id = 0;
  while (i < n) {
    const c = frame[i]!;
    if (c === SPACE) break;
    if (c < 0x30 || c > 0x39) {
      throw new ProtocolError('M2_ERR_CONN_ID', `connection id has byte 0x${hex(c)} at offset ${i}; expected a digit`);
    }
    id = id * 10 + (c - 0x30);
    if (id > MAX_UINT32) {
      throw new ProtocolError('M2_ERR_CONN_ID', `connection id at offset ${start} is larger than a uint32`);
    }
    i++;
  }
  if (i === n) throw new ProtocolError('M2_ERR_FRAME', `no space after the connection id at offset ${start}`);
  if (i === start) throw new ProtocolError('M2_ERR_CONN_ID', `empty connection id at offset ${start}`);
  scannedId = id;
  return i;
}

// peekConnection runs for every message in the master and the sender almost never changes:
// reuse the last decoded sender string when the bytes are the same.
let lastSenderBytes: Buffer = Buffer.alloc(0);
let lastSender = '';

function senderString(frame: Buffer, end: number): string {
  if (end === lastSenderBytes.length) {
    let i = 0;
    while (i < end && frame[i] === lastSenderBytes[i]) i++;
    if (i === end) return lastSender;
  }
  lastSender = frame.toString('latin1', 0, end);
  lastSenderBytes = Buffer.from(lastSender, 'latin1');
  return lastSender;
}

/**
 * The master's cheap path: the sender and connection id, scanning only up to the second space.
 * Validates both fields (throws ProtocolError) but nothing after them.
 */
export function peekConnection(frame: Buffer): { sender: string; connId: number } {
  const s = scanSender(frame);
  scanConnId(frame, s + 1);
  return { sender: senderString(frame, s), connId: scannedId };
}

/** Parses a whole message. `body` is a view into `frame` (no copy). */
export function parseMessage(frame: Buffer): Mongrel2Message {
  const n = frame.length;
  const senderEnd = scanSender(frame);
  const idEnd = scanConnId(frame, senderEnd + 1);
  const connId = scannedId;
  const sender = senderString(frame, senderEnd);

  const pathStart = idEnd + 1;
  let i = pathStart;
  while (i < n && frame[i] !== SPACE) i++;
  if (i === n) throw new ProtocolError('M2_ERR_FRAME', `no space after the path at offset ${pathStart}`);
  if (i === pathStart) throw new ProtocolError('M2_ERR_FRAME', `empty path at offset ${pathStart}`);
  const path = frame.toString('latin1', pathStart, i);

  // HEADERS: `LEN:{json},` or `LEN:<tnetstring dict>}` — both are one tnetstring item.
  const headersAt = i + 1;
  const { start: hStart, length: hLen } = readLengthPrefix(frame, headersAt, n, 'M2_ERR_NETSTRING', 'headers');
  const hEnd = hStart + hLen;
  const hTag = frame[hEnd]!;
  let headers: Mongrel2Headers;
  if (hTag === COMMA) headers = parseJsonHeaders(frame, hStart, hEnd);
  else if (hTag === TAG_DICT) headers = parseTnetHeaders(frame, hStart, hEnd);
  else {
    throw new ProtocolError(
      'M2_ERR_NETSTRING',
      `headers at offset ${headersAt}: expected ',' (JSON) or '}' (tnetstring) at offset ${hEnd}, found byte 0x${hex(hTag)}`,
    );
  }

  // BODY: `LEN:bytes,`, and it must end the frame.
  const bodyAt = hEnd + 1;
  const { start: bStart, length: bLen } = readLengthPrefix(frame, bodyAt, n, 'M2_ERR_NETSTRING', 'body');
  const bEnd = bStart + bLen;
  if (frame[bEnd] !== COMMA) {
    throw new ProtocolError(
      'M2_ERR_NETSTRING',
      `body at offset ${bodyAt}: expected ',' at offset ${bEnd} after ${bLen} bytes, found byte 0x${hex(frame[bEnd]!)}`,
    );
  }
  if (bEnd + 1 !== n) {
    throw new ProtocolError('M2_ERR_FRAME', `${n - bEnd - 1} unexpected bytes after the body at offset ${bEnd + 1}`);
  }
  const body = frame.subarray(bStart, bEnd);

  return { kind: classify(path, headers, body), sender, connId, path, headers, body };
}

/** Reads a tnetstring dict of string → string | list of strings from `buf[start, end)`. */
const keyScratch: TnetItem = { start: 0, end: 0, tag: 0, next: 0 };
const valScratch: TnetItem = { start: 0, end: 0, tag: 0, next: 0 };
const elScratch: TnetItem = { start: 0, end: 0, tag: 0, next: 0 };

function parseTnetHeaders(buf: Buffer, start: number, end: number): Mongrel2Headers {
  const headers: Mongrel2Headers = {};
  // latin1 maps byte i to char i, so one decode of the header block plus cheap substrings replaces a
  // Buffer.toString per name and value (the dominant cost otherwise).
  const text = buf.toString('latin1', start, end);
  let pos = start;
  while (pos < end) {
    const key = readTnetItem(buf, pos, end + 1, keyScratch);
    if (key.tag !== TAG_STRING) {
      throw new ProtocolError('M2_ERR_HEADERS', `tnetstring headers: header name at offset ${pos} is not a string`);
    }
    if (key.next >= end) {
      throw new ProtocolError('M2_ERR_HEADERS', `tnetstring headers: header name at offset ${pos} has no value`);
    }
    const name = text.slice(key.start - start, key.end - start);
    const vAt = key.next;
    const val = readTnetItem(buf, vAt, end + 1, valScratch);
    if (val.next > end) {
      throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring headers: value at offset ${vAt} overruns the header dict`);
    }
    let value: HeaderValue;
    if (val.tag === TAG_STRING) {
      value = text.slice(val.start - start, val.end - start);
    } else if (val.tag === TAG_LIST) {
      const list: string[] = [];
      let p = val.start;
      while (p < val.end) {
        const el = readTnetItem(buf, p, val.end + 1, elScratch);
        if (el.next > val.end) {
          throw new ProtocolError('M2_ERR_TNETSTRING', `tnetstring headers: list element at offset ${p} overruns its list`);
        }
        if (el.tag !== TAG_STRING) {
          throw new ProtocolError(
            'M2_ERR_HEADERS',
            `tnetstring headers: value of header ${JSON.stringify(name)} has a non-string element at offset ${p}`,
          );
        }
        list.push(text.slice(el.start - start, el.end - start));
        p = el.next;
      }
      value = list;
    } else {
      throw new ProtocolError(
        'M2_ERR_HEADERS',
        `tnetstring headers: value of header ${JSON.stringify(name)} at offset ${vAt} is not a string or a list of strings`,
      );
    }
    const prev = Object.prototype.hasOwnProperty.call(headers, name) ? headers[name] : undefined;
    setOwn(headers, name, prev === undefined ? value : mergeValues(prev, value));
    pos = val.next;
  }
  return headers;
}

function single(headers: Mongrel2Headers, name: string): string | undefined {
  if (!Object.prototype.hasOwnProperty.call(headers, name)) return undefined;
  const v = headers[name];
  return typeof v === 'string' ? v : v?.[0];
}

function has(headers: Mongrel2Headers, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(headers, name);
}

/** Decides the message kind (see MessageKind). */
function classify(path: string, headers: Mongrel2Headers, body: Buffer): MessageKind {
  const method = single(headers, 'METHOD');
  switch (method) {
    case 'JSON':
      return path === '@*' ? controlKind(body) : 'json';
    case 'XML':
      return 'xml';
    case 'WEBSOCKET_HANDSHAKE':
      return 'websocket-handshake';
    case 'WEBSOCKET':
      return 'websocket-frame';
  }
  if (has(headers, 'x-mongrel2-upload-done')) return 'upload-done';
  if (has(headers, 'x-mongrel2-upload-start')) return 'upload-start';
  if (has(headers, 'UPLOAD_STREAM')) return 'upload-stream';
  return 'request';
}

const DISCONNECT_BODY = Buffer.from('{"type":"disconnect"}', 'latin1');

/** `@*` with METHOD=JSON: the body's `type` says what it is (disconnect or credits). */
function controlKind(body: Buffer): MessageKind {
  if (body.equals(DISCONNECT_BODY)) return 'disconnect'; // the common case, exactly as mongrel2 writes it
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('M2_ERR_JSON', `control message (@*) body is not JSON: ${(err as Error).message}`);
  }
  const type =
    typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as { type?: unknown }).type
      : undefined;
  if (type === 'disconnect') return 'disconnect';
  if (type === 'credits') return 'credits';
  throw new ProtocolError(
    'M2_ERR_JSON',
    `control message (@*) has unknown type ${JSON.stringify(type) ?? 'undefined'}; expected "disconnect" or "credits"`,
  );
}
