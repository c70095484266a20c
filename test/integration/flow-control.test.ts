/**
 * mongrel2 download credits (`download.flow_control=1`) through a real mongrel2: the worker never has
 * more unacknowledged bytes out than the credit allows (mongrel2 would drop the client), so a 200 MB
 * streamed response to a slow client arrives whole with bounded worker memory; the credit state
 * lives across keep-alive requests; credits messages are never taken for disconnects.
 * Without credits, --uncredited-limit cuts a response at its size.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from '../helpers/http.js';
import { dechunk, MB, OpenClient, pattern, patternHash, rssOf, run, type PushServer, usePushServer } from '../helpers/push.js';

for (const workers of [0, 1]) {
  describe(`download flow control (--workers=${workers})`, () => {
    let s!: PushServer;
    // The limit is for uncredited responses only: every response here is far larger and arrives whole.
    usePushServer({ workers, settings: { 'download.flow_control': 1 }, extra: ['--uncredited-limit=8M'] }, (server) => (s = server));

    test('200 MB streamed to a slow client (curl --limit-rate 40M) arrives whole (--uncredited-limit does not apply); worker RSS bounded', { timeout: 120_000 }, async () => {
      const { pid } = JSON.parse((await request(`${s.url}/rss`)).text) as { pid: number };
      const rssBefore = await rssOf(pid);
      let peak = rssBefore;
      const sampler = setInterval(() => {
        rssOf(pid).then((rss) => (peak = Math.max(peak, rss)), () => {});
      }, 100);
      const started = Date.now();
      let out;
      try {
        out = await run('sh', ['-c', `curl -sS --limit-rate 40M '${s.url}/stream?mb=200' | sha256sum`], 110_000);
      } finally {
        clearInterval(sampler);
      }
      const seconds = (Date.now() - started) / 1000;
      assert.equal(out.code, 0, out.stderr + s.diagnostics());
      assert.equal(out.stdout.split(' ')[0], patternHash(200 * MB), `body differs\n${s.diagnostics()}`);
      console.log(`# flow control, --workers=${workers}: 200 MB in ${seconds.toFixed(1)} s; worker RSS before ` +
        `${(rssBefore / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB`);
      assert.ok(peak - rssBefore < 100 * MB, `worker RSS grew by ${((peak - rssBefore) / MB).toFixed(1)} MB`);
    });

    test('a client that stops reading for 3 s, then reads: 50 MB whole (credits wait, nothing dropped)', { timeout: 60_000 }, async () => {
      const client = new OpenClient(s.m2.port, '/stream?mb=50', 'Connection: close\r\n');
      client.socket.pause();
      await new Promise((r) => setTimeout(r, 3000));
      client.socket.resume();
      assert.ok(await client.waitClosed(50_000), 'the response ends with a close');
      const raw = client.data;
      const headEnd = raw.indexOf('\r\n\r\n');
      const body = raw.subarray(headEnd + 4);
      // Chunked: take the chunk payloads out.
      const parts: Buffer[] = [];
      let at = 0;
      for (;;) {
        const lineEnd = body.indexOf('\r\n', at);
        const size = parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
        if (!(size > 0)) break;
        parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      const whole = Buffer.concat(parts);
      assert.equal(whole.length, 50 * MB);
      assert.equal(createHash('sha256').update(whole).digest('hex'), patternHash(50 * MB));
    });

    test('credit state lives across keep-alive requests: three 20 MB responses on one connection', { timeout: 60_000 }, async () => {
      const url = `${s.url}/stream?mb=20`;
      const out = await run('sh', ['-c', `curl -sS --limit-rate 30M '${url}' '${url}' '${url}' -w '%{num_connects}\\n' -o /dev/null -o /dev/null -o /dev/null`], 50_000);
      assert.equal(out.code, 0, out.stderr + s.diagnostics());
      assert.deepEqual(out.stdout.trim().split('\n'), ['1', '0', '0'], 'one connection, reused');
      const hashes = await run('sh', ['-c', `curl -sS '${url}' '${url}' | sha256sum`], 50_000);
      const twice = createHash('sha256');
      // Two concatenated bodies = the pattern twice.
      const block = Buffer.allocUnsafe(20 * MB);
      for (let i = 0; i < block.length; i++) block[i] = (i * 7 + 3) & 255;
      twice.update(block).update(block);
      assert.equal(hashes.stdout.split(' ')[0], twice.digest('hex'));
    });

    test('credits messages are not disconnects: an event stream with frequent events lives on', async () => {
      const client = new OpenClient(s.m2.port, `/events?id=fc-${workers}&every=5`);
      await client.waitFor(/data: tick 100\n/, 20_000);
      const rec = JSON.parse((await request(`${s.url}/record?id=fc-${workers}`)).text) as { aborted: boolean };
      assert.equal(rec.aborted, false);
      assert.equal(client.closed, false);
      client.destroy();
    });
  });
}

for (const workers of [0, 1]) {
  describe(`without download credits, --uncredited-limit=8M (--workers=${workers})`, () => {
    let s!: PushServer;
    usePushServer({ workers, extra: ['--uncredited-limit=8M'] }, (server) => (s = server));

    test('a 40 MB stream is cut after 8 MB: the client gets its first bytes exactly, then a close; the app is aborted; the log says why', { timeout: 60_000 }, async () => {
      const id = `cut-${workers}`;
      const client = new OpenClient(s.m2.port, `/stream?mb=40&id=${id}`);
      assert.ok(await client.waitClosed(50_000), 'the connection is closed');
      const raw = client.data;
      const headEnd = raw.indexOf('\r\n\r\n');
      assert.match(raw.subarray(0, headEnd).toString('latin1'), /^HTTP\/1\.1 200 OK\r\n[^]*transfer-encoding: chunked/i);
      const { payload, complete } = dechunk(raw.subarray(headEnd + 4));
      assert.equal(complete, false, 'no last chunk: the client can tell the response was cut');
      assert.ok(raw.length <= 8 * MB, `${raw.length} bytes sent, over the limit`);
      assert.ok(payload.length > 4 * MB, `only ${payload.length} bytes of body before the cut`);
      assert.ok(payload.equals(pattern(payload.length)), 'the bytes before the cut are the app\'s');
      await s.wsgid.waitForOutput(
        /WARN .*response cut after \d+ bytes: it would pass --uncredited-limit=8M without mongrel2's download credits; set download\.flow_control=1/,
      );
      const rec = await waitForRecord(s, id, (r) => r.aborted && r.cancelled);
      assert.equal(rec.reason, 'response cut at --uncredited-limit');
    });

    test('responses under the limit arrive whole, and the worker goes on serving', { timeout: 60_000 }, async () => {
      const out = await run('sh', ['-c', `curl -sS '${s.url}/stream?mb=7' | sha256sum`], 50_000);
      assert.equal(out.code, 0, out.stderr + s.diagnostics());
      assert.equal(out.stdout.split(' ')[0], patternHash(7 * MB));
      assert.equal((await request(`${s.url}/`)).text, 'ok');
    });
  });
}

interface StreamRecord {
  started: boolean;
  aborted: boolean;
  cancelled: boolean;
  reason: string;
}

async function waitForRecord(s: PushServer, id: string, done: (r: StreamRecord) => boolean): Promise<StreamRecord> {
  for (let tries = 0; ; tries++) {
    const rec = JSON.parse((await request(`${s.url}/record?id=${id}`)).text) as StreamRecord | null;
    if (rec !== null && done(rec)) return rec;
    if (tries > 400) throw new Error(`the app's record for ${id}: ${JSON.stringify(rec)}\n${s.diagnostics()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
