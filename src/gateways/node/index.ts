/**
 * The Node request-listener gateway: Express, Connect, Koa's `callback()`, plain `(req, res)`
 * handlers, or an `http.Server` (its 'request' listeners are called).
 *
 * Design — light-my-request style, chosen by measurement (bench/node-gateway-micro.ts, gateway
 * only, no zeromq): per request we build a real `http.IncomingMessage` from the headers mongrel2
 * already parsed and push the body once, and a real `http.ServerResponse` that `assignSocket()`s
 * an in-memory Duplex forwarding its bytes to the ReplyChannel. The alternative — rebuilding the
 * request's bytes and feeding them to a real `http.Server` through an in-memory connection
 * ('connection' event, Node's parser) — produces the same response bytes (the bench checks) but
 * was slower in every run: hello world 1.5–2.0×, a 1 KiB POST echo 1.9–2.2×, Express hello
 * 1.2–1.45× (Express's own work dominates there). Feeding the parser would also redo what mongrel2
 * already did: answer `Expect: 100-continue` a second time, and need a de-chunked upload file
 * re-chunked. Both designs let Node's own ServerResponse do all the response framing (status
 * line, Date, chunked, HEAD/204/304, several Set-Cookie), so frameworks behave as on a socket.
 *
 * What the server's connection code would have done, and we therefore do here (cf. Node's
 * lib/_http_server.js parserOnIncoming / resOnFinish / abortIncoming): decide keep-alive from the
 * request, forward 'drain' from the socket to the response, dump an unread body after the
 * response, detach the socket and emit 'close' on the response, and abort the request
 * ('aborted', 'close', ECONNRESET) when the connection goes away first.
 *
 * Seam for WebSockets (later): mongrel2's WEBSOCKET_HANDSHAKE becomes a `handleUpgrade()` that
 * builds the IncomingMessage the same way (with `upgrade = true`), makes a ResponseSocket whose
 * readable side receives the frames, and emits the server's 'upgrade' event (req, socket, head).
 */
import http, { IncomingMessage, OutgoingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Gateway, GatewayFactory, GatewayOptions, GatewayRequest, LoadedApp, WebSocketSession } from '../types.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import type { Logger } from '../../log/logger.js';
import { broadcast, type BroadcastOptions } from '../../broadcast.js';
import { ResponseSocket } from './socket.js';
import { abandonBody, buildIncomingMessage, isHttps, remoteAddressOf, type GatewayIncomingMessage } from './request.js';
import { UpgradeSocket } from './upgrade.js';
import { closingReply } from '../../http/websocket.js';

type RequestListener = (this: EventEmitter, req: IncomingMessage, res: ServerResponse) => unknown;
type IncomingMessageClass = new (socket: Socket) => IncomingMessage;
type ServerResponseClass = new (req: IncomingMessage, options?: { highWaterMark?: number }) => ServerResponse;

/** ServerResponse internals the server's connection code uses; @types/node does not declare them. */
interface ResponseInternals {
  /** Set by _storeHeader: this response ends the connection (Connection: close, 1.0 without length...). */
  _last?: boolean;
  _closed?: boolean;
}
type GatewayServerResponse = ServerResponse & ResponseInternals;

/** Node keeps some per-instance state under module-private symbols; find them by description once. */
function ownSymbol(target: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(target).find((s) => s.description === description);
}
const kNeedDrain = ownSymbol(new OutgoingMessage(), 'kNeedDrain');

