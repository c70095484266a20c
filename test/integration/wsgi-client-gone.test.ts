/**
 * A WSGI response with a Content-Length whose client disconnects midway. The bytes the
 * app writes after that go nowhere; when the app then returns normally, wsgid logs that the client
 * disconnected, not that the app sent less than its Content-Length (it did not).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import net from 'node:net';
import { rawRequest, request } from '../helpers/http.js';
import { REPO_ROOT, type WsgidProcess } from '../helpers/wsgid.js';
import { fixtureFolders, startPythonApp } from '../helpers/python-app.js';

const fixtures = fixtureFolders(path.join(REPO_ROOT, 'test', 'fixtures', 'wsgi'), 'wsgid-client-gone-');

describe('WSGI: the client leaves before the end of a Content-Length body', () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;
  before(async () => {
    m2 = await startMongrel2();
    wsgid = await startPythonApp(m2, fixtures.folder({ 'client_gone.py': 'client_gone.py' }).dir, ['--wsgi-app=client_gone:application']);
  });
  after(async () => {
    await wsgid?.stop();
    await m2?.stop();
  });

  test('logged as a client disconnect, not as an app that sent less than its Content-Length', async () => {
    // The first half reached the client; then it leaves.
    const conn = net.connect(m2.port, '127.0.0.1');
    conn.write(rawRequest('GET', '/gone'));
    await new Promise<void>((resolve, reject) => {
      let got = '';
      conn.on('data', (data: Buffer) => {
        got += data.toString('latin1');
        if (got.includes('x'.repeat(1000))) resolve();
      });
      conn.on('error', reject);
    });
    conn.destroy();
    await wsgid.waitForOutput(/client disconnected before the end of the response/, 30_000);
    // The next request is served, and nothing blamed the app for the response cut short.
    assert.equal((await request(`${m2.baseUrl}/`)).text, 'ok');
    assert.doesNotMatch(wsgid.output(), /sent less than its Content-Length/);
  });
});
