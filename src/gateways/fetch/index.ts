/**
 * The fetch gateway: apps written against Web standards, `(request, context) => Response`, or an
 * object with such a `fetch` method (Hono, itty-router, Elysia-style exports...).
 */
import type { Gateway, GatewayFactory, GatewayOptions, GatewayRequest, WebSocketSession } from '../types.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import type { Logger } from '../../log/logger.js';
import { LightRequest } from './request.js';
import { installLightResponse } from './response.js';
import { writeResponse } from './write.js';
import { FetchContext, type HandshakeSlot } from './context.js';
import { closingReply, switchingProtocolsHead } from '../../http/websocket.js';
import { errorResponse } from '../../http/error-response.js';

export { FetchContext } from './context.js';
export type { UpgradeWebSocketOptions, WebSocketUpgrade } from './context.js';
export { ServerWebSocket, WebSocketCloseEvent, WebSocketErrorEvent, WebSocketMessageEvent } from './websocket.js';

export type FetchHandler = (request: Request, context: FetchContext) => Response | Promise<Response>;

export function toFetchHandler(app: unknown): FetchHandler {
  if (typeof app === 'function') return app as FetchHandler;
  if (app !== null && typeof app === 'object' && typeof (app as { fetch?: unknown }).fetch === 'function') {
    const target = app as { fetch: FetchHandler };
    return (request, context) => target.fetch(request, context);
  }
  throw new TypeError('a fetch app must be a function (request, context) => Response or an object with a fetch method');
}

export const create: GatewayFactory = (loaded, options) => {
  if (!options.settings?.standardResponse) installLightResponse();
  return new FetchGateway(toFetchHandler(loaded.app), options);
};

class FetchGateway implements Gateway {
  private readonly logger: Logger;
  private readonly version: string;

  constructor(
    private readonly handler: FetchHandler,
    options: GatewayOptions,
  ) {
    this.logger = options.logger;
    this.version = options.version;
  }

  handle(source: GatewayRequest, reply: ReplyChannel): void | Promise<void> {
    const request = new LightRequest(source) as unknown as Request;
    let result: Response | Promise<Response>;
    try {
      result = this.handler(request, new FetchContext(source));
    } catch (error) {
      return this.fail(reply, source, error);
    }
    // Synchronous fast path: no promise, no listeners (as in Hono's node-server).
    if (result instanceof Promise || (typeof result === 'object' && result !== null && 'then' in result)) {
      return Promise.resolve(result).then(
        (response) => this.write(reply, source, response),
        (error: unknown) => this.fail(reply, source, error),
      );
    }
    return this.write(reply, source, result);
  }

  /**
   * A WebSocket handshake: the handler sees the client's GET; if it returns the response of
   * `context.upgradeWebSocket()`, we send the 101 and attach the socket to the session. Any other
   * response is written as usual and the connection closed.
   */
  upgrade(source: GatewayRequest, reply: ReplyChannel, session: WebSocketSession): void | Promise<void> {
    const slot: HandshakeSlot = { logger: this.logger };
    const request = new LightRequest(source) as unknown as Request;
    const refused = closingReply(reply);
    let result: Response | Promise<Response>;
    try {
      result = this.handler(request, new FetchContext(source, slot));
    } catch (error) {
      slot.upgrade?.socket.abandon('the handler failed');
      return this.fail(refused, source, error);
    }
    const finish = (response: unknown): void | Promise<void> => {
      const pending = slot.upgrade;
      if (pending !== undefined && response === pending.response) {
        if (reply.closed) {
          reply.end();
          return pending.socket.abandon('the client left before the upgrade');
        }
        let head: string;
        try {
          head = switchingProtocolsHead(session.accept, this.version, pending.headers);
        } catch (error) {
          // e.g. a subprotocol copied from the client holding a character that is not Latin-1.
          pending.socket.abandon('the upgrade response has an invalid header');
          return this.fail(refused, source, error);
        }
        reply.end(head);
        pending.socket.attach(session);
        return;
      }
      pending?.socket.abandon('the handler did not return the upgrade response');
      return this.write(refused, source, response);
    };
    return Promise.resolve(result).then(finish, (error: unknown) => {
      slot.upgrade?.socket.abandon('the handler failed');
      return this.fail(refused, source, error);
    });
  }

  private write(reply: ReplyChannel, source: GatewayRequest, response: unknown): void | Promise<void> {
    if (!(response instanceof Response)) {
      return this.fail(reply, source, new TypeError(`the app returned ${describe(response)} instead of a Response`));
    }
    let written: void | Promise<void>;
    try {
      written = writeResponse(reply, response, this.version, () => source.signal);
    } catch (error) {
      return this.fail(reply, source, error);
    }
    if (written) return written.catch((error: unknown) => this.fail(reply, source, error));
  }

  /** The app threw, rejected, or its body stream failed: 500 if nothing was sent, else cut it off. */
  private fail(reply: ReplyChannel, source: GatewayRequest, error: unknown): void {
    if (reply.closed && source.signal.aborted) return; // the client left; nothing to answer
    source.reportError?.(error);
    this.logger.error('app error', {
      method: source.message.headers['METHOD'],
      path: source.message.path,
      conn: source.message.connId,
      error,
    });
    if (reply.bytes > 0) return reply.abort();
    reply.end(errorResponse(500, this.version, { method: reply.method }), true);
  }

  async close(): Promise<void> {}
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'Object'})`;
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`;
}
