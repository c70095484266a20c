/**
 * The contract every app gateway implements (fetch, node, wsgi, ...). The worker never imports a
 * particular gateway; loaders pick one by name from the registry in ./registry.ts.
 */
import type { Mongrel2Message } from '../protocol/types.js';
import type { ReplyChannel } from '../http/reply-channel.js';
import type { BroadcastOptions } from '../broadcast.js';

/** What the worker hands a gateway for one HTTP request. */
export interface GatewayRequest {
  /** The parsed mongrel2 message (kind 'request', or 'upload-done' with `bodyFile` set). */
  readonly message: Mongrel2Message;
  /**
   * For async uploads: absolute path of the finished upload file (already resolved under the
   * mongrel2 chroot and checked). The body must be streamed from it; the worker unlinks it after
   * `handle` settles. Undefined for ordinary requests, whose body is `message.body`.
   */
  readonly bodyFile?: string;
  /** Aborted when mongrel2 reports the client gone (disconnect message) or the worker stops it. */
  readonly signal: AbortSignal;
  /**
   * Optional, cheaper than `signal` (which costs an AbortController per request): `listener` is
   * called once when the request is aborted. Returns false, without registering it, when the
   * request was aborted already. Provided by the worker; test doubles may leave it out.
   */
  onAbort?(listener: () => void): boolean;
  /** Index of the mongrel2 server (--send/--recv pair) the request came from. */
  readonly server?: number;
  /**
   * Push bytes to other client connections of the same mongrel2 server (docs/BROADCAST.md).
   * Provided by the worker; test doubles may leave it out.
   */
  broadcast?(connIds: readonly number[], data: Uint8Array | string, options?: BroadcastOptions): number;
  /**
   * The app failed while serving this request (an exception, a rejected promise, a body stream
   * that errored, a Python traceback): gateways call this with the error, besides logging it, so
   * whoever wraps the gateway (request filters' `after`) learns of it whatever thread or process
   * the error came from.
   */
  reportError?(error: unknown): void;
}

export interface Gateway {
  /**
   * Serve one request: call the app and write a complete HTTP/1.1 response to `reply`.
   * Must never throw for an app error: answer 500 itself (and log). May return synchronously
   * (fast path) or a promise that settles when the response is fully written.
   */
  handle(request: GatewayRequest, reply: ReplyChannel): void | Promise<void>;
  /**
   * Optional: serve a WebSocket handshake (mongrel2's `websocket-handshake` message, kind of
   * `request.message`). To accept, write the complete `101 Switching Protocols` head to `reply`
   * (with `Sec-WebSocket-Accept: session.accept`), `reply.end()` it, then `session.open(listener)`:
   * from then on the client's frames reach the listener and the gateway writes frames with
   * `session.write()`. To refuse, write an ordinary response and `reply.end(..., true)`.
   * Gateways without this method get the handshake through `handle()` as the client's GET, and
   * the connection is closed after the response. See src/worker/websocket.ts.
   */
  upgrade?(request: GatewayRequest, reply: ReplyChannel, session: WebSocketSession): void | Promise<void>;
  /** Release app resources when the worker stops (close DB pools, Python process, ...). */
  close(): Promise<void>;
  /**
   * Optional: the app runs at most `concurrent` requests at once (WSGI: --threads per Python
   * process) and may usefully hold `waiting` more (sent ahead, so it goes from one to the next
   * without a round trip). The worker tells the master, which gives a new connection's request to
   * a worker that can start it now rather than one where it would wait. None: no bound.
   */
  readonly capacity?: GatewayCapacity;
}

export interface GatewayCapacity {
  readonly concurrent: number;
  readonly waiting: number;
}

/** Receives one WebSocket connection's traffic from the worker (after `session.open`). */
export interface WebSocketListener {
  /**
   * One client message or control frame. `flags` is the frame's first byte as mongrel2 reports
   * it (FIN set, opcode in the low 4 bits: 0x81 text, 0x82 binary, 0x88 close, 0x89 ping,
   * 0x8A pong); fragmented messages arrive reassembled; `payload` is unmasked and owned by you.
   */
  frame(flags: number, payload: Buffer): void;
  /**
   * The connection is over without a close handshake: `disconnect` = mongrel2 reported the client
   * gone; `shutdown` = the worker stops (it has sent a 1001 close frame and closed the connection).
   */
  gone(reason: 'disconnect' | 'shutdown'): void;
}

/** A WebSocket connection held by this worker (implemented by src/worker/websocket.ts). */
export interface WebSocketSession {
  /** The `Sec-WebSocket-Accept` value mongrel2 computed from the client's key. */
  readonly accept: string;
  /** mongrel2's connection id. */
  readonly connId: number;
  /** True once `end()` was called or the client is gone: writes are dropped. */
  readonly closed: boolean;
  /** Start receiving frames. Call after the 101 head has been written and the reply ended. */
  open(listener: WebSocketListener): void;
  /**
   * Send bytes to the client as they are (complete, unmasked server frames; see
   * `encodeFrame` in src/worker/websocket.ts). Returns false when the producer should wait for
   * `drained()`; the bytes are accepted either way.
   */
  write(bytes: Uint8Array): boolean;
  drained(): Promise<void>;
  /** Close the TCP connection once what was written has gone out (send a close frame first). */
  end(): void;
}

/** What a loader produced: the gateway kind to use and the value it should wrap. */
export interface LoadedApp {
  /** Gateway name, e.g. 'fetch', 'node', 'wsgi'. */
  readonly kind: string;
  /** The app object (a function, an object with fetch, an http.Server...) or, for wsgi, a spec. */
  readonly app: unknown;
  /** Human description for logs, e.g. "app/server.mjs (default export, fetch handler)". */
  readonly description: string;
}

export interface GatewayOptions {
  readonly logger: import('../log/logger.js').Logger;
  /** Value of the X-Wsgid header and of Server-ish identification. */
  readonly version: string;
  /** The instance's settings (gateways read their own knobs, e.g. standardResponse). */
  readonly settings?: Readonly<import('../config/settings.js').Settings>;
}

export type GatewayFactory = (app: LoadedApp, options: GatewayOptions) => Gateway | Promise<Gateway>;
