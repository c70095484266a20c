/**
 * Python WSGI apps through a REAL mongrel2 and the real wsgid CLI (foreground): a Django project made
 * by `django-admin startproject`, a Flask app, and a test app wrapped in wsgiref.validate.validator.
 * Django and Flask come from Debian (python3-django, python3-flask), so /usr/bin/python3 is used.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request, RawConnection, rawRequest } from '../helpers/http.js';
import { REPO_ROOT, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { fixtureFolders, PYTHON, startPythonApp } from '../helpers/python-app.js';
import { waitFor } from '../helpers/processes.js';
import { OpenClient } from '../helpers/push.js';
import { STALL_MS } from '../../src/dispatch/table.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'wsgi');
const fixtures = fixtureFolders(FIXTURES, 'wsgid-wsgi-it-');
const appFolder = fixtures.folder;

describe('WSGI through mongrel2: the validated test app', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;
  let sub: WsgidProcess;

  before(async () => {
    m2 = await startMongrel2({
      settings: { 'limits.content_length': 4096, 'upload.temp_store': '/tmp/upload.XXXXXX' },
    });
    const { dir } = appFolder({ 'testapp.py': 'testapp.py' });
    wsgid = await startPythonApp(m2, dir, ['--wsgi-app=testapp:application'], { readyPath: '/hello' });
    // The same app on the JSON-protocol handler routed at /json/: SCRIPT_NAME must be /json.
    // (A second app folder: one wsgid instance per folder.)
    sub = await startPythonApp(m2, appFolder({ 'testapp.py': 'testapp.py' }).dir, ['--wsgi-app=testapp.application'], { readyPath: '/json/hello', handler: 'json' });
  });
  after(async () => {
    await wsgid?.stop();
    await sub?.stop();
    await m2?.stop();
  });

  test('GET hello', async () => {
    const r = await request(`${m2.baseUrl}/hello`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'Hello, world!\n');
    assert.match(String(r.headers['x-wsgid']), /./);
  });

  test('environ through mongrel2 (tnetstring at /, json at /json/)', async () => {
    const r = await request(`${m2.baseUrl}/environ/x%20y?a=1&b=%2F`, { headers: { 'X-Dup': ['1', '2'], Cookie: 'k=v' } });
    assert.equal(r.status, 200, r.text);
    const env = JSON.parse(r.text) as Record<string, string>;
    assert.equal(env.SCRIPT_NAME, '');
    assert.equal(env.PATH_INFO, '/environ/x y');
    assert.equal(env.QUERY_STRING, 'a=1&b=%2F');
    assert.equal(env.SERVER_NAME, '127.0.0.1');
    assert.equal(env.SERVER_PORT, String(m2.port));
    assert.equal(env.REMOTE_ADDR, '127.0.0.1');
    assert.equal(env.HTTP_X_DUP, '1,2'); // joined as gunicorn, uWSGI and wsgiref do
    assert.equal(env.HTTP_COOKIE, 'k=v');
    assert.equal(env.SERVER_PROTOCOL, 'HTTP/1.1');

    const j = await request(`${m2.baseUrl}/json/environ/deep?z=1`);
    const envJ = JSON.parse(j.text) as Record<string, string>;
    assert.equal(envJ.SCRIPT_NAME, '/json');
    assert.equal(envJ.PATH_INFO, '/environ/deep');
    assert.equal(envJ.QUERY_STRING, 'z=1');
  });

  test('request bodies: inline, and over limits.content_length (async upload file)', async () => {
    const small = Buffer.from('hello body');
    const r1 = await request(`${m2.baseUrl}/echo`, { method: 'POST', body: small });
    assert.equal(r1.status, 200);
    assert.deepEqual(r1.body, small);
    const big = Buffer.alloc(200_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 256;
    const r2 = await request(`${m2.baseUrl}/echo`, { method: 'POST', body: big });
    assert.equal(r2.status, 200, r2.text.slice(0, 200));
    assert.ok(r2.body.equals(big), 'upload echoed whole');
    const lines = await request(`${m2.baseUrl}/echo-lines`, { method: 'POST', body: 'a\nb\nc\n' });
    assert.equal(lines.headers['x-lines'], '3');
  });

  test('streaming generator (chunked), write(), HEAD, 204', async () => {
    const s = await request(`${m2.baseUrl}/stream`);
    assert.equal(s.headers['transfer-encoding'], 'chunked');
    assert.equal(s.text, 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
    const w = await request(`${m2.baseUrl}/write`);
    assert.equal(w.text, 'written then returned');
    const conn = await RawConnection.connect(m2.baseUrl);
    conn.write(rawRequest('HEAD', '/stream'));
    const h = await conn.readResponse({ method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
    // The connection is still usable: the HEAD response carried no stray body bytes.
    conn.write(rawRequest('GET', '/hello'));
    assert.equal((await conn.readResponse()).text, 'Hello, world!\n');
    conn.destroy();
    const n = await request(`${m2.baseUrl}/nocontent`);
    assert.equal(n.status, 204);
  });

  test('HTTP/1.0: close-delimited stream', async () => {
    const r = await request(`${m2.baseUrl}/stream`, { httpVersion: '1.0' });
    assert.equal(r.status, 200);
    assert.equal(r.text.split('\n').length, 6);
  });

  test('app exception → 500, and the next request is served', async () => {
    const r = await request(`${m2.baseUrl}/error`);
    assert.equal(r.status, 500);
    await wsgid.waitForOutput(/boom from the test app/);
    assert.equal((await request(`${m2.baseUrl}/hello`)).status, 200);
  });

  test('50 MB generator received whole', async () => {
    const t0 = Date.now();
    const r = await request(`${m2.baseUrl}/big?mb=50`, { timeoutMs: 60_000 });
    const ms = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 50 * 1024 * 1024);
    assert.ok(r.body.every((b) => b === 0x78));
    const rss = Number((await request(`${m2.baseUrl}/maxrss`)).text);
    assert.ok(rss < 80 * 1024, `Python max RSS ${rss} KiB`);
    console.log(`50 MB through mongrel2 in ${ms} ms; Python max RSS ${rss} KiB`);
  });

  test('the Python process dies → 502, then served again', async () => {
    const r = await request(`${m2.baseUrl}/crash`);
    assert.equal(r.status, 502);
    assert.equal((await request(`${m2.baseUrl}/hello`)).status, 200);
  });

  test('client disconnect mid-stream: the iterable is closed, the worker goes on', async () => {
    const before = Number((await request(`${m2.baseUrl}/closed`)).text);
    const conn = await RawConnection.connect(m2.baseUrl);
    conn.write(rawRequest('GET', '/slow'));
    await new Promise((r) => setTimeout(r, 300));
    conn.destroy();
    // /slow runs 10 s when nobody stops it; the close count moves long before that.
    const deadline = Date.now() + 5000;
    let closed = before;
    while (Date.now() < deadline && closed === before) {
      await new Promise((r) => setTimeout(r, 100));
      closed = Number((await request(`${m2.baseUrl}/closed`)).text);
    }
    assert.equal(closed, before + 1);
  });

  // Speed is the benchmark's business (npm run bench); this checks that a long keep-alive
  // conversation stays correct: every answer whole, in order, on the same connection.
  test('500 sequential requests on one keep-alive connection are all answered, in order', async () => {
    const conn = await RawConnection.connect(m2.baseUrl);
    try {
      for (let i = 0; i < 500; i++) {
        conn.write(rawRequest('GET', `/hello?n=${i}`));
        const response = await conn.readResponse();
        assert.equal(response.status, 200, `request ${i}`);
        assert.equal(response.text, 'Hello, world!\n', `request ${i}`);
      }
    } finally {
      conn.destroy();
    }
  });
});

describe('WSGI through mongrel2: Django and Flask', () => {
  let m2: Mongrel2Handle;
  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    await m2?.stop();
  });

  test('a Django project from startproject, detected with no --wsgi-app', async () => {
    const { dir, app } = appFolder();
    execFileSync(PYTHON, ['-m', 'django', 'startproject', 'mysite', app]);
    // As a user deploying it would: allow the Host this server is reached by.
    const settingsFile = path.join(app, 'mysite', 'settings.py');
    writeFileSync(settingsFile, readFileSync(settingsFile, 'utf8').replace('ALLOWED_HOSTS = []', "ALLOWED_HOSTS = ['*']"));
    const w = await startPythonApp(m2, dir, [], { readyPath: '/' });
    try {
      await w.waitForOutput(/Django/);
      const home = await request(`${m2.baseUrl}/`);
      assert.equal(home.status, 200);
      assert.match(home.text, /The install worked successfully|Django/);
      const login = await request(`${m2.baseUrl}/admin/login/?next=/admin/`);
      assert.equal(login.status, 200);
      assert.match(login.text, /csrfmiddlewaretoken/);
      assert.match(String(login.headers['set-cookie'] ?? ''), /csrftoken/);
      const missing = await request(`${m2.baseUrl}/no/such/page`);
      assert.equal(missing.status, 404);
      const redirect = await request(`${m2.baseUrl}/admin`);
      assert.equal(redirect.status, 301);
      assert.equal(redirect.headers.location, '/admin/');
    } finally {
      await w.stop();
    }
  });

  test('a Flask app (app/app.py) detected, with form posts, streaming and errors', async () => {
    const { dir } = appFolder({ 'app.py': 'flaskapp.py' });
    const w = await startPythonApp(m2, dir, [], { readyPath: '/' });
    try {
      const home = await request(`${m2.baseUrl}/`);
      assert.equal(home.status, 200);
      assert.equal(home.text, 'Hello from Flask');
      const form = await request(`${m2.baseUrl}/form`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'name=J%C3%BCrgen',
      });
      assert.equal(form.status, 200);
      const got = JSON.parse(form.text) as { name: string; url: string };
      assert.equal(got.name, 'J\u00fcrgen');
      assert.equal(got.url, `http://127.0.0.1:${m2.port}/form`);
      const json = await request(`${m2.baseUrl}/echo-json`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ a: [1, 2] }),
      });
      assert.deepEqual(JSON.parse(json.text), { got: { a: [1, 2] } });
      const stream = await request(`${m2.baseUrl}/stream`);
      assert.equal(stream.text, 'part 0\npart 1\npart 2\n');
      const fail = await request(`${m2.baseUrl}/fail`);
      assert.equal(fail.status, 500);
      await w.waitForOutput(/flask boom/);
      assert.equal((await request(`${m2.baseUrl}/`)).status, 200);
    } finally {
      await w.stop();
    }
  });
});

describe('WSGI: --uncredited-limit (no download credits)', () => {
  test('a 40 MB response is cut after 8 MB and its iterable closed; a 4 MB one arrives whole', { timeout: 120_000 }, async () => {
    const m2 = await startMongrel2();
    const { dir } = appFolder({ 'testapp.py': 'testapp.py' });
    const wsgid = await startPythonApp(m2, dir, ['--wsgi-app=testapp:raw', '--uncredited-limit=8M'], { readyPath: '/hello' });
    try {
      const before = Number((await request(`${m2.baseUrl}/closed`)).text);
      const client = new OpenClient(m2.port, '/big?mb=40');
      assert.ok(await client.waitClosed(60_000), 'the connection is closed');
      const raw = client.data;
      const headEnd = raw.indexOf('\r\n\r\n');
      assert.match(raw.subarray(0, headEnd).toString('latin1'), /^HTTP\/1\.1 200 OK\r\n[^]*transfer-encoding: chunked/i);
      assert.ok(raw.length <= 8 * 1024 * 1024, `${raw.length} bytes sent, over the limit`);
      assert.ok(!raw.subarray(-7).equals(Buffer.from('\r\n0\r\n\r\n')), 'no last chunk');
      await wsgid.waitForOutput(/response cut after \d+ bytes: it would pass --uncredited-limit=8M without mongrel2's download credits/);
      await waitFor('the iterable closed', async () => Number((await request(`${m2.baseUrl}/closed`)).text) === before + 1);
      const whole = await request(`${m2.baseUrl}/big?mb=4`, { timeoutMs: 60_000 });
      assert.equal(whole.status, 200);
      assert.equal(whole.body.length, 4 * 1024 * 1024);
    } finally {
      await wsgid.stop();
      await m2.stop();
    }
  });
});

describe('WSGI: a hung app', () => {
  test('the master times the request out (504), the worker and its Python process are replaced', async () => {
    const m2 = await startMongrel2();
    const { dir } = appFolder({ 'testapp.py': 'testapp.py' });
    const w = await startPythonApp(m2, dir, ['--wsgi-app=testapp:raw', '--timeout=2', '--graceful-timeout=2'], { readyPath: '/hello' });
    try {
      const oldPid = Number((await request(`${m2.baseUrl}/pid`)).text);
      const hung = await request(`${m2.baseUrl}/hang`, { timeoutMs: 15_000 });
      assert.equal(hung.status, 504);
      const deadline = Date.now() + 15_000;
      let next = await request(`${m2.baseUrl}/pid`, { timeoutMs: 15_000 });
      while (next.status !== 200 && Date.now() < deadline) next = await request(`${m2.baseUrl}/pid`, { timeoutMs: 15_000 });
      assert.equal(next.status, 200);
      assert.notEqual(Number(next.text), oldPid);
      // The old Python process dies with its worker (its thread cannot be stopped: the worker is
      // replaced gracefully, drained, and exits at --graceful-timeout=2 with the request still
      // running) through PR_SET_PDEATHSIG: gone, or a zombie where init does not reap.
      const processState = (): string => {
        try {
          return /State:\s+(\S)/.exec(readFileSync(`/proc/${oldPid}/status`, 'utf8'))?.[1] ?? '';
        } catch {
          return 'gone';
        }
      };
      const until = Date.now() + 15_000;
      while (!['gone', 'Z'].includes(processState()) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
      assert.ok(['gone', 'Z'].includes(processState()), `old Python process state ${processState()}`);
    } finally {
      await w.stop();
      await m2.stop();
    }
  });
});

describe('WSGI: load failures', () => {
  test('an import error at start: wsgid exits non-zero and shows the traceback', async () => {
    const m2 = await startMongrel2();
    try {
      const { dir } = appFolder({ 'broken.py': 'broken.py' });
      const h = m2.handler('app');
      const w = await startWsgid(
        wsgidArgs(h, dir, ['--stdout', `--python=${PYTHON}`, '--wsgi-app=broken:application', '--keep-alive']),
      );
      const code = await Promise.race([
        w.exited,
        new Promise<number>((r) => setTimeout(() => r(-999), 30_000)),
      ]);
      if (code === -999) await w.stop('SIGKILL');
      assert.notEqual(code, 0, w.output());
      assert.notEqual(code, -999, `wsgid did not exit:\n${w.output()}`);
      assert.match(w.output(), /this_module_does_not_exist_wsgid/);
      assert.match(w.output(), /Traceback/);
    } finally {
      await m2.stop();
    }
  });
});

/**
 * Head-of-line blocking: two workers, one request blocked in the app (on a FIFO the
 * test opens when it wants it to go on). While any worker can start a request, fast requests on
 * new connections must not wait behind the blocked one.
 */
