/**
 * Capture HTTP servers that an app starts itself (`app.listen(3000)` at import time), the way
 * Phusion Passenger does: while the app module is being imported, `net.Server.prototype.listen`
 * is replaced. A call on an HTTP server does not bind anything: the server is recorded, the
 * listen callback runs and 'listening' is emitted on the next tick, `listening` is true and
 * `address()` reports the port (or pipe) that was asked for, so the app's "listening on ..." log
 * line and its shutdown code (`server.close(cb)`) keep working. wsgid then serves the captured
 * server through the node gateway, which drives its 'request' (and 'upgrade') listeners.
 *
 * The rule for several servers (documented in docs/LOADERS.md): the FIRST HTTP server whose
 * `listen()` is called while capture is active is the app. Any later HTTP server that shares its
 * request listener (Fastify's extra servers for `localhost` on IPv4 + IPv6) is captured too and
 * never served. Any other server (a metrics or admin port, a raw TCP `net.Server`) binds for real,
 * as the app intended; with several workers only one of them can bind a fixed port, which is the
 * app's business (see the docs: bind such ports in the master-less `--workers=0` mode or use port 0).
 *
 * Capture ends (the original `listen` is restored) when `stop()` is called: the loader does so
 * as soon as it has its app, or after the listen wait expires. When the app came from an export
 * (not a captured server), `guardLateListen` keeps one narrow rule for the rest of the process: a
 * later `listen()` on an HTTP server whose request listener IS the served app (Express's
 * `app.listen()` after a database connected, fastify's listen) is faked too, so N workers never race
 * for the app's port.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

type Listen = typeof net.Server.prototype.listen;

export interface CapturedServer {
  readonly server: http.Server;
  /** What `listen()` was asked for, for logs: "port 3000", "pipe /tmp/x.sock". */
  readonly requested: string;
}

export interface ListenCapture {
  /** The servers captured so far, in order; [0] is the app. */
  readonly captured: readonly CapturedServer[];
  /** Resolves with the first captured server, or undefined after `timeoutMs` (or on stop). */
  waitForServer(timeoutMs: number): Promise<CapturedServer | undefined>;
  /** Restore the original listen. Idempotent. */
  stop(): void;
}

let active: ListenCapture | undefined;

function isHttpServer(server: net.Server): server is http.Server {
  return server instanceof http.Server || server instanceof https.Server;
}

function fakeAddress(args: unknown[]): { address: AddressInfo | string; requested: string } {
  let first = args[0];
  if (typeof first === 'object' && first !== null && !Array.isArray(first)) {
    const options = first as { port?: unknown; host?: unknown; path?: unknown };
    if (typeof options.path === 'string') return { address: options.path, requested: `pipe ${options.path}` };
    first = options.port;
    if (typeof options.host === 'string') args = [options.port, options.host];
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return { address: first, requested: `pipe ${first}` };
  let port = Number(first ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) port = 0;
  // Port 0 asks for "any free port": report a plausible ephemeral one.
  if (port === 0) port = 49152 + (process.pid % 16000);
  const host = typeof args[1] === 'string' ? args[1] : '::';
  const family = host.includes(':') ? 'IPv6' : 'IPv4';
  const address = host === 'localhost' ? '127.0.0.1' : host;
  return { address: { address, family, port }, requested: `port ${port}` + (typeof args[1] === 'string' ? ` on ${host}` : '') };
}

function fakeListen(server: http.Server, args: unknown[]): { requested: string } {
  const callback = [...args].reverse().find((arg): arg is () => void => typeof arg === 'function');
  const { address, requested } = fakeAddress(args.filter((arg) => typeof arg !== 'function'));
  Object.defineProperty(server, 'listening', { configurable: true, get: () => true });
  server.address = () => address;
  let closed = false;
  server.close = function close(cb?: (error?: Error) => void) {
    if (!closed) {
      closed = true;
      Object.defineProperty(server, 'listening', { configurable: true, get: () => false });
      process.nextTick(() => server.emit('close'));
    }
    if (cb) process.nextTick(cb);
    return server;
  };
  if (callback) server.once('listening', callback);
  process.nextTick(() => server.emit('listening'));
  return { requested };
}

/** Start capturing. Only one capture can be active at a time (imports are serialized). */
export function startListenCapture(): ListenCapture {
  if (active) throw new Error('a listen() capture is already active');
  const original: Listen = net.Server.prototype.listen;
  const captured: CapturedServer[] = [];
  const waiters = new Set<(server: CapturedServer | undefined) => void>();
  let stopped = false;

  const patched = function listen(this: net.Server, ...args: unknown[]): net.Server {
    if (stopped || !isHttpServer(this)) return Reflect.apply(original, this, args) as net.Server;
    const primary = captured[0]?.server;
    if (primary) {
      const mine = new Set(primary.listeners('request'));
      const shares = this.listeners('request').some((listener) => mine.has(listener));
      if (!shares) return Reflect.apply(original, this, args) as net.Server;
    }
    const { requested } = fakeListen(this, args);
    const entry: CapturedServer = { server: this, requested };
    captured.push(entry);
    if (!primary) for (const wake of waiters) wake(entry);
    waiters.clear();
    return this;
  } as Listen;

  net.Server.prototype.listen = patched;

  const capture: ListenCapture = {
    captured,
    waitForServer(timeoutMs) {
      if (captured[0]) return Promise.resolve(captured[0]);
      if (stopped) return Promise.resolve(undefined);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiters.delete(done);
          resolve(undefined);
        }, timeoutMs);
        const done = (server: CapturedServer | undefined): void => {
          clearTimeout(timer);
          resolve(server);
        };
        waiters.add(done);
      });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (net.Server.prototype.listen === patched) net.Server.prototype.listen = original;
      for (const wake of waiters) wake(undefined);
      waiters.clear();
      if (active === capture) active = undefined;
    },
  };
  active = capture;
  return capture;
}

const guarded = new WeakSet<object>();
let guardInstalled = false;

/**
 * From now on, `listen()` on an HTTP server whose 'request' listeners include one of `listeners`
 * binds nothing (faked as during capture). Other servers are untouched.
 */
export function guardLateListen(listeners: Iterable<unknown>): void {
  for (const listener of listeners) if (typeof listener === 'function') guarded.add(listener);
  if (guardInstalled) return;
  guardInstalled = true;
  const previous: Listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function listen(this: net.Server, ...args: unknown[]): net.Server {
    if (isHttpServer(this) && this.listeners('request').some((listener) => guarded.has(listener))) {
      fakeListen(this, args);
      return this;
    }
    return Reflect.apply(previous, this, args) as net.Server;
  } as Listen;
}
