/**
 * `wsgid dev`'s choice of which changed files reload the app (src/cli/dev.ts isSourceChange):
 * sources anywhere under the app do; dependencies, VCS, caches, build output and editors' temp
 * files do not (a reload per `npm install` or per editor save-swap would be noise).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSourceChange } from '../../src/cli/dev.js';

test('sources reload, wherever they are', () => {
  for (const file of ['server.mjs', 'src/index.ts', 'lib/deep/er/greeting.mjs', 'app.py', 'templates/page.html', 'package.json', 'myproject/settings.py']) {
    assert.equal(isSourceChange(file), true, file);
  }
});

test('dependencies, VCS, caches, build output and editor files do not', () => {
  for (const file of [
    'node_modules/hono/dist/index.js',
    'packages/a/node_modules/x.js',
    '.git/index',
    'app/__pycache__/app.cpython-311.pyc',
    'mod.pyc',
    '.next/server/page.js',
    'dist/server.js',
    'build/out.js',
    '.venv/lib/site.py',
    '.server.mjs.swp',
    'server.mjs~',
    '.#server.mjs',
    '4913',
    '',
  ]) {
    assert.equal(isSourceChange(file), false, file);
  }
});
