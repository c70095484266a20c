/**
 * Push one message to many client connections (mongrel2's multi-id replies), for chat- and
 * push-style apps. See docs/BROADCAST.md.
 *
 *   import { broadcast } from 'wsgid';
 *   broadcast([12, 13, 14], 'data: hello\n\n', { chunked: true });
 *
 * Works inside a wsgid worker (any gateway); the worker installs the implementation under a
 * global symbol, so it also works when the app imports its own copy of this module.
 */

export interface BroadcastOptions {
  /**
   * Index of the mongrel2 server the connections belong to (the position of its --send/--recv
   * pair, 0 for the first). Connection ids are per server. Default: 0, or the current request's
   * server when called through a request's context.
   */
  readonly server?: number;
  /**
   * Frame `data` as one HTTP/1.1 chunk (`<hex length>\r\n<data>\r\n`), which is what an open
   * streamed response (SSE, a chunked long poll) expects. Default false: the bytes go out as they
   * are, as with mongrel2's own multi-id replies.
   */
  readonly chunked?: boolean;
}

export interface Broadcaster {
  /**
   * Send `data` (a string is UTF-8) to every connection id in `connIds`. Returns how many
   * connections it was addressed to. Connections this worker is streaming a response to get it in
   * order with that response; others get mongrel2 multi-id replies (up to 128 ids per message).
   */
  broadcast(connIds: readonly number[], data: Uint8Array | string, options?: BroadcastOptions): number;
}

const REGISTRY = Symbol.for('wsgid.broadcaster');

function registry(): { [REGISTRY]?: Broadcaster } {
  return globalThis as { [REGISTRY]?: Broadcaster };
}

/** Send `data` to many client connections. Throws outside a wsgid worker. */
export function broadcast(connIds: readonly number[], data: Uint8Array | string, options?: BroadcastOptions): number {
  const target = registry()[REGISTRY];
  if (target === undefined) throw new Error('wsgid: broadcast() works only inside a wsgid worker');
  return target.broadcast(connIds, data, options);
}

/** Used by the worker (worker/serve.ts); `undefined` uninstalls. */
export function installBroadcaster(target: Broadcaster | undefined): void {
  if (target === undefined) delete registry()[REGISTRY];
  else registry()[REGISTRY] = target;
}
