/**
 * The WSGI gateway with a real Python (bridge.py) but no mongrel2: requests are built by hand and
 * responses collected from an in-memory ReplyChannel, then parsed as HTTP. The mongrel2 + CLI path
 * is in wsgi.test.ts.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create } from '../../src/gateways/wsgi/index.js';
import type { Gateway, GatewayRequest } from '../../src/gateways/types.js';
import type { PythonSpec } from '../../src/gateways/python/spec.js';
import type { Settings } from '../../src/config/settings.js';
import type { Mongrel2Headers, Mongrel2Message } from '../../src/protocol/types.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { TestReply } from '../helpers/reply-channel.js';
import { REPO_ROOT } from '../helpers/wsgid.js';

const PYTHON = '/usr/bin/python3';
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'wsgi');

/** Collects log lines in memory. */
function memoryLogger(): { logger: Logger; lines: () => string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-wsgi-log-'));
  const file = path.join(dir, 'log');
  writeFileSync(file, '');
  const logger = createLogger({ path: file }, 'debug', 'test');
  return {
    logger,
    lines: () => readFileSync(file, 'utf8'),
  };
}

let nextConn = 1;
function message(
  pathAndQuery: string,
  opts: { method?: string; headers?: Mongrel2Headers; body?: Buffer; pattern?: string; version?: string } = {},
): Mongrel2Message {
  const [p, q] = pathAndQuery.split('?');
  const headers: Mongrel2Headers = {
    PATH: p!,
    METHOD: opts.method ?? 'GET',
    VERSION: opts.version ?? 'HTTP/1.1',
    URI: pathAndQuery,
    PATTERN: opts.pattern ?? '/',
    URL_SCHEME: 'http',
    REMOTE_ADDR: '127.0.0.1',
    host: '127.0.0.1:6767',
    'x-forwarded-for': '127.0.0.1',
    ...(q !== undefined ? { QUERY: q } : {}),
    ...(opts.body ? { 'content-length': String(opts.body.length) } : {}),
    ...(opts.headers ?? {}),
  };
  return { kind: 'request', sender: 'test', connId: nextConn++, path: p!, headers, body: opts.body ?? Buffer.alloc(0) };
}

function req(msg: Mongrel2Message, signal = new AbortController().signal, bodyFile?: string): GatewayRequest {
  return { message: msg, signal, bodyFile };
}

function spec(module: string, extra: Partial<PythonSpec> = {}): PythonSpec {
  return {
    python: PYTHON,
    appDir: FIXTURES,
    sysPath: [FIXTURES],
    cwd: FIXTURES,
    entry: { module, attr: 'application', call: false },
    candidates: ['application', 'app'],
    envs: { WSGID_TEST_ENV: 'from-envs' },
    ...extra,
  };
}

async function serve(gw: Gateway, msg: Mongrel2Message, reply = new TestReply({ method: msg.headers.METHOD as string })): Promise<TestReply> {
  await gw.handle(req(msg), reply);
  assert.equal(reply.ended, true, 'the gateway ended the reply');
  return reply;
}

