/**
 * HTTP/1.1 response heads for gateways that do not have Node's ServerResponse to do it
 * (fetch, wsgi). mongrel2 forwards our bytes untouched, so every rule a front server would
 * normally apply lives here: Date, X-Wsgid, Content-Length or chunked framing, no body for
 * HEAD/1xx/204/304 (RFC 9110 §6.4.1), Connection: close when the connection will close, and the
 * refusal of any head an app could use to split the response (InvalidResponseHeadError).
 */
import { STATUS_CODES } from 'node:http';
import type { ReplyChannel } from './reply-channel.js';
import { WsgidError } from '../errors.js';

/** How the body that follows the head is delimited. */
export type Framing =
  | 'none' //     no body may follow (HEAD, 1xx, 204, 304)
  | 'length' //   Content-Length bytes follow
  | 'chunked' //  chunk() each piece, then LAST_CHUNK
  | 'close'; //   HTTP/1.0 with unknown length: body ends when the connection closes

export interface FramedHead {
  /** The status line and headers, ending with the blank line. Latin1 text. */
  readonly head: string;
  readonly framing: Framing;
  /** The connection must be closed after this response (pass to reply.end). */
  readonly close: boolean;
}

export const LAST_CHUNK = '0\r\n\r\n';

let cachedDate = '';
let cachedSecond = 0;
/** RFC 9110 IMF-fixdate, recomputed at most once a second (it is on every response). */
export function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedDate = new Date(now).toUTCString();
  }
  return cachedDate;
}

export function statusText(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown';
}

export function bodyForbidden(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * A response head wsgid refuses to write: an app's header name that is not a token, a value or
 * reason phrase with a character outside HTAB, SP, VCHAR and obs-text (CR, LF and NUL would let a
 * client who gets an app to echo its input split the response; a character above U+00FF would be
 * cut to its low byte when the head is written as Latin-1, and U+010D becomes CR), or a status
 * outside 100–999. node:http refuses the same (ERR_INVALID_CHAR, ERR_INVALID_HTTP_TOKEN).
 */
export class InvalidResponseHeadError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_ERR_RESPONSE_HEAD');
  }
}

/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Anything but HTAB, SP, VCHAR and obs-text (RFC 9110 §5.5 field-value, §15 reason-phrase). */
const INVALID_TEXT = /[^\t\x20-\x7e\x80-\xff]/;

export function assertSafeHeader(name: string, value: string): void {
  if (!TOKEN.test(name)) throw new InvalidResponseHeadError(`invalid response header name ${JSON.stringify(name)}`);
  if (INVALID_TEXT.test(value)) {
    throw new InvalidResponseHeadError(`invalid character in the value of response header ${JSON.stringify(name)}: ${JSON.stringify(value)}`);
  }
}

function assertSafeStatus(status: number, reason: string | undefined): void {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new InvalidResponseHeadError(`invalid status ${status}`);
  if (reason !== undefined && INVALID_TEXT.test(reason)) throw new InvalidResponseHeadError(`invalid character in the reason phrase ${JSON.stringify(reason)}`);
}

/**
 * Build the head for `status` and the app's `headers` (name/value pairs in order; repeat a name,
 * e.g. Set-Cookie, to send it several times). `bodyLength` is the body's byte length when known.
 * Hop-by-hop headers the app set (Connection, Transfer-Encoding, Keep-Alive) are replaced by ours;
 * an app's own Content-Length is kept and wins. An app's `Connection: close` is honoured.
 */
export function frameHead(
  reply: Pick<ReplyChannel, 'method' | 'httpVersion' | 'keepAlive'>,
  status: number,
  headers: Iterable<readonly [string, string]>,
  bodyLength: number | undefined,
  version: string,
  reason?: string,
): FramedHead {
  assertSafeStatus(status, reason);
  let head = `HTTP/1.1 ${status} ${reason ?? statusText(status)}\r\n`;
  let appLength: string | undefined;
  let close = !reply.keepAlive;
  let hasDate = false;
  for (const [name, value] of headers) {
    // Every byte of an app's head is checked here, whichever gateway framed it.
    assertSafeHeader(name, value);
    switch (name.toLowerCase()) {
      case 'connection':
        if (/\bclose\b/i.test(value)) close = true;
        continue;
      case 'transfer-encoding':
      case 'keep-alive':
        continue;
      case 'content-length': {
        // A length the body does not obey would desynchronise every later response on the connection.
        const length = value.trim();
        if (!/^\d+$/.test(length) || (appLength !== undefined && appLength !== length)) {
          throw new InvalidResponseHeadError(`invalid Content-Length ${JSON.stringify(value)}`);
        }
        appLength = length;
        continue;
      }
      case 'date':
        hasDate = true;
        break;
    }
    head += name + ': ' + value + '\r\n';
  }
  if (!hasDate) head += 'Date: ' + httpDate() + '\r\n';
  head += 'X-Wsgid: ' + version + '\r\n';

  let framing: Framing;
  if (bodyForbidden(reply.method, status)) {
    framing = 'none';
    // A HEAD response may announce the length the GET would have had.
    if (reply.method === 'HEAD' && status >= 200 && status !== 204 && status !== 304) {
      const length = appLength ?? (bodyLength !== undefined ? String(bodyLength) : undefined);
      if (length !== undefined) head += 'Content-Length: ' + length + '\r\n';
    }
  } else if (appLength !== undefined) {
    framing = 'length';
    head += 'Content-Length: ' + appLength + '\r\n';
  } else if (bodyLength !== undefined) {
    framing = 'length';
    head += 'Content-Length: ' + bodyLength + '\r\n';
  } else if (reply.httpVersion === 'HTTP/1.1') {
    framing = 'chunked';
    head += 'Transfer-Encoding: chunked\r\n';
  } else {
    framing = 'close';
    close = true;
  }
  if (close) head += 'Connection: close\r\n';
  else if (reply.httpVersion === 'HTTP/1.0') head += 'Connection: keep-alive\r\n';
  return { head: head + '\r\n', framing, close };
}

/** One chunk of a chunked body (never call with an empty chunk: that would end the body). */
export function chunkPrefix(byteLength: number): string {
  return byteLength.toString(16) + '\r\n';
}
export const CHUNK_SUFFIX = '\r\n';

/**
 * Decide keep-alive from the request: HTTP/1.1 keeps the connection unless `Connection: close`;
 * HTTP/1.0 closes unless `Connection: keep-alive` (RFC 9112 §9.3).
 */
export function requestKeepAlive(httpVersion: string, connectionHeader: string | string[] | undefined): boolean {
  const value = Array.isArray(connectionHeader) ? connectionHeader.join(',') : connectionHeader;
  if (httpVersion === 'HTTP/1.1') return value === undefined || !/\bclose\b/i.test(value);
  return value !== undefined && /\bkeep-alive\b/i.test(value) && !/\bclose\b/i.test(value);
}
