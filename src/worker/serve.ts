/**
 * The request loop of a worker: frames in (from a RequestSource), gateway calls, replies out.
 * This module wires the parts, each of which has one job (docs/INTERNALS.md, "The worker's request loop"):
 * connections.ts (per-connection order), uploads.ts, download-credits.ts (download credits), idle-pings.ts,
 * broadcaster.ts, websocket.ts, in-flight.ts (counting and drain).
 *
 * Every delivered message is reported back to the source when it is fully handled; for the master
 * that is the credit and in-flight bookkeeping (docs/INTERNALS.md).
 */
import { encodeClose, encodeReply, parseMessage, peekConnection, ProtocolError } from '../protocol/index.js';
import type { Mongrel2Message } from '../protocol/index.js';
import { requestKeepAlive } from '../http/head.js';
import { errorResponse } from '../http/error-response.js';
import { framingProblem } from '../http/framing.js';
import { originForm, originFormHeaders } from '../http/request-target.js';
import { VERSION } from '../version.js';
import { installBroadcaster } from '../broadcast.js';
import type { Gateway } from '../gateways/types.js';
import type { Logger } from '../log/logger.js';
import { LogRateLimit } from '../log/rate-limit.js';
import type { Settings } from '../config/settings.js';
import { formatSize } from '../config/options.js';
import { openReplySockets, type ReplySocket } from '../transport/reply-socket.js';
import type { EndpointMonitor } from '../transport/endpoint-monitor.js';
import { isTimeoutCancel } from '../dispatch/mongrel2-frames.js';
import { ActiveRequest } from './active-request.js';
import { createBroadcaster } from './broadcaster.js';
import { connectionKey, ConnectionQueues, type QueuedMessage } from './connections.js';
import { DownloadCredits } from './download-credits.js';
import { InFlightCount } from './in-flight.js';
import { startKeepAlivePings } from './idle-pings.js';
import { ConnectionReply, UNPACED_WARN_BYTES, type ReplyHooks } from './reply.js';
import type { RequestSource } from './source.js';
import { judgeUploadDone, judgeUploadStart, Uploads } from './uploads.js';
import { WebSocketConnections } from './websocket.js';

/** Closed connections remembered at most (closedConnections), and for how long. */
const MAX_CLOSED_CONNECTIONS = 4096;
const CLOSED_CONNECTION_MS = 60_000;

/** One finished request, for the access log. */
export interface CompletedRequest {
  readonly message: Mongrel2Message;
  readonly status: number;
  /** Body bytes sent, the head not counted (the access log's %b). */
  readonly bytes: number;
  readonly durationMs: number;
}

