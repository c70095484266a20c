/**
 * The second argument of a fetch handler: what mongrel2 knows about the request that the
 * standard Request cannot say. Hono apps see it as `c.env`.
 */
import type { GatewayRequest } from '../types.js';
import { broadcast, type BroadcastOptions } from '../../broadcast.js';
import type { Logger } from '../../log/logger.js';
import { ServerWebSocket } from './websocket.js';

/** Options of `context.upgradeWebSocket()`. */
export interface UpgradeWebSocketOptions {
  /** The subprotocol to select (sent as Sec-WebSocket-Protocol); one the client offered. */
  protocol?: string;
  /** Extra headers for the 101 response (e.g. Set-Cookie). */
  headers?: HeadersInit;
}

/** What upgradeWebSocket() returns: return `response` from the handler; talk through `socket`. */
export interface WebSocketUpgrade {
  socket: ServerWebSocket;
  response: Response;
}

/** @internal The pending upgrade of a handshake request, read back by the gateway. */
export interface PendingUpgrade extends WebSocketUpgrade {
  readonly headers: Array<[string, string]>;
}

/** @internal Set by the gateway when the request is a WebSocket handshake. */
export interface HandshakeSlot {
  readonly logger: Logger;
  upgrade?: PendingUpgrade;
}

export class FetchContext {
  constructor(
    private readonly source: GatewayRequest,
    private readonly handshake?: HandshakeSlot,
  ) {}

  /** True when the request is a WebSocket handshake that `upgradeWebSocket()` can accept. */
  get isWebSocket(): boolean {
    return this.handshake !== undefined;
  }

  /**
   * Accept a WebSocket handshake, in the style of `Deno.upgradeWebSocket(request)`: returns
   * `{ socket, response }`; return `response` from the handler (wsgid sends the
   * `101 Switching Protocols` with mongrel2's Sec-WebSocket-Accept), and use `socket` — a
   * browser-like WebSocket (`onopen`, `onmessage`, `onclose`, `onerror`, `addEventListener`,
   * `send(string | ArrayBuffer | Uint8Array)`, `close(code?, reason?)`, `readyState`) — once its
   * `open` event fired. Pings are answered and the close handshake is handled for you.
   * Throws a TypeError when the request is not a WebSocket handshake (see `isWebSocket`).
   *
   * ```js
   * export default (request, context) => {
   *   if (!context.isWebSocket) return new Response('use a WebSocket', { status: 426 });
   *   const { socket, response } = context.upgradeWebSocket();
   *   socket.onmessage = (event) => socket.send(event.data);
   *   return response;
   * };
   * ```
   */
  upgradeWebSocket(options: UpgradeWebSocketOptions = {}): WebSocketUpgrade {
    const slot = this.handshake;
    if (slot === undefined) throw new TypeError('upgradeWebSocket(): this request is not a WebSocket handshake');
    if (slot.upgrade !== undefined) throw new TypeError('upgradeWebSocket() was already called for this request');
    const headers: Array<[string, string]> = [];
    for (const [name, value] of new Headers(options.headers)) headers.push([name, value]);
    const protocol = options.protocol ?? '';
    if (protocol !== '') headers.push(['Sec-WebSocket-Protocol', protocol]);
    const url = firstString(this.source.message.headers['URI']) ?? this.source.message.path;
    const socket = new ServerWebSocket(url, protocol, slot.logger);
    // A plain marker: the gateway recognises it by identity and writes the 101 instead.
    const response = new Response(null, { status: 200, statusText: 'Switching Protocols' });
    slot.upgrade = { socket, response, headers };
    return { socket, response };
  }

  /** The client's IP address, as mongrel2 saw it. */
  get remoteAddress(): string {
    const value = this.source.message.headers['REMOTE_ADDR'] ?? this.source.message.headers['x-forwarded-for'];
    return (Array.isArray(value) ? value[0] : value) ?? '';
  }

  /** The mongrel2 route that matched (PATTERN), e.g. `/api/`. */
  get pattern(): string {
    const value = this.source.message.headers['PATTERN'];
    return typeof value === 'string' ? value : '';
  }

  /** The handler's send_ident, which replies are addressed with. */
  get sender(): string {
    return this.source.message.sender;
  }

  /** mongrel2's id for the client connection. */
  get connId(): number {
    return this.source.message.connId;
  }

  /** The raw mongrel2 headers, including its own UPPERCASE keys. */
  get mongrel2Headers(): Readonly<Record<string, string | string[]>> {
    return this.source.message.headers;
  }

  /** Aborted when the client disconnects (same as request.signal). */
  get signal(): AbortSignal {
    return this.source.signal;
  }

  /** Index of the mongrel2 server (--send/--recv pair) the request came from; connection ids are per server. */
  get server(): number {
    return this.source.server ?? 0;
  }

  /**
   * Send `data` to many client connections of this request's mongrel2 server at once (chat, push;
   * docs/BROADCAST.md). With `{chunked: true}` the data is framed as one HTTP/1.1 chunk, for
   * connections whose open response is a streamed (chunked) body such as an event stream.
   * Returns the number of connections addressed.
   */
  broadcast(connIds: readonly number[], data: Uint8Array | string, options?: BroadcastOptions): number {
    if (this.source.broadcast) return this.source.broadcast(connIds, data, options);
    return broadcast(connIds, data, { server: this.server, ...options });
  }
}

function firstString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
