/**
 * Unit test of the node gateway's translation: a parsed mongrel2 message in, the exact HTTP bytes
 * Node's ServerResponse produced out (through an in-test ReplyChannel that collects them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '../../src/gateways/node/index.js';
import type { Gateway } from '../../src/gateways/types.js';
import { TestReply } from '../helpers/reply-channel.js';
import type { Mongrel2Headers, Mongrel2Message } from '../../src/protocol/types.js';
import type { Logger, LogFields } from '../../src/log/logger.js';

const FIXTURES = new URL('../../../test/fixtures/node-apps/', import.meta.url);
const VERSION = 'wsgid-test/1.2.3';

// ---------------------------------------------------------------------------------------------
// Test doubles

interface LogLine {
  level: string;
  message: string;
  fields?: LogFields;
}

function collectingLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const at =
    (level: string) =>
    (message: string, fields?: LogFields): void => {
      lines.push({ level, message, fields });
    };
  const logger = {
    lines,
    level: 'debug' as const,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
    reopen: () => {},
  };
  return logger;
}

interface ParsedResponse {
  statusLine: string;
  status: number;
  /** Header lines in order, names as sent. */
  headers: Array<[string, string]>;
  get(name: string): string | undefined;
  all(name: string): string[];
  /** Raw body bytes as sent (still chunk-framed when chunked). */
  rawBody: Buffer;
  /** Body after removing chunked framing. */
  body: Buffer;
  chunked: boolean;
}

function parseResponse(bytes: Buffer): ParsedResponse {
  const end = bytes.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no end of head in ${JSON.stringify(bytes.toString('latin1'))}`);
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines.shift()!;
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
  const all = (name: string): string[] =>
    headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  const rawBody = bytes.subarray(end + 4);
  const chunked = all('transfer-encoding').includes('chunked');
  let body = rawBody;
  if (chunked) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lineEnd = rawBody.indexOf('\r\n', at);
      assert.ok(lineEnd >= 0, 'truncated chunked body');
      const size = parseInt(rawBody.subarray(at, lineEnd).toString('latin1'), 16);
      at = lineEnd + 2;
      if (size === 0) {
        assert.equal(rawBody.subarray(at).toString('latin1'), '\r\n', 'chunked terminator');
        break;
      }
      parts.push(rawBody.subarray(at, at + size));
      at += size + 2;
    }
    body = Buffer.concat(parts);
  }
  return {
    statusLine,
    status: Number(statusLine.split(' ')[1]),
    headers,
    get: (name) => all(name)[0],
    all,
    rawBody,
    body,
    chunked,
  };
}

let nextConnId = 1;

function message(
  method: string,
  uri: string,
  clientHeaders: Mongrel2Headers = {},
  body: Buffer = Buffer.alloc(0),
  version = 'HTTP/1.1',
  extra: Mongrel2Headers = {},
): Mongrel2Message {
  const q = uri.indexOf('?');
  const pathOnly = q < 0 ? uri : uri.slice(0, q);
  const headers: Mongrel2Headers = {
    PATH: pathOnly,
    METHOD: method,
    VERSION: version,
    URI: uri,
    PATTERN: '/',
    URL_SCHEME: 'http',
    REMOTE_ADDR: '10.1.2.3',
    host: 'example.test',
    'x-forwarded-for': '10.1.2.3',
    ...(q < 0 ? {} : { QUERY: uri.slice(q + 1) }),
    ...(body.length ? { 'content-length': String(body.length) } : {}),
    ...clientHeaders,
    ...extra,
  };
  return { kind: 'request', sender: 'test-sender', connId: nextConnId++, path: pathOnly, headers, body };
}

/** HTTP/1.1 keep-alive unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`. */
function keepAliveOf(msg: Mongrel2Message): boolean {
  const connection = String(msg.headers.connection ?? '').toLowerCase();
  if (msg.headers.VERSION === 'HTTP/1.0') return connection.includes('keep-alive');
  return !connection.includes('close');
}

interface Served {
  reply: TestReply;
  res: ParsedResponse;
}

async function serve(
  gateway: Gateway,
  msg: Mongrel2Message,
  options: { bodyFile?: string; signal?: AbortSignal } = {},
): Promise<Served> {
  const reply = new TestReply({ method: String(msg.headers.METHOD), httpVersion: String(msg.headers.VERSION), keepAlive: keepAliveOf(msg) });
  await gateway.handle({ message: msg, bodyFile: options.bodyFile, signal: options.signal ?? new AbortController().signal }, reply);
  assert.ok(reply.ended, 'handle() settled before reply.end()');
  return { reply, res: parseResponse(reply.data()) };
}

async function gatewayFor(app: unknown, logger: Logger = collectingLogger()): Promise<Gateway> {
  return create({ kind: 'node', app, description: 'test app' }, { logger, version: VERSION });
}

async function fixture(name: string): Promise<Record<string, unknown> & { default: unknown }> {
  return (await import(new URL(name, FIXTURES).href)) as Record<string, unknown> & { default: unknown };
}

// ---------------------------------------------------------------------------------------------
// Plain node:http handler (exported as an http.Server)

test('plain http: status line, Date, X-Wsgid, Content-Length, keep-alive', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const { reply, res } = await serve(gw, message('GET', '/'));
  assert.equal(res.statusLine, 'HTTP/1.1 200 OK');
  assert.equal(res.get('X-Wsgid'), VERSION);
  assert.ok(!Number.isNaN(Date.parse(res.get('Date') ?? '')), 'Date header');
  assert.match(res.get('Date')!, /GMT$/);
  assert.equal(res.get('Content-Length'), '11');
  assert.equal(res.get('Connection'), 'keep-alive');
  assert.equal(res.get('Keep-Alive'), undefined, 'idle timeout is mongrel2 business');
  assert.equal(res.chunked, false);
  assert.equal(res.body.toString(), 'hello world');
  assert.equal(reply.closeRequested, false);
  assert.equal(reply.writes, 1, 'head and small body leave as one message');
});

