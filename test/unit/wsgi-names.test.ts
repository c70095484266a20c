/** WSGI entry names, app detection (loaders/wsgi.ts) and the pipe codec. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseWsgiEntry, isPythonSpec, type PythonSpec } from '../../src/gateways/python/spec.js';
import { decodeEnviron, decodeHead, encodeEnviron, encodeHead, encodeFrame, FrameDecoder, T } from '../../src/gateways/python/pipe.js';
import { detectDjango, loadWsgi, pythonEntryFor, resolvePython, settingsFromManagePy } from '../../src/loaders/wsgi.js';
import type { Settings } from '../../src/config/settings.js';
import { createLogger } from '../../src/log/logger.js';
import { testSettings } from '../helpers/settings.js';

test('parseWsgiEntry: colon, dotted, bare, file, factory', () => {
  assert.deepEqual(parseWsgiEntry('pkg.mod:app', '/a'), { module: 'pkg.mod', attr: 'app', call: false });
  assert.deepEqual(parseWsgiEntry('pkg.mod:obj.app', '/a'), { module: 'pkg.mod', attr: 'obj.app', call: false });
  assert.deepEqual(parseWsgiEntry('pkg.mod:create_app()', '/a'), { module: 'pkg.mod', attr: 'create_app', call: true });
  assert.deepEqual(parseWsgiEntry('pkg.mod.application', '/a'), {
    module: 'pkg.mod',
    attr: 'application',
    call: false,
    fallbackModule: 'pkg.mod.application',
  });
  assert.deepEqual(parseWsgiEntry('wsgi', '/a'), { module: 'wsgi', call: false });
  assert.deepEqual(parseWsgiEntry('site/hello.py', '/a'), { file: '/a/site/hello.py', attr: undefined, call: false });
  assert.deepEqual(parseWsgiEntry('/abs/x.py:app', '/a'), { file: '/abs/x.py', attr: 'app', call: false });
  for (const bad of ['', 'a-b:c', 'pkg..mod', '1abc', 'a:b:c', 'server.mjs:x/y', 'mod:']) {
    assert.equal(parseWsgiEntry(bad, '/a'), undefined, bad);
  }
});

function tempApp(files: Record<string, string>): { appPath: string; appDir: string; cleanup: () => void } {
  const appPath = mkdtempSync(path.join(os.tmpdir(), 'wsgid-wsgi-names-'));
  const appDir = path.join(appPath, 'app');
  mkdirSync(appDir);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(appDir, name)), { recursive: true });
    writeFileSync(path.join(appDir, name), content);
  }
  return { appPath, appDir, cleanup: () => rmSync(appPath, { recursive: true, force: true }) };
}

function settings(appPath: string, extra: Partial<Settings> = {}): Settings {
  return testSettings(appPath, extra);
}

const logger = createLogger({ fd: 2 }, 'error');

test('pythonEntryFor: Python names vs JavaScript modules', () => {
  const t = tempApp({ 'server.js': '', 'myapp.py': '', 'pkg/__init__.py': '' });
  try {
    assert.equal(pythonEntryFor('server', t.appDir), undefined);
    assert.equal(pythonEntryFor('server.js', t.appDir), undefined);
    assert.equal(pythonEntryFor('server.mjs:handler', t.appDir), undefined);
    assert.equal(pythonEntryFor('./server.js', t.appDir), undefined);
    assert.deepEqual(pythonEntryFor('myapp:app', t.appDir), { module: 'myapp', attr: 'app', call: false });
    assert.equal(pythonEntryFor('pkg.wsgi.application', t.appDir)?.module, 'pkg.wsgi');
    assert.equal(pythonEntryFor('installed.wsgi:application', t.appDir)?.module, 'installed.wsgi');
    assert.equal(pythonEntryFor('hello.py', t.appDir)?.file, path.join(t.appDir, 'hello.py'));
    assert.equal(pythonEntryFor('nothing', t.appDir), undefined);
  } finally {
    t.cleanup();
  }
});

test('settingsFromManagePy', () => {
  assert.equal(
    settingsFromManagePy("    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n"),
    'mysite.settings',
  );
  assert.equal(settingsFromManagePy('os.environ["DJANGO_SETTINGS_MODULE"] = "a.b.settings"'), 'a.b.settings');
  assert.equal(settingsFromManagePy('print(1)'), undefined);
});

test('detectDjango: manage.py, project copied into app/, bare settings package, hidden folders ignored', () => {
  const manage = "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')";
  let t = tempApp({ 'manage.py': manage, 'proj/settings.py': '', 'proj/urls.py': '' });
  assert.deepEqual(detectDjango(t.appDir), { root: t.appDir, settingsModule: 'proj.settings', found: path.join(t.appDir, 'manage.py') });
  t.cleanup();
  t = tempApp({ 'mysite/manage.py': manage.replace('proj', 'mysite'), 'mysite/mysite/settings.py': '', 'mysite/mysite/urls.py': '' });
  assert.equal(detectDjango(t.appDir)?.root, path.join(t.appDir, 'mysite'));
  assert.equal(detectDjango(t.appDir)?.settingsModule, 'mysite.settings');
  t.cleanup();
  t = tempApp({ 'site1/settings.py': '', 'site1/urls.py': '', '.hidden/settings.py': '', '.hidden/urls.py': '' });
  assert.deepEqual(detectDjango(t.appDir), { root: t.appDir, settingsModule: 'site1.settings', found: path.join(t.appDir, 'site1', 'settings.py') });
  t.cleanup();
  t = tempApp({ '.hidden/settings.py': '', '.hidden/urls.py': '', 'lib/settings.py': '' });
  assert.equal(detectDjango(t.appDir), undefined);
  t.cleanup();
});

test('loadWsgi: --wsgi-app, Django detection, wsgi.py, --django forcing, JS apps left alone', async () => {
  let t = tempApp({ 'wsgi.py': 'application = None' });
  let loaded = await loadWsgi(settings(t.appPath), logger);
  assert.equal(loaded?.kind, 'wsgi');
  assert.ok(isPythonSpec(loaded?.app));
  assert.deepEqual((loaded?.app as PythonSpec).entry, { module: 'wsgi', call: false });
  assert.equal((loaded?.app as PythonSpec).python, 'python3');
  t.cleanup();

  t = tempApp({ 'manage.py': "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')", 'proj/settings.py': '', 'proj/urls.py': '' });
  loaded = await loadWsgi(settings(t.appPath, { envs: { A: 'b' } }), logger);
  const spec = loaded?.app as PythonSpec;
  assert.deepEqual(spec.django, { settingsModule: 'proj.settings' });
  assert.equal(spec.entry, undefined);
  assert.deepEqual(spec.envs, { A: 'b' });
  assert.match(loaded?.description ?? '', /Django project proj\.settings/);
  assert.equal(spec.cwd, t.appDir);
  t.cleanup();

  // A project one folder down: importable from its folder, but run in app/ (gunicorn --chdir app).
  t = tempApp({ 'site/manage.py': "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')", 'site/proj/settings.py': '', 'site/proj/urls.py': '' });
  const down = (await loadWsgi(settings(t.appPath), logger))?.app as PythonSpec;
  assert.deepEqual(down.sysPath, [path.join(t.appDir, 'site'), t.appDir]);
  assert.equal(down.cwd, t.appDir);
  t.cleanup();

  t = tempApp({ 'server.js': 'export default () => new Response("x")' });
  assert.equal(await loadWsgi(settings(t.appPath), logger), undefined);
  assert.equal(await loadWsgi(settings(t.appPath, { wsgiApp: 'server.js' }), logger), undefined);
  await assert.rejects(loadWsgi(settings(t.appPath, { django: true }), logger), /no Django project/);
  loaded = await loadWsgi(settings(t.appPath, { django: true, envs: { DJANGO_SETTINGS_MODULE: 'x.settings' } }), logger);
  assert.deepEqual((loaded?.app as PythonSpec).django, { settingsModule: 'x.settings' });
  loaded = await loadWsgi(settings(t.appPath, { wsgiApp: 'my.pkg.app', python: '/usr/bin/python3' }), logger);
  assert.equal((loaded?.app as PythonSpec).python, '/usr/bin/python3');
  t.cleanup();
});

test('resolvePython: explicit, then app/.venv, app/venv, then python3', () => {
  const t = tempApp({ 'venv/bin/python': '' });
  assert.equal(resolvePython({ python: 'python3' }, t.appDir), path.join(t.appDir, 'venv', 'bin', 'python'));
  assert.equal(resolvePython({ python: '/opt/py' }, t.appDir), '/opt/py');
  writeFileSync(path.join(t.appDir, 'x'), '');
  mkdirSync(path.join(t.appDir, '.venv', 'bin'), { recursive: true });
  writeFileSync(path.join(t.appDir, '.venv', 'bin', 'python'), '');
  assert.equal(resolvePython({ python: 'python3' }, t.appDir), path.join(t.appDir, '.venv', 'bin', 'python'));
  t.cleanup();
  assert.equal(resolvePython({ python: 'python3' }, '/nonexistent'), 'python3');
});

test('pipe codec: frames split anywhere decode the same', () => {
  const frames = [
    ...encodeFrame(T.head, 7, encodeHead('200 OK', [['Content-Type', 'text/plain'], ['Set-Cookie', 'a=1']], 5)),
    ...encodeFrame(T.data, 7, Buffer.from('hello')),
    ...encodeFrame(T.done, 7, Buffer.from([0])),
    ...encodeFrame(T.bodyEnd, 7),
  ];
  const wire = Buffer.concat(frames);
  for (const step of [1, 2, 3, 7, 9, 13, wire.length]) {
    const d = new FrameDecoder();
    const out: Array<[number, number, string]> = [];
    for (let at = 0; at < wire.length; at += step) {
      d.push(wire.subarray(at, at + step));
      for (let f = d.next(); f; f = d.next()) out.push([f.type, f.id, f.payload.toString('latin1')]);
    }
    assert.equal(out.length, 4, `step ${step}`);
    assert.equal(out[1]![2], 'hello');
    assert.deepEqual(out[3], [T.bodyEnd, 7, '']);
    const head = decodeHead(Buffer.from(out[0]![2], 'latin1'));
    assert.deepEqual(head, {
      status: 200,
      reason: 'OK',
      headers: [
        ['Content-Type', 'text/plain'],
        ['Set-Cookie', 'a=1'],
      ],
      bodyLength: 5,
    });
  }
});

test('pipe codec: head without a known length, bad status lines refused', () => {
  assert.equal(decodeHead(encodeHead('404 Not Found', [])).bodyLength, undefined);
  assert.equal(decodeHead(encodeHead('204 ', [])).reason, '');
  assert.throws(() => decodeHead(encodeHead('20 OK', [])), /invalid status/);
  assert.throws(() => decodeHead(encodeHead('200 OK\r\nX: y', [])), /invalid status/);
  assert.throws(() => decodeHead(encodeHead('200 OK', [['a', 'b']]).subarray(0, 5)), /truncated/);
  assert.throws(() => decodeHead(encodeHead('200 OK', [['a', 'b']]).subarray(0, 16)), /without a value/);
});

test('pipe codec: environ pairs joined with NUL, or length-prefixed when a value holds a NUL', () => {
  const pairs: Array<[string, string]> = [
    ['PATH_INFO', '/caf\u00e9'],
    ['EMPTY', ''],
    ['HTTP_X', 'a: b'],
  ];
  const joined = encodeEnviron(pairs);
  assert.equal(joined[0], 0);
  assert.equal(joined.toString('latin1', 1), 'PATH_INFO\0/caf\u00e9\0EMPTY\0\0HTTP_X\0a: b');
  assert.deepEqual(decodeEnviron(joined), pairs);
  const withNul: Array<[string, string]> = [...pairs, ['PATH_INFO', '/a\0b']];
  const prefixed = encodeEnviron(withNul);
  assert.equal(prefixed[0], 1);
  assert.equal(prefixed.readUInt32BE(1), 9);
  assert.equal(prefixed.toString('latin1', 5, 14), 'PATH_INFO');
  assert.deepEqual(decodeEnviron(prefixed), withNul);
  assert.deepEqual(decodeEnviron(encodeEnviron([])), []);
});
