/**
 * The request path end to end for a fetch app: a real mongrel2, the real `wsgid` CLI, real HTTP
 * clients. Runs the same checks in single-process mode (--workers=0) and through the master
 * (--workers=1), on a tnetstring and a JSON handler.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { Push, Subscriber } from 'zeromq';
import { startMongrel2, freePorts, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { closedAfterResponse, rawRequest, request, RawConnection } from '../helpers/http.js';
import { REPO_ROOT, startWsgid, type WsgidProcess } from '../helpers/wsgid.js';

const APP = path.join(REPO_ROOT, 'test', 'fixtures', 'fetch-app');
const MB = 1024 * 1024;

function patternHash(length: number): string {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + 3) & 255;
  return createHash('sha256').update(bytes).digest('hex');
}

/** Read a whole response from a client that stops reading for a while first (a slow client). */
async function slowDownload(port: number, target: string, pauseMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`slow download of ${target} timed out after ${chunks.reduce((n, c) => n + c.length, 0)} bytes`));
    }, 60_000);
    socket.on('connect', () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      socket.pause();
      setTimeout(() => socket.resume(), pauseMs);
    });
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

function splitHead(raw: Buffer): { head: string; body: Buffer } {
  const end = raw.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no HTTP head in ${raw.subarray(0, 200).toString('latin1')}`);
  return { head: raw.subarray(0, end).toString('latin1'), body: raw.subarray(end + 4) };
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    const size = parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
    if (size === 0) return Buffer.concat(parts);
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

for (const workers of [0, 1]) {
  describe(`fetch app through mongrel2 (--workers=${workers})`, () => {
    let m2: Mongrel2Handle;
    let wsgid: WsgidProcess;
    let fakeServer: { push: Push; sub: Subscriber; recv: string; send: string };

    before(async () => {
      m2 = await startMongrel2();
      const app = m2.handler('app');
      const json = m2.handler('json');
      // A third "mongrel2 server" played by the test, to inject raw frames from the wire.
      const [pushPort, subPort] = await freePorts(2);
      const push = new Push();
      await push.bind(`tcp://127.0.0.1:${pushPort}`);
      const sub = new Subscriber();
      sub.subscribe();
      await sub.bind(`tcp://127.0.0.1:${subPort}`);
      fakeServer = { push, sub, recv: `tcp://127.0.0.1:${pushPort}`, send: `tcp://127.0.0.1:${subPort}` };
      wsgid = await startWsgid(
        [
          '--no-daemon',
          `--workers=${workers}`,
          `--app-path=${APP}`,
          `--recv=${app.recv}`,
          `--send=${app.send}`,
          `--recv=${json.recv}`,
          `--send=${json.send}`,
          `--recv=${fakeServer.recv}`,
          `--send=${fakeServer.send}`,
          '--wsgi-app=server.mjs',
        ],
        { readyUrl: `${m2.baseUrl}/` },
      );
    });

    after(async () => {
      await wsgid?.stop();
      fakeServer?.push.close();
      fakeServer?.sub.close();
      await m2?.stop();
    });

    test('a plain response has status, Date, X-Wsgid, Content-Length and the body', async () => {
      const res = await request(`${m2.baseUrl}/`);
      assert.equal(res.status, 200);
      assert.equal(res.text, 'Hello, world!');
      assert.equal(res.headers['content-length'], '13');
      assert.match(String(res.headers['date']), /GMT$/);
      assert.match(String(res.headers['x-wsgid']), /^\d+\.\d+\.\d+/);
      assert.equal(res.headers['content-type'], 'text/plain;charset=UTF-8');
      // The access log (stderr in the foreground): Apache combined format plus microseconds.
      // %b is the body's size (13), not the head's and the body's.
      await wsgid.waitForOutput(new RegExp(`^127\\.0\\.0\\.1 - - \\[[^\\]]+\\] "GET / HTTP/1\\.1" 200 ${res.body.length} "-" "-" \\d+$`, 'm'));
    });

    for (const route of ['', '/json']) {
      test(`request.url, headers and context come from mongrel2 (${route ? 'JSON' : 'tnetstring'} handler)`, async () => {
        const res = await request(`${m2.baseUrl}${route}/echo?a=1&b=%20c`, {
          headers: [
            ['X-Dup', 'one'],
            ['X-Dup', 'two'],
            ['X-Tab', 'a\tb'],
            ['X-Latin', 'caf\u00e9'],
          ],
        });
        assert.equal(res.status, 200);
        const echo = JSON.parse(res.text) as Record<string, unknown> & { headers: Record<string, string> };
        assert.equal(echo['method'], 'GET');
        assert.equal(echo['url'], `http://127.0.0.1:${m2.port}${route}/echo?a=1&b=%20c`);
        assert.equal(echo.headers['x-dup'], 'one, two');
        assert.equal(echo.headers['x-tab'], 'a\tb');
        assert.equal(echo.headers['x-latin'], 'caf\u00e9');
        assert.equal(echo.headers['host'], `127.0.0.1:${m2.port}`);
        assert.equal(echo['remoteAddress'], '127.0.0.1');
        assert.equal(echo['pattern'], route ? '/json/' : '/');
        assert.equal(echo['sender'], m2.handler(route ? 'json' : 'app').sendIdent);
        assert.ok(Number.isInteger(echo['connId']));
      });
    }

    test('request bodies arrive byte-exact', async () => {
      const body = Buffer.alloc(15_000);
      for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 255; // NULs, commas, invalid UTF-8
      const res = await request(`${m2.baseUrl}/body`, { method: 'POST', body });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], String(body.length));
      assert.ok(res.body.equals(body), 'echoed body differs');
    });

    test('a 20 MB body with a known length reaches a slow client whole', async () => {
      const raw = await slowDownload(m2.port, '/big?mb=20', 1500);
      const { head, body } = splitHead(raw);
      assert.match(head, /^HTTP\/1\.1 200 /);
      assert.match(head, /Content-Length: 20971520/i);
      assert.equal(body.length, 20 * MB);
      assert.equal(createHash('sha256').update(body).digest('hex'), patternHash(20 * MB));
    });

    test('a 30 MB stream of unknown length is chunked and reaches a slow client whole', async () => {
      const raw = await slowDownload(m2.port, '/stream?mb=30', 1500);
      const { head, body } = splitHead(raw);
      assert.match(head, /Transfer-Encoding: chunked/i);
      const data = dechunk(body);
      assert.equal(data.length, 30 * MB);
      assert.equal(createHash('sha256').update(data).digest('hex'), patternHash(30 * MB));
    });

    test('HEAD, 204 and 304 carry no body', async () => {
      const conn = await RawConnection.connect(m2.baseUrl);
      try {
        conn.write(rawRequest('HEAD', '/', { Host: '127.0.0.1' }));
        const head = await conn.readResponse({ method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers['content-length'], '13');
        assert.equal(head.body.length, 0);
        conn.write(rawRequest('GET', '/no-content', { Host: '127.0.0.1' }));
        const noContent = await conn.readResponse();
        assert.equal(noContent.status, 204);
        assert.equal(noContent.headers['content-length'], undefined);
        conn.write(rawRequest('GET', '/not-modified', { Host: '127.0.0.1' }));
        const notModified = await conn.readResponse();
        assert.equal(notModified.status, 304);
        assert.equal(notModified.headers['etag'], '"x"');
        // The same connection still serves a normal response: nothing stray was sent after the heads.
        conn.write(rawRequest('GET', '/', { Host: '127.0.0.1' }));
        const after = await conn.readResponse();
        assert.equal(after.text, 'Hello, world!');
        assert.equal(conn.pending.length, 0);
      } finally {
        conn.destroy();
      }
    });

    test('several Set-Cookie headers stay apart', async () => {
      const res = await request(`${m2.baseUrl}/cookies`);
      assert.deepEqual(res.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
    });

    test('status codes other than 200 and their headers are kept', async () => {
      const res = await request(`${m2.baseUrl}/created`);
      assert.equal(res.status, 201);
      assert.equal(res.statusText, 'Created');
      assert.equal(res.headers['location'], '/thing/1');
    });

    test('keep-alive: pipelined requests on one connection are answered in order', async () => {
      const conn = await RawConnection.connect(m2.baseUrl);
      try {
        conn.write(
          Buffer.concat([
            rawRequest('GET', '/echo?n=1', { Host: '127.0.0.1' }),
            rawRequest('GET', '/big?mb=1', { Host: '127.0.0.1' }),
            rawRequest('GET', '/echo?n=3', { Host: '127.0.0.1' }),
          ]),
        );
        const first = await conn.readResponse();
        const second = await conn.readResponse();
        const third = await conn.readResponse();
        assert.match(JSON.parse(first.text).url, /n=1$/);
        assert.equal(second.body.length, MB);
        assert.match(JSON.parse(third.text).url, /n=3$/);
        assert.equal(conn.serverClosed, false);
      } finally {
        conn.destroy();
      }
    });

    test('HTTP/1.0 without keep-alive and Connection: close get the close after the response', async () => {
      const http10 = await closedAfterResponse(m2.baseUrl, rawRequest('GET', '/', { Host: '127.0.0.1' }, undefined, '1.0'));
      assert.equal(http10.response.text, 'Hello, world!');
      assert.equal(http10.closed, true);
      const close = await closedAfterResponse(
        m2.baseUrl,
        rawRequest('GET', '/', { Host: '127.0.0.1', Connection: 'close' }),
      );
      assert.equal(close.response.headers['connection'], 'close');
      assert.equal(close.closed, true);
      const keep = await closedAfterResponse(
        m2.baseUrl,
        rawRequest('GET', '/', { Host: '127.0.0.1', Connection: 'keep-alive' }, undefined, '1.0'),
      );
      assert.equal(keep.response.headers['connection'], 'keep-alive');
      assert.equal(keep.closed, false);
    });

    test('an app that throws, rejects or returns a non-Response gets a 500, and serving goes on', async () => {
      for (const target of ['/throw', '/reject', '/not-a-response']) {
        const res = await request(`${m2.baseUrl}${target}`);
        assert.equal(res.status, 500, target);
        assert.equal(res.text, 'Internal Server Error\n');
      }
      const ok = await request(`${m2.baseUrl}/`);
      assert.equal(ok.text, 'Hello, world!');
      await wsgid.waitForOutput(/boom \(sync\)/);
      await wsgid.waitForOutput(/boom \(async\)/);
      await wsgid.waitForOutput(/instead of a Response/);
    });

    test('malformed messages from the wire are logged and dropped; a good one after them is answered', async () => {
      const garbage = [
        Buffer.from('not a mongrel2 message'),
        Buffer.from('bad_sender 1 / 2:{},0:,'),
        Buffer.from('fake-1 12 / 999:{"METHOD":"GET"},0:,'),
        Buffer.from([0xff, 0x00, 0x20, 0x31, 0x20]),
      ];
      for (const frame of garbage) await fakeServer.push.send(frame);
      const headers = '{"PATH":"/","METHOD":"GET","VERSION":"HTTP/1.1","URI":"/","host":"fake"}';
      await fakeServer.push.send(Buffer.from(`fake-1 77 / ${Buffer.byteLength(headers)}:${headers},0:,`));
      const [reply] = await fakeServer.sub.receive();
      const text = reply!.toString('latin1');
      assert.match(text, /^fake-1 2:77, HTTP\/1\.1 200 OK\r\n/);
      assert.match(text, /Hello, world!$/);
      await wsgid.waitForOutput(/malformed message/);
      // mongrel2's clients are unaffected.
      assert.equal((await request(`${m2.baseUrl}/`)).text, 'Hello, world!');
    });
  });
}
