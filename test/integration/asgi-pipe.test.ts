/**
 * An ASGI app that closes fd 3, the bridge's request pipe: the bridge must not
 * stay alive but deaf (every later request hanging, forever with --timeout=0). It exits, the
 * request still in flight is answered 502, and a new Python process serves what comes next.
 * A FastAPI app (Debian's python3-fastapi) through a real mongrel2 and the wsgid CLI.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { waitFor } from '../helpers/processes.js';
import { REPO_ROOT, type WsgidProcess } from '../helpers/wsgid.js';
import { fixtureFolders, startPythonApp } from '../helpers/python-app.js';

const fixtures = fixtureFolders(path.join(REPO_ROOT, 'test', 'fixtures', 'asgi'), 'wsgid-asgi-pipe-');

describe('ASGI: an app that closes the bridge pipe (fd 3)', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;

  before(async () => {
    m2 = await startMongrel2();
    // --timeout=0: nothing but the bridge itself can end a request that hangs.
    wsgid = await startPythonApp(m2, fixtures.folder({ 'main.py': 'pipe_closer.py' }).dir, ['--timeout=0']);
  });
  after(async () => {
    await wsgid?.stop();
    await m2?.stop();
  });

  test('the bridge exits, the request in flight gets a 502, later requests are served by a new process', async () => {
    const first = JSON.parse((await request(`${m2.baseUrl}/`)).text) as { pid: number };
    const held = request(`${m2.baseUrl}/hold`, { timeoutMs: 60_000 });
    await waitFor('/hold to be running', async () => (JSON.parse((await request(`${m2.baseUrl}/held`)).text) as { held: boolean }).held);

    const closing = await request(`${m2.baseUrl}/close-pipe`, { timeoutMs: 30_000 });
    assert.equal(closing.status, 200, 'the request that closed the pipe still completes');

    const cut = await held;
    assert.equal(cut.status, 502, 'the request in flight when the bridge left');
    // Each later request is answered (none hangs): by a new Python process.
    for (let i = 0; i < 3; i++) {
      const later = await request(`${m2.baseUrl}/`, { timeoutMs: 30_000 });
      assert.equal(later.status, 200, later.text);
      assert.notEqual((JSON.parse(later.text) as { pid: number }).pid, first.pid);
    }
    await wsgid.waitForOutput(/closed the bridge's request pipe \(fd 3\)/);
    assert.ok(!wsgid.hasExited, 'wsgid keeps serving');
  });
});
