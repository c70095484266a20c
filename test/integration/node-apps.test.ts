/**
 * Node request-listener apps (Express, Connect, a plain http.Server) served end to end: a real
 * mongrel2, the real `wsgid` CLI in the foreground, and a real HTTP client (node:http's strict
 * parser checks that the bytes are valid HTTP; HTTP/1.0 and close decisions over raw sockets).
 *
 * The apps are the fixtures of the unit test (test/fixtures/node-apps/*.mjs), copied into a fresh
 * app folder whose app/node_modules links to the repository's (they import express/connect).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2 } from '../helpers/mongrel2.js';
import { closedAfterResponse, rawRequest, request, RawConnection } from '../helpers/http.js';
import { REPO_ROOT, WSGID_CLI, startWsgid, wsgidArgs } from '../helpers/wsgid.js';
import { stopServed, type Served as ServedApp } from '../helpers/served.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'node-apps');
const skip = existsSync(WSGID_CLI) ? false : 'wsgid CLI not built';

interface Served extends ServedApp {
  url: string;
  diagnostics(): string;
}

/** A fresh app folder serving `fixture` through a fresh mongrel2 (uploads over 4 KiB go to a file: below mongrel2's buffer_size the upload file is not exact). */
async function serveFixture(fixture: string, workers = 1): Promise<Served> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-node-apps-'));
  await mkdir(path.join(dir, 'app'), { recursive: true });
  await copyFile(path.join(FIXTURES, fixture), path.join(dir, 'app', 'app.mjs'));
  await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'app', 'node_modules'), 'dir');
  const m2 = await startMongrel2({
    settings: { 'limits.content_length': 4096, 'upload.temp_store': '/tmp/upload.XXXXXX' },
  });
  try {
    const extra = ['--wsgi-app=app.mjs', `--workers=${workers}`];
    if (m2.chrooted) extra.push(`--mongrel2-chroot=${m2.dir}`);
    const wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, extra), { cwd: dir, readyUrl: `${m2.baseUrl}/` });
    return {
      m2,
      wsgid,
      dir,
      url: m2.baseUrl,
      diagnostics: () => `--- wsgid output\n${wsgid.output()}\n--- mongrel2 log\n${m2.log()}`,
    };
  } catch (error) {
    await m2.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}


const VERSION_HEADER = /^\S+/;

