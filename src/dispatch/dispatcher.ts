/**
 * The master's request hop: PULL from each mongrel2 server, forward raw frames to workers over a
 * unix domain stream socket per worker (listening on a path in a private 0700 folder), read the
 * workers' hello/credit/started/done reports, and publish the master's own answers (502/503/504 +
 * close) on a PUB per server. The decisions are all in ./table.ts; this file is wiring; the byte
 * format is ./worker-stream.ts.
 *
 * Cheap hop: frames are parsed no further than table.dispatch's peek; forwards to one worker
 * during an event-loop turn leave in one write (small frames copied behind their 5-byte headers
 * into one buffer, big ones written as they are); reports arrive many per read. node:net costs no
 * promise and no N-API call per message, which measured cheaper than a ZeroMQ ROUTER/DEALER pair
 * (docs/INTERNALS.md).
 */
import { fchmodSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import { chownAt, chownDir, openChildDir, removeFlatFolderAt, withAnchoredDir, type AnchoredDir } from '../fs/anchored.js';
import { errorResponse } from '../http/error-response.js';
import type { Logger } from '../log/logger.js';
import { ReplySocket } from '../transport/reply-socket.js';
import { openRequestSockets, type RequestSocket } from '../transport/request-socket.js';
import { EndpointMonitor } from '../transport/endpoint-monitor.js';
import { encodeClose, encodeReply, parseMessage, type Mongrel2Message, type ProtocolError } from '../protocol/index.js';
import { accessEntryOf, type AccessLogEntry } from '../log/access-log.js';
import { DispatchTable, type AnswerStatus, type DispatchSink, type WorkerSlot } from './table.js';
import { CONTROL_END, FrameBatch, RECORD_SIZE, REPORT_HELLO, RecordReader } from './worker-stream.js';

export interface DispatcherOptions {
  /** mongrel2 send_specs (we PULL). */
  recv: readonly string[];
  /** mongrel2 recv_specs (we PUB our own answers). */
  send: readonly string[];
  /** App folder: the master's cwd; the dispatch socket path is relative to it. */
  appPath: string;
  /** Value of the X-Wsgid header in our answers. */
  version: string;
  logger: Logger;
  /** Messages that may wait for credit in the master. Default 10 000. */
  maxQueued?: number;
  /** A worker asked to pause ('P' report). */
  onPause?: (workerId: number) => void;
  /** A worker's first credit arrived (it is connected and serving). */
  onConnected?: (workerId: number) => void;
  /** Where the answers the master writes itself (502, 503, 504) are access-logged. */
  accessLog?: (entry: AccessLogEntry) => void;
  /** A retiring worker reached the bound of messages it may still be sent (table.retire). */
  onRetireLimit?: (workerId: number) => void;
}

/** Limit of unix socket paths (sun_path is 108 bytes with the terminating NUL). */
const UNIX_PATH_MAX = 107;

/**
 * A connection must say hello within this long, and this many may wait at once: only root and the
 * app's user can connect (0700 folder), but that user could otherwise hold the master's fds forever.
 * A worker says hello as it connects, before loading the app.
 */
export const HELLO_TIMEOUT_MS = 10_000;
export const MAX_UNIDENTIFIED = 64;

/**
 * The private folder of the dispatch socket, relative to the app folder: `pid/.d<masterpid>`, and
 * the socket path in it. Relative so that workers chrooted into the app folder reach it at the same
 * path, and short whatever the app path (sun_path holds 107 bytes).
 */
export function dispatchEndpoint(masterPid: number): { dir: string; endpoint: string } {
  const dir = path.join('pid', `.d${masterPid}`);
  return { dir, endpoint: path.join(dir, 'w') };
}

/** One worker's connection. */
interface Link {
  readonly socket: Socket;
  /** The worker id from its hello record; -1 until then. */
  id: number;
  /** Forwards gathered this turn. */
  readonly batch: FrameBatch;
  /** In `dirty` (has a batch to write this turn). */
  queued: boolean;
  /** Resolves with the time the connection closed. */
  readonly closed: Promise<number>;
  /** Closes the connection if no hello came in time. */
  helloTimer?: NodeJS.Timeout;
}

export class Dispatcher implements DispatchSink {
  readonly table: DispatchTable;
  /** Path of the unix socket workers connect to, relative to the app folder. */
  readonly endpoint: string;
  /** `.d<masterpid>`, in pid/. */
  private readonly dirName: string;
  /** That folder, open while the server listens in it. */
  private socketDir: AnchoredDir | undefined;
  private readonly server: Server;
  private readonly links = new Map<number, Link>();
  private readonly unidentified = new Set<Link>();
  private pulls: RequestSocket[] = [];
  private readonly pubs: ReplySocket[] = [];
  /** The connection state of the PULL and PUB sockets to mongrel2 (status, start warnings). */
  readonly endpoints: EndpointMonitor;
  private readonly log: Logger;
  private readonly options: DispatcherOptions;
  private closed = false;
  /** Links with a batch to write at the end of this turn. */
  private dirty: Link[] = [];
  private flushScheduled = false;
  private lastOverflowLog = 0;
  private lastMalformedLog = 0;
  private lastRefusedLog = 0;
  private refusedSinceLog = 0;
  private malformedSinceLog = 0;
  private loops: Promise<void>[] = [];
  private lastReceived = 0;

  constructor(options: DispatcherOptions, masterPid = process.pid) {
    this.options = options;
    this.log = options.logger;
    this.table = new DispatchTable(this, { maxQueued: options.maxQueued ?? 10_000, servers: options.recv.length });
    this.endpoints = new EndpointMonitor(options.recv, options.send, options.logger);
    const { dir, endpoint } = dispatchEndpoint(masterPid);
    this.endpoint = endpoint;
    this.dirName = path.basename(dir);
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** Listen (in a fresh 0700 folder), connect to mongrel2, start the receive loops. */
  async start(): Promise<void> {
    if (Buffer.byteLength(this.endpoint) > UNIX_PATH_MAX) throw new Error(`dispatch socket path too long: ${this.endpoint}`);
    // pid/ may be the app user's and we may be root: no symlink is followed, nothing is rm -rf'd,
    // and the folder must be new (fs/anchored.ts, docs/SECURITY.md).
    const dir = withAnchoredDir(this.options.appPath, ['pid'], (pid) => {
      removeFlatFolderAt(pid, this.dirName);
      mkdirSync(pid.at(this.dirName), 0o700);
      return openChildDir(pid, this.dirName);
    }, 0o755);
    try {
      fchmodSync(dir.fd, 0o700);
      // Bound through the open folder when /proc allows it (a swapped pid/ cannot redirect it); the
      // relative endpoint is what workers connect to (the cwd is the app folder).
      const bindPath = dir.viaProc ? dir.at('w') : this.endpoint;
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(bindPath, () => {
          this.server.removeListener('error', reject);
          resolve();
        });
      });
      this.shareWithAppOwner(dir);
    } catch (err) {
      dir.close();
      throw err;
    }
    // Kept open while the server lives: libuv unlinks the bound path when the server closes.
    this.socketDir = dir;
    this.server.on('error', (err) => {
      if (!this.closed) this.log.error('dispatch socket error', { error: err });
    });
    this.pulls = openRequestSockets(this.options.recv, 'drain', this.endpoints);
    this.options.send.forEach((spec, server) => this.pubs.push(new ReplySocket(spec, { monitor: this.endpoints, server })));
    this.loops = this.pulls.map((pull) =>
      pull.run(this.received, (err) => {
        if (!this.closed) this.log.error('mongrel2 receive loop failed', { server: pull.server, error: err });
      }),
    );
  }

  /**
   * Workers may drop privileges to the app folder's owner before connecting: when we run as root,
   * hand them the private folder and the socket (still 0700: nobody else gets in).
   */
  private shareWithAppOwner(dir: AnchoredDir): void {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
    try {
      const { uid, gid } = statSync(this.options.appPath);
      if (uid === 0) return;
      chownDir(dir, uid, gid);
      chownAt(dir, 'w', uid, gid);
    } catch (err) {
      this.log.warn('could not hand the dispatch socket to the app owner', { error: err });
    }
  }

  /** A frame from mongrel2 server `server`; a burst is dispatched within one turn (flushNow). */
  private readonly received = (frame: Buffer, server: number): void => {
    const now = Date.now();
    this.lastReceived = now;
    this.table.dispatch(server, frame, now);
  };

  /** A worker connected: its first record must be a hello naming a worker we spawned. */
  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    let close!: (at: number) => void;
    const link: Link = {
      socket,
      id: -1,
      batch: new FrameBatch(),
      queued: false,
      closed: new Promise<number>((resolve) => (close = resolve)),
    };
    if (this.unidentified.size >= MAX_UNIDENTIFIED) {
      this.refuseConnection(`more than ${MAX_UNIDENTIFIED} connections without hello`);
      socket.destroy();
      return;
    }
    link.helloTimer = setTimeout(() => {
      this.refuseConnection(`no hello within ${HELLO_TIMEOUT_MS / 1000} s`);
      socket.destroy();
    }, HELLO_TIMEOUT_MS);
    link.helloTimer.unref();
    this.unidentified.add(link);
    const reader = new RecordReader((records) => this.onRecords(link, records));
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', (err) => {
      // EPIPE/ECONNRESET: the worker died; its in-flight entries are answered when it is reaped.
      if (!this.closed) this.log.debug('worker connection error', { worker: link.id, error: String(err) });
    });
    socket.on('close', () => {
      clearTimeout(link.helloTimer);
      this.unidentified.delete(link);
      if (link.id >= 0 && this.links.get(link.id) === link) this.links.delete(link.id);
      close(Date.now());
    });
  }

  /** A dispatch connection closed before its hello: logged at most once a second, with a count. */
  private refuseConnection(why: string): void {
    this.refusedSinceLog++;
    const now = Date.now();
    if (now - this.lastRefusedLog < 1000) return;
    this.lastRefusedLog = now;
    this.log.warn('closed a dispatch connection without hello', { reason: why, count: this.refusedSinceLog });
    this.refusedSinceLog = 0;
  }

  private onRecords(link: Link, records: Buffer): void {
    if (link.id < 0) {
      if (records[0] !== REPORT_HELLO || records[1] !== 0) {
        this.log.warn('dropped a dispatch connection without hello');
        link.socket.destroy();
        return;
      }
      const id = records.readUInt32BE(2);
      if (!this.table.workers.has(id) || this.links.has(id)) {
        this.log.warn('dropped a dispatch connection for an unknown worker', { worker: id });
        link.socket.destroy();
        return;
      }
      link.id = id;
      clearTimeout(link.helloTimer);
      this.unidentified.delete(link);
      this.links.set(id, link);
      if (records.length === RECORD_SIZE) return;
      records = records.subarray(RECORD_SIZE);
    }
    const slot = this.table.workers.get(link.id);
    if (slot === undefined) return; // a worker we already buried
    const wasConnected = slot.connected;
    const pause = this.table.report(link.id, records, Date.now());
    if (!wasConnected && slot.connected) this.options.onConnected?.(link.id);
    if (pause) this.options.onPause?.(link.id);
  }

  /**
   * Resolves, with the time it closed, when worker `id`'s connection has closed (at once when it
   * has none), or after `timeoutMs`. The master waits for this after a worker exits: every report
   * the worker wrote before exiting is read first, so nothing it finished is answered 502.
   */
  unlinked(id: number, timeoutMs: number): Promise<number> {
    const link = this.links.get(id);
    if (link === undefined) return Promise.resolve(Date.now());
    return new Promise<number>((resolve) => {
      const timer = setTimeout(() => resolve(Date.now()), timeoutMs);
      void link.closed.then((at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  // ---- DispatchSink ----

  forward(worker: WorkerSlot, server: number, frame: Buffer): void {
    const link = this.links.get(worker.id);
    // No connection: the worker is gone; its in-flight entries are answered when it is reaped.
    if (link === undefined) return;
    link.batch.push(server, frame);
    this.markDirty(link);
  }

  end(worker: WorkerSlot): void {
    const link = this.links.get(worker.id);
    if (link === undefined) return;
    link.batch.control(CONTROL_END);
    this.markDirty(link);
  }

  /**
   * Write at the end of this event-loop turn: the receive loop dispatches every message already
   * waiting on the PULL sockets first, so one write carries all of them per worker.
   */
  private markDirty(link: Link): void {
    if (!link.queued) {
      link.queued = true;
      this.dirty.push(link);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
  }

  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (const link of dirty) {
      link.queued = false;
      if (this.closed || link.socket.destroyed) continue;
      const chunks = link.batch.take();
      // Within credit: what the kernel does not take now waits in the socket's buffer.
      if (chunks.length === 1) link.socket.write(chunks[0]!);
      else {
        link.socket.cork();
        for (const c of chunks) link.socket.write(c);
        link.socket.uncork();
      }
    }
  };

  answer(server: number, sender: string, connId: number, status: AnswerStatus, request?: Buffer, since?: number): void {
    const pub = this.pubs[server];
    if (pub === undefined) return;
    let message: Mongrel2Message | undefined;
    if (status !== 0 && request !== undefined) {
      try {
        message = parseMessage(request);
      } catch {
        // Logged as "-": it was forwarded, so it peeked fine; the rest is the worker's business.
      }
    }
    try {
      if (status !== 0) {
        const response = errorResponse(status, this.options.version, { method: firstValue(message?.headers['METHOD']) });
        pub.send(encodeReply(sender, connId, response));
        const bodyBytes = response.length - (response.indexOf('\r\n\r\n') + 4);
        this.options.accessLog?.(accessEntryOf(message, status, bodyBytes, since === undefined ? 0 : Date.now() - since));
      }
      pub.send(encodeClose(sender, connId));
    } catch (err) {
      this.log.error('could not encode an answer', { status, connId, error: err });
    }
    if (status !== 0) this.log.warn(`answered ${status}`, { server, conn: connId, request: message?.headers['URI'] });
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

  retireLimit(worker: WorkerSlot): void {
    this.options.onRetireLimit?.(worker.id);
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
    this.endpoints.close();
    for (const pull of this.pulls) pull.close();
    await Promise.all(this.pubs.map((pub) => pub.close()));
    for (const link of [...this.links.values(), ...this.unidentified]) link.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.socketDir?.close();
    this.socketDir = undefined;
    await Promise.allSettled(this.loops);
    try {
      withAnchoredDir(this.options.appPath, ['pid'], (pid) => removeFlatFolderAt(pid, this.dirName));
    } catch (err) {
      this.log.warn('could not remove the dispatch socket folder', { error: err });
    }
  }

  /**
   * Shutdown, step 1: disconnect from mongrel2 so it stops pushing to us (it holds new requests
   * until a handler connects), then keep forwarding what already reached our side until it has
   * been quiet for `quietMs` (at most `maxMs`).
   */
  async stopReceiving(quietMs = 150, maxMs = 1500): Promise<void> {
    this.endpoints.silence();
    for (const pull of this.pulls) pull.disconnect();
    const deadline = Date.now() + maxMs;
    this.lastReceived = Date.now();
    while (Date.now() < deadline && Date.now() - this.lastReceived < quietMs) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
