import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage, peekConnection, ProtocolError, type Mongrel2Message } from '../../src/protocol/index.js';
import { frame, jsonHeaders, tnet, tnetHeaders, type Headers } from './protocol-helpers.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Both header formats must give the same message. */
function both(sender: string, id: number, path: string, h: Headers, body: Buffer | string): [Mongrel2Message, Mongrel2Message] {
  return [
    parseMessage(frame(sender, id, path, jsonHeaders(h), body)),
    parseMessage(frame(sender, id, path, tnetHeaders(h), body)),
  ];
}

function assertProtocolError(fn: () => unknown, code: string, re?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (re) assert.match(err.message, re);
    return true;
  });
}

// A JSON-headers request as mongrel2 sent it (abridged; the length here is recomputed).
const capturedHeaders =
  '{"PATH":"/json/some/path","x-dup":["a","b"],"x-forwarded-for":"127.0.0.1",' +
  '"x-tab":"a\tb","host":"127.0.0.1:47671","METHOD":"GET","VERSION":"HTTP/1.1","URI":"/json/some/path?x=1&y=%20z",' +
  '"QUERY":"x=1&y=%20z","PATTERN":"/json/","URL_SCHEME":"http","REMOTE_ADDR":"127.0.0.1"}';
const capturedJson = `aaaa-json 1 /json/some/path ${capturedHeaders.length}:${capturedHeaders},0:,`;

test('captured JSON request: TAB in a value, duplicates as an array, empty body', () => {
  const m = parseMessage(b(capturedJson));
  assert.equal(m.kind, 'request');
  assert.equal(m.sender, 'aaaa-json');
  assert.equal(m.connId, 1);
  assert.equal(m.path, '/json/some/path');
  assert.deepEqual(m.headers, {
    PATH: '/json/some/path',
    'x-dup': ['a', 'b'],
    'x-forwarded-for': '127.0.0.1',
    'x-tab': 'a\tb',
    host: '127.0.0.1:47671',
    METHOD: 'GET',
    VERSION: 'HTTP/1.1',
    URI: '/json/some/path?x=1&y=%20z',
    QUERY: 'x=1&y=%20z',
    PATTERN: '/json/',
    URL_SCHEME: 'http',
    REMOTE_ADDR: '127.0.0.1',
  });
  assert.equal(m.body.length, 0);
  // Node's JSON.parse rejects this very header block.
  assert.throws(() => JSON.parse(capturedHeaders), /control character/i);
});

test('captured tnetstring POST: list for duplicates, inline body', () => {
  const h: Headers = {
    REMOTE_ADDR: '127.0.0.1',
    METHOD: 'POST',
    PATH: '/tnet/some/path',
    VERSION: 'HTTP/1.1',
    URI: '/tnet/some/path',
    PATTERN: '/tnet/',
    URL_SCHEME: 'http',
    host: '127.0.0.1:47671',
    'content-length': '3',
    'x-dup': ['a', 'b'],
  };
  const raw = frame('bbbb-tnet', 2, '/tnet/some/path', tnetHeaders(h), 'k=v');
  assert.match(raw.toString('latin1'), /^bbbb-tnet 2 \/tnet\/some\/path \d+:11:REMOTE_ADDR,9:127\.0\.0\.1,.*5:x-dup,8:1:a,1:b,\]\}3:k=v,$/);
  const m = parseMessage(raw);
  assert.equal(m.kind, 'request');
  assert.equal(m.connId, 2);
  assert.deepEqual(m.headers, h);
  assert.equal(m.body.toString(), 'k=v');
});

test('the body is a view into the frame, not a copy', () => {
  const raw = frame('s', 9, '/', tnetHeaders({ METHOD: 'POST' }), 'abc');
  const m = parseMessage(raw);
  assert.equal(m.body.buffer, raw.buffer);
  raw[raw.length - 2] = 0x7a;
  assert.equal(m.body.toString(), 'abz');
});

test('binary body with NULs, commas, colons and bytes >= 0x80', () => {
  const body = Buffer.from([0, 0x2c, 0x3a, 0xff, 0x80, 0, 0x2c, 0x7d, 0x5d, 0x20]);
  for (const m of both('a-b', 4294967295, '/up', { METHOD: 'PUT', 'content-length': '10' }, body)) {
    assert.equal(m.connId, 4294967295);
    assert.deepEqual([...m.body], [...body]);
  }
});

test('non-UTF-8 and UTF-8 bytes in header values come out as latin1 byte strings, in both formats', () => {
  const utf8 = Buffer.from('café ☕', 'utf8').toString('latin1');
  const h: Headers = { METHOD: 'GET', 'x-utf8': utf8, 'x-bin': '\xff\xfe\x00\x01"\\', 'x-list': ['\xe9', 'a,b', ''] };
  const [j, t] = both('s', 1, '/caf%C3%A9', h, '');
  assert.deepEqual(j.headers, h);
  assert.deepEqual(t.headers, h);
  assert.equal(Buffer.from(j.headers['x-utf8'] as string, 'latin1').toString('utf8'), 'café ☕');
});

