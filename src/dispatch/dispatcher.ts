/**
 * The master's request hop: PULL from each mongrel2 server, forward raw frames to workers over a
 * ROUTER bound on a private ipc endpoint, read the workers' credit/started/done reports, and
 * publish the master's own answers (502/503/504 + close) on a PUB per server. The decisions are
 * all in ./table.ts; this file is wiring.
 *
 * Cheap hop: frames are never copied or parsed beyond table.dispatch's peek; forwards to one
 * worker that pile up while a ROUTER send is in progress leave together as one multipart message
 * (`R s, raw, R s, raw, ...`), so under load the master does one send per batch, not per request.
 */
import { chmodSync, chownSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Pull, Router } from 'zeromq';
import type { Logger } from '../log/logger.js';
import { ReplySocket } from '../transport/reply-socket.js';
import { encodeClose, encodeReply, type ProtocolError } from '../protocol/index.js';
import { DispatchTable, type AnswerStatus, type DispatchSink, type WorkerSlot } from './table.js';
import { END_PART, requestHeader, routingIdOf, workerIdOfRouting } from './wire.js';

export interface DispatcherOptions {
  /** mongrel2 send_specs (we PULL). */
  recv: readonly string[];
  /** mongrel2 recv_specs (we PUB our own answers). */
  send: readonly string[];
  /** App folder: the master's cwd; the ipc endpoint is relative to it. */
  appPath: string;
  /** Value of the X-Wsgid header in our answers. */
  version: string;
  logger: Logger;
  /** Messages that may wait for credit in the master. Default 10 000. */
  maxQueued?: number;
  /** A worker asked to pause ('P' report). */
  onPause?: (workerId: number) => void;
  /** A worker's first credit arrived (its DEALER is connected). */
  onConnected?: (workerId: number) => void;
}

/** Limit of unix socket paths (sun_path is 108 bytes with the terminating NUL). */
const UNIX_PATH_MAX = 107;

const REASONS: Record<number, string> = { 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };
const BODIES: Record<number, string> = {
  502: 'Bad Gateway: the worker serving this request stopped before answering.\n',
  503: 'Service Unavailable: too many requests are waiting for a worker.\n',
  504: 'Gateway Timeout: the request was not answered in time.\n',
};

/** A complete small HTTP/1.1 response (framed with Content-Length, closing the connection). */
export function errorResponse(status: 502 | 503 | 504, version: string, date = new Date()): string {
  const body = BODIES[status]!;
  return (
    `HTTP/1.1 ${status} ${REASONS[status]}\r\n` +
    `Date: ${date.toUTCString()}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: close\r\n` +
    `X-Wsgid: ${version}\r\n` +
    `\r\n` +
    body
  );
}

/**
 * The private folder of the ipc endpoint, relative to the app folder: `pid/.d<masterpid>`.
 * Relative so that workers chrooted into the app folder reach it at the same path.
 */
export function dispatchEndpoint(masterPid: number): { dir: string; endpoint: string } {
  const dir = path.join('pid', `.d${masterPid}`);
  return { dir, endpoint: `ipc://${dir}/router` };
}

export class Dispatcher implements DispatchSink {
  readonly table: DispatchTable;
  readonly endpoint: string;
  private readonly dirAbs: string;
  private readonly router: Router;
  private readonly pulls: Pull[] = [];
  private readonly pubs: ReplySocket[] = [];
  private readonly log: Logger;
  private readonly options: DispatcherOptions;
  private closed = false;
  // Router send queue: forwards batched per worker while a send is in progress.
  private readonly outbox = new Map<number, Buffer[]>();
  private sending = false;
  private flushScheduled = false;
  private lastOverflowLog = 0;
  private lastMalformedLog = 0;
  private malformedSinceLog = 0;
  private loops: Promise<void>[] = [];
  private lastReceived = 0;

  constructor(options: DispatcherOptions, masterPid = process.pid) {
    this.options = options;
    this.log = options.logger;
    this.table = new DispatchTable(this, { maxQueued: options.maxQueued ?? 10_000 });
    const { dir, endpoint } = dispatchEndpoint(masterPid);
    this.endpoint = endpoint;
    this.dirAbs = path.join(options.appPath, dir);
    this.router = new Router({ mandatory: true, sendHighWaterMark: 0, receiveHighWaterMark: 0, linger: 0 });
  }

  /** Bind the ROUTER (in a fresh 0700 folder), connect to mongrel2, start the receive loops. */
  async start(): Promise<void> {
    const { dir } = dispatchEndpoint(process.pid);
    if (Buffer.byteLength(dir) + 8 > UNIX_PATH_MAX) throw new Error(`ipc path too long: ${dir}`);
    rmSync(this.dirAbs, { recursive: true, force: true });
    mkdirSync(path.dirname(this.dirAbs), { recursive: true });
    mkdirSync(this.dirAbs, { mode: 0o700 });
    chmodSync(this.dirAbs, 0o700);
    // Relative to the cwd, which runMaster sets to the app folder.
    await this.router.bind(this.endpoint);
    this.shareWithAppOwner();
    for (let i = 0; i < this.options.recv.length; i++) {
      const pull = new Pull({ receiveHighWaterMark: 0, linger: 0 });
      pull.connect(this.options.recv[i]!);
      this.pulls.push(pull);
    }
    for (const spec of this.options.send) this.pubs.push(new ReplySocket(spec));
    this.loops = [this.reportLoop(), ...this.pulls.map((pull, i) => this.pullLoop(pull, i))];
  }

