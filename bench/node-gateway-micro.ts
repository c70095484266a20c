/**
 * Micro-benchmark of the node gateway's two candidate designs, gateway only (no zeromq, no
 * mongrel2): `npx tsc -p tsconfig.json && node dist/bench/node-gateway-micro.js`.
 *
 *   (a) feed    — a real http.Server fed through an in-memory Duplex per request: the request's
 *                 bytes are rebuilt from mongrel2's headers and Node's parser parses them again.
 *   (b) direct  — the shipped gateway (src/gateways/node): IncomingMessage built from the parsed
 *                 headers, body pushed once, ServerResponse assignSocket()ed to a Writable.
 *
 * Both let Node's ServerResponse frame the response; the bench first checks they produce the same
 * bytes (Date aside). Env: MICRO_N (requests per case, 50000), MICRO_CONCURRENCY (in flight, 50).
 *
 * Measured on the 2-core box, Node 20.20, MICRO_N=50000, 50 in flight, req/s (best of 3 rounds),
 * three runs while other builds and tests shared the machine (load average ~9), so ranges:
 *   case             (a) feed        (b) direct       b/a
 *   plain-hello      70k–107k        135k–158k        1.5–2.0x
 *   express-hello    7k–12k          10k–14k          1.2–1.45x   (Express's own work dominates)
 *   plain-post-1k    26k–53k         57k–103k         1.9–2.2x
 * Lesson from profiling (b): destroying the per-request socket inside the response's last write
 * callback made Writable build an ERR_STREAM_DESTROYED (with stack) per request — 17% of the CPU
 * and GC on top; (b) now leaves a keep-alive socket open, as Node does.
 */
import http from 'node:http';
import { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { setMaxListeners } from 'node:events';
import { create } from '../src/gateways/node/index.js';
import type { Gateway, GatewayRequest } from '../src/gateways/types.js';
import type { ReplyChannel } from '../src/http/reply-channel.js';
import type { Mongrel2Headers, Mongrel2Message } from '../src/protocol/types.js';
import { createLogger } from '../src/log/logger.js';

const N = Number(process.env.MICRO_N ?? 50000);
const CONCURRENCY = Number(process.env.MICRO_CONCURRENCY ?? 50);
const VERSION = 'bench';

/** A channel that counts bytes and never pushes back. */
class NullReply implements ReplyChannel {
  readonly method: string;
  readonly httpVersion = 'HTTP/1.1';
  readonly keepAlive = true;
  closed = false;
  bytes = 0;
  last: Buffer[] = [];
  keep = false;
  closeAfter = false;
  constructor(method: string) {
    this.method = method;
  }
  write(chunk: Uint8Array | string): boolean {
    this.bytes += chunk.length;
    if (this.keep) this.last.push(Buffer.from(chunk as Uint8Array));
    return true;
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  end(chunk?: Uint8Array | string, close?: boolean): void {
    if (chunk) this.write(chunk);
    this.closeAfter = close === true;
  }
  abort(): void {
    this.closed = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Design (a): feed the bytes to a real http.Server through an in-memory connection.

class FeedConnection extends Duplex {
  remoteAddress: string | undefined;
  encrypted: true | undefined;
  /** Called by the server's 'request' listener with this connection's response. */
  onResponse: ((res: http.ServerResponse) => void) | undefined;
  constructor(
    private readonly reply: ReplyChannel,
    remoteAddress: string | undefined,
  ) {
    super({ allowHalfOpen: true });
    this.remoteAddress = remoteAddress;
  }
  override _read(): void {}
  override _write(chunk: Buffer, _e: BufferEncoding, cb: (error?: Error | null) => void): void {
    if (this.reply.write(chunk)) cb();
    else void this.reply.drained().then(() => cb());
  }
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  destroySoon(): void {
    this.end();
  }
}

function requestBytes(message: Mongrel2Message): Buffer {
  const h = message.headers;
  let head = `${String(h.METHOD)} ${String(h.URI)} ${String(h.VERSION)}\r\n`;
  for (const name in h) {
    const c = name.charCodeAt(0);
    if (c >= 65 && c <= 90) continue;
    if (name === 'expect') continue; // mongrel2 answered 100-continue already
    const value = h[name]!;
    if (typeof value === 'string') head += `${name}: ${value}\r\n`;
    else for (const v of value) head += `${name}: ${v}\r\n`;
  }
  head += '\r\n';
  return message.body.length ? Buffer.concat([Buffer.from(head, 'latin1'), message.body]) : Buffer.from(head, 'latin1');
}

function feedGateway(app: http.RequestListener): Gateway {
  const server = http.createServer();
  server.keepAliveTimeout = 0; // no Keep-Alive: timeout=5 header: idle timeouts are mongrel2's
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.setHeader('X-Wsgid', VERSION);
    (req.socket as unknown as FeedConnection).onResponse?.(res);
    app(req, res);
  });
  return {
    handle(request: GatewayRequest, reply: ReplyChannel): Promise<void> {
      return new Promise((resolve) => {
        const conn = new FeedConnection(reply, String(request.message.headers.REMOTE_ADDR));
        conn.onResponse = (res) => {
          res.once('finish', () => {
            reply.end(undefined, (res as http.ServerResponse & { _last?: boolean })._last === true);
            // Each request has its own connection; free its parser, outside the write callback.
            process.nextTick(() => conn.destroy());
            resolve();
          });
        };
        server.emit('connection', conn);
        conn.push(requestBytes(request.message));
      });
    },
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------

function message(method: string, uri: string, body = Buffer.alloc(0), extra: Mongrel2Headers = {}): Mongrel2Message {
  const headers: Mongrel2Headers = {
    PATH: uri,
    METHOD: method,
    VERSION: 'HTTP/1.1',
    URI: uri,
    PATTERN: '/',
    URL_SCHEME: 'http',
    REMOTE_ADDR: '127.0.0.1',
    host: '127.0.0.1:6767',
    'user-agent': 'wrk',
    accept: '*/*',
    'x-forwarded-for': '127.0.0.1',
    ...(body.length ? { 'content-length': String(body.length), 'content-type': 'application/json' } : {}),
    ...extra,
  };
  return { kind: 'request', sender: 'bench', connId: 1, path: uri, headers, body };
}

const plainHello: http.RequestListener = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 12 });
  res.end('Hello World!');
};

const plainEcho: http.RequestListener = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
    res.end(body);
  });
};

