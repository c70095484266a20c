/**
 * The master ↔ worker wire format over ZeroMQ ROUTER (master, bind) / DEALER (worker, connect).
 * See docs/INTERNALS.md "Master ↔ worker". Shared by dispatch/ (master side) and
 * worker/dispatched-source.ts (worker side).
 *
 * master → worker: one multipart message per send, holding one or more entries:
 *   - `[0x52 'R', serverIndex]` followed by the raw mongrel2 frame, untouched;
 *   - `[0x45 'E']` alone: end of stream, nothing more will be forwarded (sent when the master
 *     drains the worker; everything before it must still be served).
 * worker → master: one frame of 6-byte records `kind u8, server u8, value u32 BE`:
 *   - 'C' (server 0) value = credits granted (initial or extra);
 *   - 'S' server, connId: a response began on that connection (head published: no 504 any more);
 *   - 'D' server, connId: one forwarded message on that connection is fully handled (+1 credit);
 *   - 'P' (server 0, value 0): the worker pauses (stops taking work); the master answers 'E'.
 */

export const TAG_REQUEST = 0x52; // 'R'
export const TAG_END = 0x45; // 'E'

export const REPORT_CREDIT = 0x43; // 'C'
export const REPORT_STARTED = 0x53; // 'S'
export const REPORT_DONE = 0x44; // 'D'
export const REPORT_PAUSE = 0x50; // 'P'

export const RECORD_SIZE = 6;

/** Highest server index the wire can carry. */
export const MAX_SERVERS = 256;

/** The per-server `'R', index` header parts, allocated once. */
const REQUEST_HEADERS: Buffer[] = [];
export function requestHeader(server: number): Buffer {
  let h = REQUEST_HEADERS[server];
  if (h === undefined) {
    if (!Number.isInteger(server) || server < 0 || server >= MAX_SERVERS) throw new RangeError(`server index ${server} out of range`);
    h = Buffer.of(TAG_REQUEST, server);
    REQUEST_HEADERS[server] = h;
  }
  return h;
}

export const END_PART: Buffer = Buffer.of(TAG_END);

/** ZeroMQ routing id of worker `id` (ASCII, never starts with a zero byte). */
export function routingIdOf(workerId: number): string {
  return `w${workerId}`;
}

/** The worker id in a routing id frame (`w<decimal>`), or -1. No allocation. */
export function workerIdOfRouting(frame: Buffer): number {
  const n = frame.length;
  if (n < 2 || n > 11 || frame[0] !== 0x77) return -1;
  let id = 0;
  for (let i = 1; i < n; i++) {
    const c = frame[i]! - 48;
    if (c < 0 || c > 9) return -1;
    id = id * 10 + c;
  }
  return id;
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
  /** A copy of the pending records (ZeroMQ may hold the buffer after send), and reset. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.used));
    this.used = 0;
    return out;
  }
}
