/**
 * The absolute form of a request target (RFC 9112 §3.2.2, `GET http://host/c HTTP/1.1`) as the app
 * sees it. mongrel2 1.12 drops the scheme and hands on `//host/c` as the path (PATH, URI), exactly
 * what it hands on for the origin form `GET //host/c`: the two cannot be told apart behind it. Read
 * as a URI reference (RFC 3986 §4.2), `//host/c` is authority `host` and path `/c`, and that is
 * what gunicorn gives a WSGI app for the absolute form; an app handed `//host/c` as its path turns
 * it back into a host as soon as it builds a URL or a redirect from it (`Location: //host/c`).
 * So a path that starts with `//` loses its authority: the app sees `/c` (or `/`). The authority
 * itself is dropped, never put in place of Host: mongrel2 routed on the client's Host header, and
 * what the client sends never changes what mongrel2 routed (docs/SECURITY.md).
 * Pure.
 */
import type { Mongrel2Headers } from '../protocol/index.js';

/**
 * `//authority[/path][?query]` → `/path[?query]` (`/` for an empty path); any other target
 * unchanged. The authority ends at the first `/` or `?` (RFC 3986 §3.2).
 */
export function originForm(target: string): string {
  if (!target.startsWith('//')) return target;
  let end = 2;
  while (end < target.length && target[end] !== '/' && target[end] !== '?') end++;
  const rest = target.slice(end);
  return rest.startsWith('/') ? rest : '/' + rest;
}

/**
 * The headers with PATH and URI in origin form, or undefined when they are already (the usual
 * case: nothing is copied).
 */
export function originFormHeaders(headers: Mongrel2Headers): Mongrel2Headers | undefined {
  const path = headers['PATH'];
  const uri = headers['URI'];
  const absolute = (value: string | string[] | undefined): value is string => typeof value === 'string' && value.startsWith('//');
  if (!absolute(path) && !absolute(uri)) return undefined;
  const copy: Mongrel2Headers = { ...headers };
  if (absolute(path)) copy['PATH'] = originForm(path);
  if (absolute(uri)) copy['URI'] = originForm(uri);
  return copy;
}
