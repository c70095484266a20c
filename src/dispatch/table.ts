/**
 * The master's dispatch table: which worker holds which client connection, how much credit each
 * worker has, what is in flight, what waits for credit. Pure logic (no sockets, no clock): every
 * decision is visible here and unit-tested in test/unit/dispatch-*.test.ts. The socket wiring is in
 * ./dispatcher.ts, which implements DispatchSink.
 *
 * Rules (docs/INTERNALS.md):
 * - a message for a connection some worker holds goes to that worker (sticky: order and
 *   per-connection state hold); otherwise to a worker that can start it now (one with a bound on
 *   what it runs at once, e.g. WSGI --threads, that is not full; the most free first), else to one
 *   with waiting room that is making progress (pipelining), else it waits in the master; among
 *   workers without a bound, the one with the most credit;
 * - every forwarded message costs one credit and comes back with a 'D' report;
 * - no credit anywhere → the message waits in the master, in one FIFO per mongrel2 server served
 *   in turn (bounded per server: beyond its share of `maxQueued` the client
 *   gets a 503 and a close);
 * - a disconnect goes to the holder, then the connection is forgotten (once nothing is in flight);
 * - control messages (path `@…`: credits, disconnects; and those the worker reports 'N' for:
 *   WebSocket frames, upload starts) are not requests: they never start a timeout clock, never
 *   get a 50x, never count as a started or ended response; they are never refused, and those for
 *   a connection a draining worker still serves go on reaching it (its stream needs the credits);
 * - once a response has started on a connection, the master never writes a head on it (a 502 or
 *   503 would land inside the body): it closes it instead;
 * - worker gone → each of its connections with a not-yet-started response gets 502 + close,
 *   started ones just a close;
 * - a request whose response has not started within the timeout (its clock runs from when it
 *   became the head of its connection's line) → 504 + close, and the worker is sent a disconnect
 *   for it (it cancels the request as when the client leaves); a response that started is never
 *   timed out. A cancelled request still running CANCEL_GRACE_MS later is reported by stuck()
 *   (the caller replaces that worker gracefully: a WSGI thread cannot be stopped);
 * - while no worker serves (crash loop), messages waiting in the master get a 503 after
 *   NO_WORKER_WAIT_MS (refuseWaiting, asked by the caller).
 */
import { peekConnection, ProtocolError } from '../protocol/index.js';
import { isControlFrame, isDisconnectFrame, timeoutCancelFrame } from './mongrel2-frames.js';
import {
  RECORD_SIZE,
  REPORT_CAPACITY,
  REPORT_CREDIT,
  REPORT_DONE,
  REPORT_DROPPED,
  REPORT_HANDLED,
  REPORT_PAUSE,
  REPORT_STARTED,
  REPORT_WAITING,
} from './worker-stream.js';

/** What the table asks its owner to do. */
export interface DispatchSink {
  /** Send `frame` (from mongrel2 server `server`) to `worker`. */
  forward(worker: WorkerSlot, server: number, frame: Buffer): void;
  /** Tell `worker` nothing more will come (in-band end marker). */
  end(worker: WorkerSlot): void;
  /** Answer a connection ourselves: `status` 502/503/504 then a close, or 0 for just a close. */
  /**
   * Answer a connection ourselves (status 0: just close it). `request` is the message it was
   * answered for, when still held, and `since` when that wait began (ms), for the access log.
   */
  answer(server: number, sender: string, connId: number, status: AnswerStatus, request?: Buffer, since?: number): void;
  /** A frame that could not be peeked; it was dropped. */
  malformed(server: number, frame: Buffer, error: ProtocolError): void;
  /** The wait queue overflowed (the message was answered 503). */
  overflow(queued: number): void;
  /** A retiring worker was sent as much as its bound allows: drain it now (see retire()). */
  retireLimit(worker: WorkerSlot): void;
}

export type AnswerStatus = 0 | 502 | 503 | 504;