describe('WSGI gateway (real Python, in-memory reply)', () => {
  let gw: Gateway; // the validated app
  let rawGw: Gateway; // the same app without wsgiref.validate (whose wrapper hides list results)
  let log: ReturnType<typeof memoryLogger>;

  before(async () => {
    log = memoryLogger();
    gw = await create({ kind: 'wsgi', app: spec('testapp'), description: 'testapp' }, { logger: log.logger, version: 'test' });
    rawGw = await create(
      { kind: 'wsgi', app: spec('testapp', { entry: { module: 'testapp', attr: 'raw', call: false } }), description: 'raw' },
      { logger: log.logger, version: 'test' },
    );
  });
  after(async () => {
    await gw.close();
    await rawGw.close();
  });

  test('hello through the validator (an iterator wrapper): chunked', async () => {
    const r = (await serve(gw, message('/hello'))).parsed();
    assert.equal(r.status, 200);
    assert.equal(r.text, 'Hello, world!\n');
    assert.equal(r.framing, 'chunked');
  });

  test('hello: single-element list gets a Content-Length', async () => {
    const r = (await serve(rawGw, message('/hello'))).parsed();
    assert.equal(r.status, 200);
    assert.equal(r.text, 'Hello, world!\n');
    assert.equal(r.headers['content-length'], '14');
    assert.equal(r.headers['x-wsgid'], 'test');
    assert.equal(r.framing, 'content-length');
  });

  test('environ passes wsgiref.validate and maps CGI keys', async () => {
    const r = (
      await serve(
        gw,
        message('/app/environ/a%20b%2Fc?x=1&y=%20', {
          pattern: '/app/(.*)',
          headers: { 'x-dup': ['a', 'b'], 'content-type': 'text/plain', 'x_under': 'dropped', cookie: 'c=1' },
        }),
      )
    ).parsed();
    assert.equal(r.status, 200, r.text);
    const env = JSON.parse(r.text) as Record<string, string>;
    assert.equal(env.SCRIPT_NAME, '/app');
    assert.equal(env.PATH_INFO, '/environ/a b/c');
    assert.equal(env.QUERY_STRING, 'x=1&y=%20');
    assert.equal(env.SERVER_NAME, '127.0.0.1');
    assert.equal(env.SERVER_PORT, '6767');
    assert.equal(env.REMOTE_ADDR, '127.0.0.1');
    assert.equal(env.HTTP_X_DUP, 'a,b'); // joined as gunicorn, uWSGI and wsgiref do
    assert.equal(env.CONTENT_TYPE, 'text/plain');
    assert.equal(env.HTTP_CONTENT_TYPE, undefined);
    assert.equal(env.HTTP_X_UNDER, undefined);
    assert.equal(env.HTTP_COOKIE, 'c=1');
    assert.equal(env['wsgi.version'], '(1, 0)');
    assert.equal(env['wsgi.multithread'], 'False');
    assert.equal(env['wsgi.multiprocess'], 'True');
    assert.equal(env['wsgi.run_once'], 'False');
    assert.equal(env['wsgi.input_terminated'], 'True');
    assert.equal(env['wsgi.url_scheme'], 'http');
    assert.equal(env.WSGID_TEST_ENV, undefined, 'envs are os.environ, not the WSGI environ');
  });

  test('non-ASCII path bytes arrive as latin1 "bytes-as-str"', async () => {
    const r = (await serve(gw, message('/caf%C3%A9'))).parsed();
    const env = JSON.parse(r.text) as Record<string, string>;
    assert.equal(env.PATH_INFO, '/caf\u00c3\u00a9');
  });

  test('request body read with read(n), POST', async () => {
    const body = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    const r = (await serve(gw, message('/echo', { method: 'POST', body }))).parsed();
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, body);
    assert.equal(r.headers['x-method'], 'POST');
  });

  test('request body read with readline (through the validator)', async () => {
    const body = Buffer.from('one\ntwo\nthree');
    const r = (await serve(gw, message('/echo-lines', { method: 'PUT', body }))).parsed();
    assert.equal(r.headers['x-lines'], '3');
    assert.equal(r.text, 'one\ntwo\nthree');
  });

  test('body from an upload file (bodyFile)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-upload-'));
    const file = path.join(dir, 'upload.bin');
    const data = Buffer.alloc(300_000, 7);
    writeFileSync(file, data);
    const reply = new TestReply({ method: 'POST' });
    await gw.handle(req(message('/echo', { method: 'POST', headers: { 'content-length': String(data.length) } }), undefined, file), reply);
    const r = reply.parsed();
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, data);
    rmSync(dir, { recursive: true });
  });

  test('generator: chunked on HTTP/1.1, close-delimited on HTTP/1.0', async () => {
    const r = (await serve(gw, message('/stream'))).parsed();
    assert.equal(r.framing, 'chunked');
    assert.equal(r.text, 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
    const reply10 = new TestReply({ method: 'GET', httpVersion: 'HTTP/1.0', keepAlive: false });
    await gw.handle(req(message('/stream', { version: 'HTTP/1.0' })), reply10);
    assert.equal(reply10.closeAfter, true);
    assert.equal(reply10.parsed().framing, 'close');
    assert.equal(reply10.parsed().text.split('\n').length, 6);
  });

  test('write() callable then the iterable', async () => {
    const r = (await serve(gw, message('/write'))).parsed();
    assert.equal(r.text, 'written then returned');
  });

  test('HEAD: no body, Content-Length of the GET when known', async () => {
    const reply = new TestReply({ method: 'HEAD' });
    await rawGw.handle(req(message('/hello', { method: 'HEAD' })), reply);
    const r = reply.parsed();
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers['content-length'], '14');
    assert.ok(reply.data().toString('latin1').endsWith('\r\n\r\n'));
    const reply2 = new TestReply({ method: 'HEAD' });
    await gw.handle(req(message('/stream', { method: 'HEAD' })), reply2);
    assert.ok(reply2.data().toString('latin1').endsWith('\r\n\r\n'));
    assert.equal(reply2.parsed().headers['transfer-encoding'], undefined);
  });

  test('204 has no body', async () => {
    const reply = await serve(gw, message('/nocontent'));
    assert.equal(reply.parsed().status, 204);
    assert.ok(reply.data().toString('latin1').endsWith('\r\n\r\n'));
  });

  test('exception → 500 with the traceback logged; the next request is served', async () => {
    const r = (await serve(gw, message('/error'))).parsed();
    assert.equal(r.status, 500);
    assert.match(log.lines(), /boom from the test app/);
    assert.equal((await serve(gw, message('/hello'))).parsed().status, 200);
  });

  test('exception mid-stream → truncated body and a close', async () => {
    const reply = await serve(gw, message('/error-midstream'));
    assert.equal(reply.closeAfter, true);
    assert.match(reply.data().toString('latin1'), /partial/);
    assert.ok(!reply.data().toString('latin1').endsWith('0\r\n\r\n'), 'no last chunk');
    assert.match(log.lines(), /boom mid-stream/);
  });

  test('start_response with exc_info before the head replaces the status', async () => {
    const r = (await serve(gw, message('/exc-info'))).parsed();
    assert.equal(r.status, 503);
    assert.equal(r.text, 'error page');
  });

  test('CR/LF in a header value → 500, nothing injected', async () => {
    const reply = await serve(gw, message('/badheader'));
    const r = reply.parsed();
    assert.equal(r.status, 500);
    assert.doesNotMatch(reply.data().toString('latin1'), /Injected/);
  });

  test('Content-Length larger than the body → connection closed', async () => {
    const reply = await serve(gw, message('/short'));
    assert.equal(reply.closeAfter, true);
  });

  test('Set-Cookie twice is kept twice', async () => {
    const r = (await serve(gw, message('/cookies'))).parsed();
    assert.deepEqual(
      r.rawHeaders.filter(([k]) => k.toLowerCase() === 'set-cookie').map(([, v]) => v),
      ['a=1', 'b=2'],
    );
  });

  test('wsgi.file_wrapper', async () => {
    const r = (await serve(gw, message('/file'))).parsed();
    assert.match(r.text, /WSGI test app for wsgid/);
  });

  test("wsgi.errors reaches the log; print() reaches this process's stdout (the master's capture, in a daemon)", async () => {
    const printed: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      printed.push(String(chunk));
      return (write as (...args: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
    }) as typeof process.stdout.write;
    try {
      await serve(gw, message('/errors'));
      await serve(gw, message('/print'));
      const deadline = Date.now() + 10_000;
      while (!printed.some((l) => /hello from print\(\)/.test(l)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    } finally {
      process.stdout.write = write;
    }
    assert.match(log.lines(), /a line for wsgi.errors/);
    assert.ok(printed.some((l) => /^hello from print\(\)\n$/.test(l)), 'the printed line, whole, on stdout');
    assert.doesNotMatch(log.lines(), /hello from print/);
  });

  test('close() is always called on the iterable', async () => {
    const before = Number((await serve(gw, message('/closed'))).parsed().text);
    await serve(gw, message('/error-midstream'));
    await serve(gw, message('/big?mb=1'));
    const afterCount = Number((await serve(gw, message('/closed'))).parsed().text);
    assert.equal(afterCount - before, 2);
  });

  test('50 MB generator with back-pressure: received whole, bounded memory in Python', async () => {
    const reply = new TestReply({ backPressure: 'timer', keepChunks: 1 });
    const t0 = Date.now();
    await gw.handle(req(message('/big?mb=50')), reply);
    const ms = Date.now() - t0;
    assert.ok(reply.bytes > 50 * 1024 * 1024, `got ${reply.bytes} bytes`);
    assert.ok(reply.writesRefused > 0);
    const rss = Number((await serve(gw, message('/maxrss'))).parsed().text); // KiB on Linux
    assert.ok(rss < 80 * 1024, `Python max RSS ${rss} KiB`);
    // One 8 MB chunk is cut into frames too.
    const one = new TestReply({ backPressure: 'timer', keepChunks: 1 });
    await gw.handle(req(message('/bigone')), one);
    assert.ok(one.bytes > 8 * 1024 * 1024);
    console.log(`50 MB generator through the gateway in ${ms} ms`);
  });

  test('many queued requests are served in order, one at a time', async () => {
    const replies = Array.from({ length: 20 }, () => new TestReply());
    await Promise.all(replies.map((r, i) => gw.handle(req(message(i % 2 ? '/hello' : '/stream')), r)));
    for (const [i, r] of replies.entries()) {
      assert.equal(r.parsed().status, 200);
      assert.match(r.parsed().text, i % 2 ? /Hello/ : /chunk 4/);
    }
  });

  test('pipelined requests keep order and isolation: each gets its own answer, one raises → 500', async () => {
    // All sent at once to one Python process: the gateway pipelines them (environ and body sent
    // ahead), the bridge runs them one at a time. One raises; two are cancelled while waiting, one
    // already sent ahead to Python (5), one still in the gateway's queue (14).
    const n = 24;
    const cancel = new AbortController();
    const order: number[] = [];
    const replies = Array.from({ length: n }, (_, i) => new TestReply({ method: i % 3 === 1 ? 'POST' : 'GET' }));
    const msgs = replies.map((_, i) => {
      if (i === 9) return message('/error');
      if (i === 5 || i === 14) return message('/slow');
      if (i % 3 === 1) return message('/echo', { method: 'POST', body: Buffer.from(`body of request ${i}`) });
      if (i % 3 === 2) return message('/stream');
      return message(`/environ/${i}?i=${i}`);
    });
    const cancelled = (i: number): boolean => i === 5 || i === 14;
    const done = msgs.map((m, i) =>
      Promise.resolve(gw.handle(req(m, cancelled(i) ? cancel.signal : undefined), replies[i]!)).then(() => {
        if (!cancelled(i)) order.push(i);
      }),
    );
    cancel.abort();
    replies[5]!.closed = true;
    replies[14]!.closed = true;
    await Promise.all(done);
    for (const [i, r] of replies.entries()) {
      if (cancelled(i)) {
        assert.equal(r.bytes, 0, 'the cancelled request sent nothing');
        continue;
      }
      const res = r.parsed();
      if (i === 9) {
        assert.equal(res.status, 500);
      } else if (i % 3 === 1) {
        assert.equal(res.status, 200);
        assert.equal(res.text, `body of request ${i}`);
      } else if (i % 3 === 2) {
        assert.equal(res.status, 200);
        assert.match(res.text, /^chunk 0\n[^]*chunk 4\n$/);
      } else {
        assert.equal(res.status, 200);
        const env = JSON.parse(res.text) as Record<string, string>;
        assert.equal(env.PATH_INFO, `/environ/${i}`);
        assert.equal(env.QUERY_STRING, `i=${i}`);
      }
    }
    assert.deepEqual(
      order,
      Array.from({ length: n }, (_, i) => i).filter((i) => !cancelled(i)),
      'answered in order',
    );
    assert.match(log.lines(), /boom from the test app/);
    // The process goes on serving.
    assert.equal((await serve(gw, message('/hello'))).parsed().status, 200);
  });

  test('disconnect: abort stops the stream and closes the iterable', async () => {
    const before = Number((await serve(gw, message('/closed'))).parsed().text);
    const ac = new AbortController();
    const reply = new TestReply();
    const t0 = Date.now();
    const done = gw.handle(req(message('/slow'), ac.signal), reply);
    setTimeout(() => {
      reply.closed = true;
      ac.abort();
    }, 200);
    await done;
    assert.ok(Date.now() - t0 < 3000, 'stopped well before the 10 s generator ends');
    const afterCount = Number((await serve(gw, message('/closed'))).parsed().text);
    assert.equal(afterCount - before, 1);
  });

  test('aborted while queued: never reaches Python', async () => {
    const ac = new AbortController();
    const first = gw.handle(req(message('/stream')), new TestReply());
    const queuedReply = new TestReply();
    const queued = gw.handle(req(message('/hello'), ac.signal), queuedReply);
    ac.abort();
    await Promise.all([first, queued]);
    assert.equal(queuedReply.bytes, 0);
  });

  test('the Python process dies → 502, and a new one serves the next request', async () => {
    const r = (await serve(gw, message('/crash'))).parsed();
    assert.equal(r.status, 502);
    const next = (await serve(gw, message('/hello'))).parsed();
    assert.equal(next.status, 200);
    // Requests pipelined behind the crashing one never started: the new process serves them.
    const pid = Number((await serve(gw, message('/pid'))).parsed().text);
    const replies = Array.from({ length: 6 }, () => new TestReply());
    await Promise.all(replies.map((r, i) => gw.handle(req(message(i === 0 ? '/crash' : `/environ/${i}`)), r)));
    assert.equal(replies[0]!.parsed().status, 502);
    for (const [i, r] of replies.entries()) {
      if (i === 0) continue;
      assert.equal(r.parsed().status, 200);
      assert.equal((JSON.parse(r.parsed().text) as Record<string, string>).PATH_INFO, `/environ/${i}`);
    }
    assert.notEqual(Number((await serve(gw, message('/pid'))).parsed().text), pid);
  });
});

