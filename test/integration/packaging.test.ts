/**
 * `npm pack` of a fresh clone gives a tarball that installs a working `wsgid` globally: the
 * repository is copied as a clone has it (no dist/, no node_modules, no native/build), packed with
 * the real npm (its `prepare` builds dist/src), installed with `npm install -g --prefix <tmp>`,
 * and the installed command serves a hello app through a real mongrel2.
 *
 * The clone borrows the repository's node_modules (typescript for `prepare`) instead of `npm ci`;
 * the global install fetches wsgid's dependencies from the npm cache, or the registry.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { REPO_ROOT } from '../helpers/wsgid.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: options.cwd, timeout: options.timeoutMs ?? 180_000, encoding: 'utf8', maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** What a fresh clone holds: the repository without build output, installed modules or VCS data. */
const NOT_IN_A_CLONE = new Set(['node_modules', 'dist', '.git', 'build']);
/** What scripts/setup-starters.mjs installs and builds in test/fixtures/starters/ (ignored by git). */
const STARTER_OUTPUT = new Set(['node_modules', '.next', '.svelte-kit', 'build']);
const isStarterOutput = (source: string): boolean =>
  STARTER_OUTPUT.has(path.basename(source)) && source.includes(`${path.sep}test${path.sep}fixtures${path.sep}starters${path.sep}`);

describe('packaging: npm pack → npm install -g → wsgid', () => {
  let tmp: string;
  let m2: Mongrel2Handle;
  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'wsgid-pack-'));
    m2 = await startMongrel2();
  });
  after(async () => {
    await m2?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('the tarball of a clone installs a wsgid that serves', async () => {
    const clone = path.join(tmp, 'clone');
    cpSync(REPO_ROOT, clone, {
      recursive: true,
      filter: (source) =>
        (!NOT_IN_A_CLONE.has(path.basename(source)) || path.dirname(source).includes(`${path.sep}test${path.sep}fixtures`)) && !isStarterOutput(source),
    });
    assert.ok(!existsSync(path.join(clone, 'dist')), 'the clone has no build');
    symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(clone, 'node_modules'), 'dir');

    const pack = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: clone });
    assert.equal(pack.code, 0, pack.stderr);
    const [packed] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed!.files.map((f) => f.path);
    for (const file of ['dist/src/cli/main.js', 'dist/src/worker/main.js', 'src/gateways/python/bridge/wsgi_bridge.py', 'src/gateways/python/bridge/asgi_bridge.py', 'src/gateways/python/bridge/wsgid_bridge_common.py', 'native/binding.gyp', 'native/chroot.c', 'native/errors.h', 'native/fds.c', 'native/notify.c', 'native/notify.h']) {
      assert.ok(files.includes(file), `the tarball holds ${file}`);
    }
    assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('test/')), 'no tests in the tarball');

    const prefix = path.join(tmp, 'prefix');
    const install = await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', path.join(tmp, packed!.filename)]);
    assert.equal(install.code, 0, install.stderr);
    const wsgid = path.join(prefix, 'bin', 'wsgid');
    const version = await run(wsgid, ['--version']);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^wsgid \d+\.\d+\.\d+/);
    // The optional addon builds wherever the repository's own did (a C compiler and Node headers).
    const installed = path.join(prefix, 'lib', 'node_modules', 'wsgid');
    assert.equal(existsSync(path.join(installed, 'native', 'build', 'Release', 'wsgid_native.node')), existsSync(path.join(REPO_ROOT, 'native', 'build', 'Release', 'wsgid_native.node')));

    // A fetch app and a Python WSGI app (bridge.py found from the installed package).
    const apps: Array<[string, string, string]> = [
      ['server.mjs', "export default () => new Response('hello from the installed wsgid');\n", 'hello from the installed wsgid'],
      ['wsgi.py', "def application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'hello from python']\n", 'hello from python'],
    ];
    for (const [file, source, expected] of apps) {
      const site = path.join(tmp, `site-${path.extname(file).slice(1)}`);
      assert.equal((await run(wsgid, ['init', `--app-path=${site}`])).code, 0);
      writeFileSync(path.join(site, 'app', file), source);
      const h = m2.handler('app');
      const start = await run(wsgid, [`--app-path=${site}`, `--recv=${h.recv}`, `--send=${h.send}`, '--workers=1']);
      assert.equal(start.code, 0, start.stderr + start.stdout);
      try {
        const r = await request(`${m2.baseUrl}/`);
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), expected);
      } finally {
        const stop = await run(wsgid, ['stop', `--app-path=${site}`]);
        assert.equal(stop.code, 0, stop.stderr);
      }
      assert.deepEqual(readdirSync(path.join(site, 'pid', 'master')), []);
    }
  });
});