  /**
   * Workers may drop privileges to the app folder's owner before connecting: when we run as root,
   * hand them the private folder and the socket (still 0700: nobody else gets in).
   */
  private shareWithAppOwner(): void {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
    try {
      const { uid, gid } = statSync(this.options.appPath);
      if (uid === 0) return;
      chownSync(this.dirAbs, uid, gid);
      chownSync(path.join(this.dirAbs, 'router'), uid, gid);
    } catch (err) {
      this.log.warn('could not hand the dispatch socket to the app owner', { error: err });
    }
  }

  private async pullLoop(pull: Pull, server: number): Promise<void> {
    const table = this.table;
    try {
      for (;;) {
        const [frame] = await pull.receive();
        const now = Date.now();
        this.lastReceived = now;
        if (frame !== undefined) table.dispatch(server, frame, now);
      }
    } catch (err) {
      if (!this.closed) this.log.error('mongrel2 receive loop failed', { server, error: err });
    }
  }

  private async reportLoop(): Promise<void> {
    const table = this.table;
    try {
      for (;;) {
        const [identity, records] = await this.router.receive();
        if (identity === undefined || records === undefined) continue;
        const id = workerIdOfRouting(identity);
        if (id < 0) continue;
        const slot = table.workers.get(id);
        if (slot === undefined) continue; // a worker we already buried
        const wasConnected = slot.connected;
        const pause = table.report(id, records, Date.now());
        if (!wasConnected && slot.connected) this.options.onConnected?.(id);
        if (pause) this.options.onPause?.(id);
      }
    } catch (err) {
      if (!this.closed) this.log.error('worker report loop failed', { error: err });
    }
  }

  // ---- DispatchSink ----

  forward(worker: WorkerSlot, server: number, frame: Buffer): void {
    let parts = this.outbox.get(worker.id);
    if (parts === undefined) {
      parts = [];
      this.outbox.set(worker.id, parts);
    }
    parts.push(requestHeader(server), frame);
    this.scheduleFlush();
  }

  /**
   * Send at the end of this event-loop turn: the receive loop drains every message already
   * waiting on the PULL sockets first (each receive() of an available message resolves at once),
   * so one ROUTER send carries all of them per worker. Measured: sending each message on its own
   * spent most of the master's time in the native send.
   */
  private scheduleFlush(): void {
    if (this.sending || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushNow);
  }

  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  end(worker: WorkerSlot): void {
    let parts = this.outbox.get(worker.id);
    if (parts === undefined) {
      parts = [];
      this.outbox.set(worker.id, parts);
    }
    parts.push(END_PART);
    this.scheduleFlush();
  }

  private flush(): void {
    if (this.closed) return;
    const next = this.outbox.entries().next();
    if (next.done) {
      this.sending = false;
      return;
    }
    const [id, parts] = next.value;
    this.outbox.delete(id);
    this.sending = true;
    this.router.send([routingIdOf(id), ...parts]).then(
      () => this.flush(),
      (err: unknown) => {
        // EHOSTUNREACH: the worker is gone or not connected; its in-flight entries are answered
        // when the master reaps it.
        if (!this.closed) this.log.warn('could not forward to worker', { worker: id, messages: parts.length >> 1, error: String(err) });
        this.flush();
      },
    );
  }

  answer(server: number, sender: string, connId: number, status: AnswerStatus): void {
    const pub = this.pubs[server];
    if (pub === undefined) return;
    try {
      if (status !== 0) pub.send(encodeReply(sender, connId, errorResponse(status, this.options.version)));
      pub.send(encodeClose(sender, connId));
    } catch (err) {
      this.log.error('could not encode an answer', { status, connId, error: err });
    }
    if (status !== 0) this.log.warn(`answered ${status}`, { server, conn: connId });
  }

  malformed(server: number, frame: Buffer, error: ProtocolError): void {
    this.malformedSinceLog++;
    const now = Date.now();
    if (now - this.lastMalformedLog < 1000) return;
    this.lastMalformedLog = now;
    this.log.warn('dropped malformed message from mongrel2', {
      server,
      code: error.code,
      error: error.message,
      bytes: frame.length,
      count: this.malformedSinceLog,
    });
    this.malformedSinceLog = 0;
  }

  overflow(queued: number): void {
    const now = Date.now();
    if (now - this.lastOverflowLog < 1000) return;
    this.lastOverflowLog = now;
    this.log.warn('too many requests waiting for a worker: answering 503', { queued });
  }

  /** Close every socket and remove the private folder. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const pull of this.pulls) pull.close();
    await Promise.all(this.pubs.map((pub) => pub.close()));
    this.router.close();
    await Promise.allSettled(this.loops);
    rmSync(this.dirAbs, { recursive: true, force: true });
  }

  /**
   * Shutdown, step 1: disconnect from mongrel2 so it stops pushing to us (it holds new requests
   * until a handler connects), then keep forwarding what already reached our side until it has
   * been quiet for `quietMs` (at most `maxMs`).
   */
  async stopReceiving(quietMs = 150, maxMs = 1500): Promise<void> {
    for (let i = 0; i < this.pulls.length; i++) {
      try {
        this.pulls[i]!.disconnect(this.options.recv[i]!);
      } catch {
        /* already disconnected */
      }
    }
    const deadline = Date.now() + maxMs;
    this.lastReceived = Date.now();
    while (Date.now() < deadline && Date.now() - this.lastReceived < quietMs) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}