/** The error Node gives a request whose connection went away (ConnResetException('aborted')). */
function abortedError(): Error {
  return Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/** Normalise what the loader found to an emitter of 'request' (and later 'upgrade'). */
function toServer(app: unknown): EventEmitter {
  if (app instanceof http.Server || app instanceof https.Server) return app;
  if (typeof app === 'function') {
    const server = http.createServer();
    server.on('request', app as RequestListener);
    return server;
  }
  if (app instanceof EventEmitter && app.listenerCount('request') > 0) return app;
  throw new TypeError('node gateway: the app must be a (req, res) listener or an http.Server');
}

const INTERNAL_ERROR_BODY = 'Internal Server Error\n';

export class NodeGateway implements Gateway {
  private readonly server: EventEmitter;
  private readonly Incoming: IncomingMessageClass;
  private readonly Response: ServerResponseClass;
  private readonly version: string;
  private readonly logger: Logger;

  constructor(server: EventEmitter, options: GatewayOptions) {
    this.server = server;
    this.version = options.version;
    this.logger = options.logger;
    // http.createServer({IncomingMessage, ServerResponse}) stores custom classes under symbols.
    const kIncoming = ownSymbol(server, 'IncomingMessage');
    const kResponse = ownSymbol(server, 'ServerResponse');
    const slots = server as unknown as Record<symbol, unknown>;
    this.Incoming = (kIncoming && (slots[kIncoming] as IncomingMessageClass | undefined)) || IncomingMessage;
    this.Response = (kResponse && (slots[kResponse] as ServerResponseClass | undefined)) || ServerResponse;
  }

  handle(request: GatewayRequest, reply: ReplyChannel): void | Promise<void> {
    const { message, bodyFile } = request;
    let onAbort: (() => void) | undefined;
    const stopListening = whenAborted(request, () => onAbort?.());
    if (stopListening === undefined || reply.closed) return; // the client left before we began
    const headers = message.headers;
    const socket = new ResponseSocket(reply, {
      remoteAddress: remoteAddressOf(headers),
      encrypted: isHttps(headers),
      server: this.server as http.Server,
    });
    const req = buildIncomingMessage(this.Incoming, socket as unknown as Socket, message, bodyFile);
    attachWsgidInfo(req, request);
    const res = new this.Response(req, { highWaterMark: socket.writableHighWaterMark }) as GatewayServerResponse;
    res.shouldKeepAlive = reply.keepAlive;
    res.setHeader('X-Wsgid', this.version);

    return new Promise<void>((resolve) => {
      let settled = false;
      /** complete: the response finished (end, closing if Node said so); else cut the connection. */
      const settle = (complete: boolean, close: boolean): void => {
        if (settled) return;
        settled = true;
        stopListening();
        // Even when the client is gone: the worker checks that the reply was ended.
        if (complete) reply.end(undefined, close);
        else reply.abort();
        resolve();
      };

      onAbort = (): void => {
        socket.destroy();
      };

      // Response complete (its last bytes accepted by the channel): Node's resOnFinish.
      res.once('finish', () => {
        if (!req._consuming && !req.readableFlowing) {
          abandonBody(req);
          (req as GatewayIncomingMessage & { _dump(): void })._dump();
        }
        if (socket._httpMessage === res) res.detachSocket(socket as unknown as Socket);
        process.nextTick(emitClose, res);
        const last = res._last === true;
        settle(true, last);
        // As Node does: a keep-alive socket stays open (and destroying it inside this write
        // callback would make Writable build an ERR_STREAM_DESTROYED per request: measured 17% of
        // the CPU); a closing response ends it once written.
        if (last) socket.destroySoon();
      });

      // The connection went away before the response finished: Node's socketOnClose/abortIncoming.
      // Registered before assignSocket() so, as in Node, the request aborts before the response closes.
      socket.once('close', () => {
        if (settled) return;
        if (!req.destroyed) req.destroy(abortedError());
        settle(false, true);
      });
      socket.on('error', (error: Error) => {
        this.logger.debug('node gateway: connection error', { error, url: req.url });
      });
      socket.on('drain', () => {
        // Node's socketOnDrain: tell a response that saw write() return false.
        if (socket._httpMessage !== res || !res.writableNeedDrain) return;
        if (kNeedDrain) (res as unknown as Record<symbol, boolean>)[kNeedDrain] = false;
        res.emit('drain');
      });
      // On a plain http.Server this event would crash the process (e.g. write after end).
      res.on('error', (error: Error) => {
        this.logger.warn('node gateway: response error', { error, method: req.method, url: req.url });
        if (!res.writableFinished) res.destroy();
      });
      res.assignSocket(socket as unknown as Socket);
      this.dispatch(req, res, request.reportError);
    });
  }

  /**
   * A WebSocket handshake: emit the server's 'upgrade' event (req, socket, head) as Node's HTTP
   * server does, with an in-memory socket that speaks to mongrel2 (./upgrade.ts). Without an
   * 'upgrade' listener the request is served as an ordinary GET (as Node does) and closed.
   */
  upgrade(request: GatewayRequest, reply: ReplyChannel, session: WebSocketSession): void | Promise<void> {
    if (this.server.listenerCount('upgrade') === 0) return this.handle(request, closingReply(reply));
    const { message } = request;
    let onAbort: (() => void) | undefined;
    const stopListening = whenAborted(request, () => onAbort?.());
    if (stopListening === undefined || reply.closed) return reply.end(undefined, true);
    const headers = { ...message.headers };
    delete headers['sec-websocket-extensions'];
    const socket = new UpgradeSocket(reply, session, {
      remoteAddress: remoteAddressOf(headers),
      encrypted: isHttps(headers),
      server: this.server as http.Server,
    });
    const req = buildIncomingMessage(this.Incoming, socket as unknown as Socket, { ...message, headers }, undefined);
    req.upgrade = true;
    onAbort = (): void => {
      socket.destroy();
    };
    socket.on('error', (error: Error) => {
      this.logger.debug('node gateway: websocket connection error', { error, url: req.url });
    });
    try {
      this.server.emit('upgrade', req, socket, Buffer.alloc(0));
    } catch (error) {
      this.logger.error('node gateway: upgrade listener failed', { error, url: req.url });
      socket.destroy();
    }
    return socket.outcome.then(stopListening);
  }

  /** Call the app's 'request' listeners; a synchronous throw or a rejected promise → 500. */
  private dispatch(req: IncomingMessage, res: GatewayServerResponse, report: GatewayRequest['reportError']): void {
    const listeners = this.server.listeners('request') as RequestListener[];
    if (listeners.length === 0) {
      this.fail(new Error('the http.Server has no request listener'), req, res, report);
      return;
    }
    try {
      for (const listener of listeners) {
        const result = listener.call(this.server, req, res);
        if (isThenable(result)) result.then(undefined, (error: unknown) => this.fail(error, req, res, report));
      }
    } catch (error) {
      this.fail(error, req, res, report);
    }
  }

  /** The app failed: 500 if nothing was sent yet, otherwise cut the connection; log either way. */
  private fail(error: unknown, req: IncomingMessage, res: GatewayServerResponse, report: GatewayRequest['reportError']): void {
    report?.(error);
    this.logger.error('node gateway: app error', { error, method: req.method, url: req.url });
    if (res.writableEnded || res.destroyed) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    res.writeHead(500, 'Internal Server Error', {
      'X-Wsgid': this.version,
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(INTERNAL_ERROR_BODY),
    });
    res.end(INTERNAL_ERROR_BODY);
  }

  async close(): Promise<void> {
    // Nothing is listening on our behalf; the app's own resources are its business.
  }
}

/** Node's emitCloseNT: a finished response emits 'close' once, after its socket is detached. */
function emitClose(res: GatewayServerResponse): void {
  if (res._closed) return;
  res.destroyed = true;
  res._closed = true;
  res.emit('close');
}

/**
 * `req.wsgid`: what mongrel2 knows beyond HTTP, for push-style Node apps (docs/BROADCAST.md):
 * `{ connId, server, sender, broadcast(connIds, data, options?) }`. Non-enumerable, so frameworks
 * that copy or log the request don't see it.
 */
export interface WsgidRequestInfo {
  /** mongrel2's id for the client connection. */
  readonly connId: number;
  /** Index of the mongrel2 server (--send/--recv pair); connection ids are per server. */
  readonly server: number;
  /** The handler's send_ident. */
  readonly sender: string;
  /** Send `data` to many connections of this server (see src/broadcast.ts). */
  broadcast(connIds: readonly number[], data: Uint8Array | string, options?: BroadcastOptions): number;
}

function attachWsgidInfo(req: IncomingMessage, request: GatewayRequest): void {
  const server = request.server ?? 0;
  const info: WsgidRequestInfo = {
    connId: request.message.connId,
    server,
    sender: request.message.sender,
    broadcast: (connIds, data, options) =>
      request.broadcast ? request.broadcast(connIds, data, options) : broadcast(connIds, data, { server, ...options }),
  };
  Object.defineProperty(req, 'wsgid', { value: info, enumerable: false, configurable: true });
}

export const create: GatewayFactory = (app: LoadedApp, options: GatewayOptions) =>
  new NodeGateway(toServer(app.app), options);

/**
 * Call `fn` once when the request is aborted (the client left, the worker stops it); returns how to
 * stop listening, or undefined when it was aborted already. Through `request.onAbort` when the
 * worker offers it: `request.signal` costs an AbortController and an EventTarget listener per
 * request (a tenth of the Node gateway's CPU in a profile of an Express app, with its garbage).
 */
function whenAborted(request: GatewayRequest, fn: () => void): (() => void) | undefined {
  if (request.onAbort) {
    let listening = true;
    if (!request.onAbort(() => listening && fn())) return undefined;
    return () => {
      listening = false;
    };
  }
  const signal = request.signal;
  if (signal.aborted) return undefined;
  signal.addEventListener('abort', fn, { once: true });
  return () => signal.removeEventListener('abort', fn);
}