/** A FIFO the /block route waits on, and the file it notes its start in. */
function blocker(): { dir: string; fifo: (name: string) => string; started: string; url: (name: string) => string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-wsgi-block-'));
  const started = path.join(dir, 'started');
  writeFileSync(started, '');
  const fifo = (name: string): string => {
    const file = path.join(dir, `${name}.fifo`);
    execFileSync('mkfifo', [file]);
    return file;
  };
  return { dir, fifo, started, url: (name) => `/block?name=${name}&fifo=${path.join(dir, `${name}.fifo`)}&started=${started}` };
}

/** Open the FIFO for writing and close it: the request blocked on it goes on. */
function release(file: string): void {
  writeFileSync(file, 'go');
}

async function waitForText(file: string, re: RegExp): Promise<string> {
  for (;;) {
    const text = readFileSync(file, 'utf8');
    if (re.test(text)) return text;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('WSGI gateway with --threads=3 (a thread pool in bridge.py)', () => {
  let gw: Gateway;
  let log: ReturnType<typeof memoryLogger>;
  const settings = { threads: 3, wsgiPipeline: 8 } as Settings;

  before(async () => {
    log = memoryLogger();
    gw = await create({ kind: 'wsgi', app: spec('testapp'), description: 'testapp' }, { logger: log.logger, version: 'test', settings });
  });
  after(async () => {
    await gw.close();
  });

  test('capacity: 3 at once, 7 more sent ahead', () => {
    assert.deepEqual(gw.capacity, { concurrent: 3, waiting: 7 });
  });

  test('three requests run at once in one process; a fourth waits for a free thread', async () => {
    const b = blocker();
    const names = ['a', 'b', 'c', 'd'];
    for (const name of names) b.fifo(name);
    const replies = names.map(() => new TestReply());
    const done = names.map((name, i) => gw.handle(req(message(b.url(name))), replies[i]!));
    const started = await waitForText(b.started, /^(\S+ \d+ True\n){3}$/);
    const lines = started.trim().split('\n').map((line) => line.split(' '));
    assert.deepEqual(lines.map(([name]) => name).sort(), ['a', 'b', 'c'], 'the first three, in any order');
    assert.equal(new Set(lines.map(([, pid]) => pid)).size, 1, 'one Python process');
    // No thread is free for d: it waits (FIFO) until one is.
    release(path.join(b.dir, 'b.fifo'));
    await waitForText(b.started, /^d /m);
    await done[1];
    assert.equal(replies[1]!.parsed().text, 'released b');
    for (const name of ['a', 'c', 'd']) release(path.join(b.dir, `${name}.fifo`));
    await Promise.all(done);
    for (const [i, r] of replies.entries()) assert.equal(r.parsed().text, `released ${names[i]}`);
    rmSync(b.dir, { recursive: true, force: true });
  });

  test('a slow request does not hold up the others: they run on the free threads', async () => {
    const b = blocker();
    b.fifo('slow');
    const slowReply = new TestReply();
    const slow = gw.handle(req(message(b.url('slow'))), slowReply);
    await waitForText(b.started, /^slow /m);
    for (let round = 0; round < 5; round++) {
      const fast = Array.from({ length: 6 }, () => new TestReply());
      await Promise.all(fast.map((r, i) => gw.handle(req(message(i % 2 ? '/hello' : `/environ/${i}`)), r)));
      for (const r of fast) assert.equal(r.parsed().status, 200);
    }
    assert.equal(slowReply.ended, false, 'the slow one is still running');
    release(path.join(b.dir, 'slow.fifo'));
    await slow;
    assert.equal(slowReply.parsed().text, 'released slow');
    rmSync(b.dir, { recursive: true, force: true });
  });

  test('concurrent requests are isolated: bodies, streams, errors, environ (wsgi.multithread True)', async () => {
    const n = 30;
    const big = Buffer.alloc(300_000, 7); // several B frames: read while other threads run
    const replies = Array.from({ length: n }, () => new TestReply());
    const msgs = replies.map((_, i) => {
      if (i === 9) return message('/error');
      if (i % 5 === 1) return message('/echo', { method: 'POST', body: i === 6 ? big : Buffer.from(`body of request ${i}`) });
      if (i % 5 === 2) return message('/stream');
      if (i % 5 === 3) return message('/echo-lines', { method: 'POST', body: Buffer.from(`${i}\nline\n`) });
      return message(`/environ/${i}?i=${i}`);
    });
    await Promise.all(msgs.map((m, i) => gw.handle(req(m), replies[i]!)));
    for (const [i, r] of replies.entries()) {
      const res = r.parsed();
      if (i === 9) assert.equal(res.status, 500);
      else if (i % 5 === 1) assert.deepEqual(res.body, i === 6 ? big : Buffer.from(`body of request ${i}`));
      else if (i % 5 === 2) assert.match(res.text, /^chunk 0\n[^]*chunk 4\n$/);
      else if (i % 5 === 3) assert.equal(res.text, `${i}\nline\n`);
      else {
        const env = JSON.parse(res.text) as Record<string, string>;
        assert.equal(env.PATH_INFO, `/environ/${i}`);
        assert.equal(env['wsgi.multithread'], 'True');
      }
    }
    assert.match(log.lines(), /boom from the test app/);
  });

  test('50 MB generator with back-pressure while other threads serve', async () => {
    const reply = new TestReply({ backPressure: 'timer', keepChunks: 1 });
    const big = gw.handle(req(message('/big?mb=50')), reply);
    const others = Array.from({ length: 10 }, () => new TestReply());
    await Promise.all(others.map((r) => gw.handle(req(message('/hello')), r)));
    await big;
    assert.ok(reply.bytes > 50 * 1024 * 1024, `got ${reply.bytes} bytes`);
    assert.ok(reply.writesRefused > 0);
    for (const r of others) assert.equal(r.parsed().status, 200);
  });

  test('disconnect of a running request stops its stream; the others go on', async () => {
    const before = Number((await serve(gw, message('/closed'))).parsed().text);
    const ac = new AbortController();
    const reply = new TestReply();
    const done = gw.handle(req(message('/slow'), ac.signal), reply);
    const other = new TestReply();
    await gw.handle(req(message('/hello')), other);
    reply.closed = true;
    ac.abort();
    await done;
    assert.equal(other.parsed().status, 200);
    const afterCount = Number((await serve(gw, message('/closed'))).parsed().text);
    assert.equal(afterCount - before, 1);
  });

  test('the process dies with requests on every thread: they get 502, the ones waiting run on a new process', async () => {
    const b = blocker();
    b.fifo('x');
    b.fifo('y');
    const x = new TestReply();
    const y = new TestReply();
    const running = [gw.handle(req(message(b.url('x'))), x), gw.handle(req(message(b.url('y'))), y)];
    await waitForText(b.started, /^(\S+ \d+ True\n){2}$/);
    const crash = new TestReply();
    const crashed = gw.handle(req(message('/crash')), crash);
    const waiting = Array.from({ length: 4 }, () => new TestReply());
    const behind = waiting.map((r, i) => gw.handle(req(message(`/environ/${i}`)), r));
    await Promise.all([...running, crashed, ...behind]);
    assert.equal(x.parsed().status, 502);
    assert.equal(y.parsed().status, 502);
    assert.equal(crash.parsed().status, 502);
    for (const [i, r] of waiting.entries()) {
      assert.equal(r.parsed().status, 200);
      assert.equal((JSON.parse(r.parsed().text) as Record<string, string>).PATH_INFO, `/environ/${i}`);
    }
    rmSync(b.dir, { recursive: true, force: true });
  });
});

describe('WSGI gateway loading', () => {
  test('import error → create() rejects with the traceback', async () => {
    const { logger } = memoryLogger();
    await assert.rejects(
      Promise.resolve(create({ kind: 'wsgi', app: spec('broken'), description: 'broken' }, { logger, version: 'test' })),
      (err: Error & { traceback?: string }) =>
        /this_module_does_not_exist_wsgid/.test(err.message) &&
        /^Traceback \(most recent call last\):\n/.test(err.traceback ?? '') &&
        // As `python -c 'import broken'` shows it: no frame of wsgid's bridge nor of importlib.
        !/bridge\.py|importlib/.test(err.traceback ?? ''),
    );
  });

  test('missing interpreter → a clear error', async () => {
    const { logger } = memoryLogger();
    await assert.rejects(
      Promise.resolve(create({ kind: 'wsgi', app: spec('testapp', { python: '/nonexistent/python' }), description: 'x' }, { logger, version: 'test' })),
      /could not run "\/nonexistent\/python"/,
    );
  });

  test('module:attr, dotted name, file path, and the Flask app', async () => {
    const { logger } = memoryLogger();
    const cases: Array<[Partial<PythonSpec>, string, RegExp]> = [
      [{ entry: { module: 'testapp', attr: 'raw', call: false } }, '/hello', /Hello/],
      [{ entry: { module: 'testapp', attr: 'raw', call: false, fallbackModule: 'testapp.raw' } }, '/hello', /Hello/],
      [{ entry: { file: path.join(FIXTURES, 'testapp.py'), call: false } }, '/hello', /Hello/],
      [{ entry: { module: 'flaskapp', call: false } }, '/', /Hello from Flask/],
    ];
    for (const [extra, url, expected] of cases) {
      const g = await create({ kind: 'wsgi', app: spec('testapp', extra), description: 'x' }, { logger, version: 'test' });
      try {
        const r = (await serve(g, message(url))).parsed();
        assert.equal(r.status, 200);
        assert.match(r.text, expected);
      } finally {
        await g.close();
      }
    }
  });
});
