/**
 * HTTP translation for the WSGI gateway: the app's head (an H frame) into a framed HTTP/1.1 head,
 * its body (D frames) into framed bytes, its done into the end of the response, and the error
 * answers of our own. No I/O: the gateway (./index.ts) writes what these return.
 */
import { CHUNK_SUFFIX, chunkPrefix, frameHead, LAST_CHUNK, type Framing } from '../../http/head.js';
import { errorResponse } from '../../http/error-response.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import { decodeHead } from './pipe.js';

/** How one response's body is framed, and what the head still allows of it. */
export interface ResponseFraming {
  readonly framing: Framing;
  /** The connection must be closed after the response. */
  readonly close: boolean;
  /**
   * 'length' framing: body bytes the Content-Length still allows; -1 once more than that was
   * sent (and warned about).
   */
  remaining: number;
}

/**
 * The head the app gave (H frame payload) as HTTP/1.1 bytes and the body's framing. Throws
 * InvalidResponseHeadError (http/head.ts) for unsafe names, values or lengths.
 */
export function translateHead(
  reply: ReplyChannel,
  payload: Buffer,
  version: string,
): { readonly head: Buffer; readonly framing: ResponseFraming } {
  const head = decodeHead(payload);
  const framed = frameHead(reply, head.status, head.headers, head.bodyLength, version, head.reason || undefined);
  const declared = head.headers.find(([name]) => name.toLowerCase() === 'content-length')?.[1];
  return {
    head: Buffer.from(framed.head, 'latin1'),
    framing: {
      framing: framed.framing,
      close: framed.close,
      remaining: declared !== undefined ? Number(declared.trim()) : head.bodyLength ?? 0,
    },
  };
}

/**
 * A piece of the app's body as the bytes to write, in order (none: nothing may be sent). Updates
 * `framing.remaining`; `overflow` is true the first time the app sends more than its Content-Length
 * (the extra bytes are dropped).
 */
export function frameBody(framing: ResponseFraming, payload: Buffer): { readonly parts: Array<Buffer | string>; readonly overflow: boolean } {
  switch (framing.framing) {
    case 'none':
      return { parts: [], overflow: false };
    case 'length': {
      const size = payload.length;
      const take = Math.min(size, framing.remaining);
      let overflow = false;
      if (take < size && framing.remaining >= 0) {
        overflow = true;
        framing.remaining = -1; // warned
      }
      if (take <= 0) return { parts: [], overflow };
      framing.remaining -= take;
      return { parts: [take < size ? payload.subarray(0, take) : payload], overflow };
    }
    case 'chunked':
      return { parts: [chunkPrefix(payload.length), payload, CHUNK_SUFFIX], overflow: false };
    default:
      return { parts: [payload], overflow: false };
  }
}

/**
 * How to end a response whose app finished normally: the last bytes, whether to close, and how
 * many bytes short of its Content-Length the body was (then the connection is closed, so the
 * client sees the truncation).
 */
export function responseEnd(framing: ResponseFraming): { readonly last: string | undefined; readonly close: boolean; readonly missing: number } {
  switch (framing.framing) {
    case 'chunked':
      return { last: LAST_CHUNK, close: framing.close, missing: 0 };
    case 'length':
      return framing.remaining > 0
        ? { last: undefined, close: true, missing: framing.remaining }
        : { last: undefined, close: framing.close, missing: 0 };
    case 'close':
      return { last: undefined, close: true, missing: 0 };
    default:
      return { last: undefined, close: framing.close, missing: 0 };
  }
}

/** A complete error response of our own (500, 502, 503), always followed by a close. */
export function errorAnswer(reply: ReplyChannel, status: number, version: string): Buffer {
  return errorResponse(status, version, { method: reply.method });
}
