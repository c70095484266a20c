import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildEnviron,
  environKey,
  routePrefix,
  serverFromHost,
  splitPath,
  unquoteLatin1,
} from '../../src/gateways/wsgi/environ.js';
import type { Mongrel2Headers } from '../../src/protocol/types.js';

function env(path: string, headers: Mongrel2Headers, bodyLength?: number): Record<string, string> {
  return Object.fromEntries(buildEnviron({ path, headers: { PATH: path, ...headers } }, bodyLength));
}

test('unquoteLatin1: %-decodes to bytes-as-str, keeps bad escapes and +', () => {
  assert.equal(unquoteLatin1('/a%20b'), '/a b');
  assert.equal(unquoteLatin1('/caf%C3%A9'), '/caf\u00c3\u00a9');
  assert.equal(unquoteLatin1('/%zz/%4'), '/%zz/%4');
  assert.equal(unquoteLatin1('/a+b%2fc'), '/a+b/c');
  assert.equal(unquoteLatin1('/%00'), '/\0');
  assert.equal(unquoteLatin1('/plain'), '/plain');
});

test('routePrefix: literal part, no trailing slash', () => {
  assert.equal(routePrefix('/'), '');
  assert.equal(routePrefix('/app/'), '/app');
  assert.equal(routePrefix('/app'), '/app');
  assert.equal(routePrefix('/api/(.*)$'), '/api');
  assert.equal(routePrefix('/v1(/.*)'), '/v1');
  assert.equal(routePrefix(undefined), '');
});

test('splitPath: SCRIPT_NAME only when the path starts with the prefix at a boundary', () => {
  assert.deepEqual(splitPath('/app/x/y', '/app/'), { scriptName: '/app', pathInfo: '/x/y' });
  assert.deepEqual(splitPath('/app', '/app/'), { scriptName: '/app', pathInfo: '' });
  assert.deepEqual(splitPath('/apple', '/app'), { scriptName: '', pathInfo: '/apple' });
  assert.deepEqual(splitPath('/other', '/app/'), { scriptName: '', pathInfo: '/other' });
  assert.deepEqual(splitPath('/x', '/'), { scriptName: '', pathInfo: '/x' });
  // An encoded slash never moves the split.
  assert.deepEqual(splitPath('/app%2Fx', '/app/'), { scriptName: '', pathInfo: '/app/x' });
  assert.deepEqual(splitPath('/my%20app/a%20b', '/my%20app/'), { scriptName: '/my app', pathInfo: '/a b' });
});

test('serverFromHost: names, ports, IPv6, missing and malformed', () => {
  assert.deepEqual(serverFromHost('example.com:8080', 'http'), { name: 'example.com', port: '8080' });
  assert.deepEqual(serverFromHost('example.com', 'http'), { name: 'example.com', port: '80' });
  assert.deepEqual(serverFromHost('example.com', 'https'), { name: 'example.com', port: '443' });
  assert.deepEqual(serverFromHost('[::1]:8080', 'http'), { name: '[::1]', port: '8080' });
  assert.deepEqual(serverFromHost('[::1]', 'https'), { name: '[::1]', port: '443' });
  assert.deepEqual(serverFromHost(undefined, 'http'), { name: 'localhost', port: '80' });
  assert.deepEqual(serverFromHost('', 'https', 'srv'), { name: 'srv', port: '443' });
  assert.deepEqual(serverFromHost('::1', 'http'), { name: 'localhost', port: '80' });
  assert.deepEqual(serverFromHost('[::1', 'http'), { name: 'localhost', port: '80' });
  assert.deepEqual(serverFromHost('host:abc', 'http'), { name: 'host', port: '80' });
  assert.deepEqual(serverFromHost('host:99999', 'http'), { name: 'host', port: '80' });
  assert.deepEqual(serverFromHost('host:080', 'http'), { name: 'host', port: '80' });
});

