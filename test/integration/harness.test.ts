/**
 * Proves the integration harness: a real mongrel2 (test/helpers/mongrel2.ts), the HTTP client
 * (test/helpers/http.ts) and a raw zeromq handler written inline here.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { Pull, Publisher } from 'zeromq';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request, RawConnection, rawRequest, closedAfterResponse, sendRaw } from '../helpers/http.js';
import { startWsgid, wsgidArgs, WSGID_CLI } from '../helpers/wsgid.js';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Minimal raw handler: enough parsing for these tests, nothing more. */
class RawHandler {
  readonly pull = new Pull();
  readonly pub = new Publisher();
  private pubQueue: Promise<unknown> = Promise.resolve();

  constructor(readonly ep: { recv: string; send: string; sendIdent: string }) {}

  async connect(): Promise<void> {
    this.pub.sendHighWaterMark = 0;
    this.pub.connect(this.ep.send);
    this.pull.connect(this.ep.recv);
    await sleep(150); // let mongrel2's SUB see our PUB (PUB/SUB slow joiner)
  }

  async receive(timeoutMs = 5000): Promise<Buffer> {
    let t: NodeJS.Timeout | undefined;
    try {
      const [msg] = await Promise.race([
        this.pull.receive(),
        new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error('no message from mongrel2')), timeoutMs))),
      ]);
      return msg!;
    } finally {
      clearTimeout(t);
    }
  }

  /** One send() in progress per socket at a time: chain them. */
  reply(sender: string, connId: number, payload: string | Buffer): Promise<void> {
    const ids = String(connId);
    const frame = Buffer.concat([Buffer.from(`${sender} ${ids.length}:${ids}, `), Buffer.from(payload)]);
    const p = this.pubQueue.then(() => this.pub.send(frame));
    this.pubQueue = p.catch(() => {});
    return p;
  }

  close(): void {
    this.pull.close();
    this.pub.close();
  }
}

interface Parsed {
  sender: string;
  connId: number;
  path: string;
  headerBytes: Buffer;
  body: Buffer;
}

function netstring(buf: Buffer, at: number): { value: Buffer; end: number; tag: string } {
  const colon = buf.indexOf(0x3a, at);
  const len = Number(buf.subarray(at, colon).toString('latin1'));
  const value = buf.subarray(colon + 1, colon + 1 + len);
  return { value, end: colon + 2 + len, tag: String.fromCharCode(buf[colon + 1 + len]!) };
}

function parse(msg: Buffer): Parsed {
  const s1 = msg.indexOf(0x20);
  const s2 = msg.indexOf(0x20, s1 + 1);
  const s3 = msg.indexOf(0x20, s2 + 1);
  const headers = netstring(msg, s3 + 1);
  const body = netstring(msg, headers.end);
  return {
    sender: msg.subarray(0, s1).toString('latin1'),
    connId: Number(msg.subarray(s1 + 1, s2).toString('latin1')),
    path: msg.subarray(s2 + 1, s3).toString('latin1'),
    headerBytes: headers.value,
    body: body.value,
  };
}

const HI = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi';