test('plain http: request translation (method, url, version, headers, duplicates, remote address)', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const msg = message('GET', '/info?x=1&y=%20z', {
    'x-dup': ['a', 'b'],
    cookie: ['c1=1', 'c2=2'],
    'x-mongrel2-upload-start': '/tmp/upload.abc',
  });
  const { res } = await serve(gw, msg);
  const info = JSON.parse(res.body.toString()) as {
    method: string;
    url: string;
    httpVersion: string;
    headers: Record<string, string>;
    rawHeaders: string[];
    remoteAddress: string;
    encrypted: boolean;
    isIncomingMessage: boolean;
  };
  assert.equal(info.method, 'GET');
  assert.equal(info.url, '/info?x=1&y=%20z');
  assert.equal(info.httpVersion, '1.1');
  assert.equal(info.isIncomingMessage, true);
  assert.equal(info.remoteAddress, '10.1.2.3');
  assert.equal(info.encrypted, false);
  assert.equal(info.headers.host, 'example.test');
  assert.equal(info.headers['x-dup'], 'a, b', "Node's duplicate rule");
  assert.equal(info.headers.cookie, 'c1=1; c2=2', "Node's cookie rule");
  for (const generated of ['PATH', 'METHOD', 'URI', 'VERSION', 'REMOTE_ADDR', 'x-mongrel2-upload-start']) {
    assert.ok(!info.rawHeaders.includes(generated), `${generated} is not a client header`);
  }
  const raw = info.rawHeaders;
  const dupValues = raw.filter((_, i) => i % 2 === 1 && raw[i - 1] === 'x-dup');
  assert.deepEqual(dupValues, ['a', 'b'], 'duplicates repeated in rawHeaders');
});

test('plain http: https scheme → socket.encrypted; remote address falls back to x-forwarded-for', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const msg = message('GET', '/info', {}, undefined, 'HTTP/1.1', { URL_SCHEME: 'https' });
  delete (msg.headers as Record<string, unknown>).REMOTE_ADDR;
  (msg.headers as Record<string, unknown>)['x-forwarded-for'] = '192.0.2.7, 10.0.0.1';
  const info = JSON.parse((await serve(gw, msg)).res.body.toString()) as { encrypted: boolean; remoteAddress: string };
  assert.equal(info.encrypted, true);
  assert.equal(info.remoteAddress, '192.0.2.7');
});

test('plain http: unknown length on HTTP/1.1 → chunked', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const { reply, res } = await serve(gw, message('GET', '/chunked'));
  assert.equal(res.get('Transfer-Encoding'), 'chunked');
  assert.equal(res.get('Content-Length'), undefined);
  assert.equal(res.body.toString(), 'one,two,three');
  assert.ok(res.rawBody.toString('latin1').endsWith('0\r\n\r\n'));
  assert.equal(reply.closeRequested, false);
});

