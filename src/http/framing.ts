/**
 * Request framing that two HTTP parsers could read differently (request smuggling, RFC 9112 §6.3).
 * mongrel2 1.12 frames the body from the *first* Content-Length and lets through what a strict
 * parser refuses: Content-Length with Transfer-Encoding, two Content-Lengths, `Content-Length: 5, 30`,
 * a coding it does not de-chunk. A proxy in front of mongrel2 may have framed the same bytes
 * another way, and what mongrel2 read as a second request (`GET /smug`) may be the tail of the
 * first. So the worker refuses every request whose framing headers node:http (llhttp) refuses,
 * with a 400 and a close, before any gateway sees it (docs/SECURITY.md, "Request smuggling").
 * Pure: headers in, a reason or undefined out.
 */
import type { Mongrel2Headers } from '../protocol/index.js';

/** RFC 9110 §8.6: Content-Length = 1*DIGIT (optional whitespace around a field value is not part of it). */
const CONTENT_LENGTH = /^[ \t]*[0-9]+[ \t]*$/;

/**
 * Why `headers` (one mongrel2 request) must be refused, or undefined when its framing is
 * unambiguous. `dechunked`: the body came through mongrel2's upload path (x-mongrel2-upload-done),
 * which every body mongrel2 de-chunked takes; a Transfer-Encoding on an inline request is one
 * mongrel2 did not decode (e.g. `CHUNKED`, which llhttp reads as chunked).
 */
export function framingProblem(headers: Mongrel2Headers, dechunked: boolean): string | undefined {
  const length = headers['content-length'];
  const coding = headers['transfer-encoding'];
  if (coding !== undefined) {
    if (length !== undefined) return 'both Content-Length and Transfer-Encoding';
    if (Array.isArray(coding)) return 'more than one Transfer-Encoding header';
    if (headers['VERSION'] === 'HTTP/1.0') return 'Transfer-Encoding in an HTTP/1.0 request';
    if (coding.replace(/^[ \t]+|[ \t]+$/g, '').toLowerCase() !== 'chunked') return `Transfer-Encoding other than chunked`;
    if (!dechunked) return 'a chunked body mongrel2 did not decode';
    return undefined;
  }
  if (length === undefined) return undefined;
  if (Array.isArray(length)) return 'more than one Content-Length header';
  if (!CONTENT_LENGTH.test(length)) return 'a Content-Length that is not a number';
  return undefined;
}