test('environKey: CONTENT_* without HTTP_, x- headers keep HTTP_, underscores dropped', () => {
  assert.equal(environKey('content-type'), 'CONTENT_TYPE');
  assert.equal(environKey('content-length'), 'CONTENT_LENGTH');
  assert.equal(environKey('x-forwarded-for'), 'HTTP_X_FORWARDED_FOR');
  assert.equal(environKey('user-agent'), 'HTTP_USER_AGENT');
  assert.equal(environKey('x_evil'), undefined);
  assert.equal(environKey('METHOD'), undefined);
  assert.equal(environKey('x-mongrel2-upload-done'), undefined);
});

test('buildEnviron: a typical request', () => {
  const e = env('/app/items/42', {
    METHOD: 'POST',
    VERSION: 'HTTP/1.1',
    URI: '/app/items/42?q=1',
    QUERY: 'q=1',
    PATTERN: '/app/',
    URL_SCHEME: 'https',
    REMOTE_ADDR: '10.0.0.9',
    host: 'example.org',
    'x-forwarded-for': '10.0.0.9',
    'content-type': 'application/json',
    'content-length': '2',
    accept: ['text/html', 'application/json'],
  });
  assert.equal(e.REQUEST_METHOD, 'POST');
  assert.equal(e.SCRIPT_NAME, '/app');
  assert.equal(e.PATH_INFO, '/items/42');
  assert.equal(e.QUERY_STRING, 'q=1');
  assert.equal(e.SERVER_NAME, 'example.org');
  assert.equal(e.SERVER_PORT, '443');
  assert.equal(e.SERVER_PROTOCOL, 'HTTP/1.1');
  assert.equal(e.REMOTE_ADDR, '10.0.0.9');
  assert.equal(e.CONTENT_TYPE, 'application/json');
  assert.equal(e.CONTENT_LENGTH, '2');
  assert.equal(e.HTTP_ACCEPT, 'text/html,application/json' /* joined as gunicorn and wsgiref do */);
  assert.equal(e.HTTP_X_FORWARDED_FOR, '10.0.0.9');
  assert.equal(e['wsgi.url_scheme'], 'https');
  assert.equal(e.REQUEST_URI, '/app/items/42?q=1');
  assert.equal(e.HTTP_CONTENT_TYPE, undefined);
});

test('buildEnviron: defaults when mongrel2 keys are missing; QUERY_STRING always present', () => {
  const e = env('/', {});
  assert.equal(e.REQUEST_METHOD, 'GET');
  assert.equal(e.QUERY_STRING, '');
  assert.equal(e.SERVER_NAME, 'localhost');
  assert.equal(e.SERVER_PORT, '80');
  assert.equal(e.SCRIPT_NAME, '');
  assert.equal(e.PATH_INFO, '/');
  assert.equal(e.CONTENT_LENGTH, undefined);
});

test('buildEnviron: REMOTE_ADDR falls back to x-forwarded-for only without mongrel2 REMOTE_ADDR', () => {
  assert.equal(env('/', { 'x-forwarded-for': '1.2.3.4, 5.6.7.8' }).REMOTE_ADDR, '1.2.3.4');
  assert.equal(env('/', { REMOTE_ADDR: '9.9.9.9', 'x-forwarded-for': '1.2.3.4' }).REMOTE_ADDR, '9.9.9.9');
});

test('buildEnviron: de-chunked uploads get a CONTENT_LENGTH and no Transfer-Encoding', () => {
  const e = env('/up', { METHOD: 'POST', 'transfer-encoding': 'chunked' }, 1234);
  assert.equal(e.CONTENT_LENGTH, '1234');
  assert.equal(e.HTTP_TRANSFER_ENCODING, undefined);
  // A body without a Content-Length header (inline) gets its length.
  assert.equal(env('/', { METHOD: 'POST' }, 5).CONTENT_LENGTH, '5');
  // The client's own header wins, first value when repeated.
  assert.equal(env('/', { 'content-length': ['3', '3'] }, 3).CONTENT_LENGTH, '3');
});

test('buildEnviron: latin1 header bytes pass through untouched', () => {
  const e = env('/', { 'x-name': 'caf\u00c3\u00a9' });
  assert.equal(e.HTTP_X_NAME, 'caf\u00c3\u00a9');
});