describe('harness: real mongrel2 + raw zeromq handler', () => {
  let m2: Mongrel2Handle;
  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    await m2?.stop();
  });

  for (const [name, reqPath] of [
    ['app', '/hello/world?x=1'],
    ['json', '/json/some/path?y=2'],
  ] as const) {
    test(`${name} handler: request in, raw reply out`, async () => {
      const ep = m2.handler(name);
      const h = new RawHandler(ep);
      await h.connect();
      try {
        const resP = request(`${m2.baseUrl}${reqPath}`, { headers: { 'X-Test': 'yes' } });
        const msg = await h.receive();
        const text = msg.toString('latin1');
        assert.ok(text.startsWith(`${ep.sendIdent} `), `message starts with sender: ${text}`);
        const p = parse(msg);
        assert.equal(p.sender, ep.sendIdent);
        assert.equal(p.path, reqPath.split('?')[0]);
        assert.ok(p.connId >= 1);
        if (name === 'json') {
          const headers = JSON.parse(p.headerBytes.toString('utf8')) as Record<string, string>;
          assert.equal(headers.METHOD, 'GET');
          assert.equal(headers['x-test'], 'yes');
          assert.equal(headers.PATTERN, '/json/');
        } else {
          assert.ok(p.headerBytes.includes('6:METHOD,3:GET,'), p.headerBytes.toString('latin1'));
        }
        await h.reply(p.sender, p.connId, HI);
        const res = await resP;
        assert.equal(res.status, 200, m2.log());
        assert.equal(res.text, 'hi');
      } finally {
        h.close();
      }
    });
  }

  // wsgid's reply socket relies on this (src/transport/reply-socket.ts): replies queued while a
  // send is in progress leave as one multipart message, and mongrel2 handles each part alone.
  test('a multipart message carries one reply per part, to different connections', async () => {
    const ep = m2.handler('app');
    const h = new RawHandler(ep);
    await h.connect();
    try {
      const responses = ['/one', '/two', '/three'].map((target) => request(`${m2.baseUrl}${target}`));
      const messages: Parsed[] = [];
      while (messages.length < 3) {
        const message = parse(await h.receive());
        // Earlier tests' connections closing send disconnect notices (@*): not requests.
        if (message.path !== '@*') messages.push(message);
      }
      const parts = messages.map((p) => {
        const ids = String(p.connId);
        const body = p.path.slice(1);
        return Buffer.from(`${p.sender} ${ids.length}:${ids}, HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      });
      await h.pub.send(parts);
      const texts = (await Promise.all(responses)).map((res) => res.text);
      assert.deepEqual(texts, ['one', 'two', 'three'], m2.log());
    } finally {
      h.close();
    }
  });

  test('raw socket helpers: pipelining, close after response, HTTP/1.0', async () => {
    const ep = m2.handler('app');
    const h = new RawHandler(ep);
    await h.connect();
    // Serve everything: answer "hi", then close when the request asks for it.
    let running = true;
    const loop = (async () => {
      while (running) {
        let msg: Buffer;
        try {
          msg = await h.receive(60_000);
        } catch {
          return;
        }
        const p = parse(msg);
        if (p.path === '@*') continue; // disconnect notice
        const head = p.headerBytes.toString('latin1');
        await h.reply(p.sender, p.connId, HI);
        if (head.includes('5:close,') || head.includes('8:HTTP/1.0,')) await h.reply(p.sender, p.connId, '');
      }
    })();
    try {
      // Pipelining: two requests in one write, two responses back in order.
      const conn = await RawConnection.connect(m2.baseUrl);
      conn.write(Buffer.concat([rawRequest('GET', '/a'), rawRequest('GET', '/b')]));
      const r1 = await conn.readResponse();
      const r2 = await conn.readResponse();
      assert.equal(r1.text, 'hi');
      assert.equal(r2.text, 'hi');
      assert.equal(await conn.waitClosed(200), false, 'keep-alive connection stays open');
      conn.destroy();

      const c = await closedAfterResponse(m2.baseUrl, rawRequest('GET', '/c', { Connection: 'close' }));
      assert.equal(c.response.status, 200);
      assert.equal(c.closed, true);

      const k = await closedAfterResponse(m2.baseUrl, rawRequest('GET', '/k'), { graceMs: 200 });
      assert.equal(k.closed, false);

      const r10 = await request(`${m2.baseUrl}/old`, { httpVersion: '1.0' });
      assert.equal(r10.status, 200);
      assert.equal(r10.text, 'hi');

      const all = await sendRaw(m2.baseUrl, rawRequest('GET', '/z', { Connection: 'close' }));
      assert.match(all.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);

      // A server that never answers fails the read with a timeout instead of hanging.
      const silent = await RawConnection.connect(m2.baseUrl, { timeoutMs: 300 });
      silent.write('GET /a HTTP/1.1\r\nHost: x\r\n'); // incomplete head: mongrel2 waits, we time out
      await assert.rejects(silent.readResponse(), /timed out/);
      silent.destroy();
    } finally {
      running = false;
      h.close();
      await loop;
    }
  });
});

/**
 * mongrel2 1.12.2 bug found here: when limits.content_length < limits.buffer_size (4096), the upload
 * file has ~40 bytes of garbage just before offset content_length (e.g. bytes 968..1007 with 1024).
 * Size and existence are still right. So the 1024 case checks the messages and the file only, and
 * the content is checked with content_length = 4096, where the file is exact.
 */
async function uploadRoundTrip(m2: Mongrel2Handle, size: number, checkContent: boolean): Promise<void> {
  const ep = m2.handler('json');
  const h = new RawHandler(ep);
  await h.connect();
  try {
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = 97 + (i % 26);
    const resP = request(`${m2.baseUrl}/json/upload`, { method: 'POST', body });
    resP.catch(() => {}); // awaited below; don't let an early assertion failure leave it unhandled
    const start = parse(await h.receive());
    const startHeaders = JSON.parse(start.headerBytes.toString('utf8')) as Record<string, string>;
    const startPath = startHeaders['x-mongrel2-upload-start'];
    assert.ok(startPath, `upload-start header in ${JSON.stringify(startHeaders)}`);
    assert.equal(start.body.length, 0);
    const done = parse(await h.receive());
    const doneHeaders = JSON.parse(done.headerBytes.toString('utf8')) as Record<string, string>;
    assert.equal(doneHeaders['x-mongrel2-upload-done'], startPath);
    assert.equal(done.connId, start.connId);

    const real = m2.resolvePath(startPath);
    assert.ok(real.startsWith(m2.dir + path.sep), `${real} is under ${m2.dir}`);
    assert.ok(existsSync(real), `${real} exists`);
    assert.equal(statSync(real).size, size);
    if (checkContent) {
      const got = readFileSync(real);
      const at = got.findIndex((b, i) => b !== body[i]);
      assert.ok(got.equals(body), `upload file differs from the body at offset ${at}`);
    }
    unlinkSync(real); // mongrel2 never deletes it

    await h.reply(done.sender, done.connId, HI);
    const res = await resP;
    assert.equal(res.text, 'hi');
  } finally {
    h.close();
  }
}

describe('harness: async upload', () => {
  test('a 2 KB body with content_length 1024 produces upload-start/done with a file under dir', async () => {
    const m2 = await startMongrel2({
      settings: { 'limits.content_length': 1024, 'upload.temp_store': '/tmp/upload.XXXXXX' },
    });
    try {
      await uploadRoundTrip(m2, 2048, false);
    } finally {
      await m2.stop();
    }
  });

  test('with content_length >= buffer_size (4096) the upload file holds the exact body', async () => {
    const m2 = await startMongrel2({
      settings: { 'limits.content_length': 4096, 'upload.temp_store': '/tmp/upload.XXXXXX' },
    });
    try {
      await uploadRoundTrip(m2, 10_000, true);
    } finally {
      await m2.stop();
    }
  });
});

describe('harness: wsgid launcher', () => {
  test('startWsgid serves a fetch app through mongrel2 and stops on SIGTERM', { skip: existsSync(WSGID_CLI) ? false : 'wsgid CLI not built' }, async () => {
    const m2 = await startMongrel2();
    const appDir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-app-'));
    try {
      await mkdir(path.join(appDir, 'app'));
      await writeFile(path.join(appDir, 'app', 'hello.mjs'), "export default { fetch: () => new Response('hi from wsgid') };\n");
      const w = await startWsgid(wsgidArgs(m2.handler('app'), appDir, ['--wsgi-app=hello.mjs', '--workers=0']), {
        cwd: appDir,
        readyUrl: `${m2.baseUrl}/`,
      });
      try {
        assert.equal(w.readyResponse?.status, 200, w.output());
        const res = await request(`${m2.baseUrl}/again`);
        assert.equal(res.text, 'hi from wsgid', `${w.output()}\n${m2.log()}`);
      } finally {
        const code = await w.stop();
        assert.equal(code, 0, w.output());
      }
    } finally {
      await m2.stop();
      await rm(appDir, { recursive: true, force: true });
    }
  });
});
