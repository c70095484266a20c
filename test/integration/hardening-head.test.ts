/**
 * What the client sends never bends the response head or the path:
 * apps that echo a query parameter into a header, a header name, a reason phrase or a
 * Content-Length get a 500 instead of letting the client split the response (as node:http refuses
 * such heads); the URL a fetch app sees takes its path from what mongrel2 routed, whatever the
 * Host header says. Real mongrel2, real wsgid, raw sockets.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2 } from '../helpers/mongrel2.js';
import { sendRaw } from '../helpers/http.js';
import { REPO_ROOT, startWsgid, wsgidArgs } from '../helpers/wsgid.js';
import { stopServed, type Served } from '../helpers/served.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'hardening');

async function serve(file: string, extra: string[]): Promise<Served> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-hardening-'));
  await mkdir(path.join(dir, 'app'));
  await copyFile(path.join(FIXTURES, file), path.join(dir, 'app', file));
  const m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
  const wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1', ...extra]), { cwd: dir, readyUrl: `${m2.baseUrl}/` });
  return { m2, wsgid, dir };
}

const stop = stopServed;

/** Two pipelined requests on one connection: the hostile one, then an innocent one. Everything received. */
async function pipelined(s: Served, target: string): Promise<string> {
  const first = `GET ${target} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
  const second = 'GET /innocent HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
  return (await sendRaw(`${s.m2.baseUrl}/`, first + second, { timeoutMs: 30_000 })).toString('latin1');
}

/** Every status line in the bytes, wherever it starts (an injected one included). */
function statusLines(raw: string): string[] {
  return raw.match(/HTTP\/1\.[01] \d{3}[^\r\n]*/g) ?? [];
}

const SPLIT = encodeURIComponent('a\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nX-Injected: yes\r\nContent-Length: 5\r\n\r\nowned');

describe('response splitting: a fetch app echoing client input into its head', () => {
  let s: Served | undefined;
  before(async () => {
    s = await serve('echo-head.mjs', ['--wsgi-app=echo-head.mjs']);
  });
  after(() => stop(s));

  const attacks: Array<[string, string]> = [
    ['CR LF in a header value (fast path)', `/header?v=${SPLIT}`],
    ['CR LF in a header value (stream body)', `/stream-header?v=${SPLIT}`],
    ['CR LF in a header name', `/header-name?v=${SPLIT}`],
    ['a space in a header name', `/header-name?v=${encodeURIComponent('x a')}`],
    ['CR LF in the reason phrase', `/reason?v=${SPLIT}`],
    ['U+010D U+010A (cut to CR LF when written as Latin-1)', `/header?v=${encodeURIComponent('a\u010d\u010aX-Injected: yes')}`],
    ['NUL in a header value', `/header?v=${encodeURIComponent('a\0b')}`],
    ['a Content-Length that is not a number', `/length?v=${encodeURIComponent('0, 5')}`],
  ];
  for (const [what, target] of attacks) {
    test(`${what}: 500, one response, nothing injected`, async () => {
      const raw = await pipelined(s!, target);
      assert.deepEqual(statusLines(raw), ['HTTP/1.1 500 Internal Server Error'], raw);
      assert.doesNotMatch(raw, /X-Injected|owned/i);
      assert.match(raw, /\r\nDate: /);
      assert.match(raw, /\r\nX-Wsgid: /);
      assert.match(s!.wsgid.output(), /WSGID_ERR_RESPONSE_HEAD|invalid (character|response header|Content-Length|status)/);
    });
  }

  test('a harmless value is still echoed (the check refuses only what is unsafe)', async () => {
    const raw = await pipelined(s!, `/header?v=${encodeURIComponent('caf\u00e9 \t ok')}`);
    assert.deepEqual(statusLines(raw), ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK'], raw);
    assert.ok(Buffer.from(raw, 'latin1').includes(Buffer.from('x-echo: caf\u00e9 \t ok', 'latin1')), raw);
  });
});

describe('the Host header never changes the path a fetch app sees', () => {
  let s: Served | undefined;
  before(async () => {
    s = await serve('echo-head.mjs', ['--wsgi-app=echo-head.mjs']);
  });
  after(() => stop(s));

  async function seen(host: string, target = '/public/page?x=1'): Promise<{ status: number; body: { url: string; pathname: string; search: string } }> {
    const raw = await sendRaw(`${s!.m2.baseUrl}/`, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, { timeoutMs: 30_000 });
    const text = raw.toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
    return { status, body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { url: string; pathname: string; search: string } };
  }

  for (const host of ['localhost/admin/secret?', 'localhost/admin/secret#', 'evil.example@localhost/admin', '[::1', '%zz', 'a b', 'localhost:80/x']) {
    test(`Host: ${JSON.stringify(host)} → the app sees /public/page?x=1`, async () => {
      const { status, body } = await seen(host);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.pathname, '/public/page');
      assert.equal(body.search, '?x=1');
      assert.equal(new URL(body.url).host, 'localhost');
    });
  }

  test('a plain Host with a port is kept as the authority', async () => {
    const { body } = await seen('example.com:8080');
    assert.equal(body.url, 'http://example.com:8080/public/page?x=1');
  });
});

describe('response splitting: a WSGI app echoing client input into its head', () => {
  let s: Served | undefined;
  before(async () => {
    s = await serve('echo_head.py', ['--wsgi-app=echo_head:application', '--python=/usr/bin/python3']);
  });
  after(() => stop(s));

  for (const [what, target] of [
    ['CR LF in a header value', `/header?v=${SPLIT}`],
    ['CR LF in the reason phrase', `/reason?v=${SPLIT}`],
  ] as const) {
    test(`${what}: 500, one response, nothing injected`, async () => {
      const raw = await pipelined(s!, target);
      assert.deepEqual(statusLines(raw), ['HTTP/1.1 500 Internal Server Error'], raw);
      assert.doesNotMatch(raw, /X-Injected|owned/i);
    });
  }
});
