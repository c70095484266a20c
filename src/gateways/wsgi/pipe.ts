/**
 * The pipe protocol between the WSGI gateway (Node) and bridge.py (Python). Pure codec, no I/O.
 *
 * Two one-way pipes: fd 3 carries Node → Python, fd 4 Python → Node (stdout/stderr stay the app's,
 * forwarded to the log). Every frame is
 *
 *     type: u8 (an ASCII letter)   id: u32 BE (request id, 0 = none)   length: u32 BE   payload
 *
 * Node → Python
 *   I  init (id 0)      JSON: {entry, django, sysPath, cwd, envs, window}
 *   E  environ          pairs: (u32 keyLen, key, u32 valueLen, value)*, latin1 bytes
 *   B  body bytes       raw; any number, in order
 *   b  body end         empty; always sent (right after E for an empty body)
 *   A  ack              u32: body bytes of D frames Node has passed on (returns send credit)
 *   C  cancel           empty: the client is gone; stop iterating, close the iterable, finish
 *   Q  quit (id 0)      empty: exit when idle
 *
 * Python → Node
 *   R  ready (id 0)     UTF-8 text: description of the loaded app
 *   F  load failed (0)  UTF-8 text: the traceback
 *   L  log              u8 level (0 debug, 1 info, 2 warn, 3 error) + UTF-8 text
 *   H  head             f64 BE bodyLength (-1 = unknown), u16 statusLen, status ("200 OK"),
 *                       u16 count, (u16 nameLen, name, u32 valueLen, value)*, latin1 bytes
 *   D  data             raw body bytes (at most 256 KiB each)
 *   Z  done             u8 outcome: 0 complete, 1 app error (Node answers 500, or closes the
 *                       connection if the head is out), 2 cancelled
 *
 * Back-pressure: Python may have at most `window` bytes of D payload not yet acknowledged by an A
 * frame. Node acknowledges a D frame once ReplyChannel.write() accepted it without asking to wait,
 * or after drained(). So neither side buffers more than one window of a streamed body.
 *
 * Pipelining: Node may send the E/B/b frames of later requests (up to 8 in flight, small inline
 * bodies only) while Python runs one; Python files them by id and serves them in order, so the
 * H/D/Z frames of one request never interleave with another's. A C for a request Python has not
 * started makes it answer Z (cancelled) without running the app. Q comes after every request sent.
 */

export const FRAME_HEADER = 9;
/** Largest frame either side accepts (a D frame is at most 256 KiB; E and H are small). */
export const MAX_FRAME = 64 * 1024 * 1024;

export const T = {
  init: 0x49, // I
  environ: 0x45, // E
  body: 0x42, // B
  bodyEnd: 0x62, // b
  ack: 0x41, // A
  cancel: 0x43, // C
  quit: 0x51, // Q
  ready: 0x52, // R
  loadFailed: 0x46, // F
  log: 0x4c, // L
  head: 0x48, // H
  data: 0x44, // D
  done: 0x5a, // Z
} as const;

export const DONE_OK = 0;
export const DONE_ERROR = 1;
export const DONE_CANCELLED = 2;

export interface Frame {
  readonly type: number;
  readonly id: number;
  readonly payload: Buffer;
}

export function frameHeader(type: number, id: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER);
  header[0] = type;
  header.writeUInt32BE(id >>> 0, 1);
  header.writeUInt32BE(length, 5);
  return header;
}

/** A complete frame as one or two buffers (header, payload) — the payload is not copied. */
export function encodeFrame(type: number, id: number, payload?: Buffer): Buffer[] {
  const length = payload?.length ?? 0;
  return payload && length > 0 ? [frameHeader(type, id, length), payload] : [frameHeader(type, id, 0)];
}

export function encodeEnviron(pairs: ReadonlyArray<readonly [string, string]>): Buffer {
  let size = 0;
  for (const [k, v] of pairs) size += 8 + Buffer.byteLength(k, 'latin1') + Buffer.byteLength(v, 'latin1');
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const [k, v] of pairs) {
    at = out.writeUInt32BE(k.length, at);
    at += out.write(k, at, 'latin1');
    at = out.writeUInt32BE(v.length, at);
    at += out.write(v, at, 'latin1');
  }
  return out;
}

