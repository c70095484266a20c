/**
 * The ASGI 3.0 `http` and `websocket` scope of a mongrel2 request, as the JSON the ASGI bridge
 * turns into the scope dict (asgi_bridge.py `Bridge.begin`). Pure: no I/O.
 *
 * Byte fields (raw_path, query_string, header names and values) travel as latin1 strings (one char
 * per byte, as mongrel2's values arrive, protocol/types.ts) and become `bytes` in Python; `path`
 * is %-decoded and then UTF-8-decoded, as the spec asks. Header names are lowercased (mongrel2's
 * client names already are) and keep mongrel2's order; a header repeated by the client (mongrel2
 * sends up to 5 values as a list) gives one pair per value.
 */
import type { HeaderValue, Mongrel2Message } from '../../protocol/types.js';
import { environKey, routePrefix, serverFromHost, unquoteLatin1 } from '../python/request-names.js';

export interface ScopeJson {
  readonly type: 'http' | 'websocket';
  readonly http_version: string;
  readonly method: string;
  readonly scheme: string;
  readonly path: string;
  readonly raw_path: string;
  readonly query_string: string;
  readonly root_path: string;
  readonly headers: Array<[string, string]>;
  readonly client: [string, number] | null;
  readonly server: [string, number] | null;
  readonly subprotocols?: string[];
  /** An async upload's file: the bridge streams the body from it. */
  readonly body_file?: string;
}

export interface ScopeOptions {
  /** Server name when the request has no usable Host header. */
  readonly serverName?: string;
}

function first(value: HeaderValue | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** A latin1 byte string read as UTF-8 (invalid sequences become U+FFFD, as uvicorn's unquote). */
function utf8(latin1: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(latin1) ? latin1 : Buffer.from(latin1, 'latin1').toString('utf8');
}

/** `HTTP/1.1` → `1.1`; anything unknown → `1.1`. */
export function httpVersionOf(version: string | undefined): string {
  if (version === 'HTTP/1.0') return '1.0';
  if (version === 'HTTP/2' || version === 'HTTP/2.0') return '2';
  return '1.1';
}

/**
 * The scope for one request. `path` is the whole %-decoded path (root_path included, as ASGI spec
 * 2.4 and Starlette expect); `root_path` is the literal prefix of the mongrel2 route it came
 * through (WSGI's SCRIPT_NAME), when the path starts with it at a segment boundary.
 */
export function buildScope(
  message: Pick<Mongrel2Message, 'path' | 'headers'>,
  type: 'http' | 'websocket',
  options: ScopeOptions = {},
): ScopeJson {
  const h = message.headers;
  const secure = first(h.URL_SCHEME) === 'https';
  const scheme = type === 'websocket' ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http';
  const rawPath = first(h.PATH) ?? message.path;
  const prefix = routePrefix(first(h.PATTERN));
  const atBoundary =
    prefix !== '' && rawPath.startsWith(prefix) && (rawPath.length === prefix.length || rawPath[prefix.length] === '/');
  const headers: Array<[string, string]> = [];
  const subprotocols: string[] = [];
  for (const name in h) {
    if (environKey(name) === undefined) continue; // mongrel2's own keys, upload bookkeeping, `x_y`
    const value = h[name]!;
    for (const one of Array.isArray(value) ? value : [value]) {
      if (name === 'transfer-encoding' && /chunked/i.test(one)) continue; // mongrel2 de-chunked the body
      headers.push([name, one]);
      if (name === 'sec-websocket-protocol') {
        for (const p of one.split(',')) if (p.trim() !== '') subprotocols.push(p.trim());
      }
    }
  }
  const server = serverFromHost(first(h.host), secure ? 'https' : 'http', options.serverName ?? 'localhost');
  const remote = first(h.REMOTE_ADDR) ?? first(h['x-forwarded-for'])?.split(',')[0]?.trim();
  const scope: ScopeJson = {
    type,
    http_version: httpVersionOf(first(h.VERSION)),
    method: type === 'websocket' ? 'GET' : (first(h.METHOD) ?? 'GET'),
    scheme,
    path: utf8(unquoteLatin1(rawPath)),
    raw_path: rawPath,
    query_string: first(h.QUERY) ?? '',
    root_path: atBoundary ? utf8(unquoteLatin1(prefix)) : '',
    headers,
    // mongrel2 does not pass the client's port on; 0 says "unknown".
    client: remote ? [remote, 0] : null,
    server: [server.name.replace(/^\[(.*)\]$/, '$1'), Number(server.port)],
  };
  return type === 'websocket' ? { ...scope, subprotocols } : scope;
}