/** One worker as the dispatcher sees it. */
export class WorkerSlot {
  /** Credits left: messages it may still be sent. */
  credit = 0;
  /** Messages forwarded and not yet reported done. */
  inFlight = 0;
  /** Messages forwarded in total. */
  forwarded = 0;
  /** Has reported credit at least once (its dispatch connection is up). */
  connected = false;
  /** Draining: the end marker was sent; nothing new goes to it. */
  draining = false;
  /** Retiring (max-requests, reload): new connections go to it only when nobody else can take them. */
  retiring = false;
  /** While retiring: once `forwarded` reaches this, the owner is told to drain it (retireLimit). */
  retireAt = Infinity;
  /**
   * Requests it can run at once ('K' report; Infinity = no bound). A message for a new connection
   * goes to a worker with `inFlight < capacity` first: a full one would make it wait behind the
   * requests it runs while another worker could start it now.
   */
  capacity = Infinity;
  /** Messages it may hold beyond `capacity` ('W' report), sent only when no worker has room. */
  waiting = Infinity;
  /** When it last reported a message done, or became full (ms): a full worker without progress for STALL_MS gets no waiting messages. */
  lastProgress = 0;
  /** Messages for connections it holds, waiting for its credit (or, draining, for it to finish). */
  readonly pending: Queued[] = [];
  /** When a report from it was last read (ms); the arbiter adds its heartbeats. */
  lastReport = 0;
  /**
   * Connections it reported done on lately, with when (two generations of `recentMs` each): their
   * replies may still sit in its ZeroMQ queue should it die or freeze now (see workerGone).
   */
  recentDone = new Map<Conn, number>();
  olderDone = new Map<Conn, number>();
  recentSince = 0;
  constructor(readonly id: number) {}
  get accepting(): boolean {
    return this.connected && !this.draining;
  }
}

/** A client connection some worker holds. */
export interface Conn {
  readonly key: number;
  readonly server: number;
  readonly connId: number;
  readonly sender: string;
  worker: WorkerSlot;
  /** Forwarded, not reported done (requests and control messages). */
  outstanding: number;
  /** Of those, control messages known as such when forwarded (path `@…`). */
  controls: number;
  /** Of the requests, responses started (at most one at a time: a worker serves a connection in order). */
  started: number;
  /** When the first request in flight became the head of this connection's line (ms). */
  since: number;
  /** When the master answered it 504 and sent its worker a cancel (0: never). */
  cancelledAt: number;
  /** stuck() named its worker already. */
  stuckReported: boolean;
  /** Last forward or report (ms), for the idle sweep. */
  lastActive: number;
  /** mongrel2 said the client is gone: forget it once nothing is in flight. */
  released: boolean;
  /** We answered it ourselves (502/504 or a close): nothing more may go to the client. */
  closed: boolean;
  /** Its worker dropped a message of it as malformed ('X'): forget it once settled. */
  dropped: boolean;
  /**
   * The last message forwarded while something is outstanding (a reference, not a copy), so that
   * an answer of our own can be access-logged with its method and path; dropped once settled.
   */
  lastFrame: Buffer | undefined;
}

export interface Queued {
  readonly server: number;
  readonly frame: Buffer;
  readonly key: number;
  readonly sender: string;
  readonly connId: number;
  readonly disconnect: boolean;
  /** A control message (path `@…`, disconnects included): not a request. */
  readonly control: boolean;
  /** When it began to wait in the master's FIFO (ms), for the hold limit (HOLD_MS). */
  queuedAt?: number;
}

export interface DispatchCounters {
  /** Messages from mongrel2. */
  received: number;
  forwarded: number;
  malformed: number;
  /** Disconnects for connections nobody holds (dropped). */
  orphanDisconnects: number;
  answered502: number;
  answered503: number;
  answered504: number;
  /** Closes without a status (started responses whose worker died). */
  closed: number;
  /** Messages that had to wait for credit. */
  queuedTotal: number;
  /** Idle connections forgotten because the table was full (see TableOptions.maxConns). */
  pruned: number;
}

export interface TableOptions {
  /** Messages that may wait for credit in the master before new ones get a 503. */
  maxQueued: number;
  /**
   * mongrel2 servers (default 1): each may have at most maxQueued / servers messages waiting, so
   * one flooding server cannot take the others' room.
   */
  servers?: number;
  /**
   * Connections kept (default 100 000): beyond, idle ones (nothing in flight) are forgotten oldest
   * first, so a server that never sends disconnects cannot grow the table without bound.
   */
  maxConns?: number;
  /** RECENT_MS unless given (tests). */
  recentMs?: number;
  /** STALL_MS unless given (tests). */
  stallMs?: number;
  /** HOLD_MS unless given (tests). */
  holdMs?: number;
}

