/**
 * The CGI part of a PEP 3333 environ, built from a mongrel2 request. Pure: no I/O.
 *
 * Every value is a "bytes-as-str" latin1 string (one char per byte), as PEP 3333 wants for
 * native strings: mongrel2's header values already arrive that way (protocol/types.ts), and the
 * %-decoded path is decoded to bytes, then to latin1 chars. The Python bridge adds the `wsgi.*`
 * keys that are not strings (version, input, errors, the booleans).
 *
 * Differences from the original wsgid are listed in docs/wsgi.md.
 */
import type { HeaderValue, Mongrel2Headers, Mongrel2Message } from '../../protocol/types.js';
import { environKey, routePrefix, serverFromHost, unquoteLatin1 } from '../python/request-names.js';

// Shared with the ASGI scope (../python/request-names.ts); exported here as before.
export { environKey, routePrefix, serverFromHost, unquoteLatin1 };

export interface EnvironOptions {
  /** SERVER_NAME when the request has no usable Host header. Default 'localhost'. */
  readonly serverName?: string;
}

/**
 * One value for a header mongrel2 may have sent up to 5 times, joined with `,` as gunicorn, uWSGI
 * and wsgiref do (Django and Flask apps were written against that; found by the conformance suite).
 */
export function joinHeader(value: HeaderValue | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(',') : value;
}

/** First value of a header (what mongrel2 itself uses for Host, Content-Length...). */
function firstValue(value: HeaderValue | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : value;
}

/**
 * SCRIPT_NAME and PATH_INFO from the raw (still %-encoded) path and the route pattern.
 * SCRIPT_NAME is the route's literal prefix only when the path really starts with it at a
 * segment boundary (`/app` matches `/app` and `/app/x`, not `/apple`); the split is done on the
 * raw path so an encoded `%2F` can never move it, then both halves are %-decoded.
 */
export function splitPath(rawPath: string, pattern: string | undefined): { scriptName: string; pathInfo: string } {
  const prefix = routePrefix(pattern);
  if (prefix !== '' && rawPath.startsWith(prefix)) {
    const next = rawPath.charCodeAt(prefix.length);
    if (rawPath.length === prefix.length || next === 0x2f /* / */) {
      return { scriptName: unquoteLatin1(prefix), pathInfo: unquoteLatin1(rawPath.slice(prefix.length)) };
    }
  }
  return { scriptName: '', pathInfo: unquoteLatin1(rawPath) };
}

/**
 * The environ's string entries for one request, as ordered [key, value] pairs. `bodyLength` is the
 * size of the body the app will read (inline body or upload file), used for CONTENT_LENGTH when the
 * client sent none (a chunked upload that mongrel2 de-chunked into a file).
 */
export function buildEnviron(
  message: Pick<Mongrel2Message, 'path' | 'headers'>,
  bodyLength: number | undefined,
  options: EnvironOptions = {},
): Array<[string, string]> {
  const h: Mongrel2Headers = message.headers;
  const scheme = firstValue(h.URL_SCHEME) === 'https' ? 'https' : 'http';
  const rawPath = firstValue(h.PATH) ?? message.path;
  const { scriptName, pathInfo } = splitPath(rawPath, firstValue(h.PATTERN));
  const server = serverFromHost(firstValue(h.host), scheme, options.serverName ?? 'localhost');
  const remote = firstValue(h.REMOTE_ADDR) ?? firstValue(h['x-forwarded-for'])?.split(',')[0]?.trim() ?? '';
  const env: Array<[string, string]> = [
    ['REQUEST_METHOD', firstValue(h.METHOD) ?? 'GET'],
    ['SCRIPT_NAME', scriptName],
    ['PATH_INFO', pathInfo],
    ['QUERY_STRING', firstValue(h.QUERY) ?? ''],
    ['SERVER_NAME', server.name],
    ['SERVER_PORT', server.port],
    ['SERVER_PROTOCOL', firstValue(h.VERSION) ?? 'HTTP/1.1'],
    ['REMOTE_ADDR', remote],
    ['REQUEST_URI', firstValue(h.URI) ?? rawPath],
    ['wsgi.url_scheme', scheme],
  ];
  let hasLength = false;
  let chunked = false;
  for (const name in h) {
    const key = environKey(name);
    if (key === undefined) continue;
    const value = joinHeader(h[name]);
    if (value === undefined) continue;
    if (key === 'CONTENT_LENGTH') {
      hasLength = true;
      // mongrel2 itself uses the first value; a list would be meaningless to the app.
      env.push([key, firstValue(h[name]) ?? value]);
      continue;
    }
    if (key === 'HTTP_TRANSFER_ENCODING' && /chunked/i.test(value)) {
      // mongrel2 de-chunks every chunked body (into an upload file); the app sees a plain body.
      chunked = true;
      continue;
    }
    env.push([key, value]);
  }
  if (!hasLength && (chunked || (bodyLength !== undefined && bodyLength > 0))) {
    env.push(['CONTENT_LENGTH', String(bodyLength ?? 0)]);
  }
  return env;
}
