/**
 * The request loop of a worker: frames in (from a RequestSource), gateway calls, replies out.
 *
 * Per connection, requests are served one at a time in arrival order, so pipelined requests get
 * their responses in order (mongrel2 dispatches a pipelining client's requests before we answer).
 * Every delivered message is reported back to the source when it is fully handled; for the master
 * that is the credit and in-flight bookkeeping (docs/INTERNALS.md).
 */
import { constants as fsConstants } from 'node:fs';
import { access, lstat, realpath, truncate, unlink } from 'node:fs/promises';
import path from 'node:path';
import { encodeBroadcast, encodeClose, encodeReply, parseMessage, peekConnection, ProtocolError } from '../protocol/index.js';
import type { Mongrel2Message } from '../protocol/index.js';
import { chunkPrefix, CHUNK_SUFFIX, requestKeepAlive } from '../http/head.js';
import { errorResponse } from '../http/error-response.js';
import { VERSION } from '../version.js';
import { installBroadcaster, type BroadcastOptions, type Broadcaster } from '../broadcast.js';
import type { Gateway, GatewayRequest } from '../gateways/types.js';
import type { Logger } from '../log/logger.js';
import { LogRateLimit } from '../log/rate-limit.js';
import type { Settings } from '../config/settings.js';
import { openReplySockets, type ReplySocket } from '../transport/reply-socket.js';
import { ConnectionReply, UNPACED_WARN_BYTES, type ReplyHooks } from './reply.js';
import { ConnectionFlow } from './flow.js';
import type { RequestSource } from './source.js';
import { WebSocketConnections } from './websocket.js';

/** One finished request, for the access log. */
export interface CompletedRequest {
  readonly message: Mongrel2Message;
  readonly status: number;
  /** Body bytes sent, the head not counted (the access log's %b). */
  readonly bytes: number;
  readonly durationMs: number;
}

export interface WorkerOptions {
  settings: Pick<Settings, 'send' | 'mongrel2Chroot' | 'pingMs'>;
  logger: Logger;
  gateway: Gateway;
  source: RequestSource;
  /** Called after each request (access log); keep it cheap. */
  onComplete?: (request: CompletedRequest) => void;
  /**
   * While a response is open and nothing was sent for this long, send mongrel2's keep-alive
   * control message so its idle killer spares long polls and quiet event streams (WebSockets get
   * a ping). Default: settings.pingMs (--ping-ms). 0 disables.
   */
  keepAliveMs?: number;
}

export interface Worker {
  /** Requests answered so far. */
  readonly served: number;
  /** Requests delivered and not yet finished. */
  readonly inFlight: number;
  /** The reply socket for mongrel2 server `server` (for gateways that write outside a request). */
  replySocket(server: number): ReplySocket;
  /**
   * Stop taking messages and wait for in-flight requests to finish. After `graceMs` (default: no
   * limit) the requests still running are cut off: their connections are closed and their
   * `signal`s aborted, so an endless event stream cannot hold a stopping worker forever.
   */
  drain(graceMs?: number): Promise<void>;
  /** drain(graceMs), then release sockets and the gateway. */
  close(graceMs?: number): Promise<void>;
}

/** One request being served; the GatewayRequest handed to the gateway. */
class ActiveRequest implements GatewayRequest {
  readonly startedAt = performance.now();
  private controller: AbortController | undefined;
  private abortReason: unknown;
  settled = false;

  constructor(
    readonly message: Mongrel2Message,
    readonly bodyFile: string | undefined,
    readonly reply: ConnectionReply,
    readonly server: number,
    private readonly broadcaster: Broadcaster,
  ) {}

  broadcast(connIds: readonly number[], data: Uint8Array | string, options?: BroadcastOptions): number {
    return this.broadcaster.broadcast(connIds, data, { server: this.server, ...options });
  }

  /** Created on first use: most apps never look at it (Hono's lazy AbortController). */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.abortReason !== undefined && !this.controller.signal.aborted) this.controller.abort(this.abortReason);
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.reply.clientGone();
    this.controller?.abort(reason);
  }
}

