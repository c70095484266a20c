/**
 * Values produced by the mongrel2 protocol layer. Pure data: no I/O, no Node streams.
 * See docs/MONGREL2.md §2–§4 for the wire format behind every field.
 */
import { WsgidError, type ErrorCode } from '../errors.js';

/** A header as mongrel2 sends it: one value, or up to 5 values for a repeated client header. */
export type HeaderValue = string | string[];

/**
 * Header map exactly as received. Client header names are lowercase; names mongrel2 generates
 * (PATH, METHOD, VERSION, URI, QUERY, PATTERN, URL_SCHEME, REMOTE_ADDR, ...) are UPPERCASE.
 * Values are byte strings decoded as latin1 (as Node's http module does), so they round-trip.
 */
export type Mongrel2Headers = Record<string, HeaderValue>;

/** What a message from mongrel2 is about. Decided once, in the parser. */
export type MessageKind =
  | 'request' //               an ordinary HTTP request with its body inline
  | 'disconnect' //            @* {"type":"disconnect"}: the client connection is gone
  | 'credits' //               @* {"type":"credits"} with DOWNLOAD_CREDITS: bytes mongrel2 wrote out
  | 'upload-start' //          async upload began: x-mongrel2-upload-start, empty body
  | 'upload-done' //           async upload finished: x-mongrel2-upload-done (== start), empty body
  | 'upload-stream' //         upload.stream=1 message (UPLOAD_STREAM offset)
  | 'websocket-handshake' //   METHOD=WEBSOCKET_HANDSHAKE, body = Sec-WebSocket-Accept value
  | 'websocket-frame' //       METHOD=WEBSOCKET, FLAGS=0x.., unmasked payload
  | 'json' //                  a JSON socket message (METHOD=JSON on a route other than @*)
  | 'xml'; //                  an XML socket message

export interface Mongrel2Message {
  readonly kind: MessageKind;
  /** The handler's send_ident; replies must start with it. */
  readonly sender: string;
  /** Connection id: decimal uint32 as mongrel2 wrote it. */
  readonly connId: number;
  /** Request path, still %-encoded, no query string; `@*` for control messages. */
  readonly path: string;
  readonly headers: Mongrel2Headers;
  /** Body bytes, exact. A view into the received frame: copy it if you keep it past the request. */
  readonly body: Buffer;
}

/** Its codes (M2_ERR_*, declared with their meanings in src/errors.ts), in the style of Fastify's FST_ERR_*. */
export type ProtocolErrorCode = Extract<ErrorCode, `M2_ERR_${string}`>;

/** The only error the protocol layer throws. */
export class ProtocolError extends WsgidError {
  declare readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message, code);
  }
}

/** mongrel2 accepts at most this many connection ids in one reply (limits.handler_targets). */
export const MAX_REPLY_TARGETS = 128;