test('plain http: unknown length on HTTP/1.0 → no framing, Connection: close, close after end', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const { reply, res } = await serve(gw, message('GET', '/chunked', {}, undefined, 'HTTP/1.0'));
  assert.equal(res.statusLine, 'HTTP/1.1 200 OK');
  assert.equal(res.get('Transfer-Encoding'), undefined);
  assert.equal(res.get('Connection'), 'close');
  assert.equal(res.rawBody.toString(), 'one,two,three');
  assert.equal(reply.closeRequested, true);
});

test('plain http: HTTP/1.0 keep-alive with a known length stays open; without it closes', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const kept = await serve(gw, message('GET', '/', { connection: 'keep-alive' }, undefined, 'HTTP/1.0'));
  assert.equal(kept.res.get('Connection'), 'keep-alive');
  assert.equal(kept.reply.closeRequested, false);
  const closed = await serve(gw, message('GET', '/', {}, undefined, 'HTTP/1.0'));
  assert.equal(closed.res.get('Connection'), 'close');
  assert.equal(closed.reply.closeRequested, true);
});

test('plain http: client Connection: close, and app Connection: close, both close', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const client = await serve(gw, message('GET', '/', { connection: 'close' }));
  assert.equal(client.res.get('Connection'), 'close');
  assert.equal(client.reply.closeRequested, true);
  const app = await serve(gw, message('GET', '/close'));
  assert.deepEqual(app.res.all('Connection'), ['close']);
  assert.equal(app.res.body.toString(), 'bye');
  assert.equal(app.reply.closeRequested, true);
});

test('plain http: HEAD has headers but no body; 204 and 304 have no body', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const head = await serve(gw, message('HEAD', '/'));
  assert.equal(head.res.status, 200);
  assert.equal(head.res.get('Content-Length'), '11');
  assert.equal(head.res.rawBody.length, 0);
  const headChunked = await serve(gw, message('HEAD', '/chunked'));
  assert.equal(headChunked.res.rawBody.length, 0);
  const noContent = await serve(gw, message('GET', '/204'));
  assert.equal(noContent.res.statusLine, 'HTTP/1.1 204 No Content');
  assert.equal(noContent.res.rawBody.length, 0);
  assert.equal(noContent.res.get('Transfer-Encoding'), undefined);
  const notModified = await serve(gw, message('GET', '/304'));
  assert.equal(notModified.res.statusLine, 'HTTP/1.1 304 Not Modified');
  assert.equal(notModified.res.rawBody.length, 0);
  assert.equal(notModified.reply.closeRequested, false);
});

test('plain http: several Set-Cookie headers are kept apart', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const { res } = await serve(gw, message('GET', '/cookies'));
  assert.deepEqual(res.all('Set-Cookie'), ['a=1; Path=/', 'b=2; HttpOnly']);
});

test('plain http: POST body is byte-exact, including non-UTF-8 bytes', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const body = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x0d, 0x0a, 0xe2, 0x82, 0x41, 0x7f]);
  const { res } = await serve(gw, message('POST', '/echo', { 'content-type': 'application/octet-stream' }, body));
  assert.equal(res.get('Content-Length'), String(body.length));
  assert.deepEqual(res.body, body);
});

test('plain http: an upload body is streamed from bodyFile', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-node-gw-'));
  try {
    const file = path.join(dir, 'upload');
    const body = Buffer.alloc(300 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    await writeFile(file, body);
    const msg = message('POST', '/echo', { 'content-length': String(body.length) });
    const { res } = await serve(gw, msg, { bodyFile: file });
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(body), 'upload echoed byte-exact');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('plain http: back-pressure — Node stops writing until the channel drains', async () => {
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default);
  const msg = message('GET', '/big?size=1048576');
  const reply = new TestReply({ backPressure: 'manual' });
  const done = gw.handle({ message: msg, signal: new AbortController().signal }, reply);
  let releases = 0;
  while (!reply.ended) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    // With the channel saying "wait", Node must not push more than one write at a time.
    assert.ok(reply.maxOutstandingWhileWaiting <= 1, `writes while waiting: ${reply.maxOutstandingWhileWaiting}`);
    reply.release();
    releases++;
    assert.ok(releases < 1000, 'response did not finish');
  }
  await done;
  const res = parseResponse(reply.data());
  assert.equal(res.body.length, 1048576);
  assert.ok(releases > 4, `expected the response to wait on drain several times (${releases})`);
});

