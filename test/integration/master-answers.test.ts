/**
 * The answers the master writes itself (504 for a request not answered within --timeout, 502 for
 * one whose worker died) are complete responses from the one builder (Date, X-Wsgid, a correct
 * Content-Length) and are in the access log with the request they answered.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';

describe("the master's own answers", () => {
  let m2: Mongrel2Handle;
  let wsgid: WsgidProcess;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-master-answers-'));
    await mkdir(path.join(dir, 'app'));
    await copyFile(path.join(REPO_ROOT, 'test', 'fixtures', 'master-answers', 'server.mjs'), path.join(dir, 'app', 'server.mjs'));
    m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
    // /hang ignores its cancel: its worker is replaced gracefully, and drained within 3 s.
    wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1', '--timeout=2', '--graceful-timeout=3']), {
      cwd: dir,
      readyUrl: `${m2.baseUrl}/`,
    });
  });
  after(async () => {
    const code = await wsgid.stop();
    await m2.stop();
    await rm(dir, { recursive: true, force: true });
    assert.equal(code, 0, wsgid.output());
  });

  for (const [status, target] of [
    [504, '/hang?q=1'],
    [502, '/crash?q=2'],
  ] as const) {
    test(`${status}: a whole response, and an access-log line for ${target}`, async () => {
      const res = await request(`${m2.baseUrl}${target}`, { headers: { 'User-Agent': 'answers-test' }, timeoutMs: 60_000 });
      assert.equal(res.status, status, wsgid.output());
      assert.ok(!Number.isNaN(Date.parse(String(res.headers['date']))));
      assert.match(String(res.headers['x-wsgid']), /^\d+\.\d+\.\d+/);
      assert.equal(Number(res.headers['content-length']), res.body.length);
      const escaped = target.replace(/[?]/g, '\\?');
      await wsgid.waitForOutput(new RegExp(`"GET ${escaped} HTTP/1\\.1" ${status} ${res.body.length} "-" "answers-test" \\d+$`, 'm'), 30_000);
    });
  }
});