async function expressHello(): Promise<http.RequestListener> {
  const { default: express } = await import('express');
  const app = express();
  app.get('/', (_req, res) => {
    res.send('Hello World!');
  });
  return app;
}

async function run(gateway: Gateway, msg: Mongrel2Message): Promise<number> {
  const signal = new AbortController().signal;
  setMaxListeners(0, signal); // one signal shared by all lanes
  const request: GatewayRequest = { message: msg, signal };
  let started = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (started < N) {
      started++;
      await gateway.handle(request, new NullReply(String(msg.headers.METHOD)));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return N / ((performance.now() - t0) / 1000);
}

async function sample(gateway: Gateway, msg: Mongrel2Message): Promise<string> {
  const reply = new NullReply(String(msg.headers.METHOD));
  reply.keep = true;
  await gateway.handle({ message: msg, signal: new AbortController().signal }, reply);
  return Buffer.concat(reply.last).toString('latin1').replace(/\r\nDate: [^\r]*/, '');
}

async function main(): Promise<void> {
  const logger = createLogger({ fd: 2 }, 'error');
  const express = await expressHello();
  const cases: Array<[string, http.RequestListener, Mongrel2Message]> = [
    ['plain-hello', plainHello, message('GET', '/')],
    ['express-hello', express, message('GET', '/')],
    ['plain-post-1k', plainEcho, message('POST', '/', Buffer.alloc(1024, 0x7b))],
  ];
  console.log(`N=${N} concurrency=${CONCURRENCY}; req/s, best of 3 rounds`);
  console.log('case             (a) feed   (b) direct   b/a');
  for (const [name, app, msg] of cases) {
    const a = feedGateway(app);
    const b = await create({ kind: 'node', app, description: name }, { logger, version: VERSION });
    const sa = await sample(a, msg);
    const sb = await sample(b, msg);
    if (sa !== sb) throw new Error(`${name}: designs differ\n--- feed\n${sa}\n--- direct\n${sb}`);
    let bestA = 0;
    let bestB = 0;
    for (let round = 0; round < 3; round++) {
      bestA = Math.max(bestA, await run(a, msg));
      bestB = Math.max(bestB, await run(b, msg));
    }
    console.log(
      `${name.padEnd(16)} ${Math.round(bestA).toString().padStart(8)}   ${Math.round(bestB).toString().padStart(9)}   ${(bestB / bestA).toFixed(2)}x`,
    );
  }
}

await main();
