/**
 * WebSockets end to end: a real mongrel2, the real `wsgid` CLI under the master with two workers,
 * and the `ws` package as the client. Three apps (test/fixtures/websocket/):
 * - fetch-app.mjs: a fetch handler using `context.upgradeWebSocket()`;
 * - node-server.mjs: an http.Server with ws's `new WebSocketServer({ server })`;
 * - node-noserver.mjs: ws in `noServer` mode driven by the server's 'upgrade' event.
 * Each one: plain HTTP still works, text and binary echo, 100 KB messages, ping → pong, the client's
 * close handshake (the client gets its close code back), a server-initiated close, and several
 * concurrent connections whose frames all reach the worker holding them (both workers used).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT, WSGID_CLI, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { within as waitWithin, WsClient } from '../helpers/ws-client.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'websocket');
const skip = existsSync(WSGID_CLI) ? false : 'wsgid CLI not built';
const STEP_MS = 10_000;

interface Served {
  m2: Mongrel2Handle;
  wsgid: WsgidProcess;
  dir: string;
  wsUrl: string;
  diagnostics(): string;
  stop(): Promise<void>;
}

async function serve(fixture: string, workers: number): Promise<Served> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-websocket-'));
  await mkdir(path.join(dir, 'app'), { recursive: true });
  await copyFile(path.join(FIXTURES, fixture), path.join(dir, 'app', 'app.mjs'));
  await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'app', 'node_modules'), 'dir');
  const m2 = await startMongrel2();
  try {
    const wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--wsgi-app=app.mjs', `--workers=${workers}`]), {
      cwd: dir,
      readyUrl: `${m2.baseUrl}/`,
    });
    // The probe is answered by the first worker ready; tests that need every worker wait for all.
    await wsgid.waitForOutput(/all workers ready/, 60_000);
    return {
      m2,
      wsgid,
      dir,
      wsUrl: `ws://127.0.0.1:${m2.port}/ws`,
      diagnostics: () => `--- wsgid output\n${wsgid.output()}\n--- mongrel2 log\n${m2.log()}`,
      async stop() {
        await wsgid.stop();
        await m2.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await m2.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The suite's client: each wait bounded by STEP_MS. */
class Client extends WsClient {
  constructor(url: string, protocols?: string[]) {
    super(url, protocols, STEP_MS);
  }
}

const within = <T>(promise: Promise<T>, what: string): Promise<T> => waitWithin(promise, what, STEP_MS);

function bytes(length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + 5) & 255;
  return out;
}

const APPS = [
  { name: 'fetch app with context.upgradeWebSocket()', fixture: 'fetch-app.mjs' },
  { name: 'Node http.Server with ws WebSocketServer({ server })', fixture: 'node-server.mjs' },
  { name: "Node listener with ws noServer + 'upgrade'", fixture: 'node-noserver.mjs' },
];