test('plain http: a synchronous throw → 500 without the app headers, logged', async () => {
  const logger = collectingLogger();
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default, logger);
  const { reply, res } = await serve(gw, message('GET', '/throw'));
  assert.equal(res.statusLine, 'HTTP/1.1 500 Internal Server Error');
  assert.equal(res.get('X-Before-Throw'), undefined);
  assert.equal(res.get('X-Wsgid'), VERSION);
  assert.equal(res.body.toString(), 'Internal Server Error\n');
  assert.equal(reply.closeRequested, false);
  assert.ok(logger.lines.some((l) => l.level === 'error' && String(l.fields?.error).includes('synchronous failure')));
});

test('plain http: an async listener that rejects → 500', async () => {
  const logger = collectingLogger();
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default, logger);
  const { res } = await serve(gw, message('GET', '/reject'));
  assert.equal(res.status, 500);
  assert.ok(logger.lines.some((l) => l.level === 'error' && String(l.fields?.error).includes('asynchronous failure')));
});

test('plain http: a throw after the head was sent → connection closed, no crash', async () => {
  const logger = collectingLogger();
  const gw = await gatewayFor((await fixture('plain-http.mjs')).default, logger);
  const msg = message('GET', '/throw-after-head');
  const reply = new TestReply({ method: 'GET' });
  await gw.handle({ message: msg, signal: new AbortController().signal }, reply);
  // As on a socket destroyed before its corked first write went out: the connection is cut.
  assert.equal(reply.aborted, true);
  assert.equal(reply.closeRequested, undefined, 'the response was not completed');
  assert.ok(logger.lines.some((l) => l.level === 'error'));
});

test('plain http: abort → req aborted/close, res close, writes dropped, handle settles', async () => {
  const mod = await fixture('plain-http.mjs');
  const events = mod.events as string[];
  events.length = 0;
  const gw = await gatewayFor(mod.default);
  const controller = new AbortController();
  const msg = message('POST', '/hang', { 'content-length': '4' }, Buffer.from('body'));
  const reply = new TestReply({ method: 'POST' });
  const done = gw.handle({ message: msg, signal: controller.signal }, reply);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.match(reply.data().toString('latin1'), /started/);
  const before = reply.bytes;
  reply.closed = true; // the worker marks the channel closed on disconnect...
  controller.abort(); // ...and aborts the request's signal
  await done;
  await new Promise((resolve) => setTimeout(resolve, 10));
  // The order a real http.Server gives when the TCP peer goes away.
  assert.deepEqual(events, ['req aborted', 'res close finished=false', 'req close']);
  assert.equal(reply.bytes, before, 'nothing written after the abort');
  assert.equal(reply.aborted, true, 'the reply was ended (as an abort) so the worker can move on');
});

test('plain http: a plain (req, res) function works as the app; instanceof checks hold', async () => {
  const seen: string[] = [];
  const gw = await gatewayFor((req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push(String(req instanceof http.IncomingMessage), String(res instanceof http.ServerResponse));
    res.end('fn');
  });
  const { res } = await serve(gw, message('GET', '/'));
  assert.equal(res.body.toString(), 'fn');
  assert.equal(res.get('Transfer-Encoding'), undefined);
  assert.equal(res.get('Content-Length'), '2');
  assert.deepEqual(seen, ['true', 'true']);
});

test('an app with no request listener answers 500', async () => {
  const gw = await gatewayFor(
    (() => {
      const server = http.createServer();
      server.on('request', () => {});
      server.removeAllListeners('request');
      return server;
    })(),
  );
  const { res } = await serve(gw, message('GET', '/'));
  assert.equal(res.status, 500);
});

// ---------------------------------------------------------------------------------------------
// Express

test('express: routes, params, query, HEAD, 404', async () => {
  const gw = await gatewayFor((await fixture('express-app.mjs')).default);
  const hello = await serve(gw, message('GET', '/hello'));
  assert.equal(hello.res.status, 200);
  assert.equal(hello.res.get('X-Powered-By'), 'Express');
  assert.equal(hello.res.get('X-Wsgid'), VERSION);
  assert.equal(hello.res.get('Content-Type'), 'text/plain; charset=utf-8');
  assert.equal(hello.res.body.toString(), 'hello express');
  const user = await serve(gw, message('GET', '/users/42?q=x%20y'));
  assert.deepEqual(JSON.parse(user.res.body.toString()), { id: '42', q: 'x y' });
  const head = await serve(gw, message('HEAD', '/hello'));
  assert.equal(head.res.get('Content-Length'), '13');
  assert.equal(head.res.rawBody.length, 0);
  const missing = await serve(gw, message('GET', '/nope'));
  assert.equal(missing.res.status, 404);
});

