/**
 * Classify a JavaScript value exported by an app module into a gateway kind.
 *
 * Rules, first match wins (documented in docs/LOADERS.md):
 *   1. A forced kind (the app's `package.json` `wsgid.kind`, or an export named `fetch`, `listener`
 *      or `requestListener`) decides for functions; objects are still inspected for their shape.
 *   2. An `http.Server` / `https.Server` (or anything with `listeners('request')` and `listen`)
 *      → node, the server itself (the node gateway drives its 'request' listeners).
 *   3. A Fastify instance (`ready()`, `routing()`, `server`) → `await app.ready()`, node with
 *      `app.routing` (fastify's public request handler, the one its own server uses).
 *   4. A Koa app (`callback()` and a `middleware` array) → node with `app.callback()`.
 *   5. An object with a `fetch` method (Hono, `export default { fetch }`, Bun/Deno style) → fetch.
 *   6. A function with Express/Connect markers (`handle` + `use`, or `set` + `listen`) → node.
 *   7. Any other function: arity (declared parameters) ≥ 2 → node `(req, res)`; ≤ 1 → fetch
 *      `(request)`. Functions with default or rest parameters report a smaller arity, so a fetch
 *      handler written `(request, context = {})` still counts as fetch, and a Node listener written
 *      `(...args)` must be forced (package.json `wsgid.kind`, or a `listener` export).
 *   8. A promise (e.g. `export default createApp()`) is awaited, then classified.
 */
import http from 'node:http';
import https from 'node:https';

export type JsKind = 'fetch' | 'node';

/** The result of classifying one value. `app` is what the gateway receives. */
export interface Classified {
  readonly kind: JsKind;
  /**
   * fetch: an object with a `fetch(request, context)` method (a bare function is wrapped as
   * `{ fetch: fn }`); node: a request listener `(req, res)` or an `http.Server`.
   */
  readonly app: unknown;
  /** Human description of the shape, e.g. "Hono-style object with fetch()". */
  readonly shape: string;
  /** Request listeners that identify this app on an http.Server (for the late-listen guard). */
  readonly listeners?: readonly unknown[];
}

type Fn = (...args: unknown[]) => unknown;

function isObjectLike(value: unknown): value is Record<PropertyKey, unknown> {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

function hasMethod(value: unknown, name: string): boolean {
  if (!isObjectLike(value)) return false;
  try {
    return typeof value[name] === 'function';
  } catch {
    return false; // a throwing getter (proxies) is no method
  }
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return hasMethod(value, 'then');
}

/** An http(s).Server, or something shaped like one (listen + 'request' listeners). */
export function isHttpServer(value: unknown): value is http.Server {
  if (value instanceof http.Server || value instanceof https.Server) return true;
  return hasMethod(value, 'listen') && hasMethod(value, 'listeners') && hasMethod(value, 'emit') &&
    hasMethod(value, 'address') && !hasMethod(value, 'fetch');
}

/** Fastify: `ready()`, `routing(req, res)`, `server`, `inject()`. */
export function isFastify(value: unknown): value is { ready(): PromiseLike<unknown>; routing: Fn; server: unknown } {
  return hasMethod(value, 'ready') && hasMethod(value, 'routing') && hasMethod(value, 'inject') &&
    isObjectLike(value) && 'server' in value;
}

/** Koa: `callback()` returning a listener and a `middleware` array. */
export function isKoa(value: unknown): value is { callback(): Fn; middleware: unknown[] } {
  return hasMethod(value, 'callback') && isObjectLike(value) && Array.isArray(value['middleware']);
}

/** Express and Connect apps are functions carrying router methods. */
export function isExpressLike(value: unknown): boolean {
  if (typeof value !== 'function') return false;
  return (hasMethod(value, 'handle') && hasMethod(value, 'use')) || (hasMethod(value, 'set') && hasMethod(value, 'listen'));
}

function wrapFetch(fn: Fn): { fetch: Fn } {
  return { fetch: (...args: unknown[]) => fn(...args) };
}

/**
 * Classify `value`. Returns undefined when it is nothing a gateway can serve (a plain object
 * without fetch, a string, undefined...). `forced` overrides the function heuristics.
 */
export async function classify(value: unknown, forced?: JsKind): Promise<Classified | undefined> {
  if (isThenable(value)) value = await value;
  if (!isObjectLike(value)) return undefined;

  if (isHttpServer(value)) return { kind: 'node', app: value, shape: 'http.Server', listeners: value.listeners('request') };

  if (isFastify(value)) {
    await value.ready();
    const routing = value.routing;
    return { kind: 'node', app: (req: unknown, res: unknown) => routing(req, res), shape: 'Fastify instance (routing)', listeners: [routing] };
  }

  if (isKoa(value)) return { kind: 'node', app: value.callback(), shape: 'Koa app (callback())' };

  if (typeof value !== 'function') {
    if (hasMethod(value, 'fetch')) return { kind: 'fetch', app: value, shape: 'object with fetch()' };
    return undefined;
  }

  const fn = value as Fn;
  if (forced === 'fetch') return { kind: 'fetch', app: wrapFetch(fn), shape: 'fetch handler (forced)' };
  if (forced === 'node') return { kind: 'node', app: fn, shape: 'Node request listener (forced)', listeners: [fn] };
  if (isExpressLike(fn)) return { kind: 'node', app: fn, shape: 'Express/Connect app', listeners: [fn] };
  // A function that also carries a fetch method (some frameworks export callable apps).
  if (hasMethod(fn, 'fetch') && fn.length < 2) return { kind: 'fetch', app: fn, shape: 'callable with fetch()' };
  if (fn.length >= 2) return { kind: 'node', app: fn, shape: `Node request listener (arity ${fn.length})`, listeners: [fn] };
  return { kind: 'fetch', app: wrapFetch(fn), shape: `fetch handler (arity ${fn.length})` };
}

/** Export names that force a kind when they hold a function. */
export const FORCING_EXPORTS: Readonly<Record<string, JsKind>> = {
  fetch: 'fetch',
  listener: 'node',
  requestListener: 'node',
};

/** Named exports tried, in order, when the default export is missing or not servable. */
export const FALLBACK_EXPORTS = ['app', 'handler', 'fetch', 'listener', 'requestListener', 'server'] as const;
