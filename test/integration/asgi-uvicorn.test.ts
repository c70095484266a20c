/**
 * uvicorn as the oracle for the ASGI gateway: the same apps (the framework-free test/fixtures/asgi/
 * raw_asgi.py and the FastAPI app) under Debian's uvicorn (`/usr/bin/python3 -m uvicorn`, one
 * process, direct HTTP on a free port) and under wsgid behind a real mongrel2, asked the same
 * seeded, generated requests. The status, the app's headers and the body must agree; so must the
 * scope the raw app reports (method, path, raw_path, query_string, the client's headers, body).
 *
 * Known, documented differences that are left out of the comparison: headers each server adds
 * (date, server, x-wsgid, mongrel2's x-forwarded-for), the framing (content-length vs chunked),
 * the client port (mongrel2 does not pass it on).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import WebSocket from 'ws';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request, type HttpResponse } from '../helpers/http.js';
import { REPO_ROOT, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { prng } from '../helpers/prng.js';
import { startPythonServer, type PythonServer } from '../helpers/python-server.js';

const PYTHON = '/usr/bin/python3';
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'asgi');
const SEED = Number(process.env.WSGID_TEST_SEED ?? 20261201);
const CASES = 60;


function uvicorn(module: string, cwd: string): Promise<PythonServer> {
  return startPythonServer('uvicorn', (port) => ['--host=127.0.0.1', `--port=${port}`, '--log-level=warning', '--no-access-log', module], cwd);
}

interface Served {
  oracle: PythonServer;
  m2: Mongrel2Handle;
  wsgid: WsgidProcess;
  dir: string;
}

async function serveBoth(fixture: string, as: string, module: string): Promise<Served> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-asgi-oracle-'));
  mkdirSync(path.join(dir, 'app'));
  copyFileSync(path.join(FIXTURES, fixture), path.join(dir, 'app', as));
  const oracle = await uvicorn(module, path.join(dir, 'app'));
  let m2: Mongrel2Handle | undefined;
  try {
    m2 = await startMongrel2({ settings: { 'limits.content_length': 4096, 'upload.temp_store': '/tmp/upload.XXXXXX' } });
    const wsgid = await startWsgid(
      wsgidArgs(m2.handler('app'), dir, ['--stdout', `--python=${PYTHON}`, `--mongrel2-chroot=${m2.chroot}`, '--workers=1', `--asgi=${module}`]),
      { readyUrl: `${m2.baseUrl}/`, readyTimeoutMs: 30_000 },
    );
    return { oracle, m2, wsgid, dir };
  } catch (error) {
    // A failed start must not leave uvicorn running: it would keep this test file (and the suite) alive.
    await m2?.stop();
    await oracle.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

async function stopBoth(s: Served | undefined): Promise<void> {
  if (!s) return;
  await s.wsgid.stop();
  await s.m2.stop();
  await s.oracle.stop();
  rmSync(s.dir, { recursive: true, force: true });
}

interface Case {
  method: string;
  target: string;
  headers: Record<string, string>;
  body?: Buffer;
}

const PATH_PIECES = ['a', 'b c', 'caf%C3%A9', '%2F', 'x-y_z', '~u', '100%25', 'deep'];
const QUERY_PIECES = ['a=1', 'b=%2F', 'c=x+y', 'empty=', 'k', 'caf%C3%A9=1', 'n=2&n=3'];

function echoCase(rand: () => number, i: number): Case {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)]!;
  const method = pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
  const query = rand() < 0.6 ? '?' + Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(QUERY_PIECES)).join('&') : '';
  const headers: Record<string, string> = { 'x-gen-case': String(i) };
  const n = Math.floor(rand() * 4);
  for (let h = 0; h < n; h++) headers[`x-gen-${h}`] = pick(['v', 'with space', 'a,b', '"quoted"', 'tab\there']);
  if (rand() < 0.3) headers['x-status'] = String(pick([200, 201, 202, 400, 404, 418, 500, 503]));
  if (rand() < 0.3) headers['x-reply-header'] = pick(['one', 'two words', 'x=y']);
  let body: Buffer | undefined;
  if (method !== 'GET' && method !== 'OPTIONS' && rand() < 0.8) {
    const size = pick([0, 1, 100, 4095, 4097, 10_000, 100_000]); // around limits.content_length: inline and upload
    body = Buffer.alloc(size);
    for (let b = 0; b < size; b++) body[b] = 32 + Math.floor(rand() * 95);
    headers['content-type'] = pick(['text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded']);
  }
  const segments = Array.from({ length: Math.floor(rand() * 3) }, () => pick(PATH_PIECES));
  // The raw app echoes at /echo only; other paths are its 404 with the raw path in the body.
  const target = (rand() < 0.8 ? '/echo' : '/' + segments.join('/')) + query;
  return { method, target, headers, body };
}

/** What both servers must agree on: status, the app's headers, the body (the echoed scope, parsed). */
function comparable(r: HttpResponse): unknown {
  const headers: Record<string, unknown> = {};
  for (const name of ['content-type', 'x-replied']) if (r.headers[name] !== undefined) headers[name] = r.headers[name];
  let body: unknown = r.text;
  if (String(r.headers['content-type']).startsWith('application/json') && r.text !== '') {
    const parsed = JSON.parse(r.text) as Record<string, unknown>;
    if (Array.isArray(parsed.headers)) {
      // The client's own headers (mongrel2 adds x-forwarded-for; order is mongrel2's): sorted.
      parsed.headers = (parsed.headers as Array<[string, string]>)
        .filter(([name]) => name.startsWith('x-gen') || name === 'content-type' || name === 'x-status' || name === 'x-reply-header')
        .sort((a, b) => (a[0] + a[1] < b[0] + b[1] ? -1 : 1));
    }
    body = parsed;
  }
  return { status: r.status, headers, body };
}

