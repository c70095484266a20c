/**
 * The contract every app gateway implements (fetch, node, wsgi, ...). The worker never imports a
 * particular gateway; loaders pick one by name from the registry in ./registry.ts.
 */
import type { Mongrel2Message } from '../protocol/types.js';
import type { ReplyChannel } from '../http/reply-channel.js';

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
}

export interface Gateway {
  /**
   * Serve one request: call the app and write a complete HTTP/1.1 response to `reply`.
   * Must never throw for an app error: answer 500 itself (and log). May return synchronously
   * (fast path) or a promise that settles when the response is fully written.
   */
  handle(request: GatewayRequest, reply: ReplyChannel): void | Promise<void>;
  /** Release app resources when the worker stops (close DB pools, Python process, ...). */
  close(): Promise<void>;
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
}

export type GatewayFactory = (app: LoadedApp, options: GatewayOptions) => Gateway | Promise<Gateway>;