test('non-ASCII raw bytes in the PATH field are latin1', () => {
  const m = parseMessage(frame('s', 1, '/\xe9\xff', tnetHeaders({ METHOD: 'GET' }), ''));
  assert.equal(m.path, '/\xe9\xff');
});

test('JSON escapes: \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\u (non-ASCII as UTF-8 bytes, surrogate pairs joined)', () => {
  const json = '{"a":"q\\"b\\\\s\\/\\b\\f\\n\\r\\t","u":"\\u0041\\u00e9\\u20ac\\ud83d\\ude00","lone":"\\ud800x","odd":"\\q"}';
  const m = parseMessage(frame('s', 1, '/', tnet(json, ','), ''));
  assert.equal(m.headers['a'], 'q"b\\s/\b\f\n\r\t');
  assert.equal(m.headers['u'], Buffer.from('Aé€😀', 'utf8').toString('latin1'));
  assert.equal(m.headers['lone'], Buffer.from('\ufffdx', 'utf8').toString('latin1'));
  assert.equal(m.headers['odd'], '\\q');
});

test('JSON headers tolerate whitespace and an empty object; non-string values are M2_ERR_HEADERS', () => {
  const m = parseMessage(frame('s', 1, '/', tnet(' { "A" : [ "x" , "y" ] ,\n"B":[] } ', ','), ''));
  assert.deepEqual(m.headers, { A: ['x', 'y'], B: [] });
  assert.deepEqual(parseMessage(frame('s', 1, '/', tnet('{}', ','), '')).headers, {});
  assertProtocolError(() => parseMessage(frame('s', 1, '/', tnet('{"A":1}', ','), '')), 'M2_ERR_HEADERS', /"A"/);
  assertProtocolError(() => parseMessage(frame('s', 1, '/', tnet('{"A":["x",2]}', ','), '')), 'M2_ERR_HEADERS');
  assertProtocolError(() => parseMessage(frame('s', 1, '/', tnet('{"A":"x"', ','), '')), 'M2_ERR_JSON', /offset/);
  assertProtocolError(() => parseMessage(frame('s', 1, '/', tnet('{"A":"x}', ','), '')), 'M2_ERR_JSON', /unterminated/);
  assertProtocolError(() => parseMessage(frame('s', 1, '/', tnet('{"A":"x"} x', ','), '')), 'M2_ERR_JSON');
  assertProtocolError(() => parseMessage(frame('s', 1, '/', tnet('{"A":"\\u12"}', ','), '')), 'M2_ERR_JSON', /\\u/);
});

test('a header named __proto__ is an ordinary key', () => {
  for (const m of both('s', 1, '/', { __proto__x: 'a' }, '')) assert.equal(m.headers['__proto__x'], 'a');
  const m = parseMessage(frame('s', 1, '/', tnet('{"__proto__":"evil"}', ','), ''));
  assert.equal(Object.getPrototypeOf(m.headers), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(m.headers, '__proto__')?.value, 'evil');
});

test('disconnect: both formats, exactly as mongrel2 writes it', () => {
  const j = parseMessage(b('app-1 7 @* 17:{"METHOD":"JSON"},21:{"type":"disconnect"},'));
  const t = parseMessage(b('app-1 7 @* 16:6:METHOD,4:JSON,}21:{"type":"disconnect"},'));
  for (const m of [j, t]) {
    assert.equal(m.kind, 'disconnect');
    assert.equal(m.path, '@*');
    assert.equal(m.connId, 7);
    assert.deepEqual(m.headers, { METHOD: 'JSON' });
  }
});

test('credits vs disconnect is decided by the body type', () => {
  const [j, t] = both('s', 3, '@*', { METHOD: 'JSON', DOWNLOAD_CREDITS: '4096' }, '{"type":"credits"}');
  assert.equal(j.kind, 'credits');
  assert.equal(t.kind, 'credits');
  assert.equal(t.headers['DOWNLOAD_CREDITS'], '4096');
  assert.equal(both('s', 3, '@*', { METHOD: 'JSON' }, ' { "type" : "disconnect" } ')[0].kind, 'disconnect');
  assertProtocolError(() => both('s', 3, '@*', { METHOD: 'JSON' }, '{"type":"ping"}'), 'M2_ERR_JSON', /ping/);
  assertProtocolError(() => both('s', 3, '@*', { METHOD: 'JSON' }, 'nope'), 'M2_ERR_JSON');
});

test('async upload: start, then done (done wins when both are present)', () => {
  const base: Headers = { METHOD: 'POST', PATH: '/up', 'content-length': '100000' };
  const start = both('s', 5, '/up', { ...base, 'x-mongrel2-upload-start': '/tmp/upload.AbC123' }, '');
  const done = both('s', 5, '/up', {
    ...base,
    'x-mongrel2-upload-start': '/tmp/upload.AbC123',
    'x-mongrel2-upload-done': '/tmp/upload.AbC123',
  }, '');
  for (const m of start) assert.equal(m.kind, 'upload-start');
  for (const m of done) assert.equal(m.kind, 'upload-done');
});

