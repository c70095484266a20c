/**
 * The request loop of a worker: frames in (from a RequestSource), gateway calls, replies out.
 *
 * Per connection, requests are served one at a time in arrival order, so pipelined requests get
 * their responses in order (mongrel2 dispatches a pipelining client's requests before we answer).
 * Every delivered message is reported back to the source when it is fully handled; for the master
 * that is the credit and in-flight bookkeeping (docs/INTERNALS.md).
 */
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { parseMessage, peekConnection, ProtocolError } from '../protocol/index.js';
import type { Mongrel2Message } from '../protocol/index.js';
import { requestKeepAlive } from '../http/head.js';
import type { Gateway, GatewayRequest } from '../gateways/types.js';
import type { Logger } from '../log/logger.js';
import type { Settings } from '../config/settings.js';
import { openReplySockets, type ReplySocket } from '../transport/reply-socket.js';
import { ConnectionReply, type ReplyHooks } from './reply.js';
import type { RequestSource } from './source.js';
import { WebSocketConnections } from './websocket.js';

/** One finished request, for the access log. */
export interface CompletedRequest {
  readonly message: Mongrel2Message;
  readonly status: number;
  readonly bytes: number;
  readonly durationMs: number;
}

export interface WorkerOptions {
  settings: Pick<Settings, 'send' | 'mongrel2Chroot'>;
  logger: Logger;
  gateway: Gateway;
  source: RequestSource;
  /** Called after each request (access log); keep it cheap. */
  onComplete?: (request: CompletedRequest) => void;
  /** Messages the loop does not handle itself (WebSocket frames, JSON sockets, credits...). */
  onOtherMessage?: (message: Mongrel2Message, server: number, worker: Worker) => void;
}

export interface Worker {
  /** Requests answered so far. */
  readonly served: number;
  /** Requests delivered and not yet finished. */
  readonly inFlight: number;
  /** The reply socket for mongrel2 server `server` (for gateways that write outside a request). */
  replySocket(server: number): ReplySocket;
  /** Stop taking messages and wait for in-flight requests to finish. */
  drain(): Promise<void>;
  /** drain(), then release sockets and the gateway. */
  close(): Promise<void>;
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
  ) {}

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

interface Connection {
  active: ActiveRequest | undefined;
  queue: Array<{ message: Mongrel2Message; bodyFile: string | undefined }>;
}

/** A connection is keyed by mongrel2 server index and connection id, as one number. */
const connectionKey = (server: number, connId: number): number => server * 0x1_0000_0000 + connId;

export function startWorker(options: WorkerOptions): Worker {
  const { logger, gateway, source } = options;
  const sockets = openReplySockets(options.settings.send);
  const websockets = new WebSocketConnections({ logger, sockets });
  const mongrel2Chroot = path.resolve(options.settings.mongrel2Chroot || '/');
  const connections = new Map<number, Connection>();
  let served = 0;
  let inFlight = 0;
  let draining: { promise: Promise<void>; resolve: () => void } | undefined;

  const hooks: ReplyHooks = {
    onStart: (reply) => source.started(reply.server, reply.connId),
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
        return uploadDone(message, server);
      case 'upload-start':
        logger.debug('upload started', { conn: message.connId, file: message.headers['x-mongrel2-upload-start'] });
        return messageDone(server, message.connId);
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
      default:
        if (options.onOtherMessage) options.onOtherMessage(message, server, worker);
        else logger.debug('ignored mongrel2 message', { kind: message.kind, conn: message.connId });
        return messageDone(server, message.connId);
    }
  }

  function dropMalformed(frame: Buffer, server: number, error: unknown): void {
    const reason = error instanceof ProtocolError ? `${error.code}: ${error.message}` : String(error);
    logger.warn('dropped a malformed message from mongrel2', {
      server: options.settings.send[server],
      reason,
      bytes: frame.length,
      start: frame.subarray(0, 80).toString('latin1'),
    });
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

  /** Async upload finished: the same headers plus x-mongrel2-upload-done (protocol notes §4). */
  function uploadDone(message: Mongrel2Message, server: number): void {
    const start = message.headers['x-mongrel2-upload-start'];
    const done = message.headers['x-mongrel2-upload-done'];
    if (typeof done !== 'string' || start !== done) {
      logger.warn('ignored an upload-done message that does not match its upload-start', {
        conn: message.connId,
        start,
        done,
      });
      return messageDone(server, message.connId);
    }
    const file = path.resolve(mongrel2Chroot, '.' + path.posix.normalize('/' + done));
    if (!file.startsWith(mongrel2Chroot === '/' ? '/' : mongrel2Chroot + path.sep)) {
      logger.warn('ignored an upload outside the mongrel2 chroot', { conn: message.connId, file: done });
      return messageDone(server, message.connId);
    }
    enqueue(message, file, server);
  }

  function enqueue(message: Mongrel2Message, bodyFile: string | undefined, server: number): void {
    const key = connectionKey(server, message.connId);
    let connection = connections.get(key);
    if (connection === undefined) {
      connection = { active: undefined, queue: [] };
      connections.set(key, connection);
    }
    if (connection.active !== undefined) {
      connection.queue.push({ message, bodyFile });
      return;
    }
    serve(connection, message, bodyFile, server);
  }

  function serve(connection: Connection, message: Mongrel2Message, bodyFile: string | undefined, server: number): void {
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
    );
    const request = new ActiveRequest(message, bodyFile, reply, server);
    connection.active = request;
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
  function gatewayFailed(request: ActiveRequest, error: unknown): void {
    logger.error('gateway failed', { conn: request.message.connId, error });
    const reply = request.reply;
    if (reply.ended) return;
    if (reply.bytes === 0) {
      reply.end(
        'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n' +
          'Connection: close\r\n\r\nInternal Server Error\n',
        true,
      );
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
      bytes: reply.bytes,
      durationMs: performance.now() - request.startedAt,
    });
    const next = connection.queue.shift();
    if (next !== undefined) {
      serve(connection, next.message, next.bodyFile, server);
    } else {
      connection.active = undefined;
      connections.delete(connectionKey(server, message.connId));
    }
    messageDone(server, message.connId);
  }

  function disconnect(server: number, connId: number): void {
    const key = connectionKey(server, connId);
    const connection = connections.get(key);
    if (connection === undefined) return;
    for (const queued of connection.queue) {
      if (queued.bodyFile !== undefined) void unlink(queued.bodyFile).catch(() => {});
      messageDone(server, connId);
    }
    connection.queue = [];
    connection.active?.abort(new Error('client disconnected'));
  }

  const worker: Worker = {
    get served() {
      return served;
    },
    get inFlight() {
      return inFlight;
    },
    replySocket: (server) => sockets[server]!,
    async drain() {
      await source.pause();
      websockets.shutdown(); // their frames no longer reach this worker
      if (inFlight === 0) return;
      if (!draining) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        draining = { promise, resolve };
      }
      await draining.promise;
    },
    async close() {
      await worker.drain();
      await source.close();
      await gateway.close();
      await Promise.all(sockets.map((socket) => socket.close()));
    },
  };

  source.start(deliver);
  return worker;
}