describe('node apps through mongrel2 + wsgid: plain http.Server', { skip }, () => {
  let s: Served | undefined;
  before(async () => {
    s = await serveFixture('plain-http.mjs');
  });
  after(async () => stopServed(s));

  test('hello: status, Date, X-Wsgid, Content-Length', async () => {
    const res = await request(`${s!.url}/`);
    assert.equal(res.status, 200, s!.diagnostics());
    assert.equal(res.text, 'hello world');
    assert.equal(res.headers['content-length'], '11');
    assert.match(String(res.headers['x-wsgid']), VERSION_HEADER);
    assert.ok(!Number.isNaN(Date.parse(String(res.headers.date))));
  });

  test('request translation: url, duplicate headers, remote address', async () => {
    const res = await request(`${s!.url}/info?x=1&y=%20z`, { headers: [['X-Dup', 'a'], ['X-Dup', 'b']] });
    const info = JSON.parse(res.text) as { url: string; headers: Record<string, string>; remoteAddress: string; httpVersion: string };
    assert.equal(info.url, '/info?x=1&y=%20z');
    assert.equal(info.headers['x-dup'], 'a, b');
    assert.equal(info.remoteAddress, '127.0.0.1');
    assert.equal(info.httpVersion, '1.1');
  });

  test('chunked response on HTTP/1.1, several Set-Cookie, HEAD, 204, 304', async () => {
    const chunked = await request(`${s!.url}/chunked`);
    assert.equal(chunked.headers['transfer-encoding'], 'chunked');
    assert.equal(chunked.text, 'one,two,three');
    const cookies = await request(`${s!.url}/cookies`);
    assert.deepEqual(cookies.headers['set-cookie'], ['a=1; Path=/', 'b=2; HttpOnly']);
    const head = await request(`${s!.url}/`, { method: 'HEAD' });
    assert.equal(head.headers['content-length'], '11');
    assert.equal(head.body.length, 0);
    assert.equal((await request(`${s!.url}/204`)).status, 204);
    assert.equal((await request(`${s!.url}/304`)).status, 304);
  });

  test('keep-alive: two requests on one connection', async () => {
    const conn = await RawConnection.connect(s!.url);
    try {
      conn.write(rawRequest('GET', '/', { Host: 'localhost' }));
      const first = await conn.readResponse();
      conn.write(rawRequest('GET', '/cookies', { Host: 'localhost' }));
      const second = await conn.readResponse();
      assert.equal(first.text, 'hello world');
      assert.equal(second.text, 'cookies');
      assert.equal(conn.closed, false);
    } finally {
      conn.destroy();
    }
  });

  test('HTTP/1.0 with unknown length: body until close; Connection: close from the app closes', async () => {
    const old = await closedAfterResponse(s!.url, rawRequest('GET', '/chunked', { Host: 'localhost' }, undefined, '1.0'));
    assert.equal(old.response.framing, 'close');
    assert.equal(old.response.text, 'one,two,three');
    assert.equal(old.closed, true);
    const byApp = await closedAfterResponse(s!.url, rawRequest('GET', '/close', { Host: 'localhost' }));
    assert.equal(byApp.response.text, 'bye');
    assert.equal(byApp.closed, true);
    const kept = await closedAfterResponse(s!.url, rawRequest('GET', '/', { Host: 'localhost' }), { graceMs: 300 });
    assert.equal(kept.closed, false);
  });

  test('POST bodies byte-exact: inline and through an async upload file', async () => {
    const small = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x0d, 0x0a, 0x7f]);
    const echoed = await request(`${s!.url}/echo`, { method: 'POST', body: small });
    assert.deepEqual(echoed.body, small);
    const big = Buffer.alloc(200 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
    const upload = await request(`${s!.url}/echo`, { method: 'POST', body: big, timeoutMs: 20_000 });
    assert.equal(upload.status, 200, s!.diagnostics());
    assert.ok(upload.body.equals(big), 'upload echoed byte-exact');
  });

  test('a 4 MiB streamed response arrives whole', async () => {
    const res = await request(`${s!.url}/big?size=${4 << 20}`, { timeoutMs: 30_000 });
    assert.equal(res.body.length, 4 << 20);
  });

  test('client gone mid-response: req aborted, res close; the worker keeps serving', async () => {
    await request(`${s!.url}/events`); // reset the record
    const conn = await RawConnection.connect(s!.url);
    try {
      conn.write(rawRequest('GET', '/hang', { Host: 'localhost' }));
      const deadline = Date.now() + 5000;
      while (!conn.pending.includes('started')) {
        assert.ok(Date.now() < deadline, 'no partial response');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      conn.destroy();
    }
    let events: string[] = [];
    const deadline = Date.now() + 5000;
    while (events.length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      events = events.concat(JSON.parse((await request(`${s!.url}/events`)).text) as string[]);
    }
    assert.deepEqual(events, ['req aborted', 'res close finished=false', 'req close'], s!.diagnostics());
    assert.equal((await request(`${s!.url}/`)).text, 'hello world');
  });

  test('an app that throws → 500, and the worker keeps serving', async () => {
    const res = await request(`${s!.url}/throw`);
    assert.equal(res.status, 500);
    assert.equal(res.headers['x-before-throw'], undefined);
    const rejected = await request(`${s!.url}/reject`);
    assert.equal(rejected.status, 500);
    assert.equal((await request(`${s!.url}/`)).text, 'hello world');
  });
});

describe('node apps through mongrel2 + wsgid: Express', { skip }, () => {
  let s: Served | undefined;
  before(async () => {
    s = await serveFixture('express-app.mjs');
  });
  after(async () => stopServed(s));

  test('routes, params, 404', async () => {
    const hello = await request(`${s!.url}/hello`);
    assert.equal(hello.text, 'hello express', s!.diagnostics());
    assert.equal(hello.headers['x-powered-by'], 'Express');
    assert.match(String(hello.headers['x-wsgid']), VERSION_HEADER);
    const user = await request(`${s!.url}/users/7?q=a%20b`);
    assert.deepEqual(JSON.parse(user.text), { id: '7', q: 'a b' });
    assert.equal((await request(`${s!.url}/missing`)).status, 404);
  });

  test('JSON body parser and req.ip', async () => {
    const res = await request(`${s!.url}/api/json`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ a: 'zoë' }),
    });
    assert.deepEqual(JSON.parse(res.text), { got: { a: 'zoë' }, ip: '127.0.0.1', protocol: 'http', secure: false });
  });

  test('cookies, streaming, error handler', async () => {
    const cookies = await request(`${s!.url}/cookies`);
    assert.deepEqual(cookies.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
    const stream = await request(`${s!.url}/stream`);
    assert.equal(stream.text, 'abc');
    assert.equal(stream.headers['transfer-encoding'], 'chunked');
    assert.equal((await request(`${s!.url}/boom`)).status, 500);
  });
});

describe('node apps through mongrel2 + wsgid: Connect', { skip }, () => {
  let s: Served | undefined;
  before(async () => {
    s = await serveFixture('connect-app.mjs');
  });
  after(async () => stopServed(s));

  test('middleware, mounting, echo', async () => {
    const mounted = await request(`${s!.url}/mounted/x?y=1`);
    assert.equal(mounted.text, 'mounted at /mounted/x?y=1, url /x?y=1', s!.diagnostics());
    assert.equal(mounted.headers['x-connect'], 'yes');
    const body = Buffer.from([1, 2, 3, 0xff, 0]);
    const echo = await request(`${s!.url}/echo`, { method: 'PUT', body });
    assert.deepEqual(echo.body, body);
    assert.equal((await request(`${s!.url}/nope`)).text, 'connect 404');
  });
});