test('streaming upload messages carry only UPLOAD_STREAM', () => {
  for (const m of both('s', 5, '/up', { UPLOAD_STREAM: '4096', UPLOAD_STREAM_DONE: '1' }, 'tail')) {
    assert.equal(m.kind, 'upload-stream');
  }
});

test('websocket handshake and frames', () => {
  const ws: Headers = {
    METHOD: 'WEBSOCKET_HANDSHAKE',
    PATH: '/ws',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    upgrade: 'websocket',
    connection: 'Upgrade',
  };
  for (const m of both('s', 8, '/ws', ws, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')) {
    assert.equal(m.kind, 'websocket-handshake');
    assert.equal(m.body.toString(), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  }
  for (const m of both('s', 8, '/ws', { ...ws, METHOD: 'WEBSOCKET', FLAGS: '0x82' }, Buffer.from([0, 1, 2]))) {
    assert.equal(m.kind, 'websocket-frame');
    assert.equal(m.headers['FLAGS'], '0x82');
  }
});

test('JSON and XML socket messages', () => {
  for (const m of both('s', 11, '@chat', { METHOD: 'JSON', PATH: '@chat' }, '{"type":"msg","text":"hi"}')) {
    assert.equal(m.kind, 'json');
    assert.equal(m.path, '@chat');
  }
  for (const m of both('s', 12, '@xml', { METHOD: 'XML' }, '<hello/>')) assert.equal(m.kind, 'xml');
});

test('peekConnection reads only the sender and connection id', () => {
  assert.deepEqual(peekConnection(b(capturedJson)), { sender: 'aaaa-json', connId: 1 });
  // Whatever follows the second space is not looked at.
  assert.deepEqual(peekConnection(b('Zz-09 4294967295 garbage')), { sender: 'Zz-09', connId: 4294967295 });
  assert.deepEqual(peekConnection(b('other 0 ')), { sender: 'other', connId: 0 });
  assertProtocolError(() => peekConnection(b('bad_id 1 /')), 'M2_ERR_SENDER', /offset 3/);
  assertProtocolError(() => peekConnection(b(' 1 /')), 'M2_ERR_SENDER');
  assertProtocolError(() => peekConnection(b('abc')), 'M2_ERR_FRAME');
  assertProtocolError(() => peekConnection(b('abc 12')), 'M2_ERR_FRAME');
  assertProtocolError(() => peekConnection(b('abc  /')), 'M2_ERR_CONN_ID');
  assertProtocolError(() => peekConnection(b('abc 1x /')), 'M2_ERR_CONN_ID', /offset 5/);
  assertProtocolError(() => peekConnection(b('abc 4294967296 /')), 'M2_ERR_CONN_ID', /uint32/);
  assertProtocolError(() => peekConnection(b('abc -1 /')), 'M2_ERR_CONN_ID');
});

test('frame errors name what is wrong and where', () => {
  const good = frame('s', 1, '/', tnetHeaders({ METHOD: 'GET' }), 'xy');
  parseMessage(good);
  assertProtocolError(() => parseMessage(b('s 1 /')), 'M2_ERR_FRAME', /path/);
  assertProtocolError(() => parseMessage(b('s 1  2:{},0:,')), 'M2_ERR_FRAME', /empty path/);
  assertProtocolError(() => parseMessage(Buffer.concat([good, b('!')])), 'M2_ERR_FRAME', /after the body/);
  assertProtocolError(() => parseMessage(good.subarray(0, good.length - 1)), 'M2_ERR_NETSTRING', /body/);
  assertProtocolError(() => parseMessage(b('s 1 / 2:{}]0:,')), 'M2_ERR_NETSTRING', /headers/);
  assertProtocolError(() => parseMessage(b('s 1 / 2:{},2:x,')), 'M2_ERR_NETSTRING', /runs past/);
  assertProtocolError(() => parseMessage(b('s 1 / 2:{},1:xy')), 'M2_ERR_NETSTRING', /expected ','/);
  assertProtocolError(() => parseMessage(b('s 1 / x:{},0:,')), 'M2_ERR_NETSTRING', /offset 6/);
  assertProtocolError(() => parseMessage(b('s 1 / 1234567890:{},0:,')), 'M2_ERR_NETSTRING', /digits/);
  const withHeaders = (h: string): Buffer => frame('s', 1, '/', tnet(h, '}'), '');
  assertProtocolError(() => parseMessage(withHeaders('1:a#1:b,')), 'M2_ERR_HEADERS', /not a string/);
  assertProtocolError(() => parseMessage(withHeaders('1:a,1:1#')), 'M2_ERR_HEADERS', /"a"/);
  assertProtocolError(() => parseMessage(withHeaders('1:a,4:1:1#]')), 'M2_ERR_HEADERS', /non-string element/);
  assertProtocolError(() => parseMessage(withHeaders('1:a,')), 'M2_ERR_HEADERS', /no value/);
  assertProtocolError(() => parseMessage(withHeaders('1:a,2:1:]')), 'M2_ERR_TNETSTRING');
  assertProtocolError(() => parseMessage(withHeaders('1:a,1:b?')), 'M2_ERR_TNETSTRING', /unknown type/);
});