/** A message waiting its turn on a connection; `bodyError` = an upload the worker cannot read (→ 500). */
interface Queued {
  message: Mongrel2Message;
  bodyFile: string | undefined;
  bodyError?: string;
}

interface Connection {
  active: ActiveRequest | undefined;
  queue: Queued[];
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value;
}

/**
 * Could this message be mongrel2's own upload-start/done rather than a client's forgery? Client
 * header names are lowercased like mongrel2's upload headers, so a small request can carry them.
 * A real one has an empty body and went the upload path: content-length over the inline limit
 * (so > 0), or a chunked body; and its path header is single (a client copy would make it a list).
 */
function plausibleUpload(message: Mongrel2Message, header: string): string | undefined {
  const value = message.headers[header];
  if (typeof value !== 'string' || value === '' || message.body.length !== 0) return undefined;
  const length = firstHeader(message.headers['content-length']);
  const chunked = /chunked/i.test(String(message.headers['transfer-encoding'] ?? ''));
  if (!chunked && !(length !== undefined && /^\d+$/.test(length) && Number(length) > 0)) return undefined;
  return value;
}

/** A connection is keyed by mongrel2 server index and connection id, as one number. */
const connectionKey = (server: number, connId: number): number => server * 0x1_0000_0000 + connId;

export function startWorker(options: WorkerOptions): Worker {
  const { logger, gateway, source } = options;
  const sockets = openReplySockets(options.settings.send);
  const keepAliveMs = options.keepAliveMs ?? options.settings.pingMs;
  const websockets = new WebSocketConnections({ logger, sockets, keepAliveMs });
  const mongrel2Chroot = path.resolve(options.settings.mongrel2Chroot || '/');
  const connections = new Map<number, Connection>();
  /** Download-credit state per connection (download.flow_control=1), kept until the disconnect. */
  const flows = new Map<number, ConnectionFlow>();
  /** Upload files being written by mongrel2 (upload-start seen, done not yet), to unlink on disconnect. */
  const uploads = new Map<number, string>();
  /** The sender (send_ident) last seen per server: multi-id replies are addressed with it. */
  const senders: string[] = [];
  let served = 0;
  let inFlight = 0;
  const malformedLog = new LogRateLimit();
  let draining: { promise: Promise<void>; resolve: () => void } | undefined;

  let unpacedWarned = false;
  const hooks: ReplyHooks = {
    onStart: (reply) => source.started(reply.server, reply.connId),
    onUnpaced: (reply) => {
      if (unpacedWarned) return;
      unpacedWarned = true;
      logger.warn(
        `a response passed ${UNPACED_WARN_BYTES >> 20} MB without mongrel2's download credits: what its client has not read yet is ` +
          'held by mongrel2 (and briefly by this worker) in memory; set download.flow_control=1 in mongrel2 to pace it (docs/MONGREL2.md)',
        { conn: reply.connId },
      );
    },
  };

  function deliver(frame: Buffer, server: number): void {
    inFlight++;
    let message: Mongrel2Message;
    try {
      message = parseMessage(frame);
    } catch (error) {
      dropMalformed(frame, server, error);
      return;
    }
    switch (message.kind) {
      case 'request':
        return enqueue(message, undefined, server);
      case 'upload-done':
        return void uploadDone(message, server);
      case 'upload-start':
        // Never answered: any reply now would cancel the upload.
        return uploadStart(message, server);
      case 'credits': {
        const credits = Number(firstHeader(message.headers['DOWNLOAD_CREDITS']));
        flows.get(connectionKey(server, message.connId))?.grant(credits);
        return messageDone(server, message.connId);
      }
      case 'websocket-handshake':
        // Served like a request (the gateway answers 101 or refuses); frames then go to websockets.
        return enqueue(message, undefined, server);
      case 'websocket-frame':
        websockets.frame(message, server);
        return messageDone(server, message.connId);
      case 'disconnect':
        websockets.disconnect(server, message.connId);
        disconnect(server, message.connId);
        return messageDone(server, message.connId);
      case 'upload-stream':
        refuseStreamingUpload(message, server);
        return messageDone(server, message.connId);
      default:
        // JSON and XML socket messages: no HTTP client is waiting for an answer.
        logger.debug('ignored mongrel2 message', { kind: message.kind, conn: message.connId });
        return messageDone(server, message.connId);
    }
  }

  function dropMalformed(frame: Buffer, server: number, error: unknown): void {
    // Rate-limited: a broken or hostile mongrel2 can send these at any rate.
    const count = malformedLog.hit(Date.now());
    if (count !== undefined) {
      const reason = error instanceof ProtocolError ? `${error.code}: ${error.message}` : String(error);
      logger.warn('dropped a malformed message from mongrel2', {
        server: options.settings.send[server],
        reason,
        bytes: frame.length,
        start: frame.subarray(0, 80).toString('latin1'), // the logger escapes control bytes
        count,
      });
    }
    let connId = 0;
    try {
      connId = peekConnection(frame).connId;
    } catch {
      // Not even the connection id is readable; the credit still goes back.
    }
    messageDone(server, connId);
  }

  function messageDone(server: number, connId: number): void {
    inFlight--;
    source.finished(server, connId);
    if (draining && inFlight === 0) draining.resolve();
  }

  /**
   * A path mongrel2 reported, as the file on our side: resolved under --mongrel2-chroot ('..' cannot
   * climb out: the path is normalised from the root first). undefined = outside the chroot.
   */
  function uploadPath(reported: string): string | undefined {
    const file = path.resolve(mongrel2Chroot, '.' + path.posix.normalize('/' + reported));
    return file.startsWith(mongrel2Chroot === '/' ? '/' : mongrel2Chroot + path.sep) ? file : undefined;
  }

  /** Async upload began (protocol notes §4): remember the file so a disconnect can remove it. */
  function uploadStart(message: Mongrel2Message, server: number): void {
    const reported = plausibleUpload(message, 'x-mongrel2-upload-start');
    if (reported === undefined) {
      // The client sent the header itself on an ordinary request: serve it as one.
      logger.warn('an upload-start header mongrel2 cannot have sent: serving an ordinary request', {
        conn: message.connId,
        start: message.headers['x-mongrel2-upload-start'],
      });
      return enqueue(message, undefined, server);
    }
    const file = uploadPath(reported);
    if (file === undefined) {
      logger.warn('ignored an upload-start outside the mongrel2 chroot', { conn: message.connId, start: reported });
      return messageDone(server, message.connId);
    }
    noteCredits(message, server);
    uploads.set(connectionKey(server, message.connId), file);
    logger.debug('upload started', { conn: message.connId, file });
    messageDone(server, message.connId);
  }

  /**
   * Async upload finished: the same headers plus x-mongrel2-upload-done (== start). The file must be
   * inside the mongrel2 chroot also after symlinks are resolved, a regular file, and readable by this
   * worker (mongrel2 writes it 0600 as its own user): otherwise the client gets a 500, the log says
   * why, and the app is never called.
   */
  async function uploadDone(message: Mongrel2Message, server: number): Promise<void> {
    const key = connectionKey(server, message.connId);
    const start = message.headers['x-mongrel2-upload-start'];
    const done = plausibleUpload(message, 'x-mongrel2-upload-done');
    if (done === undefined) {
      logger.warn('an upload-done header mongrel2 cannot have sent: serving an ordinary request', {
        conn: message.connId,
        done: message.headers['x-mongrel2-upload-done'],
      });
      return enqueue(message, undefined, server);
    }
    const expected = uploads.get(key);
    const file = start !== done ? undefined : uploadPath(done);
    if (file === undefined || (expected !== undefined && expected !== file)) {
      // A client forged the header (mongrel2 sends done == start), or the upload-start message
      // carried a forged done: answer, or nothing ever would (this also cancels the upload).
      logger.warn('refused an upload-done message that does not match its upload-start: answering 400', {
        conn: message.connId,
        start,
        done: message.headers['x-mongrel2-upload-done'],
      });
      uploads.delete(key);
      refuse(message, server, 400, 'The request carries an upload header only mongrel2 may set.\n');
      return messageDone(server, message.connId);
    }
    uploads.delete(key);
    let bodyError: string | undefined;
    try {
      const info = await lstat(file);
      if (!info.isFile()) bodyError = 'not a regular file';
      else {
        const [real, root] = await Promise.all([realpath(file), realpath(mongrel2Chroot)]);
        if (!(root === '/' || real.startsWith(root + path.sep))) bodyError = `it resolves to ${real}, outside the mongrel2 chroot`;
        else {
          await access(file, fsConstants.R_OK);
          await trimToContentLength(file, info.size, message);
        }
      }
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      bodyError =
        e.code === 'EACCES' || e.code === 'EPERM'
          ? `permission denied (${e.message}; worker uid ${process.getuid?.() ?? '?'}; mongrel2 writes uploads ` +
            'with upload.temp_store_mode, 0600 by default, as its own user: run wsgid as that user or change the mode)'
          : e.code === 'ENOENT'
            ? `no such file (${e.message}; is --mongrel2-chroot right?)`
            : e.message;
    }
    if (bodyError !== undefined) {
      logger.error('cannot read the upload file: answering 500', { conn: message.connId, file, reason: bodyError });
    }
    noteCredits(message, server);
    enqueue(message, file, server, bodyError);
  }

  /**
   * mongrel2 1.12 appends the bytes of requests pipelined behind an upload to the upload file (and
   * never serves those requests): the body is Content-Length bytes, so cut the file there. A chunked
   * upload has no length to cut at.
   */
  async function trimToContentLength(file: string, size: number, message: Mongrel2Message): Promise<void> {
    const declared = Number(firstHeader(message.headers['content-length']));
    if (!Number.isSafeInteger(declared) || declared < 0 || size <= declared) return;
    logger.warn('the upload file is longer than Content-Length (mongrel2 wrote pipelined bytes into it): cutting it', {
      conn: message.connId,
      contentLength: declared,
      fileSize: size,
    });
    await truncate(file, declared);
  }

  /** The first request on a connection carries the initial download credit when flow control is on. */
  function noteCredits(message: Mongrel2Message, server: number): void {
    const initial = firstHeader(message.headers['DOWNLOAD_CREDITS']);
    if (initial === undefined) return;
    const key = connectionKey(server, message.connId);
    if (flows.has(key)) return;
    const credits = Number(initial);
    if (!Number.isSafeInteger(credits) || credits <= 0) return;
    flows.set(key, new ConnectionFlow(sockets[server]!, message.sender, message.connId, credits));
  }

  function enqueue(message: Mongrel2Message, bodyFile: string | undefined, server: number, bodyError?: string): void {
    senders[server] = message.sender;
    if (bodyFile === undefined) noteCredits(message, server);
    const key = connectionKey(server, message.connId);
    let connection = connections.get(key);
    if (connection === undefined) {
      connection = { active: undefined, queue: [] };
      connections.set(key, connection);
    }
    if (connection.active !== undefined) {
      connection.queue.push(bodyError === undefined ? { message, bodyFile } : { message, bodyFile, bodyError });
      return;
    }
    serve(connection, message, bodyFile, server, bodyError);
  }

  function serve(
    connection: Connection,
    message: Mongrel2Message,
    bodyFile: string | undefined,
    server: number,
    bodyError?: string,
  ): void {
    const headers = message.headers;
    const version = headers['VERSION'] === 'HTTP/1.0' ? 'HTTP/1.0' : 'HTTP/1.1';
    const method = typeof headers['METHOD'] === 'string' ? headers['METHOD'] : 'GET';
    const reply = new ConnectionReply(
      sockets[server]!,
      server,
      message.sender,
      message.connId,
      method,
      version,
      requestKeepAlive(version, headers['connection']),
      hooks,
      flows.get(connectionKey(server, message.connId)),
    );
    const request = new ActiveRequest(message, bodyFile, reply, server, broadcaster);
    connection.active = request;
    if (bodyError !== undefined) {
      reply.end(errorResponse(500, VERSION, { method }), true);
      return settled(connection, request);
    }
    let result: void | Promise<void>;
    try {
      result =
        message.kind === 'websocket-handshake'
          ? websockets.handshake(gateway, request, reply, server)
          : gateway.handle(request, reply);
    } catch (error) {
      gatewayFailed(request, error);
      return settled(connection, request);
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).then(
        () => settled(connection, request),
        (error: unknown) => {
          gatewayFailed(request, error);
          settled(connection, request);
        },
      );
    } else {
      settled(connection, request);
    }
  }

  /** Gateways answer app errors themselves; reaching this is a gateway bug. Never leave a client hanging. */
  /**
   * mongrel2's experimental streaming uploads (upload.stream=1) are not supported: answer the first
   * message (offset 0) so the client is not left waiting, and close; later ones are dropped.
   */
  let streamingUploadWarned = false;
  function refuseStreamingUpload(message: Mongrel2Message, server: number): void {
    if (!streamingUploadWarned) {
      streamingUploadWarned = true;
      logger.warn('mongrel2 sends streaming uploads (upload.stream=1), which wsgid does not support; answering 501 (use the default async uploads)');
    }
    if (message.headers['UPLOAD_STREAM'] !== '0') return;
    refuse(message, server, 501, 'Streaming uploads (mongrel2 upload.stream=1) are not supported by this server.\n');
  }

  /** Answer a message ourselves (the app is not called) and close the connection. */
  function refuse(message: Mongrel2Message, server: number, status: number, body: string): void {
    const response = errorResponse(status, VERSION, { body });
    const socket = sockets[server]!;
    socket.send(encodeReply(message.sender, message.connId, response));
    socket.send(encodeClose(message.sender, message.connId));
  }

  function gatewayFailed(request: ActiveRequest, error: unknown): void {
    logger.error('gateway failed', { conn: request.message.connId, error });
    const reply = request.reply;
    if (reply.ended) return;
    if (reply.bytes === 0) {
      reply.end(errorResponse(500, VERSION, { method: reply.method }), true);
    } else reply.abort();
  }

  function settled(connection: Connection, request: ActiveRequest): void {
    const reply = request.reply;
    if (!reply.ended) {
      // The gateway resolved without finishing the response: close rather than hang the client.
      gatewayFailed(request, new Error('the gateway returned before the response was complete'));
    }
    const { message, server } = request;
    if (request.bodyFile !== undefined) {
      unlink(request.bodyFile).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') logger.warn('could not remove upload file', { file: request.bodyFile, error: error.message });
      });
    }
    served++;
    options.onComplete?.({
      message,
      status: reply.status,
      bytes: reply.bodyBytes,
      durationMs: performance.now() - request.startedAt,
    });
    const next = connection.queue.shift();
    if (next !== undefined) {
      serve(connection, next.message, next.bodyFile, server, next.bodyError);
    } else {
      connection.active = undefined;
      connections.delete(connectionKey(server, message.connId));
    }
    // Report it done once its reply has left our own queue (normally at once, or within this
    // turn): the master takes 'D' for "sent" when this worker dies later (docs/INTERNALS.md).
    const socket = sockets[server];
    if (socket === undefined) messageDone(server, message.connId);
    else socket.whenHandedOver(() => messageDone(server, message.connId));
  }

  function disconnect(server: number, connId: number): void {
    const key = connectionKey(server, connId);
    const flow = flows.get(key);
    if (flow !== undefined) {
      flow.gone();
      flows.delete(key);
    }
    const upload = uploads.get(key);
    if (upload !== undefined) {
      // The client left mid-upload: mongrel2 never deletes the file (protocol notes §4).
      uploads.delete(key);
      void removeUpload(upload);
    }
    const connection = connections.get(key);
    if (connection === undefined) return;
    for (const queued of connection.queue) {
      if (queued.bodyFile !== undefined) void unlink(queued.bodyFile).catch(() => {});
      messageDone(server, connId);
    }
    connection.queue = [];
    connection.active?.abort(new Error('client disconnected'));
  }

  /** Remove an abandoned upload file: only a regular file (never follow a symlink's target). */
  async function removeUpload(file: string): Promise<void> {
    try {
      if (!(await lstat(file)).isFile()) return;
      await unlink(file);
      logger.debug('removed an abandoned upload', { file });
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      if (e.code !== 'ENOENT') logger.warn('could not remove upload file', { file, error: e.message });
    }
  }

  /** Keep-alive pings for open responses that have been quiet for keepAliveMs. */
  const pinger =
    keepAliveMs > 0
      ? setInterval(() => {
          const now = performance.now();
          for (const connection of connections.values()) {
            const reply = connection.active?.reply;
            if (reply !== undefined && !reply.ended && !reply.closed && now - reply.lastActivity >= keepAliveMs) reply.ping();
          }
        }, Math.max(10, Math.min(keepAliveMs / 2, 5000)))
      : undefined;
  pinger?.unref();

  const broadcaster: Broadcaster = {
    broadcast(connIds, data, broadcastOptions = {}) {
      const server = broadcastOptions.server ?? 0;
      const socket = sockets[server];
      if (socket === undefined) throw new RangeError(`broadcast: no mongrel2 server ${server} (there are ${sockets.length})`);
      let bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (bytes.length === 0 || connIds.length === 0) return 0;
      if (broadcastOptions.chunked) {
        bytes = Buffer.concat([Buffer.from(chunkPrefix(bytes.length), 'latin1'), bytes, Buffer.from(CHUNK_SUFFIX, 'latin1')]);
      }
      const rest: number[] = [];
      for (const connId of connIds) {
        const key = connectionKey(server, connId);
        const reply = connections.get(key)?.active?.reply;
        const flow = flows.get(key);
        // A response this worker is writing: in order with it (and within its credit).
        if (reply !== undefined && !reply.ended && !reply.closed) reply.write(bytes);
        else if (flow !== undefined) flow.send(bytes);
        else rest.push(connId);
      }
      if (rest.length > 0) {
        const sender = senders[server];
        if (sender === undefined) throw new Error('broadcast: no request seen from this mongrel2 server yet (no sender id)');
        for (const frame of encodeBroadcast(sender, rest, bytes)) socket.send(frame);
      }
      return connIds.length;
    },
  };
  installBroadcaster(broadcaster);

  /** The graceful timeout ran out: close every connection still being served, and stop waiting. */
  function cutOffInFlight(): void {
    logger.warn('graceful timeout: closing the connections of requests still running', { inFlight });
    for (const connection of connections.values()) {
      for (const queued of connection.queue) {
        if (queued.bodyFile !== undefined) void unlink(queued.bodyFile).catch(() => {});
      }
      connection.queue = [];
      const active = connection.active;
      if (active === undefined) continue;
      active.reply.abort(); // sends mongrel2's close message
      active.abort(new Error('the worker is stopping'));
    }
  }

  const worker: Worker = {
    get served() {
      return served;
    },
    get inFlight() {
      return inFlight;
    },
    replySocket: (server) => sockets[server]!,
    async drain(graceMs = Infinity) {
      await source.pause();
      websockets.shutdown(); // their frames no longer reach this worker
      if (inFlight === 0) return;
      if (!draining) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        draining = { promise, resolve };
      }
      if (!Number.isFinite(graceMs)) return draining.promise;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, graceMs, 'late')));
      const outcome = await Promise.race([draining.promise, deadline]);
      clearTimeout(timer);
      if (outcome === 'late') cutOffInFlight();
    },
    async close(graceMs?: number) {
      await worker.drain(graceMs);
      await source.close();
      if (pinger !== undefined) clearInterval(pinger);
      installBroadcaster(undefined);
      await gateway.close();
      await Promise.all(sockets.map((socket) => socket.close()));
    },
  };

  source.start(deliver);
  return worker;
}