/**
 * A reply reported done counts as out of the worker's ZeroMQ queue once the worker has been heard
 * from this long after the report (ms): its I/O thread had the time to write it.
 */
export const RECENT_MS = 250;

/**
 * A full worker (inFlight ≥ capacity) that reported nothing done for this long is not sent
 * messages to hold (pipelining) any more: what it runs is slow, and they would wait behind it. (Pipelining
 * only pays for short requests, so a small value costs little.)
 */
export const STALL_MS = 50;

/**
 * A new connection's message waits in the master at most this long for a worker with room: then
 * it goes to a full worker that is making progress anyway. Without this limit, keep-alive
 * connections (which stay with their worker and may exceed its room) would keep a loaded worker
 * full and starve new connections.
 */
export const HOLD_MS = 50;

/**
 * A request the master answered 504 and cancelled (a disconnect to its worker) that is still
 * running this much later cannot be stopped (a WSGI thread): stuck() names its worker. An ASGI task
 * or a JavaScript handler ends at once.
 */
export const CANCEL_GRACE_MS = 2000;

/**
 * While no worker serves (all crashed, backing off), a message waits in the master at most this
 * long, then gets a 503 (refuseWaiting): a client should not sit through a crash loop's backoff.
 */
export const NO_WORKER_WAIT_MS = 3000;

/** Requests in flight on a connection (control messages known as such left out). */
function requestsOf(conn: Conn): number {
  return conn.outstanding - conn.controls;
}

const KEY_SERVER = 4294967296; // 2^32: key = server * 2^32 + connId, exact in a double

export function connKey(server: number, connId: number): number {
  return server * KEY_SERVER + connId;
}