for (const app of APPS) {
  describe(`WebSockets: ${app.name}, --workers=2`, { skip }, () => {
    let s: Served;
    before(async () => {
      s = await serve(app.fixture, 2);
    });
    after(async () => {
      await s?.stop();
    });

    const check = async (what: () => Promise<void>): Promise<void> => {
      try {
        await what();
      } catch (error) {
        (error as Error).message += `\n${s.diagnostics()}`;
        throw error;
      }
    };

    test('a plain HTTP request on the same app still works', () =>
      check(async () => {
        const res = await request(`${s.m2.baseUrl}/`);
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), 'plain http GET');
      }));

    test('text and binary echo', () =>
      check(async () => {
        const c = new Client(s.wsUrl);
        await c.opened;
        const hello = JSON.parse(await c.text()) as { hello: number };
        assert.equal(typeof hello.hello, 'number');
        assert.equal(await c.roundTrip('hello, wsgid'), 'hello, wsgid');
        assert.equal(await c.roundTrip('ünïcødé ✓'), 'ünïcødé ✓');
        const binary = bytes(256);
        c.ws.send(binary);
        const back = await c.next();
        assert.equal(back.isBinary, true);
        assert.deepEqual(back.data, binary);
        c.ws.close(1000);
        await within(c.closed, 'close');
      }));

    test('a 100 KB message each way, text and binary', () =>
      check(async () => {
        const c = new Client(s.wsUrl);
        await c.opened;
        await c.text(); // hello
        const text = 'x'.repeat(50 * 1024) + 'y'.repeat(50 * 1024);
        assert.equal(await c.roundTrip(text), text);
        const binary = bytes(100 * 1024);
        c.ws.send(binary);
        const back = await c.next();
        assert.equal(back.isBinary, true);
        assert.equal(back.data.length, binary.length);
        assert.ok(back.data.equals(binary), '100 KB binary echo differs');
        c.ws.close(1000);
        await within(c.closed, 'close');
      }));

    test('a ping is answered with a pong carrying the same data', () =>
      check(async () => {
        const c = new Client(s.wsUrl);
        await c.opened;
        await c.text();
        const pong = within(new Promise<Buffer>((resolve) => c.ws.once('pong', resolve)), 'pong');
        c.ws.ping(Buffer.from('are you there'));
        assert.equal((await pong).toString(), 'are you there');
        // Still usable afterwards.
        assert.equal(await c.roundTrip('after ping'), 'after ping');
        c.ws.close(1000);
        await within(c.closed, 'close');
      }));

    test("the client's close handshake: the client gets its close code back", () =>
      check(async () => {
        const c = new Client(s.wsUrl);
        await c.opened;
        await c.text();
        c.ws.close(4001, 'client done');
        const closed = await within(c.closed, 'close');
        assert.equal(closed.code, 4001);
      }));

    test('a server-initiated close reaches the client with its code and reason', () =>
      check(async () => {
        const c = new Client(s.wsUrl);
        await c.opened;
        await c.text();
        c.ws.send('close-me');
        const closed = await within(c.closed, 'close');
        assert.deepEqual(closed, { code: 4000, reason: 'bye' });
      }));

    test('concurrent connections: every frame reaches the worker holding the connection; both workers serve', () =>
      check(async () => {
        // The master gives a new connection to the worker with the most credit, on a tie to the one
        // sent the fewest messages: open connections (with some traffic each) until both served one.
        const clients: Client[] = [];
        const seen = new Set<string>();
        while (clients.length < 8 || (seen.size < 2 && clients.length < 24)) {
          const c = new Client(s.wsUrl);
          clients.push(c);
          await c.opened;
          await c.text();
          seen.add(await c.roundTrip('pid'));
          for (let n = 0; n < 5; n++) await c.roundTrip(`warm-up ${n}`);
        }
        const pids = new Set<string>();
        await Promise.all(
          clients.map(async (c, i) => {
            const first = await c.roundTrip('pid');
            for (let n = 0; n < 25; n++) {
              assert.equal(await c.roundTrip(`client ${i} message ${n}`), `client ${i} message ${n}`);
              if (n % 5 === 0) assert.equal(await c.roundTrip('pid'), first, 'a frame went to another worker');
            }
            pids.add(first);
          }),
        );
        assert.equal(pids.size, 2, `connections were served by ${[...pids].join(', ')}`);
        for (const c of clients) c.ws.close(1000);
        await Promise.all(clients.map((c) => within(c.closed, 'close')));
        // HTTP keeps working next to open and closed websockets.
        const res = await request(`${s.m2.baseUrl}/`);
        assert.equal(res.status, 200);
      }));
  });
}

describe('WebSockets: fetch app details', { skip }, () => {
  let s: Served;
  before(async () => {
    s = await serve('fetch-app.mjs', 2);
  });
  after(async () => {
    await s?.stop();
  });

  test('a subprotocol chosen with upgradeWebSocket({ protocol })', async () => {
    const c = new Client(s.wsUrl, ['chat', 'other']);
    await c.opened;
    assert.equal(c.ws.protocol, 'chat');
    const hello = JSON.parse(await c.text()) as { protocol: string };
    assert.equal(hello.protocol, 'chat');
    c.ws.close(1000);
    await within(c.closed, 'close');
  });

  test('a handshake the app answers with an ordinary response: the client gets it', async () => {
    const c = new Client(`ws://127.0.0.1:${s.m2.port}/refuse`);
    await assert.rejects(c.opened, /unexpected response 403/);
  });

  test('a failing message listener is logged; the connection and the worker live on', async () => {
    const c = new Client(s.wsUrl);
    await c.opened;
    const hello = JSON.parse(await c.text()) as { hello: number };
    c.ws.send('throw');
    assert.equal(await c.roundTrip('still here'), 'still here');
    assert.equal(await c.roundTrip('pid'), `pid ${hello.hello}`);
    c.ws.close(1000);
    await within(c.closed, 'close');
  });

  test('a client that vanishes without a close frame: the app sees close 1006', async () => {
    const c = new Client(s.wsUrl);
    await c.opened;
    await c.text();
    c.ws.terminate();
    await s.wsgid.waitForOutput('fetch websocket closed code=1006 clean=false', STEP_MS);
  });

  test('stopping wsgid closes open websockets with 1001 (going away)', async () => {
    const c = new Client(s.wsUrl);
    await c.opened;
    await c.text();
    const stopped = s.wsgid.stop();
    const closed = await within(c.closed, 'close on stop');
    assert.equal(closed.code, 1001);
    assert.equal(await stopped, 0, s.wsgid.output().slice(-3000));
  });
});
