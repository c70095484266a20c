/**
 * The master's timeouts and mongrel2's control messages, through a real mongrel2 and the real wsgid CLI:
 * - download credits (`download.flow_control=1`) are not requests: no 504 for them, no 502 inside a
 *   streamed body when its worker dies, no access-log line; a draining worker still gets them;
 * - `--timeout` bounds a request that has not started its response: the request gets its 504 and
 *   is cancelled, and the other streams and WebSockets of its worker live on (ASGI: the task is
 *   cancelled, the worker kept; WSGI --threads: the thread cannot be stopped, its worker is replaced
 *   gracefully, no SIGKILL);
 * - while no worker can serve (crash loop backoff), a request gets a 503 within a few seconds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { request } from '../helpers/http.js';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { dechunk, eventually, MB, OpenClient, pattern, patternHash, run, type PushServer, usePushServer } from '../helpers/push.js';
import { fixtureFolders, startPythonApp } from '../helpers/python-app.js';
import { WsClient } from '../helpers/ws-client.js';
import { REPO_ROOT, type WsgidProcess } from '../helpers/wsgid.js';

const fixtures = fixtureFolders(path.join(REPO_ROOT, 'test', 'fixtures', 'timeouts'), 'wsgid-timeouts-it-');

/** The body of a raw response so far (after its head), and its head. */
function split(raw: Buffer): { head: string; body: Buffer } {
  const end = raw.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no response head in ${raw.subarray(0, 200).toString('latin1')}`);
  return { head: raw.subarray(0, end).toString('latin1'), body: raw.subarray(end + 4) };
}

/** A client holding a /stream response it has started to receive and then stops reading. */
async function stalledStream(s: PushServer, mb: number): Promise<OpenClient> {
  const client = new OpenClient(s.m2.port, `/stream?mb=${mb}`, 'Connection: close\r\n');
  await client.waitFor(/^HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n/, 20_000);
  client.socket.pause();
  return client;
}

/** Resume a stalled client and wait for the server's close. */
async function finish(client: OpenClient, timeoutMs = 60_000): Promise<void> {
  client.socket.resume();
  assert.ok(await client.waitClosed(timeoutMs), 'the connection is closed at the end');
}

const workerPid = async (s: PushServer): Promise<number> => (JSON.parse((await request(`${s.url}/rss`, { timeoutMs: 20_000 })).text) as { pid: number }).pid;

describe('download credits are not requests (download.flow_control=1, --timeout=2, one worker)', () => {
  let s!: PushServer;
  usePushServer(
    { workers: 1, settings: { 'download.flow_control': 1 }, extra: ['--timeout=2', '--graceful-timeout=30'] },
    (server) => (s = server),
  );

  test('clients that stop reading and a download slower than --timeout on the same worker: no 504, no worker replaced, every body whole', { timeout: 120_000 }, async () => {
    const pid = await workerPid(s);
    const stalled = await Promise.all([0, 1, 2].map(() => stalledStream(s, 30)));
    // At most 6 MB/s: 30 MB take at least 5 s, more than twice --timeout.
    const out = await run('sh', ['-c', `curl -sS --limit-rate 6M '${s.url}/stream?mb=30' | sha256sum`], 100_000);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.split(' ')[0], patternHash(30 * MB), `the download was cut\n${s.diagnostics()}`);
    for (const client of stalled) {
      await finish(client);
      const { head, body } = split(client.data);
      assert.match(head, /^HTTP\/1\.1 200 OK/);
      const { payload, complete } = dechunk(body);
      assert.ok(complete, `a stalled stream was cut after ${payload.length} bytes\n${client.text.slice(-300)}`);
      assert.ok(payload.equals(pattern(30 * MB)));
    }
    assert.equal(await workerPid(s), pid, 'the worker was not replaced');
    const output = s.wsgid.output();
    assert.doesNotMatch(output, /answered 50\d|timed out|"JSON @\*/, 'no answer of the master, no access-log line for a credits message');
  });

  test('wsgid restart (HUP) during a stalled stream: the old worker still gets its credits, the stream ends whole', { timeout: 120_000 }, async () => {
    const client = await stalledStream(s, 20);
    const before = s.wsgid.output().length;
    process.kill(s.wsgid.pid, 'SIGHUP');
    await eventually('the reload to complete', () => /reload complete/.test(s.wsgid.output().slice(before)), 30_000);
    await finish(client).catch((error: unknown) => assert.fail(`${String(error)} after ${client.data.length} bytes\n${s.diagnostics()}`));
    const { payload, complete } = dechunk(split(client.data).body);
    assert.ok(complete, `cut after ${payload.length} bytes\n${s.diagnostics()}`);
    assert.ok(payload.equals(pattern(20 * MB)));
    assert.equal(split(client.data).body.indexOf('X-Wsgid'), -1, 'no answer of the master inside the body');
  });

  test('the worker is killed (kill -9) under a started, credited stream: the client gets a close, never a 502 inside the body', { timeout: 120_000 }, async () => {
    const client = await stalledStream(s, 200);
    const pid = await workerPid(s);
    const before = s.wsgid.output().length;
    process.kill(pid, 'SIGKILL');
    await eventually('the master to bury the worker', () => /worker died unexpectedly/.test(s.wsgid.output().slice(before)), 20_000);
    await finish(client);
    const { body } = split(client.data);
    assert.equal(dechunk(body).complete, false, 'the response is cut (no last chunk)');
    assert.equal(body.indexOf('HTTP/1.1 502'), -1, `a 502 inside the body:\n${client.text.slice(-400)}`);
    assert.equal(body.indexOf('X-Wsgid'), -1, 'no answer of the master inside the body');
  });
});

describe('no worker can serve (crash loop backoff)', () => {
  let s!: PushServer;
  usePushServer({ workers: 1 }, (server) => (s = server));

  test('a request waiting through the backoff gets a 503 after a few seconds, not the backoff', { timeout: 120_000 }, async () => {
    // Three quick deaths: the next spawn waits 4 s (1, 2, 4 s).
    let pid = await workerPid(s);
    for (let death = 1; death <= 3; death++) {
      const before = s.wsgid.output().length;
      process.kill(pid, 'SIGKILL');
      // Buried (else the next request could still be routed to the dead worker: a 502).
      await eventually('the master to bury the worker', () => /worker died unexpectedly/.test(s.wsgid.output().slice(before)), 20_000);
      if (death === 3) break;
      const old = pid;
      pid = await eventually('a new worker', async () => {
        const res = await request(`${s.url}/rss`, { timeoutMs: 20_000 });
        const next = res.status === 200 ? (JSON.parse(res.text) as { pid: number }).pid : 0;
        return next !== old && next !== 0 ? next : 0;
      }, 30_000);
    }
    assert.match(s.wsgid.output(), /next worker spawn delayed ms=4000/);
    const res = await request(`${s.url}/`, { timeoutMs: 30_000 });
    assert.equal(res.status, 503, `${res.status} ${res.text}\n${s.wsgid.output()}`);
    assert.match(String(res.headers['x-wsgid'] ?? ''), /\d/, "the master's answer");
    // And once a worker is back, requests are served again.
    await eventually('served again', async () => (await request(`${s.url}/`, { timeoutMs: 20_000 })).status === 200, 30_000);
  });
});

/** Wait until `client` has received `n` more ticks than it had (an event stream alive and moving). */
async function moreTicks(client: OpenClient, n: number, timeoutMs = 60_000): Promise<void> {
  const count = (): number => (client.text.match(/data: tick \d+/g) ?? []).length;
  const target = count() + n;
  await eventually(`${n} more ticks`, () => {
    assert.equal(client.closed, false, `the event stream was closed\n${client.text.slice(-200)}`);
    return count() >= target;
  }, timeoutMs);
}

describe('--timeout=2 and a hung request (ASGI, one worker): the task is cancelled, the worker serves on', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;
  before(async () => {
    m2 = await startMongrel2();
    const { dir } = fixtures.folder({ 'asgi.py': 'asgi_app.py' });
    wsgid = await startPythonApp(m2, dir, ['--timeout=2', '--graceful-timeout=30']);
  });
  after(async () => {
    const code = await wsgid?.stop();
    await m2?.stop();
    assert.equal(code, 0, wsgid?.output());
  });

  test('an event stream and a WebSocket on its worker survive the 504; the hung task gets CancelledError', { timeout: 120_000 }, async () => {
    const state = async (): Promise<{ cancelled: number; hung: number; pid: number }> => JSON.parse((await request(`${m2.baseUrl}/state`)).text);
    const before = await state();
    const events = new OpenClient(m2.port, '/events');
    await events.waitFor(/data: tick 1\n/, 20_000);
    const ws = new WsClient(`ws://127.0.0.1:${m2.port}/ws`);
    await ws.opened;
    assert.equal(await ws.roundTrip('one'), 'echo one');
    const hung = await request(`${m2.baseUrl}/hang`, { timeoutMs: 30_000 });
    assert.equal(hung.status, 504);
    // The old master SIGKILLed the worker within 5 s of the 504: 40 ticks take at least 8 s.
    await moreTicks(events, 40);
    assert.equal(await ws.roundTrip('two'), 'echo two');
    await eventually('the hung task to be cancelled', async () => (await state()).cancelled === before.cancelled + 1, 20_000);
    assert.equal((await state()).pid, before.pid, 'the same Python process (worker kept)');
    assert.doesNotMatch(wsgid.output(), /replacing|SIGKILL/);
    events.destroy();
    ws.ws.close();
    await ws.closed;
  });
});