export function encodeAck(bytes: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(bytes >>> 0, 0);
  return out;
}

export interface Head {
  readonly status: number;
  readonly reason: string;
  readonly headers: Array<[string, string]>;
  /** Body length the bridge knows (single-element list, empty body), or undefined. */
  readonly bodyLength: number | undefined;
}

/** Decode an H payload. Throws on a malformed payload or status line. */
export function decodeHead(payload: Buffer): Head {
  let at = 0;
  const need = (n: number): void => {
    if (at + n > payload.length) throw new Error('truncated head frame');
  };
  need(10);
  const length = payload.readDoubleBE(0);
  at = 8;
  const statusLength = payload.readUInt16BE(at);
  at += 2;
  need(statusLength + 2);
  const statusLine = payload.toString('latin1', at, at + statusLength);
  at += statusLength;
  const count = payload.readUInt16BE(at);
  at += 2;
  const headers: Array<[string, string]> = [];
  for (let i = 0; i < count; i++) {
    need(2);
    const nameLength = payload.readUInt16BE(at);
    at += 2;
    need(nameLength + 4);
    const name = payload.toString('latin1', at, at + nameLength);
    at += nameLength;
    const valueLength = payload.readUInt32BE(at);
    at += 4;
    need(valueLength);
    headers.push([name, payload.toString('latin1', at, at + valueLength)]);
    at += valueLength;
  }
  const m = /^([1-9]\d\d)(?: ([^\r\n\0]*))?$/.exec(statusLine);
  if (!m) throw new Error(`invalid status line ${JSON.stringify(statusLine)}`);
  return {
    status: Number(m[1]),
    reason: m[2] ?? '',
    headers,
    bodyLength: length >= 0 && Number.isSafeInteger(length) ? length : undefined,
  };
}

/** For tests and symmetry: the H payload bridge.py produces. */
export function encodeHead(statusLine: string, headers: ReadonlyArray<readonly [string, string]>, bodyLength?: number): Buffer {
  const parts: Buffer[] = [];
  const fixed = Buffer.allocUnsafe(10);
  fixed.writeDoubleBE(bodyLength ?? -1, 0);
  fixed.writeUInt16BE(Buffer.byteLength(statusLine, 'latin1'), 8);
  parts.push(fixed, Buffer.from(statusLine, 'latin1'));
  const count = Buffer.allocUnsafe(2);
  count.writeUInt16BE(headers.length, 0);
  parts.push(count);
  for (const [name, value] of headers) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    const nl = Buffer.allocUnsafe(2);
    nl.writeUInt16BE(n.length, 0);
    const vl = Buffer.allocUnsafe(4);
    vl.writeUInt32BE(v.length, 0);
    parts.push(nl, n, vl, v);
  }
  return Buffer.concat(parts);
}

/**
 * Incremental frame reader for the fd 4 stream. Payloads that sit inside one received chunk are
 * views of it (no copy); only frames split across reads are joined.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete frame, or undefined when more bytes are needed. Throws on a bad length. */
  next(): Frame | undefined {
    if (this.buffered < FRAME_HEADER) return undefined;
    let first = this.chunks[0]!;
    if (first.length < FRAME_HEADER) {
      first = this.join(FRAME_HEADER);
    }
    const type = first[0]!;
    const id = first.readUInt32BE(1);
    const length = first.readUInt32BE(5);
    if (length > MAX_FRAME) throw new Error(`frame too large from the Python bridge (${length} bytes)`);
    const total = FRAME_HEADER + length;
    if (this.buffered < total) return undefined;
    if (first.length < total) first = this.join(total);
    const payload = first.subarray(FRAME_HEADER, total);
    this.consume(total);
    return { type, id, payload };
  }

  /** Merge the leading chunks so that the first one holds at least `n` bytes. */
  private join(n: number): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    while (size < n) {
      const c = this.chunks.shift()!;
      parts.push(c);
      size += c.length;
    }
    const merged = Buffer.concat(parts, size);
    this.chunks.unshift(merged);
    return merged;
  }

  private consume(n: number): void {
    const first = this.chunks[0]!;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
  }
}
