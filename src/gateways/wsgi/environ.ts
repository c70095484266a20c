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

export interface EnvironOptions {
  /** SERVER_NAME when the request has no usable Host header. Default 'localhost'. */
  readonly serverName?: string;
}

/** Client headers that never reach the app: mongrel2's upload bookkeeping. */
const INTERNAL_HEADERS = new Set(['x-mongrel2-upload-start', 'x-mongrel2-upload-done']);

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

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * %-decode a latin1 byte string to a latin1 byte string (PEP 3333's bytes-as-str). A `%` not
 * followed by two hex digits is kept as is, like Python's urllib.parse.unquote_to_bytes. `+` is
 * not a space in a path.
 */
export function unquoteLatin1(raw: string): string {
  const first = raw.indexOf('%');
  if (first < 0) return raw;
  let out = raw.slice(0, first);
  for (let i = first; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 && i + 2 < raw.length) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        out += String.fromCharCode(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += raw[i];
  }
  return out;
}

/**
 * The literal prefix of a mongrel2 route pattern: mongrel2 routes are a literal prefix optionally
 * followed by a Lua-style pattern that starts with `(` (e.g. `/api/(.*)$`). Trailing slashes are
 * removed, so `/` gives '' and `/app/` gives `/app`.
 */
export function routePrefix(pattern: string | undefined): string {
  if (!pattern) return '';
  const paren = pattern.indexOf('(');
  let prefix = paren >= 0 ? pattern.slice(0, paren) : pattern;
  while (prefix.endsWith('/')) prefix = prefix.slice(0, -1);
  return prefix;
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
 * SERVER_NAME and SERVER_PORT from a Host header value. IPv6 literals keep their brackets
 * (`[::1]:8080` → `[::1]`, `8080`), so that PEP 3333's URL reconstruction (name + ':' + port)
 * stays a valid URL. A missing or malformed Host falls back to `fallbackName` and the scheme's
 * default port.
 */
export function serverFromHost(
  host: string | undefined,
  scheme: string,
  fallbackName = 'localhost',
): { name: string; port: string } {
  const defaultPort = scheme === 'https' ? '443' : '80';
  const value = host?.trim();
  if (!value) return { name: fallbackName, port: defaultPort };
  let name: string;
  let port: string | undefined;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) return { name: fallbackName, port: defaultPort };
    name = value.slice(0, close + 1);
    const rest = value.slice(close + 1);
    if (rest.startsWith(':')) port = rest.slice(1);
    else if (rest !== '') return { name: fallbackName, port: defaultPort };
  } else {
    const colon = value.lastIndexOf(':');
    if (colon >= 0 && value.indexOf(':') !== colon) {
      // Several colons without brackets: not a valid Host. Keep nothing from it.
      return { name: fallbackName, port: defaultPort };
    }
    name = colon >= 0 ? value.slice(0, colon) : value;
    port = colon >= 0 ? value.slice(colon + 1) : undefined;
  }
  if (name === '' || /[\s/\\@]/.test(name)) return { name: fallbackName, port: defaultPort };
  if (port === undefined || port === '') return { name, port: defaultPort };
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return { name, port: defaultPort };
  return { name, port: String(Number(port)) };
}

/** `content-type` → CONTENT_TYPE, `x-foo` → HTTP_X_FOO; undefined when the header is dropped. */
export function environKey(headerName: string): string | undefined {
  if (headerName === 'content-type') return 'CONTENT_TYPE';
  if (headerName === 'content-length') return 'CONTENT_LENGTH';
  if (INTERNAL_HEADERS.has(headerName)) return undefined;
  // `x_foo` would become HTTP_X_FOO too and could pass for a header a proxy set (`x-foo`);
  // like nginx and gunicorn, headers with an underscore are not given to the app.
  if (headerName.includes('_')) return undefined;
  // Client names are lowercase; mongrel2's own keys (METHOD, PATH, ...) are uppercase.
  if (headerName !== headerName.toLowerCase()) return undefined;
  if (!/^[!#$%&'*+.^`|~0-9a-z-]+$/.test(headerName)) return undefined;
  return 'HTTP_' + headerName.toUpperCase().replace(/-/g, '_');
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