export interface WorkerOptions {
  settings: Pick<Settings, 'send' | 'mongrel2Chroot' | 'mongrel2UploadStore' | 'pingMs' | 'uncreditedLimit'>;
  logger: Logger;
  gateway: Gateway;
  source: RequestSource;
  /** Called after each request (access log); keep it cheap. */
  onComplete?: (request: CompletedRequest) => void;
  /** Track the reply sockets' connection to mongrel2 (single-process mode: status and warnings). */
  endpointMonitor?: EndpointMonitor;
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

export function startWorker(options: WorkerOptions): Worker {
  const { logger, gateway, source } = options;
  const sockets = openReplySockets(options.settings.send, options.endpointMonitor);
  const keepAliveMs = options.keepAliveMs ?? options.settings.pingMs;
  const websockets = new WebSocketConnections({ logger, sockets, keepAliveMs });
  const connections = new ConnectionQueues<ActiveRequest>();
  const credits = new DownloadCredits(sockets);
  const uploads = new Uploads(options.settings.mongrel2Chroot, options.settings.mongrel2UploadStore, logger);
  /** The sender (send_ident) last seen per server: multi-id replies are addressed with it. */
  const senders: string[] = [];
  const inFlight = new InFlightCount();
  let served = 0;
  const malformedLog = new LogRateLimit();
  const framingLog = new LogRateLimit();
  /**
   * Connections whose last response closed them (a request refused for its framing, HTTP/1.0,
   * `Connection: close`, an error): whatever mongrel2 parsed behind it on the connection is dropped
   * unserved until the disconnect arrives (RFC 9112 §9.6: no further request is processed; a
   * smuggled `GET /smug` never runs). Key → when it closed. Bounded in number and age: the
   * disconnect may go to another process, and a restarted mongrel2 hands out the same ids again
   * (a request dropped on a stale entry gets a close, never a hang).
   */
  const closedConnections = new Map<number, number>();
  /** Requests whose connection mongrel2 reported gone: their close is not ours to remember. */
  const disconnected = new WeakSet<ActiveRequest>();
  /** Per connection, the upload checks in progress (inOrder): what arrives behind them waits. */
  const uploadChecks = new Map<number, Promise<void>>();
  let streamingUploadWarned = false;

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
    uncreditedLimit: options.settings.uncreditedLimit,
    onCut: (reply) => {
      logger.warn(
        `response cut after ${reply.bytes} bytes: it would pass --uncredited-limit=${formatSize(options.settings.uncreditedLimit)} without ` +
          "mongrel2's download credits; set download.flow_control=1 in mongrel2 to send it whole at the client's pace (docs/MONGREL2.md)",
        { conn: reply.connId, status: reply.status },
      );
      connections.active(connectionKey(reply.server, reply.connId))?.abort(new Error('response cut at --uncredited-limit'));
    },
  };

  const broadcaster = createBroadcaster({
    sockets,
    sender: (server) => senders[server],
    reply: (key) => connections.active(key)?.reply,
    flow: (key) => credits.get(key),
  });
  installBroadcaster(broadcaster);

  const stopPings = startKeepAlivePings(keepAliveMs, () =>
    Array.from(connections.actives(), (request) => request.reply),
  );

