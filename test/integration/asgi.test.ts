/**
 * ASGI 3.0 apps through a REAL mongrel2 and the real wsgid CLI (foreground): Debian's FastAPI and
 * Starlette (python3-fastapi, python3-starlette, python-multipart for forms), a Django project made
 * by `django-admin startproject` served through its asgi.py, and a framework-free app that shows
 * the scope, the body messages, disconnects and back-pressure. /usr/bin/python3 is used, as in the
 * WSGI tests.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request, RawConnection, rawRequest } from '../helpers/http.js';
import { waitFor } from '../helpers/processes.js';
import { REPO_ROOT, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { fixtureFolders, PYTHON, startPythonApp } from '../helpers/python-app.js';
import { WsClient } from '../helpers/ws-client.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'asgi');
const fixtures = fixtureFolders(FIXTURES, 'wsgid-asgi-it-');
const appFolder = fixtures.folder;


describe('ASGI through mongrel2: FastAPI (app/main.py)', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;
  let dir: string;
  const shutdownFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'wsgid-asgi-shutdown-')), 'shutdown.txt');
  fixtures.track(path.dirname(shutdownFile));

  const disconnects = async (): Promise<number[]> =>
    (JSON.parse((await request(`${m2.baseUrl}/state`)).text) as { ws_disconnects?: number[] }).ws_disconnects ?? [];

  before(async () => {
    m2 = await startMongrel2({ settings: { 'limits.content_length': 4096, 'upload.temp_store': '/tmp/upload.XXXXXX' } });
    dir = appFolder({ 'main.py': 'fastapi_main.py' }).dir;
    wsgid = await startPythonApp(m2, dir, ['--timeout=3'], { env: { SHUTDOWN_FILE: shutdownFile } });
  });
  after(async () => {
    await wsgid?.stop();
    await m2?.stop();
  });

  test('detected as ASGI from main.py with no option; JSON API with path and query parameters', async () => {
    await wsgid.waitForOutput(/main\.py.*Python ASGI/);
    const root = await request(`${m2.baseUrl}/`);
    assert.equal(root.status, 200);
    assert.equal(root.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(root.text), { hello: 'world' });
    const item = await request(`${m2.baseUrl}/items/42?q=caf%C3%A9`);
    assert.deepEqual(JSON.parse(item.text), { item_id: 42, q: 'café' });
    const invalid = await request(`${m2.baseUrl}/items/not-a-number`);
    assert.equal(invalid.status, 422);
    const created = await request(`${m2.baseUrl}/items`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'lamp', price: 12.5, tags: ['a', 'b'] }),
    });
    assert.equal(created.status, 200, created.text);
    assert.deepEqual(JSON.parse(created.text), { received: { name: 'lamp', price: 12.5, tags: ['a', 'b'] }, total: 25 });
  });

  test('lifespan startup ran before the first request (its state is served)', async () => {
    const state = JSON.parse((await request(`${m2.baseUrl}/state`)).text) as { started?: string };
    assert.match(state.started ?? '', /^yes, pid \d+$/);
  });

  test('a streaming response arrives chunked, whole and in order', async () => {
    const r = await request(`${m2.baseUrl}/stream`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.text, 'part 0\npart 1\npart 2\npart 3\npart 4\n');
  });

  test('a multipart form upload (bigger than limits.content_length: an async upload file)', async () => {
    const file = Buffer.alloc(300_000);
    for (let i = 0; i < file.length; i++) file[i] = (i * 31 + 7) % 256;
    const form = new FormData();
    form.set('name', 'Jürgen');
    form.set('upload', new Blob([file]), 'data.bin');
    const encoded = new Response(form);
    const body = Buffer.from(await encoded.arrayBuffer());
    const r = await request(`${m2.baseUrl}/form`, {
      method: 'POST',
      headers: { 'Content-Type': encoded.headers.get('content-type')! },
      body,
      timeoutMs: 30_000,
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(JSON.parse(r.text), {
      name: 'Jürgen',
      filename: 'data.bin',
      size: file.length,
      sha256: createHash('sha256').update(file).digest('hex'),
    });
  });

  test('WebSocket echo: text, bytes, subprotocol, and a close code chosen by the app', async () => {
    const c = new WsClient(`ws://127.0.0.1:${m2.port}/ws`, ['chat.v1']);
    await c.opened;
    assert.equal(c.ws.protocol, 'chat.v1');
    c.ws.send('hello');
    const text = await c.next();
    assert.equal(text.isBinary, false);
    assert.equal(text.data.toString(), 'echo: hello');
    c.ws.send(Buffer.from([0, 1, 2, 255]));
    const bytes = await c.next();
    assert.equal(bytes.isBinary, true);
    assert.deepEqual(bytes.data, Buffer.concat([Buffer.from('echo: '), Buffer.from([0, 1, 2, 255])]));
    const big = 'x'.repeat(100_000);
    c.ws.send(big);
    assert.equal((await c.next()).data.toString(), 'echo: ' + big);
    c.ws.send('close 4321');
    const closed = await c.closed;
    assert.deepEqual(closed, { code: 4321, reason: 'asked to' });
  });

  test("the client's close handshake: the client gets its code back", async () => {
    const c = new WsClient(`ws://127.0.0.1:${m2.port}/ws`);
    await c.opened;
    c.ws.send('one');
    assert.equal((await c.next()).data.toString(), 'echo: one');
    c.ws.close(4100, 'bye');
    assert.equal((await c.closed).code, 4100);
    // The app's receive() got websocket.disconnect with the client's code.
    await waitFor('websocket.disconnect 4100 in the app', async () => disconnects().then((codes) => codes.includes(4100)));
  });

  test('a client that vanishes without a close frame: the app gets websocket.disconnect 1006', async () => {
    const c = new WsClient(`ws://127.0.0.1:${m2.port}/ws`);
    await c.opened;
    c.ws.send('two');
    assert.equal((await c.next()).data.toString(), 'echo: two');
    c.ws.terminate();
    await waitFor('websocket.disconnect 1006 in the app', async () => disconnects().then((codes) => codes.includes(1006)));
  });

  test('an exception in the app → 500 with the traceback in the log; the next request is served', async () => {
    const r = await request(`${m2.baseUrl}/error`);
    assert.equal(r.status, 500);
    await wsgid.waitForOutput(/fastapi boom from the test app/);
    assert.equal((await request(`${m2.baseUrl}/`)).status, 200);
  });

  test('the Python process dies → 502, then a new one (with its lifespan) serves', async () => {
    const before = JSON.parse((await request(`${m2.baseUrl}/state`)).text) as { started: string };
    const r = await request(`${m2.baseUrl}/crash`);
    assert.equal(r.status, 502);
    const after = await waitFor('a new Python process', async () => {
      const s = await request(`${m2.baseUrl}/state`);
      return s.status === 200 ? (JSON.parse(s.text) as { started: string }) : undefined;
    });
    assert.notEqual(after.started, before.started);
  });

  test('a hung request → 504 from the master (--timeout=3), and the app serves again', async () => {
    const r = await request(`${m2.baseUrl}/hang`, { timeoutMs: 60_000 });
    assert.equal(r.status, 504);
    await waitFor('served again', async () => (await request(`${m2.baseUrl}/`)).status === 200, 60_000);
  });

  test('stopping wsgid: open WebSockets get 1001, then the lifespan shutdown runs (it writes a file)', async () => {
    assert.equal(existsSync(shutdownFile), false);
    const c = new WsClient(`ws://127.0.0.1:${m2.port}/ws`);
    await c.opened;
    const code = await wsgid.stop();
    assert.equal(code, 0, wsgid.output());
    assert.equal((await c.closed).code, 1001);
    assert.match(readFileSync(shutdownFile, 'utf8'), /^shutdown ran in \d+/);
  });
});

describe('ASGI through mongrel2: a framework-free app (app/asgi.py)', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;

  before(async () => {
    m2 = await startMongrel2({ settings: { 'limits.content_length': 4096, 'upload.temp_store': '/tmp/upload.XXXXXX' } });
    const { dir } = appFolder({ 'asgi.py': 'raw_asgi.py' });
    wsgid = await startPythonApp(m2, dir, [], { readyPath: '/disconnects' });
  });
  after(async () => {
    await wsgid?.stop();
    await m2?.stop();
  });

  test('the http scope: ASGI 3.0, method, path decoded, raw_path, query_string, lowercased headers', async () => {
    const r = await request(`${m2.baseUrl}/echo?a=1&b=%2F`, {
      method: 'PUT',
      headers: { 'X-One': 'first', 'X-Two': 'second', 'Content-Type': 'text/plain' },
      body: 'payload',
    });
    assert.equal(r.status, 200, r.text);
    const scope = JSON.parse(r.text) as Record<string, unknown> & { headers: Array<[string, string]> };
    assert.equal(scope.method, 'PUT');
    assert.equal(scope.path, '/echo');
    assert.equal(scope.raw_path, '/echo');
    assert.equal(scope.query_string, 'a=1&b=%2F');
    assert.equal(scope.root_path, '');
    assert.equal(scope.http_version, '1.1');
    assert.equal(scope.scheme, 'http');
    assert.deepEqual(scope.asgi, { version: '3.0', spec_version: '2.3' });
    assert.equal(scope.client_host, '127.0.0.1');
    assert.equal(scope.body, 'payload');
    const names = scope.headers.map(([n]) => n);
    assert.ok(names.every((n) => n === n.toLowerCase()), names.join());
    // mongrel2 hands headers over as a map: the client's order is not kept (docs/asgi.md).
    assert.ok(names.includes('x-one') && names.includes('x-two'), names.join());
    assert.deepEqual(scope.headers.find(([n]) => n === 'x-two'), ['x-two', 'second']);
    // Through the JSON-protocol handler routed at /json/: root_path is the route's prefix.
    const json = await startWsgid(
      wsgidArgs(m2.handler('json'), appFolder({ 'asgi.py': 'raw_asgi.py' }).dir, ['--stdout', `--python=${PYTHON}`, '--workers=1']),
      { readyUrl: `${m2.baseUrl}/json/disconnects`, readyTimeoutMs: 30_000 },
    );
    try {
      const sub = JSON.parse((await request(`${m2.baseUrl}/json/echo?z=1`)).text) as Record<string, unknown>;
      assert.equal(sub.root_path, '/json');
      assert.equal(sub.path, '/json/echo');
      assert.equal(sub.route, '/echo');
      assert.equal(sub.query_string, 'z=1');
    } finally {
      await json.stop();
    }
    const decoded = await request(`${m2.baseUrl}/caf%C3%A9%20x`);
    assert.equal(decoded.status, 404);
    assert.equal(decoded.text, 'not found: /caf%C3%A9%20x');
  });

  test('request bodies: inline in one message; an async upload streamed from its file in several', async () => {
    const small = await request(`${m2.baseUrl}/upload`, { method: 'POST', body: 'abc' });
    assert.deepEqual(JSON.parse(small.text), { size: 3, messages: 1, sum: (97 + 98 + 99) % 65521 });
    const big = Buffer.alloc(500_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 13) % 256;
    const r = await request(`${m2.baseUrl}/upload`, { method: 'POST', body: big, timeoutMs: 30_000 });
    const got = JSON.parse(r.text) as { size: number; messages: number; sum: number };
    assert.equal(got.size, big.length);
    assert.equal(got.sum, big.reduce((a, b) => a + b, 0) % 65521);
    assert.ok(got.messages > 1, `more_body messages: ${got.messages}`);
  });

  test('back-pressure: 50 MB streamed with a bounded Python memory', async () => {
    const r = await request(`${m2.baseUrl}/big?mb=50`, { timeoutMs: 120_000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 50 * 1024 * 1024);
    const rss = Number((await request(`${m2.baseUrl}/maxrss`)).text);
    assert.ok(rss < 100 * 1024, `Python max RSS ${rss} KiB`);
  });

  test('many requests at once in one Python process: /wait is held until /release arrives', async () => {
    const held = request(`${m2.baseUrl}/wait`, { timeoutMs: 30_000 });
    // /release can only be served while /wait still runs if both run at once.
    await waitFor('/wait to be running', async () => (await request(`${m2.baseUrl}/release`)).status === 200 && true);
    const r = await held;
    assert.equal(r.text, 'released');
  });

  test('http.disconnect reaches receive() when the client leaves', async () => {
    const before = Number((await request(`${m2.baseUrl}/disconnects`)).text);
    const conn = await RawConnection.connect(m2.baseUrl);
    conn.write(rawRequest('GET', '/until-disconnect'));
    await waitFor('the first line of the response', async () => conn.pending.includes('waiting for you to leave'));
    conn.destroy();
    const after = await waitFor('the disconnect to be counted', async () => {
      const n = Number((await request(`${m2.baseUrl}/disconnects`)).text);
      return n > before ? n : undefined;
    });
    assert.equal(after, before + 1);
  });

  test('the response is complete when more_body is false, even if the app goes on (background work)', async () => {
    const r = await request(`${m2.baseUrl}/background`, { timeoutMs: 20_000 });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'done');
  });

  test('an app that returns without a response → 500', async () => {
    const r = await request(`${m2.baseUrl}/no-response`);
    assert.equal(r.status, 500);
    await wsgid.waitForOutput(/without sending http.response.start/);
  });

  test('an app without lifespan support starts anyway (logged as unsupported)', async () => {
    await wsgid.waitForOutput(/lifespan.*unsupported/);
  });
});

describe('ASGI back-pressure through mongrel2 download credits', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;
  before(async () => {
    m2 = await startMongrel2({ settings: { 'download.flow_control': 1 } });
    const { dir } = appFolder({ 'asgi.py': 'raw_asgi.py' });
    wsgid = await startPythonApp(m2, dir, [], { readyPath: '/progress' });
  });
  after(async () => {
    await wsgid?.stop();
    await m2?.stop();
  });

  test("a client that does not read holds the app's send() back; then 64 MB arrive whole", { timeout: 120_000 }, async () => {
    const MB = 1024 * 1024;
    const progress = async (): Promise<number> => Number((await request(`${m2.baseUrl}/progress`)).text);
    const socket = net.connect(m2.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.write('GET /produce?mb=64 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    socket.pause();
    try {
      await waitFor('the stream to start', async () => (await progress()) >= 2 * MB);
      // Wait until the app stops advancing (its send() is waiting), then look at how far it got.
      let last = -1;
      const held = await waitFor('the app to be held back', async () => {
        const now = await progress();
        if (now === last) return now;
        last = now;
        await new Promise((r) => setTimeout(r, 300));
        return undefined;
      }, 60_000);
      assert.ok(held < 32 * MB, `the app sent ${held / MB} MB to a client that read nothing`);
      let received = 0;
      let head = '';
      const whole = new Promise<void>((resolve, reject) => {
        socket.on('data', (chunk: Buffer) => {
          if (head.indexOf('\r\n\r\n') < 0) {
            head += chunk.toString('latin1');
            const end = head.indexOf('\r\n\r\n');
            if (end >= 0) received += Buffer.byteLength(head.slice(end + 4), 'latin1');
          } else received += chunk.length;
          if (received >= 64 * MB) resolve();
        });
        socket.once('close', () => reject(new Error(`closed after ${received} bytes`)));
      });
      socket.resume();
      await whole;
      assert.equal(received, 64 * MB);
      assert.match(head, /^HTTP\/1\.1 200 /);
      assert.equal(await progress(), 64 * MB);
    } finally {
      socket.destroy();
    }
  });
});

describe('ASGI through mongrel2: Starlette (app/app.py) and Django (asgi.py)', () => {
  let m2: Mongrel2Handle;
  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    await m2?.stop();
  });

  test('Starlette: detected from app.py; JSON, WebSocket, a handshake refused before accept → 403', async () => {
    const { dir } = appFolder({ 'app.py': 'starlette_app.py' });
    const w = await startPythonApp(m2, dir);
    try {
      await w.waitForOutput(/app\.py.*Python ASGI/);
      assert.equal((await request(`${m2.baseUrl}/`)).text, 'Hello from Starlette');
      const json = await request(`${m2.baseUrl}/echo-json`, { method: 'POST', body: '{"a":[1,2]}' });
      assert.deepEqual(JSON.parse(json.text), { got: { a: [1, 2] }, url: `http://127.0.0.1:${m2.port}/echo-json` });
      const c = new WsClient(`ws://127.0.0.1:${m2.port}/ws`);
      await c.opened;
      c.ws.send('shout');
      assert.equal((await c.next()).data.toString(), 'SHOUT');
      assert.equal((await c.closed).code, 4000);
      const refused = new WsClient(`ws://127.0.0.1:${m2.port}/ws-reject`);
      assert.equal(await refused.refused, 403);
      // An accept whose subprotocol is not Latin-1 text: a 500, not a 101 split by an injected line.
      const bad = new WsClient(`ws://127.0.0.1:${m2.port}/ws-bad-protocol`, ['chat']);
      const outcome = await Promise.race([bad.refused, bad.opened.then(() => 'opened', (e: Error) => e.message)]);
      assert.equal(outcome, 500);
      assert.equal((await request(`${m2.baseUrl}/`)).status, 200);
    } finally {
      await w.stop();
    }
  });

  test('Django from startproject: WSGI by default, ASGI (asgi.py) with --asgi=auto', async () => {
    const { dir, app } = appFolder();
    execFileSync(PYTHON, ['-m', 'django', 'startproject', 'mysite', app]);
    const settingsFile = path.join(app, 'mysite', 'settings.py');
    writeFileSync(settingsFile, readFileSync(settingsFile, 'utf8').replace('ALLOWED_HOSTS = []', "ALLOWED_HOSTS = ['*']"));
    const wsgi = await startPythonApp(m2, dir);
    try {
      await wsgi.waitForOutput(/WSGI app loaded/);
      assert.doesNotMatch(wsgi.output(), /ASGI app loaded/);
      assert.match((await request(`${m2.baseUrl}/`)).text, /The install worked successfully|Django/);
    } finally {
      await wsgi.stop();
    }
    // An async view, run on the bridge's event loop (Django runs sync views in a thread).
    writeFileSync(
      path.join(app, 'mysite', 'async_views.py'),
      'import asyncio\nfrom django.http import JsonResponse\n\n\nasync def hello(request):\n' +
        '    await asyncio.sleep(0)\n    return JsonResponse({"async": True, "path": request.path})\n',
    );
    const urls = path.join(app, 'mysite', 'urls.py');
    writeFileSync(
      urls,
      readFileSync(urls, 'utf8')
        .replace('from django.urls import path', 'from django.urls import path\nfrom mysite.async_views import hello')
        .replace("path('admin/', admin.site.urls),", "path('admin/', admin.site.urls),\n    path('async/', hello),"),
    );
    const w = await startPythonApp(m2, dir, ['--asgi=auto']);
    try {
      await w.waitForOutput(/ASGI app loaded.*Django ASGI/);
      const asyncView = await request(`${m2.baseUrl}/async/`);
      assert.equal(asyncView.status, 200, asyncView.text.slice(0, 3000));
      assert.deepEqual(JSON.parse(asyncView.text), { async: true, path: '/async/' });
      const login = await request(`${m2.baseUrl}/admin/login/?next=/admin/`);
      assert.equal(login.status, 200);
      assert.match(login.text, /csrfmiddlewaretoken/);
      assert.equal((await request(`${m2.baseUrl}/no/such/page`)).status, 404);
      const redirect = await request(`${m2.baseUrl}/admin`);
      assert.equal(redirect.status, 301);
      assert.equal(redirect.headers.location, '/admin/');
    } finally {
      await w.stop();
    }
    // The explicit form names the module.
    const named = await startPythonApp(m2, dir, ['--asgi=mysite.asgi:application']);
    try {
      await named.waitForOutput(/ASGI app loaded.*mysite\.asgi:application/);
      assert.equal((await request(`${m2.baseUrl}/async/`)).status, 200);
    } finally {
      await named.stop();
    }
  });
});

describe('ASGI: an app that cannot start stops the start with the app message', () => {
  for (const [fixture, message, extra, env] of [
    ['broken_startup.py', /lifespan startup failed: cannot open the cache at \/nonexistent/, ['--asgi=app:app'], {}],
    ['starlette_app.py', /lifespan startup failed: [^]*the database is not reachable/, [], { FAIL_STARTUP: '1' }],
    ['import_error.py', /Traceback[^]*this_module_does_not_exist_wsgid_asgi/, [], {}],
  ] as const) {
    test(`${fixture}: wsgid exits non-zero showing ${String(message)}`, async () => {
      const m2 = await startMongrel2();
      try {
        const { dir } = appFolder({ 'app.py': fixture });
        const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--stdout', `--python=${PYTHON}`, ...extra]), { env });
        const code = await Promise.race([w.exited, new Promise<number>((r) => setTimeout(() => r(-999), 30_000))]);
        if (code === -999) await w.stop('SIGKILL');
        assert.notEqual(code, -999, `wsgid did not exit:\n${w.output()}`);
        assert.notEqual(code, 0, w.output());
        assert.match(w.output(), message);
      } finally {
        await m2.stop();
      }
    });
  }
});