describe('ASGI vs uvicorn: the framework-free app, generated requests', () => {
  let s: Served | undefined;
  before(async () => {
    s = await serveBoth('raw_asgi.py', 'raw_asgi.py', 'raw_asgi:application');
  });
  after(() => stopBoth(s));

  test(`${CASES} seeded requests (seed ${SEED}) get the same answer and the same scope`, async () => {
    const rand = prng(SEED);
    for (let i = 0; i < CASES; i++) {
      const c = echoCase(rand, i);
      const options = { method: c.method, headers: c.headers, body: c.body, timeoutMs: 30_000 };
      const expected = comparable(await request(`http://127.0.0.1:${s!.oracle.port}${c.target}`, options));
      const actual = comparable(await request(`${s!.m2.baseUrl}${c.target}`, options));
      assert.deepEqual(actual, expected, `case ${i} (seed ${SEED}): ${c.method} ${c.target} ${JSON.stringify(c.headers)} body ${c.body?.length ?? 0} bytes`);
    }
  });
});

describe('ASGI vs uvicorn: the FastAPI app', () => {
  let s: Served | undefined;
  before(async () => {
    s = await serveBoth('fastapi_main.py', 'main.py', 'main:app');
  });
  after(() => stopBoth(s));

  test('JSON routes, validation errors, 404 and 405 answer the same', async () => {
    const rand = prng(SEED + 1);
    const cases: Case[] = [];
    for (let i = 0; i < 30; i++) {
      const kind = Math.floor(rand() * 5);
      const n = Math.floor(rand() * 1000) - 100;
      if (kind === 0) cases.push({ method: 'GET', target: `/items/${n}${rand() < 0.5 ? `?q=v${n}` : ''}`, headers: {} });
      else if (kind === 1) cases.push({ method: 'GET', target: `/items/x${n}`, headers: {} });
      else if (kind === 2) {
        const item = rand() < 0.7 ? { name: `n${n}`, price: n / 4, tags: rand() < 0.5 ? ['t'] : [] } : { name: n };
        cases.push({ method: 'POST', target: '/items', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(item)) });
      } else if (kind === 3) cases.push({ method: 'DELETE', target: '/items', headers: {} });
      else cases.push({ method: 'GET', target: `/nothing/${n}`, headers: {} });
    }
    cases.push({ method: 'GET', target: '/', headers: {} }, { method: 'HEAD', target: '/', headers: {} }, { method: 'GET', target: '/stream', headers: {} });
    for (const [i, c] of cases.entries()) {
      const options = { method: c.method, headers: c.headers, body: c.body, timeoutMs: 30_000 };
      const expected = comparable(await request(`http://127.0.0.1:${s!.oracle.port}${c.target}`, options));
      const actual = comparable(await request(`${s!.m2.baseUrl}${c.target}`, options));
      assert.deepEqual(actual, expected, `case ${i}: ${c.method} ${c.target}`);
    }
  });
});

/** One WebSocket conversation: what the client receives for `sends`, and how it is closed. */
async function conversation(url: string, protocols: string[], sends: Array<string | Buffer>): Promise<unknown> {
  const ws = new WebSocket(url, protocols);
  const received: string[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
  );
  ws.on('error', () => {});
  const opened = await new Promise<string>((resolve) => {
    ws.once('open', () => resolve(`open ${ws.protocol}`));
    ws.once('unexpected-response', (_req, res) => resolve(`refused ${res.statusCode}`));
  });
  if (!opened.startsWith('open')) return { opened };
  for (const message of sends) {
    const next = new Promise<string>((resolve) =>
      ws.once('message', (data: Buffer, isBinary: boolean) => resolve(`${isBinary ? 'bytes' : 'text'} ${data.toString('hex')}`)),
    );
    ws.send(message);
    if (typeof message === 'string' && message.startsWith('close ')) break;
    received.push(await next);
  }
  return { opened, received, closed: await closed };
}

describe('ASGI vs uvicorn: WebSockets (FastAPI echo)', () => {
  let s: Served | undefined;
  before(async () => {
    s = await serveBoth('fastapi_main.py', 'main.py', 'main:app');
  });
  after(() => stopBoth(s));

  test('the same messages, subprotocol and close code and reason', async () => {
    const rand = prng(SEED + 2);
    for (let i = 0; i < 5; i++) {
      const sends: Array<string | Buffer> = [];
      for (let n = 0; n < 1 + Math.floor(rand() * 4); n++) {
        const size = Math.floor(rand() * 3000);
        if (rand() < 0.5) sends.push('t'.repeat(size) + String(n));
        else sends.push(Buffer.from(Array.from({ length: size }, () => Math.floor(rand() * 256))));
      }
      sends.push(`close ${3000 + Math.floor(rand() * 1999)}`);
      const protocols = rand() < 0.5 ? ['p1', 'p2'] : [];
      const expected = await conversation(`ws://127.0.0.1:${s!.oracle.port}/ws`, protocols, sends);
      const actual = await conversation(`ws://127.0.0.1:${s!.m2.port}/ws`, protocols, sends);
      assert.deepEqual(actual, expected, `conversation ${i}`);
    }
    // A path with no WebSocket route: both refuse the handshake the same way.
    assert.deepEqual(
      await conversation(`ws://127.0.0.1:${s!.m2.port}/nothing`, [], []),
      await conversation(`ws://127.0.0.1:${s!.oracle.port}/nothing`, [], []),
    );
  });
});
