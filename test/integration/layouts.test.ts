/**
 * Detected layouts served end to end: the app folders of test/fixtures/layouts (made as their
 * starters make them) behind a real mongrel2, started by the real `wsgid` CLI with no --wsgi-app,
 * requested by a real HTTP client. The unit test (test/unit/loaders.test.ts) covers every layout's
 * detection; here two of them run as a user would run them.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT, startWsgid, wsgidArgs } from '../helpers/wsgid.js';

async function layoutFolder(name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `wsgid-layout-${name}-`));
  await cp(path.join(REPO_ROOT, 'test', 'fixtures', 'layouts', name, 'app'), path.join(dir, 'app'), { recursive: true });
  await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'app', 'node_modules'), 'dir');
  return dir;
}

describe('detected layouts through mongrel2', () => {
  let m2: Mongrel2Handle;
  const dirs: string[] = [];
  before(async () => {
    m2 = await startMongrel2();
  });
  after(async () => {
    await m2?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  for (const [layout, expected] of [
    ['hono-node', { status: 200, type: /^text\/plain/, body: 'Hello from the create-hono layout!', log: /app\/src\/index\.ts \(server it started \(listen port 3000\)/ }],
    ['hono-jsx', { status: 200, type: /^text\/html/, body: '<html><body><h1>Hello Hono JSX!</h1><ul><li>tsx</li><li>wsgid</li></ul></body></html>', log: /app\/src\/index\.tsx \(default export/ }],
  ] as const) {
    test(`${layout}: found without --wsgi-app and served`, async () => {
      const dir = await layoutFolder(layout);
      dirs.push(dir);
      const w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2']), { cwd: dir, readyUrl: `${m2.baseUrl}/` });
      try {
        await w.waitForOutput(expected.log);
        for (let i = 0; i < 4; i++) {
          const r = await request(`${m2.baseUrl}/`);
          assert.equal(r.status, expected.status, w.output());
          assert.match(String(r.headers['content-type']), expected.type);
          assert.equal(r.text, expected.body);
        }
      } finally {
        assert.equal(await w.stop(), 0, w.output());
      }
    });
  }
});