for (const threads of [1, 2]) {
  describe(`WSGI through mongrel2, 2 workers, --threads=${threads}: a slow request does not hold up fast ones`, () => {
    let m2: Mongrel2Handle;
    let wsgid: WsgidProcess;
    let dir: string;
    let blocks: string;
    const started = (): string => readFileSync(path.join(blocks, 'started'), 'utf8');
    const fifo = (name: string): string => {
      const file = path.join(blocks, `${name}.fifo`);
      execFileSync('mkfifo', [file]);
      return file;
    };
    const blockUrl = (name: string): string =>
      `${m2.baseUrl}/block?name=${name}&fifo=${path.join(blocks, `${name}.fifo`)}&started=${path.join(blocks, 'started')}`;
    /** Start a request that blocks in the app; resolves once the app runs it, with its pid. */
    const block = async (name: string): Promise<{ pid: number; response: ReturnType<typeof request> }> => {
      fifo(name);
      const response = request(blockUrl(name), { timeoutMs: 60_000 });
      const line = await waitFor(`${name} to start`, async () => started().split('\n').find((l) => l.startsWith(`${name} `)));
      const [, pid, multithread] = line.split(' ');
      assert.equal(multithread, threads > 1 ? 'True' : 'False', 'wsgi.multithread');
      return { pid: Number(pid), response };
    };
    const release = (name: string): void => writeFileSync(path.join(blocks, `${name}.fifo`), 'go');
    /** A fast request on a new connection; fails (rather than waiting) if it sits behind a blocked one. */
    const fast = async (): Promise<number> => {
      const r = await request(`${m2.baseUrl}/pid`, { timeoutMs: 15_000 });
      assert.equal(r.status, 200);
      return Number(r.text);
    };

    before(async () => {
      m2 = await startMongrel2();
      ({ dir } = appFolder({ 'testapp.py': 'testapp.py' }));
      blocks = mkdtempSync(path.join(os.tmpdir(), 'wsgid-wsgi-blocks-'));
      fixtures.track(blocks);
      writeFileSync(path.join(blocks, 'started'), '');
      wsgid = await startPythonApp(m2, dir, ['--wsgi-app=testapp:application', '--workers=2', `--threads=${threads}`], { readyPath: '/pid' });
    });
    after(async () => {
      await wsgid?.stop();
      await m2?.stop();
    });

    test('fast requests, one after the other and in a burst, are served while the slow one is blocked', async () => {
      const slow = await block('slow');
      let answered = false;
      void slow.response.then(() => (answered = true));
      const pids = new Set<number>();
      for (let i = 0; i < 12; i++) pids.add(await fast());
      if (threads === 1) assert.ok(!pids.has(slow.pid), 'none went to the worker whose only thread is busy');
      // The master stops pipelining onto a worker that made no progress for STALL_MS: wait that
      // long, then send more at once than the other worker runs.
      await sleep(2 * STALL_MS);
      const burst = await Promise.all(Array.from({ length: 12 }, () => fast()));
      if (threads === 1) assert.ok(!burst.includes(slow.pid), 'none waited behind the slow one');
      assert.equal(answered, false, 'the slow one is still blocked');
      release('slow');
      const r = await slow.response;
      assert.equal(r.text, 'released slow');
    });

    if (threads > 1) {
      test('two slow requests run at once in one process, and fast ones still find a free thread', async () => {
        const names = ['s1', 's2', 's3'];
        const slow = [];
        for (const name of names) slow.push(await block(name));
        const byPid = new Map<number, number>();
        for (const { pid } of slow) byPid.set(pid, (byPid.get(pid) ?? 0) + 1);
        assert.deepEqual([...byPid.values()].sort(), [1, 2], 'three blocked requests over two processes of two threads');
        for (let i = 0; i < 6; i++) await fast();
        for (const name of names) release(name);
        for (const [i, { response }] of slow.entries()) assert.equal((await response).text, `released ${names[i]}`);
      });
    }
  });
}
