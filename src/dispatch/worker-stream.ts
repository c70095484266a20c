/**
 * The master ↔ worker wire format: one unix domain stream socket per worker (node:net), the master
 * listening on a path in its private 0700 folder, each worker connecting once. See docs/INTERNALS.md
 * "Master ↔ worker". Shared by dispatch/ (master side) and worker/dispatched-source.ts (worker side).
 *
 * master → worker: a stream of records `length u32 BE, server u8` followed by `length` bytes:
 *   - length > 0: a raw mongrel2 frame from server `server`, untouched;
 *   - length 0: a control record, the byte says which: 'E' = end of stream, nothing more will be
 *     forwarded (sent when the master drains the worker; everything before it must still be served).
 *     (A frame is never empty: the master drops frames it cannot peek.)
 * worker → master: a stream of 6-byte records `kind u8, server u8, value u32 BE`:
 *   - 'H' (server 0) value = worker id: hello, the first record on the connection;
 *   - 'C' (server 0) value = credits granted (initial or extra);
 *   - 'S' server, connId: a response began on that connection (head published: no 504 any more);
 *   - 'D' server, connId: one forwarded request on that connection is fully handled (+1 credit);
 *   - 'N' server, connId: one forwarded message that is not a request (download credits, a
 *     disconnect, a WebSocket frame, an upload start, a JSON socket message) is handled (+1
 *     credit): it started no response and ended none, so the master's per-connection count of
 *     started responses is untouched;
 *   - 'D' server, connId: one forwarded message on that connection is fully handled (+1 credit);
 *   - 'X' server, connId: the worker dropped a message on that connection as malformed (sent before
 *     its 'D'): the master forgets the connection once nothing is in flight on it, so a flood of
 *     malformed messages leaves no entry per connection id;
 *   - 'P' (server 0, value 0): the worker pauses (stops taking work); the master answers 'E'.
 *   - 'K' (server 0) value = requests it can run at once (its capacity; sent before its first
 *     credit by workers whose app has a bound, e.g. WSGI --threads; none = no bound);
 *   - 'W' (server 0) value = requests it may usefully hold beyond that (waiting, for pipelining).
 *
 * Both sides gather what they write during one event-loop turn and write it at once; a read
 * delivers as many records as the kernel had.
 */

export const CONTROL_END = 0x45; // 'E'

export const REPORT_HELLO = 0x48; // 'H'
export const REPORT_CREDIT = 0x43; // 'C'
export const REPORT_STARTED = 0x53; // 'S'
export const REPORT_DONE = 0x44; // 'D'
export const REPORT_HANDLED = 0x4e; // 'N'
export const REPORT_DROPPED = 0x58; // 'X'
export const REPORT_PAUSE = 0x50; // 'P'
export const REPORT_CAPACITY = 0x4b; // 'K'
export const REPORT_WAITING = 0x57; // 'W'

export const RECORD_SIZE = 6;
/** Bytes before a forwarded frame: length u32, server u8. */
export const FRAME_HEADER_SIZE = 5;

/** Highest server index the wire can carry. */
export const MAX_SERVERS = 256;

/** Frames at least this big are written as their own chunk instead of being copied into the batch. */
const COPY_LIMIT = 16 * 1024;

/**
 * Outgoing records to one worker, gathered during an event-loop turn. `take()` returns the chunks
 * to write: small frames are copied, with their headers, into one buffer (one write, one syscall);
 * big frames go as chunks of their own (no copy).
 */
export class FrameBatch {
  private parts: Buffer[] = [];
  private servers: number[] = [];
  /** Bytes to copy into the batch buffer: headers and small frames. */
  private copyBytes = 0;

  get empty(): boolean {
    return this.parts.length === 0;
  }

  /** Records in the batch (frames and control records). */
  get count(): number {
    return this.parts.length;
  }

  push(server: number, frame: Buffer): void {
    if (!Number.isInteger(server) || server < 0 || server >= MAX_SERVERS) throw new RangeError(`server index ${server} out of range`);
    if (frame.length === 0) return;
    this.parts.push(frame);
    this.servers.push(server);
    this.copyBytes += frame.length < COPY_LIMIT ? FRAME_HEADER_SIZE + frame.length : FRAME_HEADER_SIZE;
  }

  /** A control record (length 0, the byte = `kind`). */
  control(kind: number): void {
    this.parts.push(EMPTY);
    this.servers.push(kind);
    this.copyBytes += FRAME_HEADER_SIZE;
  }

