/**
 * The pipe protocol between the Python gateways (Node) and their bridges (Python: bridge/). Pure
 * codec, no I/O. The WSGI frames are below; the ASGI bridge's differences and additions are in
 * ../asgi/protocol.ts.
 *
 * Two one-way pipes: fd 3 carries Node → Python, fd 4 Python → Node (stdout/stderr stay the app's,
 * forwarded to the log). Every frame is
 *
 *     type: u8 (an ASCII letter)   id: u32 BE (request id, 0 = none)   length: u32 BE   payload
 *
 * Node → Python
 *   I  init (id 0)      JSON: {entry, django, sysPath, cwd, envs, window}
 *   E  environ          0, then keys and values joined with NUL; or (a value holds a NUL) 1, then
 *                       (u32 length, bytes) for each key and value; latin1 bytes
 *   G  request          u32 environLength, the E payload, then the whole body (at most 64 KiB):
 *                       a request in one frame (no B, no b)
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
 *   H  head             f64 BE bodyLength (-1 = unknown), then latin1: the status ("200 OK") and
 *                       each header's name and value, joined with NUL
 *   D  data             raw body bytes (at most 256 KiB each)
 *   W  whole response   u32 headLength, the H payload, then the whole body (at most 256 KiB; none
 *                       for HEAD, 204, 304): H, D and Z (complete) in one frame, for an app that
 *                       returned a one-element list
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

/**
 * Every frame letter, declared once for both bridges (each frame its own letter); the Python side
 * (bridge/wsgid_bridge_common.py, T_* with the names in upper snake case) is checked against this
 * table by test/unit/python-bridge.test.ts.
 */
export const T = {
  // gateway → bridge
  init: 0x49, // I
  environ: 0x45, // E (WSGI)
  request: 0x47, // G (WSGI): environ and the whole body at once
  scope: 0x53, // S (ASGI): the scope as JSON
  body: 0x42, // B
  bodyEnd: 0x62, // b
  ack: 0x41, // A
  cancel: 0x43, // C
  quit: 0x51, // Q
  // bridge → gateway
  ready: 0x52, // R
  loadFailed: 0x46, // F
  log: 0x4c, // L
  head: 0x48, // H
  data: 0x44, // D
  done: 0x5a, // Z
  whole: 0x57, // W (WSGI): head, body and done (ok) at once
  wsAccept: 0x4b, // K (ASGI)
  wsClose: 0x58, // X (ASGI)
  // both ways
  wsFrame: 0x4d, // M (ASGI): a WebSocket message
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

/** Payloads at least this big are written as chunks of their own instead of being copied into the batch. */
const COPY_LIMIT = 16 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * The frames written during one event-loop turn. `take()` returns the chunks to write: headers and
 * small payloads copied into one buffer (one write, one syscall, one Python read), big payloads as
 * chunks of their own (no copy).
 */
export class FrameBatch {
  private types: number[] = [];
  private ids: number[] = [];
  private payloads: Buffer[] = [];
  private copyBytes = 0;

  get empty(): boolean {
    return this.types.length === 0;
  }

  push(type: number, id: number, payload: Buffer = EMPTY): void {
    this.types.push(type);
    this.ids.push(id);
    this.payloads.push(payload);
    this.copyBytes += payload.length < COPY_LIMIT ? FRAME_HEADER + payload.length : FRAME_HEADER;
  }

  take(): Buffer[] {
    const { types, ids, payloads } = this;
    const buf = Buffer.allocUnsafe(this.copyBytes);
    this.types = [];
    this.ids = [];
    this.payloads = [];
    this.copyBytes = 0;
    const out: Buffer[] = [];
    let at = 0;
    let start = 0;
    for (let i = 0; i < types.length; i++) {
      const payload = payloads[i]!;
      const length = payload.length;
      buf[at] = types[i]!;
      buf.writeUInt32BE(ids[i]! >>> 0, at + 1);
      buf.writeUInt32BE(length, at + 5);
      at += FRAME_HEADER;
      if (length < COPY_LIMIT) {
        if (length > 0) payload.copy(buf, at);
        at += length;
      } else {
        out.push(buf.subarray(start, at), payload);
        start = at;
      }
    }
    if (at > start) out.push(start === 0 ? buf : buf.subarray(start, at));
    return out;
  }
}

/**
 * An E payload. Usually format 0: a 0 byte, then the keys and values joined with NUL (one string,
 * one split in Python); format 1 when a value holds a NUL (a %00 in the path): a 1 byte, then
 * (u32 length, bytes) for each key and value. latin1 bytes either way.
 */
export function encodeEnviron(pairs: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: string[] = [];
  for (const [k, v] of pairs) {
    if (v.includes('\0')) return encodeEnvironPairs(pairs);
    parts.push(k, v);
  }
  return Buffer.from('\0' + parts.join('\0'), 'latin1');
}

function encodeEnvironPairs(pairs: ReadonlyArray<readonly [string, string]>): Buffer {
  let size = 1;
  for (const [k, v] of pairs) size += 8 + k.length + v.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = 1;
  let at = 1;
  for (const [k, v] of pairs) {
    at = out.writeUInt32BE(k.length, at);
    at += out.write(k, at, 'latin1');
    at = out.writeUInt32BE(v.length, at);
    at += out.write(v, at, 'latin1');
  }
  return out;
}

/** The E payload back as pairs (tests, and symmetry with wsgi_bridge.py). */
export function decodeEnviron(payload: Buffer): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  if (payload[0] === 0) {
    const parts = payload.toString('latin1', 1).split('\0');
    for (let i = 0; i + 1 < parts.length; i += 2) pairs.push([parts[i]!, parts[i + 1]!]);
    return pairs;
  }
  let at = 1;
  while (at < payload.length) {
    const kl = payload.readUInt32BE(at);
    const k = payload.toString('latin1', at + 4, at + 4 + kl);
    at += 4 + kl;
    const vl = payload.readUInt32BE(at);
    pairs.push([k, payload.toString('latin1', at + 4, at + 4 + vl)]);
    at += 4 + vl;
  }
  return pairs;
}

