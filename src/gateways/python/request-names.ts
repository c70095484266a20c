/**
 * Request names both Python gateways derive the same way from a mongrel2 request (the WSGI environ,
 * ../wsgi/environ.ts, and the ASGI scope, ../asgi/scope.ts): %-decoding to latin1 bytes-as-str,
 * the route's literal prefix, the server name and port from Host, and which client headers reach
 * the app. Pure: no I/O.
 */

/** Client headers that never reach the app: mongrel2's upload bookkeeping. */
const INTERNAL_HEADERS = new Set(['x-mongrel2-upload-start', 'x-mongrel2-upload-done']);

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