  /** The chunks to write, in order, and reset. */
  take(): Buffer[] {
    const parts = this.parts;
    const servers = this.servers;
    const buf = Buffer.allocUnsafe(this.copyBytes);
    this.parts = [];
    this.servers = [];
    this.copyBytes = 0;
    const out: Buffer[] = [];
    let o = 0;
    let start = 0;
    for (let i = 0; i < parts.length; i++) {
      const frame = parts[i]!;
      const len = frame.length;
      buf.writeUInt32BE(len, o);
      buf[o + 4] = servers[i]!;
      o += FRAME_HEADER_SIZE;
      if (len < COPY_LIMIT) {
        frame.copy(buf, o);
        o += len;
      } else {
        // The header stays in the batch buffer; the frame is written as it is.
        out.push(buf.subarray(start, o), frame);
        start = o;
      }
    }
    if (o > start) out.push(start === 0 ? buf : buf.subarray(start, o));
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The worker's parser of the master's stream. Frames that arrive whole within one chunk are
 * delivered as subarrays of it (no copy: Node never reuses a read buffer); a frame split across
 * chunks is assembled into a buffer of its exact size (one copy).
 */
export class FrameReader {
  private readonly head = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  private headFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;
  private bodyServer = 0;

  constructor(
    private readonly onFrame: (frame: Buffer, server: number) => void,
    private readonly onControl: (kind: number) => void,
  ) {}

  push(chunk: Buffer): void {
    const n = chunk.length;
    let pos = 0;
    for (;;) {
      const body = this.body;
      if (body !== undefined) {
        const take = Math.min(body.length - this.bodyFill, n - pos);
        chunk.copy(body, this.bodyFill, pos, pos + take);
        this.bodyFill += take;
        pos += take;
        if (this.bodyFill < body.length) return;
        this.body = undefined;
        this.onFrame(body, this.bodyServer);
      }
      const rem = n - pos;
      if (rem === 0) return;
      let len: number;
      let server: number;
      if (this.headFill > 0 || rem < FRAME_HEADER_SIZE) {
        const take = Math.min(FRAME_HEADER_SIZE - this.headFill, rem);
        chunk.copy(this.head, this.headFill, pos, pos + take);
        this.headFill += take;
        pos += take;
        if (this.headFill < FRAME_HEADER_SIZE) return;
        this.headFill = 0;
        len = this.head.readUInt32BE(0);
        server = this.head[4]!;
      } else {
        len = chunk.readUInt32BE(pos);
        server = chunk[pos + 4]!;
        pos += FRAME_HEADER_SIZE;
      }
      if (len === 0) {
        this.onControl(server);
      } else if (n - pos >= len) {
        this.onFrame(chunk.subarray(pos, pos + len), server);
        pos += len;
      } else {
        this.body = Buffer.allocUnsafe(len);
        this.bodyFill = 0;
        this.bodyServer = server;
      }
    }
  }
}

/**
 * The master's parser of a worker's report stream: hands whole 6-byte records to `onRecords`, as a
 * subarray of the chunk when they are whole in it; a record split across chunks is carried over.
 */
export class RecordReader {
  private readonly carry = Buffer.allocUnsafe(RECORD_SIZE);
  private carryFill = 0;

  constructor(private readonly onRecords: (records: Buffer) => void) {}

  push(chunk: Buffer): void {
    let pos = 0;
    const n = chunk.length;
    if (this.carryFill > 0) {
      const take = Math.min(RECORD_SIZE - this.carryFill, n);
      chunk.copy(this.carry, this.carryFill, 0, take);
      this.carryFill += take;
      pos = take;
      if (this.carryFill < RECORD_SIZE) return;
      this.carryFill = 0;
      this.onRecords(this.carry);
    }
    const whole = n - ((n - pos) % RECORD_SIZE);
    if (whole > pos) this.onRecords(pos === 0 && whole === n ? chunk : chunk.subarray(pos, whole));
    if (whole < n) {
      chunk.copy(this.carry, 0, whole, n);
      this.carryFill = n - whole;
    }
  }
}

/** Growable buffer of report records, reused across flushes (the worker's side). */
export class ReportBuffer {
  private buf: Buffer;
  private used = 0;
  constructor(initialRecords = 256) {
    this.buf = Buffer.allocUnsafe(initialRecords * RECORD_SIZE);
  }
  get length(): number {
    return this.used;
  }
  push(kind: number, server: number, value: number): void {
    if (this.used + RECORD_SIZE > this.buf.length) {
      const bigger = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    const b = this.buf;
    const o = this.used;
    b[o] = kind;
    b[o + 1] = server;
    b.writeUInt32BE(value >>> 0, o + 2);
    this.used = o + RECORD_SIZE;
  }
  /** A copy of the pending records (the socket holds it until written), and reset. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.used));
    this.used = 0;
    return out;
  }
}
