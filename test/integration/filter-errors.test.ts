/**
 * Request filters see the app's error whatever the gateway: an `after` filter of a fetch,
 * a Node and a WSGI app gets `info.error` for the 500 that answered an app exception. The WSGI
 * error arrives over the Python bridge's pipe, outside the request's async context, so it must be
 * handed over explicitly. Real mongrel2, real wsgid with a plugin folder.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2 } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT, startWsgid, wsgidArgs } from '../helpers/wsgid.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'filters');

const APPS = [
  { gateway: 'fetch', file: 'fetch-boom.mjs', args: ['--wsgi-app=fetch-boom.mjs'], message: 'fetch app exploded' },
  { gateway: 'node', file: 'node-boom.mjs', args: ['--wsgi-app=node-boom.mjs'], message: 'node app exploded' },
  { gateway: 'wsgi', file: 'wsgi_boom.py', args: ['--wsgi-app=wsgi_boom:application', '--python=/usr/bin/python3'], message: 'RuntimeError: wsgi app exploded' },
];

for (const app of APPS) {
  for (const workers of [0, 1]) {
    describe(`an after filter sees the ${app.gateway} app's error (--workers=${workers})`, () => {
      test('500 with the error in info.error; a good request has none', async () => {
        const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-filter-errors-'));
        await mkdir(path.join(dir, 'app'));
        await mkdir(path.join(dir, 'plugins'));
        await copyFile(path.join(FIXTURES, app.file), path.join(dir, 'app', app.file));
        await copyFile(path.join(FIXTURES, 'error-filter.mjs'), path.join(dir, 'plugins', 'error-filter.mjs'));
        const m2 = await startMongrel2({ handlers: [{ name: 'app', route: '/', protocol: 'tnetstring' }] });
        const wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, [`--workers=${workers}`, ...app.args]), { cwd: dir, readyUrl: `${m2.baseUrl}/` });
        try {
          const boom = await request(`${m2.baseUrl}/boom`);
          assert.equal(boom.status, 500, wsgid.output());
          assert.equal(boom.headers['x-app-error'], app.message, wsgid.output());
          const fine = await request(`${m2.baseUrl}/fine`);
          assert.equal(fine.status, 200);
          assert.equal(fine.headers['x-app-error'], undefined);
        } finally {
          const code = await wsgid.stop();
          await m2.stop();
          await rm(dir, { recursive: true, force: true });
          assert.equal(code, 0, wsgid.output());
        }
      });
    });
  }
}