describe('--timeout=2 and a hung request (WSGI --threads=4, one worker): replaced gracefully, its event stream lives on', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;
  before(async () => {
    m2 = await startMongrel2();
    const { dir } = fixtures.folder({ 'wsgi.py': 'wsgi_app.py' });
    wsgid = await startPythonApp(m2, dir, ['--threads=4', '--timeout=2', '--graceful-timeout=30']);
  });
  after(async () => {
    const code = await wsgid?.stop('SIGTERM', 40_000);
    await m2?.stop();
    assert.equal(code, 0, wsgid?.output());
  });

  test('an event stream on the worker of a hung thread is not cut: no SIGKILL, a replacement serves new requests', { timeout: 120_000 }, async () => {
    const oldPid = Number((await request(`${m2.baseUrl}/pid`)).text);
    const events = new OpenClient(m2.port, '/events');
    await events.waitFor(/data: tick 1\n/, 20_000);
    const hung = await request(`${m2.baseUrl}/hang`, { timeoutMs: 30_000 });
    assert.equal(hung.status, 504);
    // The old master SIGKILLed the worker within 5 s of the 504: 40 ticks take at least 8 s.
    await moreTicks(events, 40);
    await wsgid.waitForOutput(/still running after it was cancelled .*replacing its worker gracefully/, 20_000);
    const next = await eventually('a request served by the replacement', async () => {
      const pid = Number((await request(`${m2.baseUrl}/pid`, { timeoutMs: 20_000 })).text);
      return pid !== oldPid && pid > 0 ? pid : 0;
    }, 30_000);
    assert.ok(next > 0);
    await moreTicks(events, 5);
    assert.doesNotMatch(wsgid.output(), /SIGKILL/);
    events.destroy();
  });
});