/** A G payload: the environ and the whole (small) body of a request. */
export function encodeRequest(environ: Buffer, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + environ.length + body.length);
  out.writeUInt32BE(environ.length, 0);
  environ.copy(out, 4);
  body.copy(out, 4 + environ.length);
  return out;
}

/** A W payload split into the H payload and the body. Throws when it is malformed. */
export function decodeWhole(payload: Buffer): { readonly head: Buffer; readonly body: Buffer } {
  if (payload.length < 4) throw new Error('truncated whole-response frame');
  const headLength = payload.readUInt32BE(0);
  if (4 + headLength > payload.length) throw new Error('truncated whole-response frame');
  return { head: payload.subarray(4, 4 + headLength), body: payload.subarray(4 + headLength) };
}

/** For tests and symmetry: the W payload wsgi_bridge.py produces. */
export function encodeWhole(head: Buffer, body: Buffer): Buffer {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(head.length, 0);
  return Buffer.concat([length, head, body]);
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

/**
 * Decode an H payload: f64 BE body length (−1 unknown), then latin1 `status ("\0" name "\0" value)*`
 * (wsgi_bridge.py refuses NUL, CR and LF in names and values, so the split is exact). Throws on a
 * malformed payload or status line.
 */
export function decodeHead(payload: Buffer): Head {
  if (payload.length < 8) throw new Error('truncated head frame');
  const length = payload.readDoubleBE(0);
  const parts = payload.toString('latin1', 8).split('\0');
  if (parts.length % 2 === 0) throw new Error('malformed head frame (a name without a value)');
  const statusLine = parts[0]!;
  const headers: Array<[string, string]> = [];
  for (let i = 1; i < parts.length; i += 2) headers.push([parts[i]!, parts[i + 1]!]);
  const m = /^([1-9]\d\d)(?: ([^\r\n\0]*))?$/.exec(statusLine);
  if (!m) throw new Error(`invalid status line ${JSON.stringify(statusLine)}`);
  return {
    status: Number(m[1]),
    reason: m[2] ?? '',
    headers,
    bodyLength: length >= 0 && Number.isSafeInteger(length) ? length : undefined,
  };
}

/** For tests and symmetry: the H payload wsgi_bridge.py produces. */
export function encodeHead(statusLine: string, headers: ReadonlyArray<readonly [string, string]>, bodyLength?: number): Buffer {
  const fixed = Buffer.allocUnsafe(8);
  fixed.writeDoubleBE(bodyLength ?? -1, 0);
  const text = [statusLine, ...headers.flatMap(([name, value]) => [name, value])].join('\0');
  return Buffer.concat([fixed, Buffer.from(text, 'latin1')]);
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
