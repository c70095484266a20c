/** ASGI: the scope built from a mongrel2 request (gateways/asgi/scope.ts), the frames, and detection (loaders/asgi.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildScope, httpVersionOf } from '../../src/gateways/asgi/scope.js';
import { decodeAccept, decodeClose, encodeCancel, encodeWsFrame } from '../../src/gateways/asgi/protocol.js';
import { looksLikeAsgi } from '../../src/loaders/asgi.js';
import { loadWsgi } from '../../src/loaders/wsgi.js';
import { createLogger } from '../../src/log/logger.js';
import { testSettings } from '../helpers/settings.js';
import type { PythonSpec } from '../../src/gateways/python/spec.js';

test('buildScope: an http request with a route prefix, %-encoded UTF-8 path, repeated headers', () => {
  const scope = buildScope(
    {
      path: '/api/caf%C3%A9/x%2Fy',
      headers: {
        METHOD: 'POST',
        VERSION: 'HTTP/1.0',
        PATH: '/api/caf%C3%A9/x%2Fy',
        QUERY: 'a=1&b=%2F',
        PATTERN: '/api/',
        REMOTE_ADDR: '10.0.0.7',
        URL_SCHEME: 'https',
        host: 'example.org:8443',
        'x-dup': ['1', '2'],
        'content-type': 'text/plain',
        'transfer-encoding': 'chunked',
        x_sneaky: 'dropped',
        'x-mongrel2-upload-done': '/tmp/upload.1',
      },
    },
    'http',
  );
  assert.deepEqual(scope, {
    type: 'http',
    http_version: '1.0',
    method: 'POST',
    scheme: 'https',
    path: '/api/café/x/y',
    raw_path: '/api/caf%C3%A9/x%2Fy',
    query_string: 'a=1&b=%2F',
    root_path: '/api',
    headers: [
      ['host', 'example.org:8443'],
      ['x-dup', '1'],
      ['x-dup', '2'],
      ['content-type', 'text/plain'],
    ],
    client: ['10.0.0.7', 0],
    server: ['example.org', 8443],
  });
});

test('buildScope: root_path only at a segment boundary; a websocket scope with subprotocols', () => {
  const apple = buildScope({ path: '/apple', headers: { PATH: '/apple', PATTERN: '/app/' } }, 'http');
  assert.equal(apple.root_path, '');
  assert.equal(apple.path, '/apple');
  assert.equal(apple.client, null);
  const ws = buildScope(
    { path: '/ws', headers: { METHOD: 'WEBSOCKET_HANDSHAKE', PATH: '/ws', host: '[::1]:6767', 'sec-websocket-protocol': 'chat.v1, chat.v2' } },
    'websocket',
  );
  assert.equal(ws.type, 'websocket');
  assert.equal(ws.scheme, 'ws');
  assert.equal(ws.method, 'GET');
  assert.deepEqual(ws.subprotocols, ['chat.v1', 'chat.v2']);
  assert.deepEqual(ws.server, ['::1', 6767]);
  assert.equal(httpVersionOf(undefined), '1.1');
});

test('ASGI frames: accept, close, cancel and websocket payloads', () => {
  assert.deepEqual(decodeAccept(Buffer.from('{"subprotocol":"p","headers":[["x-a","1"],["bad"],[1,2]]}')), {
    subprotocol: 'p',
    headers: [['x-a', '1']],
  });
  assert.deepEqual(decodeAccept(Buffer.from('{"subprotocol":null}')), { subprotocol: null, headers: [] });
  assert.throws(() => decodeAccept(Buffer.from('{')));
  assert.deepEqual(decodeClose(Buffer.from([0x0f, 0xa0, 0x62, 0x79, 0x65])), { code: 4000, reason: 'bye' });
  assert.deepEqual(decodeClose(Buffer.alloc(0)), { code: 1000, reason: '' });
  assert.deepEqual(encodeCancel(1001), Buffer.from([0x03, 0xe9]));
  assert.deepEqual(encodeWsFrame(1, Buffer.from('hi')), Buffer.from([1, 0x68, 0x69]));
});

test('looksLikeAsgi: framework imports and bare ASGI callables, not Flask or Django WSGI', () => {
  assert.equal(looksLikeAsgi('from fastapi import FastAPI\napp = FastAPI()\n'), true);
  assert.equal(looksLikeAsgi('import starlette\n'), true);
  assert.equal(looksLikeAsgi('from starlette.applications import Starlette\n'), true);
  assert.equal(looksLikeAsgi('from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n'), true);
  assert.equal(looksLikeAsgi('async def app(scope, receive, send):\n    pass\n'), true);
  assert.equal(looksLikeAsgi('from flask import Flask\napp = Flask(__name__)\n'), false);
  assert.equal(looksLikeAsgi('from django.core.wsgi import get_wsgi_application\n'), false);
  assert.equal(looksLikeAsgi('# we do not use fastapi here\n'), false);
});

function tempApp(files: Record<string, string>): { appPath: string; cleanup: () => void } {
  const appPath = mkdtempSync(path.join(os.tmpdir(), 'wsgid-asgi-unit-'));
  const appDir = path.join(appPath, 'app');
  mkdirSync(appDir);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(appDir, name)), { recursive: true });
    writeFileSync(path.join(appDir, name), content);
  }
  return { appPath, cleanup: () => rmSync(appPath, { recursive: true, force: true }) };
}

const logger = createLogger({ fd: 2 }, 'error');
const FASTAPI = 'from fastapi import FastAPI\napp = FastAPI()\n';
const FLASK = 'from flask import Flask\napp = Flask(__name__)\n';
const MANAGE = "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n";

test('detection: FastAPI main.py and Starlette app.py are ASGI; WSGI wins where both exist', async () => {
  const cases: Array<[Record<string, string>, string, string | undefined]> = [
    [{ 'main.py': FASTAPI }, 'asgi', 'main'],
    [{ 'app.py': 'from starlette.applications import Starlette\napp = Starlette()\n' }, 'asgi', 'app'],
    [{ 'asgi.py': 'async def application(scope, receive, send): pass\n' }, 'asgi', 'asgi'],
    [{ 'app.py': FLASK }, 'wsgi', 'app'],
    [{ 'wsgi.py': FLASK, 'main.py': FASTAPI }, 'wsgi', 'wsgi'],
    [{ 'main.py': 'print("a script")\n' }, 'none', undefined],
  ];
  for (const [files, kind, module] of cases) {
    const t = tempApp(files);
    try {
      const loaded = await loadWsgi(testSettings(t.appPath), logger);
      assert.equal(loaded?.kind ?? 'none', kind, JSON.stringify(files));
      assert.equal((loaded?.app as PythonSpec | undefined)?.entry?.module, module, JSON.stringify(files));
    } finally {
      t.cleanup();
    }
  }
});

test('detection: a Django project is WSGI unless --asgi (auto → get_asgi_application, or a named module)', async () => {
  const t = tempApp({
    'manage.py': MANAGE,
    'mysite/settings.py': '',
    'mysite/urls.py': '',
    'mysite/wsgi.py': '',
    'mysite/asgi.py': 'from django.core.asgi import get_asgi_application\n',
  });
  try {
    assert.equal((await loadWsgi(testSettings(t.appPath), logger))?.kind, 'wsgi');
    const auto = await loadWsgi(testSettings(t.appPath, { asgi: 'auto' }), logger);
    assert.equal(auto?.kind, 'asgi');
    assert.deepEqual((auto?.app as PythonSpec).django, { settingsModule: 'mysite.settings' });
    assert.equal((auto?.app as PythonSpec).entry, undefined);
    const named = await loadWsgi(testSettings(t.appPath, { asgi: 'mysite.asgi:application' }), logger);
    assert.equal(named?.kind, 'asgi');
    assert.deepEqual((named?.app as PythonSpec).entry, { module: 'mysite.asgi', attr: 'application', call: false });
    await assert.rejects(loadWsgi(testSettings(t.appPath, { asgi: 'not a name' }), logger), /not a Python name/);
  } finally {
    t.cleanup();
  }
  const empty = tempApp({ 'README.txt': '' });
  try {
    await assert.rejects(loadWsgi(testSettings(empty.appPath, { asgi: 'auto' }), logger), /no ASGI module found/);
  } finally {
    empty.cleanup();
  }
});