  function deliver(frame: Buffer, server: number): void {
    inFlight.delivered();
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
        // Never answered: any reply now would cancel the upload.
        return uploadStart(message, server);
      case 'credits':
        credits.grant(connectionKey(server, message.connId), message);
        return controlDone(server, message.connId);
      case 'websocket-handshake':
        // Served like a request (the gateway answers 101 or refuses); frames then go to websockets.
        return enqueue(message, undefined, server);
      case 'websocket-frame':
        websockets.frame(message, server);
        return controlDone(server, message.connId);
      case 'disconnect':
        websockets.disconnect(server, message.connId);
        disconnect(server, message.connId, isTimeoutCancel(message.body));
        return controlDone(server, message.connId);
      case 'upload-stream':
        refuseStreamingUpload(message, server);
        return controlDone(server, message.connId);
      default:
        // JSON and XML socket messages: no HTTP client is waiting for an answer.
        logger.debug('ignored mongrel2 message', { kind: message.kind, conn: message.connId });
        return controlDone(server, message.connId);
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
      source.dropped(server, connId); // the master keeps no route for it ('X' before its 'N')
    } catch {
      // Not even the connection id is readable; the credit still goes back.
    }
    controlDone(server, connId);
  }

  /** A request is done (its response ended, or it was dropped unserved). */
  function messageDone(server: number, connId: number): void {
    inFlight.done();
    source.finished(server, connId);
  }

  /** A message that is not a request is handled: the master must not take it for one (no 504, no 502). */
  function controlDone(server: number, connId: number): void {
    inFlight.done();
    source.handled(server, connId);
  }

  /** Async upload began (docs/MONGREL2.md §4): remember the file so a disconnect can remove it. */
  function uploadStart(message: Mongrel2Message, server: number): void {
    const decision = judgeUploadStart(message, uploads.store);
    switch (decision.action) {
      case 'serve-as-request':
        logger.warn('an upload-start header mongrel2 cannot have sent: serving an ordinary request', {
          conn: message.connId,
          start: message.headers['x-mongrel2-upload-start'],
        });
        return enqueue(message, undefined, server);
      case 'ignore':
        logger.warn("ignored an upload-start naming a file outside mongrel2's upload store", {
          conn: message.connId,
          start: decision.reported,
          store: uploads.store?.template,
          reason: uploads.storeProblem,
        });
        return controlDone(server, message.connId);
      case 'track': {
        const key = connectionKey(server, message.connId);
        credits.noteRequest(key, message, server);
        uploads.started(key, decision.file);
        logger.debug('upload started', { conn: message.connId, file: decision.file });
        return controlDone(server, message.connId);
      }
    }
  }

  /**
   * Async upload finished: the same headers plus x-mongrel2-upload-done (== start). A file the
   * worker cannot use (uploads.ts `check`) gets the client a 500, the log says why, and the app is
   * never called.
   */
  function uploadDone(message: Mongrel2Message, server: number): void {
    const key = connectionKey(server, message.connId);
    const decision = judgeUploadDone(message, uploads.expected(key), uploads.store);
    if (decision.action === 'serve-as-request') {
      logger.warn('an upload-done header mongrel2 cannot have sent: serving an ordinary request', {
        conn: message.connId,
        done: message.headers['x-mongrel2-upload-done'],
      });
      return enqueue(message, undefined, server);
    }
    uploads.finished(key);
    if (decision.action === 'refuse') {
      logger.warn('refused an upload-done message that does not match its upload-start: answering 400', {
        conn: message.connId,
        start: message.headers['x-mongrel2-upload-start'],
        done: message.headers['x-mongrel2-upload-done'],
      });
      refuse(message, server, 400, 'The request carries an upload header only mongrel2 may set.\n');
      return messageDone(server, message.connId);
    }
    if (decision.action === 'outside-store') {
      // Not a file mongrel2's upload.temp_store can name: never opened, never removed.
      const problem = uploads.storeProblem;
      logger.error(problem ? `cannot accept an upload: ${problem}: answering 500` : "refused an upload naming a file outside mongrel2's upload store: answering 500", {
        conn: message.connId,
        done: decision.reported,
        store: uploads.store?.template,
      });
      refuse(message, server, 500, 'This server cannot accept the upload (see its log).\n');
      return messageDone(server, message.connId);
    }
    const { file } = decision;
    // In order behind what is queued on the connection: a request pipelined behind an upload
    // never overtakes it.
    inOrder(key, () => {
      const problem = uploads.check(file, message);
      if (problem === undefined) {
        credits.noteRequest(key, message, server);
        return admit(key, message, file, server);
      }
      const removed = problem.removable && uploads.remove(file);
      logger.error('cannot read the upload file: answering 500', { conn: message.connId, file, reason: problem.reason, removed });
      admit(key, message, undefined, server, 'The server cannot read the uploaded body (see its log).\n');
    });
  }

  /**
   * Run `step` once the upload checks pending on connection `key` are done: a request mongrel2
   * parsed behind an upload must not overtake it while its file is checked (it would be served
   * first, and served even when the upload is refused for its framing).
   */
  function inOrder(key: number, step: () => void | Promise<void>): void {
    const pending = uploadChecks.get(key);
    const result = pending === undefined ? step() : pending.then(step);
    if (result === undefined) return;
    const tail = result.catch((error: unknown) => logger.error('upload check failed', { error }));
    uploadChecks.set(key, tail);
    void tail.then(() => {
      if (uploadChecks.get(key) === tail) uploadChecks.delete(key);
    });
  }

  function enqueue(message: Mongrel2Message, bodyFile: string | undefined, server: number): void {
    const key = connectionKey(server, message.connId);
    inOrder(key, () => admit(key, message, bodyFile, server));
  }

  function admit(key: number, message: Mongrel2Message, bodyFile: string | undefined, server: number, bodyError?: string): void {
    senders[server] = message.sender;
    if (bodyFile === undefined) credits.noteRequest(key, message, server);
    const queued: QueuedMessage = bodyError === undefined ? { message, bodyFile } : { message, bodyFile, bodyError };
    if (connections.admit(key, queued)) serve(key, queued, server);
  }

  function serve(key: number, queued: QueuedMessage, server: number): void {
    if (closedRecently(key)) return dropBehindClose(key, queued, server);
    const { bodyFile, bodyError } = queued;
    const message = originFormMessage(queued.message);
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
      credits.get(key),
    );
    const request = new ActiveRequest(message, bodyFile, reply, server, broadcaster);
    connections.begin(key, request);
    if (bodyError !== undefined) {
      reply.end(errorResponse(500, VERSION, { method, body: bodyError }), true);
      return settled(key, request);
    }
    const problem = framingProblem(headers, bodyFile !== undefined);
    if (problem !== undefined) {
      refuseFraming(message, problem);
      reply.end(errorResponse(400, VERSION, { method, body: `Bad Request: ${problem}.\n` }), true);
      return settled(key, request);
    }
    let result: void | Promise<void>;
    try {
      result =
        message.kind === 'websocket-handshake'
          ? websockets.handshake(gateway, request, reply, server)
          : gateway.handle(request, reply);
    } catch (error) {
      gatewayFailed(request, error);
      return settled(key, request);
    }
    if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).then(
        () => settled(key, request),
        (error: unknown) => {
          gatewayFailed(request, error);
          settled(key, request);
        },
      );
    } else {
      settled(key, request);
    }
  }

  /** PATH and URI in origin form (http/request-target.ts): mongrel2 passes `GET http://h/c` on as `//h/c`. */
  function originFormMessage(message: Mongrel2Message): Mongrel2Message {
    const headers = originFormHeaders(message.headers);
    return headers === undefined ? message : { ...message, path: originForm(message.path), headers };
  }

  /** RFC 9112 §6.3: answer 400 and close; nothing mongrel2 read behind this request is served. */
  function refuseFraming(message: Mongrel2Message, problem: string): void {
    const count = framingLog.hit(Date.now());
    if (count !== undefined) {
      logger.warn('refused a request with ambiguous framing (request smuggling?): answered 400 and closed', {
        code: 'WSGID_ERR_REQUEST_FRAMING',
        conn: message.connId,
        problem,
        count,
      });
    }
  }

  function closedRecently(key: number): boolean {
    const at = closedConnections.get(key);
    if (at === undefined) return false;
    if (performance.now() - at <= CLOSED_CONNECTION_MS) return true;
    closedConnections.delete(key);
    return false;
  }

  function rememberClosed(key: number): void {
    closedConnections.delete(key);
    if (closedConnections.size >= MAX_CLOSED_CONNECTIONS) closedConnections.delete(closedConnections.keys().next().value!);
    closedConnections.set(key, performance.now());
  }

  /**
   * A message behind a response that closed its connection: never served, its credit returned.
   * One more close goes out (mongrel2 ignores it for a connection it has closed), so that a client
   * on a reused connection id is never left waiting.
   */
  function dropBehindClose(key: number, queued: QueuedMessage, server: number): void {
    const { message, bodyFile } = queued;
    if (bodyFile !== undefined) uploads.discardUnserved(bodyFile);
    logger.debug('dropped a request behind a response that closed its connection', { conn: message.connId });
    sockets[server]!.send(encodeClose(message.sender, message.connId));
    messageDone(server, message.connId);
    const next = connections.next(key);
    if (next !== undefined) serve(key, next, server);
  }

  /**
   * mongrel2's experimental streaming uploads (upload.stream=1) are not supported: answer the first
   * message (offset 0) so the client is not left waiting, and close; later ones are dropped.
   */
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

  /** Gateways answer app errors themselves; reaching this is a gateway bug. Never leave a client hanging. */
  function gatewayFailed(request: ActiveRequest, error: unknown): void {
    logger.error('gateway failed', { conn: request.message.connId, error });
    const reply = request.reply;
    if (reply.ended) return;
    if (reply.bytes === 0) {
      reply.end(errorResponse(500, VERSION, { method: reply.method }), true);
    } else reply.abort();
  }

  function settled(key: number, request: ActiveRequest): void {
    const reply = request.reply;
    if (!reply.ended) {
      // The gateway resolved without finishing the response: close rather than hang the client.
      gatewayFailed(request, new Error('the gateway returned before the response was complete'));
    }
    const { message, server } = request;
    if (request.bodyFile !== undefined) uploads.discardServed(request.bodyFile);
    served++;
    options.onComplete?.({
      message,
      status: reply.status,
      bytes: reply.bodyBytes,
      durationMs: performance.now() - request.startedAt,
    });
    if (reply.closed && !disconnected.has(request)) rememberClosed(key);
    const next = connections.next(key);
    if (next !== undefined) serve(key, next, server);
    // Report it done once its reply has left our own queues (normally at once, or within this
    // turn; with download credits, once its tail got the credit it waited for): the master takes
    // 'D' for "sent" when this worker dies later, and a draining worker exits once all is done
    // (docs/INTERNALS.md).
    const socket = sockets[server];
    const report = (): void => {
      if (socket === undefined) messageDone(server, message.connId);
      else socket.whenHandedOver(() => messageDone(server, message.connId));
    };
    const flow = credits.get(key);
    if (flow === undefined) report();
    else flow.whenSent(report);
  }

  /** The client left, or (`timedOut`) the master answered 504 and cancels the request. */
  function disconnect(server: number, connId: number, timedOut = false): void {
    const key = connectionKey(server, connId);
    closedConnections.delete(key);
    credits.disconnected(key);
    uploads.disconnected(key);
    for (const queued of connections.dropQueued(key)) {
      if (queued.bodyFile !== undefined) uploads.discardUnserved(queued.bodyFile);
      messageDone(server, connId);
    }
    // A TimeoutError (DOMException), as AbortSignal.timeout() gives: gateways and apps can tell.
    const reason = timedOut ? new DOMException('the request timed out (--timeout): the master answered 504', 'TimeoutError') : new Error('client disconnected');
    const active = connections.active(key);
    if (active !== undefined) {
      disconnected.add(active);
      active.abort(reason);
    }
  }

  /** The graceful timeout ran out: close every connection still being served, and stop waiting. */
  function cutOffInFlight(): void {
    logger.warn('graceful timeout: closing the connections of requests still running', { inFlight: inFlight.value });
    for (const queued of connections.dropAllQueued()) {
      if (queued.bodyFile !== undefined) uploads.discardUnserved(queued.bodyFile);
    }
    for (const active of connections.actives()) {
      active.reply.abort(); // sends mongrel2's close message
      active.abort(new Error('the worker is stopping'));
    }
  }

  const worker: Worker = {
    get served() {
      return served;
    },
    get inFlight() {
      return inFlight.value;
    },
    replySocket: (server) => sockets[server]!,
    async drain(graceMs = Infinity) {
      await source.pause();
      websockets.shutdown(); // their frames no longer reach this worker
      if (inFlight.value === 0) return;
      const idle = inFlight.whenIdle();
      if (!Number.isFinite(graceMs)) return idle;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, graceMs, 'late')));
      const outcome = await Promise.race([idle, deadline]);
      clearTimeout(timer);
      if (outcome === 'late') cutOffInFlight();
    },
    async close(graceMs?: number) {
      await worker.drain(graceMs);
      await source.close();
      stopPings?.();
      installBroadcaster(undefined);
      await gateway.close();
      await Promise.all(sockets.map((socket) => socket.close()));
    },
  };

  source.start(deliver);
  return worker;
}