/** A FIFO with O(1) shift, for the wait queue. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  unshiftAll(items: T[]): void {
    this.items = [...items, ...this.items.slice(this.head)];
    this.head = 0;
  }
  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

export class DispatchTable {
  readonly workers = new Map<number, WorkerSlot>();
  readonly conns = new Map<number, Conn>();
  readonly counters: DispatchCounters = {
    received: 0,
    forwarded: 0,
    malformed: 0,
    orphanDisconnects: 0,
    answered502: 0,
    answered503: 0,
    answered504: 0,
    closed: 0,
    queuedTotal: 0,
    pruned: 0,
  };
  /** Per server: messages for nobody in particular waiting for credit. Served in turn (rr). */
  private readonly waiting: Fifo<Queued>[] = [];
  private waitingCount = 0;
  private rr = 0;
  private pendingCount = 0;
  /** Per server: messages waiting (in `waiting` or parked at a worker). */
  private readonly queuedBy: number[] = [];
  private readonly maxQueued: number;
  private readonly perServer: number;
  private readonly maxConns: number;
  private readonly recentMs: number;
  private readonly stallMs: number;
  private readonly holdMs: number;

  constructor(
    private readonly sink: DispatchSink,
    options: TableOptions,
  ) {
    this.maxQueued = options.maxQueued;
    this.perServer = Math.max(1, Math.floor(options.maxQueued / Math.max(1, options.servers ?? 1)));
    this.maxConns = options.maxConns ?? 100_000;
    this.recentMs = options.recentMs ?? RECENT_MS;
    this.stallMs = options.stallMs ?? STALL_MS;
    this.holdMs = options.holdMs ?? HOLD_MS;
  }

  /** Messages waiting in the master (for any worker's credit or a holder's). */
  get queued(): number {
    return this.waitingCount + this.pendingCount;
  }

  get inFlight(): number {
    let n = 0;
    for (const w of this.workers.values()) n += w.inFlight;
    return n;
  }

  addWorker(id: number): WorkerSlot {
    let w = this.workers.get(id);
    if (!w) {
      w = new WorkerSlot(id);
      this.workers.set(id, w);
    }
    return w;
  }

  /** A frame from mongrel2 server `server`. */
  dispatch(server: number, frame: Buffer, now: number): void {
    this.counters.received++;
    let sender: string;
    let connId: number;
    try {
      const peek = peekConnection(frame);
      sender = peek.sender;
      connId = peek.connId;
    } catch (err) {
      this.counters.malformed++;
      if (err instanceof ProtocolError) this.sink.malformed(server, frame, err);
      else throw err;
      return;
    }
    const key = server * KEY_SERVER + connId;
    const control = isControlFrame(frame);
    const disconnect = control && isDisconnectFrame(frame);
    this.route({ server, frame, key, sender, connId, disconnect, control }, now);
  }

  /** `chosen`: the worker the queue's drain just picked for `q` (best() is not asked twice). */
  private route(q: Queued, now: number, fromQueue = false, chosen?: WorkerSlot): void {
    const conn = this.conns.get(q.key);
    if (conn !== undefined) {
      const w = conn.worker;
      if (q.control && w.draining && requestsOf(conn) > 0) {
        // It still serves this connection: a stream needs its credits, a request its client's
        // disconnect. (The end marker went out; the worker still reads control messages.)
        if (q.disconnect) conn.released = true;
        this.send(w, conn, q, now);
        return;
      }
      if (q.disconnect) {
        conn.released = true;
        if (w.draining) {
          // It will not read anything more; its requests on this connection finish on their own.
          if (conn.outstanding === 0) this.forget(conn);
          return;
        }
      }
      if (w.accepting) {
        if (w.credit > 0 && w.pending.length === 0) this.send(w, conn, q, now);
        else this.park(w, q);
        return;
      }
      // Holder is draining.
      if (conn.outstanding > 0) {
        // Keep the order: wait until it has finished this connection, then move the connection.
        this.park(w, q);
        return;
      }
      this.forget(conn);
    } else if (q.disconnect) {
      this.counters.orphanDisconnects++;
      return;
    }
    // Behind messages already waiting for this server: keep their order.
    const fifo = this.waiting[q.server];
    const best =
      chosen ?? (!fromQueue && fifo !== undefined && fifo.length > 0 ? undefined : this.best(now, q.queuedAt === undefined ? 0 : now - q.queuedAt));
    if (best === undefined) {
      if (fromQueue) (this.waiting[q.server] ??= new Fifo<Queued>()).unshiftAll([q]);
      else this.enqueue(q, now);
      if (fromQueue) {
        this.waitingCount++;
        this.counted(q.server, 1);
      }
      return;
    }
    if (this.conns.size >= this.maxConns) this.prune();
    const fresh: Conn = {
      key: q.key,
      server: q.server,
      connId: q.connId,
      sender: q.sender,
      worker: best,
      outstanding: 0,
      controls: 0,
      started: 0,
      since: now,
      cancelledAt: 0,
      stuckReported: false,
      lastActive: now,
      released: false,
      closed: false,
      dropped: false,
      lastFrame: undefined,
    };
    this.conns.set(q.key, fresh);
    this.send(best, fresh, q, now);
  }

  /**
   * Where a message for a new connection goes (undefined: it waits in the master):
   * 1. a worker that can start it now (inFlight < capacity): not retiring first, then the most
   *    room, then the most credit, then the one sent the least so far (idle workers share the load);
   *    workers without a bound (capacity Infinity) are compared by credit alone, as they always were;
   * 2. else a full worker with waiting room ('W') that made progress within stallMs (its requests
   *    are short: pipelining pays): not retiring first, then the most recent progress (a worker
   *    stuck on a slow request falls behind at once), then the fewest in flight, then the least sent;
   *    a message that `waited` holdMs in the master may go beyond the waiting room (keep-alive
   *    connections may fill it for good), still only to a worker making progress;
   * A retiring worker is taken only when no other of its tier can (it keeps the capacity up while
   * its replacement boots).
   */
  private best(now: number, waited = 0): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    let bestRoom = 0;
    let held: WorkerSlot | undefined;
    for (const w of this.workers.values()) {
      if (w.credit <= 0 || !w.accepting || w.pending.length > 0) continue;
      const room = w.capacity - w.inFlight;
      if (room > 0) {
        if (
          best === undefined ||
          (best.retiring && !w.retiring) ||
          (best.retiring === w.retiring &&
            (room > bestRoom ||
              (room === bestRoom && (w.credit > best.credit || (w.credit === best.credit && w.forwarded < best.forwarded)))))
        ) {
          best = w;
          bestRoom = room;
        }
        continue;
      }
      if (best !== undefined || (-room >= w.waiting && waited < this.holdMs) || now - w.lastProgress >= this.stallMs) continue;
      if (
        held === undefined ||
        (held.retiring && !w.retiring) ||
        (held.retiring === w.retiring &&
          (w.lastProgress > held.lastProgress ||
            (w.lastProgress === held.lastProgress &&
              (w.inFlight < held.inFlight || (w.inFlight === held.inFlight && w.forwarded < held.forwarded)))))
      ) {
        held = w;
      }
    }
    return best ?? held;
  }

  private send(w: WorkerSlot, conn: Conn, q: Queued, now: number): void {
    w.credit--;
    w.inFlight++;
    if (w.inFlight === w.capacity) w.lastProgress = now; // became full: judged stalled from now on
    w.forwarded++;
    this.counters.forwarded++;

    if (q.control) conn.controls++;
    else {
      if (requestsOf(conn) === 0) conn.since = now; // becomes the head of the line
      conn.lastFrame = q.frame;
    }
    conn.outstanding++;
    conn.lastActive = now;
    this.sink.forward(w, q.server, q.frame);
    if (w.forwarded === w.retireAt) this.sink.retireLimit(w); // after the forward: it may drain w
  }

  /** No room for one more waiting message from `server` (its share, or the total, is used up). */
  private full(server: number): boolean {
    return (this.queuedBy[server] ?? 0) >= this.perServer || this.queued >= this.maxQueued;
  }

  private counted(server: number, delta: number): void {
    this.queuedBy[server] = (this.queuedBy[server] ?? 0) + delta;
  }

  private park(w: WorkerSlot, q: Queued): void {
    // A control message is never refused (a stream waits for its credits); they are bounded by
    // what the connections they belong to do.
    if (!q.control && this.full(q.server)) {
      this.refuse(q);
      return;
    }
    w.pending.push(q);
    this.pendingCount++;
    this.counted(q.server, 1);
    this.counters.queuedTotal++;
  }

  /** Parked messages leave `w.pending` (the caller removed them). */
  private unparked(items: readonly Queued[]): void {
    this.pendingCount -= items.length;
    for (const q of items) this.counted(q.server, -1);
  }

  private enqueue(q: Queued, now: number): void {
    if (!q.control && this.full(q.server)) {
      this.refuse(q);
      return;
    }
    q.queuedAt = now;
    (this.waiting[q.server] ??= new Fifo<Queued>()).push(q);
    this.waitingCount++;
    this.counted(q.server, 1);
    this.counters.queuedTotal++;
  }

  /**
   * Too many connections: forget idle ones, oldest first (Map order = first seen), down to 90%
   * so this runs once per many new connections. Busy ones stay: they are bounded by credit.
   */
  private prune(): void {
    const target = Math.floor(this.maxConns * 0.9);
    let n = 0;
    for (const conn of this.conns.values()) {
      if (this.conns.size <= target) break;
      if (conn.outstanding === 0) {
        this.forget(conn);
        n++;
      }
    }
    this.counters.pruned += n;
  }

  private refuse(q: Queued): void {
    if (q.control) return;
    this.sink.overflow(this.queued);
    const conn = this.conns.get(q.key);
    if (conn !== undefined && !conn.closed && requestsOf(conn) > 0) {
      // Responses are (or will be) written on it: a 503 head could land inside one. Close it.
      this.close(conn);
      return;
    }
    if (conn?.closed === true) return;
    this.counters.answered503++;
    this.sink.answer(q.server, q.sender, q.connId, 503, q.frame);
  }

  private forget(conn: Conn): void {
    this.conns.delete(conn.key);
  }

  /**
   * A report frame from worker `id` (records of docs/INTERNALS.md). Returns true when the worker
   * asked to pause ('P'); the caller decides (normally: drain it).
   */
  report(id: number, records: Buffer, now: number): boolean {
    const w = this.workers.get(id);
    if (w === undefined) return false;
    let pause = false;
    let credited = false;
    w.lastReport = now;
    if (now - w.recentSince >= this.recentMs) {
      // Older than two windows: the worker has been heard from since, long enough after it.
      const old = w.olderDone;
      w.olderDone = w.recentDone;
      old.clear();
      w.recentDone = old;
      w.recentSince = now;
    }
    const n = records.length - (records.length % RECORD_SIZE);
    for (let o = 0; o < n; o += RECORD_SIZE) {
      const kind = records[o]!;
      const value = records.readUInt32BE(o + 2);
      if (kind === REPORT_DONE) {
        w.credit++;
        w.lastProgress = now;
        if (w.inFlight > 0) w.inFlight--;
        credited = true;
        const conn = this.conns.get(records[o + 1]! * KEY_SERVER + value);
        if (conn !== undefined && conn.worker === w && conn.outstanding > 0) {
          // Requests on a connection end in order: this is the head's.
          if (requestsOf(conn) > 0) {
            if (conn.started > 0) conn.started--;
          } else conn.controls--;
          conn.outstanding--;
          conn.lastActive = now;
          w.recentDone.set(conn, now);
          if (conn.started === 0 && requestsOf(conn) > 0) conn.since = now; // the next one is the head now
          if (conn.outstanding === 0) {
            conn.lastFrame = undefined;
            this.settled(conn, now);
          }
        }
      } else if (kind === REPORT_HANDLED) {
        // A message that was not a request is handled: no response started or ended.
        w.credit++;
        if (w.inFlight > 0) w.inFlight--;
        credited = true;
        const conn = this.conns.get(records[o + 1]! * KEY_SERVER + value);
        if (conn !== undefined && conn.worker === w && conn.outstanding > 0) {
          conn.outstanding--;
          if (conn.controls > 0) conn.controls--;
          // One the table took for a request (a WebSocket frame, an upload start): if it was the
          // head, the next request is the head now.
          else if (conn.started === 0 && requestsOf(conn) > 0) conn.since = now;
          conn.lastActive = now;
          if (conn.outstanding === 0) {
            conn.lastFrame = undefined;
            this.settled(conn, now);
          }
        }
      } else if (kind === REPORT_STARTED) {
        const conn = this.conns.get(records[o + 1]! * KEY_SERVER + value);
        if (conn !== undefined && conn.worker === w && conn.started < requestsOf(conn)) {
          conn.started++;
          conn.lastActive = now;
        }
      } else if (kind === REPORT_DROPPED) {
        const conn = this.conns.get(records[o + 1]! * KEY_SERVER + value);
        if (conn !== undefined && conn.worker === w) conn.dropped = true;
      } else if (kind === REPORT_CREDIT) {
        w.credit += value;
        w.connected = true;
        credited = true;
      } else if (kind === REPORT_PAUSE) {
        pause = true;
      } else if (kind === REPORT_CAPACITY) {
        w.capacity = value > 0 ? value : Infinity;
      } else if (kind === REPORT_WAITING) {
        w.waiting = value;
      }
    }
    if (credited && this.queued > 0) this.pump(now);
    return pause;
  }

  /** A connection has nothing in flight any more. */
  private settled(conn: Conn, now: number): void {
    const w = conn.worker;
    if (conn.released || conn.dropped) {
      this.forget(conn);
      return;
    }
    if (w.draining) {
      this.forget(conn);
      // Messages parked for this connection behind the draining worker can move on now.
      if (w.pending.length > 0) {
        const mine: Queued[] = [];
        const rest: Queued[] = [];
        for (const q of w.pending) (q.key === conn.key ? mine : rest).push(q);
        if (mine.length > 0) {
          w.pending.length = 0;
          w.pending.push(...rest);
          this.unparked(mine);
          for (const q of mine) this.route(q, now);
        }
      }
    }
  }

  /** Send what waits, as far as credit allows. */
  pump(now: number): void {
    for (const w of this.workers.values()) {
      if (!w.accepting) continue;
      while (w.credit > 0 && w.pending.length > 0) {
        const q = w.pending.shift()!;
        this.unparked([q]);
        const conn = this.conns.get(q.key);
        if (conn !== undefined && conn.worker === w) this.send(w, conn, q, now);
        else this.route(q, now);
      }
    }
    // One server's FIFO after the other, so a flooding server cannot make the others wait behind it.
    const n = this.waiting.length;
    for (let empty = 0; this.waitingCount > 0 && empty < n; ) {
      const server = this.rr;
      this.rr = (this.rr + 1) % n;
      const fifo = this.waiting[server];
      if (fifo === undefined || fifo.length === 0) {
        empty++;
        continue;
      }
      const head = fifo.peek()!;
      const best = this.best(now, now - (head.queuedAt ?? now));
      if (best === undefined) return;
      empty = 0;
      const q = fifo.shift()!;
      this.waitingCount--;
      this.counted(server, -1);
      this.route(q, now, true, best);
    }
  }

  /**
   * Worker `id` is to be replaced: new connections prefer other workers from now on. `bound`:
   * messages it may still be sent (sticky connections included) before the owner is told to drain
   * it even though no replacement is ready (max-requests: bounds the overshoot; reload: Infinity).
   */
  retire(id: number, bound = Infinity): void {
    const w = this.workers.get(id);
    if (w === undefined || w.draining) return;
    w.retiring = true;
    w.retireAt = w.forwarded + Math.max(1, bound);
  }

  /** Keep worker `id` after all (its replacement cannot start). */
  unretire(id: number): void {
    const w = this.workers.get(id);
    if (w === undefined) return;
    w.retiring = false;
    w.retireAt = Infinity;
  }

  /**
   * Stop sending to worker `id` (rolling reload, recycling, shutdown, timeout): sends the end
   * marker, releases the connections it holds that have nothing in flight, and re-routes the
   * messages parked for them.
   */
  drain(id: number, now: number): void {
    const w = this.workers.get(id);
    if (w === undefined || w.draining) return;
    w.draining = true;
    this.sink.end(w);
    for (const conn of this.conns.values()) if (conn.worker === w && conn.outstanding === 0) this.forget(conn);
    if (w.pending.length > 0) {
      const keep: Queued[] = [];
      const move: Queued[] = [];
      for (const q of w.pending) {
        const conn = this.conns.get(q.key);
        (conn !== undefined && conn.worker === w ? keep : move).push(q);
      }
      w.pending.length = 0;
      w.pending.push(...keep);
      this.unparked(move);
      for (const q of move) this.route(q, now);
    }
    if (this.queued > 0) this.pump(now);
  }

  /**
   * Worker `id` is gone (exited, killed). Its connections with a response not started get 502 +
   * close; started ones a close; messages parked for it are answered the same way or re-routed.
   *
   * `suspectSince` (ms): after an abrupt death, a response the worker reported done at or after
   * this time may still have been in its own ZeroMQ queue (a report travels faster than a reply
   * through ZeroMQ's I/O thread, and a frozen worker's replies stay there): such connections get a
   * 502 + close too rather than risking a client that waits forever, also when the table let go of
   * them already (drained, timed out). The caller passes "last heard from it − recentMs"; default:
   * never (a drained worker flushed its replies before exiting).
   */
  workerGone(id: number, now: number, suspectSince = Infinity): void {
    const w = this.workers.get(id);
    if (w === undefined) return;
    this.workers.delete(id);
    const answered = new Set<number>();
    for (const conn of this.conns.values()) {
      if (conn.worker !== w) continue;
      this.forget(conn);
      // Nothing a client waits for (control messages only, the client gone), or answered already
      // (504): a recent reply on it is judged below.
      if (requestsOf(conn) === 0 || conn.closed || conn.released) continue;
      answered.add(conn.key);
      if (conn.started > 0) this.close(conn);
      else this.answer502(conn);
    }
    if (suspectSince !== Infinity) {
      for (const done of [w.olderDone, w.recentDone]) {
        for (const [conn, at] of done) {
          if (at < suspectSince || conn.closed || conn.released || answered.has(conn.key)) continue;
          // Moved to another worker since: the client sent more, so it had this reply (or it
          // pipelines, and the other worker's answers are on their way).
          const current = this.conns.get(conn.key);
          if (current !== undefined && current !== conn) continue;
          answered.add(conn.key);
          this.answer502(conn);
        }
      }
    }
    w.olderDone.clear();
    w.recentDone.clear();
    const parked = w.pending.splice(0);
    this.unparked(parked);
    // Control messages go with it: the responses they were about are gone.
    const again = parked.filter((q) => !answered.has(q.key) && !q.control);
    for (const q of again) q.queuedAt ??= now;
    // Back to the front of their server's line, in their order.
    const byServer = new Map<number, Queued[]>();
    for (const q of again) {
      const list = byServer.get(q.server);
      if (list === undefined) byServer.set(q.server, [q]);
      else list.push(q);
    }
    for (const [server, list] of byServer) {
      (this.waiting[server] ??= new Fifo<Queued>()).unshiftAll(list);
      this.waitingCount += list.length;
      this.counted(server, list.length);
    }
    if (this.queued > 0) this.pump(now);
  }

  private answer502(conn: Conn): void {
    conn.closed = true;
    this.counters.answered502++;
    this.sink.answer(conn.server, conn.sender, conn.connId, 502, conn.lastFrame, conn.since);
  }

  private close(conn: Conn): void {
    conn.closed = true;
    this.counters.closed++;
    this.sink.answer(conn.server, conn.sender, conn.connId, 0);
  }

  /**
   * Answer 504 + close to every connection whose head request has not started its response within
   * `timeoutMs` (a response that started is never timed out: it may stream for hours), and send
   * its worker a disconnect for it, which cancels the request there (the worker stays: it serves
   * others). Returns the workers that held them. The connection stays in the table, closed, until
   * the worker reports the request done (see stuck()).
   */
  expire(now: number, timeoutMs: number): Set<number> {
    const culprits = new Set<number>();
    if (timeoutMs <= 0) return culprits;
    for (const conn of this.conns.values()) {
      if (conn.closed || conn.started > 0 || requestsOf(conn) === 0 || now - conn.since < timeoutMs) continue;
      conn.closed = true;
      conn.released = true; // forgotten once the worker is done with it
      conn.cancelledAt = now;
      this.counters.answered504++;
      this.sink.answer(conn.server, conn.sender, conn.connId, 504, conn.lastFrame, conn.since);
      const w = conn.worker;
      culprits.add(w.id);
      if (!w.accepting) continue; // draining: it is stopped anyway
      // Beyond its credit if need be: it handles a disconnect at once and returns the credit ('N').
      w.credit--;
      w.inFlight++;
      conn.outstanding++;
      conn.controls++;
      this.sink.forward(w, conn.server, timeoutCancelFrame(conn.sender, conn.connId));
    }
    return culprits;
  }

  /**
   * Workers with a request cancelled by expire() at least `graceMs` ago that is still running
   * (each named once): it cannot be stopped (a WSGI thread), so the caller replaces the worker
   * gracefully.
   */
  stuck(now: number, graceMs = CANCEL_GRACE_MS): Set<number> {
    const workers = new Set<number>();
    for (const conn of this.conns.values()) {
      if (conn.cancelledAt === 0 || conn.stuckReported || requestsOf(conn) === 0 || now - conn.cancelledAt < graceMs) continue;
      conn.stuckReported = true;
      workers.add(conn.worker.id);
    }
    return workers;
  }

  /** Does any worker take messages? (Draining or not yet connected ones do not.) */
  get serving(): boolean {
    for (const w of this.workers.values()) if (w.accepting) return true;
    return false;
  }

  /**
   * No worker can serve (the caller says so: all crashed, backing off): messages that waited in
   * the master for `maxWaitMs` get a 503 + close. Returns how many.
   */
  refuseWaiting(now: number, maxWaitMs = NO_WORKER_WAIT_MS): number {
    let n = 0;
    for (let server = 0; server < this.waiting.length; server++) {
      const fifo = this.waiting[server];
      if (fifo === undefined || fifo.length === 0) continue;
      const keep: Queued[] = [];
      const refused: Queued[] = [];
      for (let q = fifo.shift(); q !== undefined; q = fifo.shift()) {
        (now - (q.queuedAt ?? now) >= maxWaitMs ? refused : keep).push(q);
      }
      this.waitingCount -= refused.length + keep.length;
      this.counted(server, -(refused.length + keep.length));
      if (keep.length > 0) {
        fifo.unshiftAll(keep);
        this.waitingCount += keep.length;
        this.counted(server, keep.length);
      }
      for (const q of refused) {
        if (q.control) continue;
        n++;
        this.counters.answered503++;
        this.sink.answer(q.server, q.sender, q.connId, 503, q.frame, q.queuedAt);
      }
    }
    return n;
  }

  /** Forget connections idle (nothing in flight) for `idleMs`: their disconnect never came. */
  sweep(now: number, idleMs: number): number {
    let n = 0;
    for (const conn of this.conns.values()) {
      if (conn.outstanding === 0 && now - conn.lastActive >= idleMs) {
        this.forget(conn);
        n++;
      }
    }
    return n;
  }
}