test('express: JSON body parser, req.ip, req.protocol', async () => {
  const gw = await gatewayFor((await fixture('express-app.mjs')).default);
  const body = Buffer.from(JSON.stringify({ name: 'zoë', n: [1, 2] }));
  const plain = await serve(gw, message('POST', '/api/json', { 'content-type': 'application/json' }, body));
  assert.deepEqual(JSON.parse(plain.res.body.toString()), {
    got: { name: 'zoë', n: [1, 2] },
    ip: '10.1.2.3',
    protocol: 'http',
    secure: false,
  });
  const secure = await serve(
    gw,
    message('POST', '/api/json', { 'content-type': 'application/json' }, body, 'HTTP/1.1', { URL_SCHEME: 'https' }),
  );
  assert.equal((JSON.parse(secure.res.body.toString()) as { protocol: string }).protocol, 'https');
});

test('express: cookies, streamed response, error handler', async () => {
  const gw = await gatewayFor((await fixture('express-app.mjs')).default);
  const cookies = await serve(gw, message('GET', '/cookies'));
  assert.deepEqual(cookies.res.all('Set-Cookie'), ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
  const stream = await serve(gw, message('GET', '/stream'));
  assert.equal(stream.res.get('Transfer-Encoding'), 'chunked');
  assert.equal(stream.res.body.toString(), 'abc');
  const boom = await serve(gw, message('GET', '/boom'));
  assert.equal(boom.res.status, 500, "Express's own error handler");
});

// ---------------------------------------------------------------------------------------------
// Connect

test('connect: middleware, mounting, byte-exact echo', async () => {
  const gw = await gatewayFor((await fixture('connect-app.mjs')).default);
  const mounted = await serve(gw, message('GET', '/mounted/a/b?c=d'));
  assert.equal(mounted.res.get('X-Connect'), 'yes');
  assert.equal(mounted.res.body.toString(), 'mounted at /mounted/a/b?c=d, url /a/b?c=d');
  const body = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]);
  const echo = await serve(gw, message('PUT', '/echo', {}, body));
  assert.deepEqual(echo.res.body, body);
  const missing = await serve(gw, message('GET', '/other'));
  assert.equal(missing.res.status, 404);
  assert.equal(missing.res.body.toString(), 'connect 404');
});

// ---------------------------------------------------------------------------------------------
// Koa and Fastify, in the form the loader hands them over (koa.callback(), fastify.routing)

test('koa: callback(), ctx.ip, ctx.protocol from the socket, cookies', async () => {
  const { default: Koa } = await import('koa');
  const koa = new Koa();
  koa.use((ctx) => {
    ctx.cookies.set('k', 'v');
    ctx.body = { path: ctx.path, query: ctx.query.x, ip: ctx.ip, protocol: ctx.protocol };
  });
  const gw = await gatewayFor(koa.callback());
  const { res } = await serve(gw, message('GET', '/k?x=1', {}, undefined, 'HTTP/1.1', { URL_SCHEME: 'https' }));
  assert.equal(res.status, 200);
  assert.equal(res.get('X-Wsgid'), VERSION);
  assert.deepEqual(res.all('Set-Cookie'), ['k=v; path=/; secure; httponly'], 'secure: Koa saw an encrypted socket');
  assert.deepEqual(JSON.parse(res.body.toString()), { path: '/k', query: '1', ip: '10.1.2.3', protocol: 'https' });
});

test('fastify: routing(), JSON body, several set-cookie', async () => {
  const { default: Fastify } = await import('fastify');
  const fastify = Fastify();
  fastify.post('/p', async (req) => ({ got: req.body, ip: req.ip }));
  fastify.get('/c', (_req, reply) => {
    reply.header('set-cookie', ['a=1', 'b=2']).send('cookies');
  });
  await fastify.ready();
  try {
    const gw = await gatewayFor((req: http.IncomingMessage, res: http.ServerResponse) => fastify.routing(req, res));
    const body = Buffer.from(JSON.stringify({ a: [1, 'é'] }));
    const post = await serve(gw, message('POST', '/p', { 'content-type': 'application/json' }, body));
    assert.equal(post.res.status, 200);
    assert.deepEqual(JSON.parse(post.res.body.toString()), { got: { a: [1, 'é'] }, ip: '10.1.2.3' });
    const cookies = await serve(gw, message('GET', '/c'));
    assert.deepEqual(cookies.res.all('Set-Cookie'), ['a=1', 'b=2']);
    assert.equal(cookies.res.body.toString(), 'cookies');
  } finally {
    await fastify.close();
  }
});
