/**
 * http/head.ts, the response head wsgid writes for fetch and WSGI apps (mongrel2 forwards it
 * untouched, so this is the response-splitting guard). Two oracles nobody here wrote:
 *
 * - node:http's own checks (validateHeaderName, validateHeaderValue, ServerResponse.writeHead's
 *   status and reason checks): the guard must refuse exactly what node:http refuses, for every
 *   code unit 0–0x2FF and seeded strings of them. One documented difference: node:http truncates
 *   a fractional status (200.5 → 200); wsgid refuses it.
 * - llhttp (node:http's parser) reading the bytes: a generated head, followed by a body framed as
 *   frameHead says, parses as one complete response with the app's status, reason and headers in
 *   order, wsgid's own after them, and the body whole.
 *
 * UNIT_SEED=<n> replays (fast-check prints the seed of a failure).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http, { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import fc from 'fast-check';
import { assertSafeHeader, CHUNK_SUFFIX, chunkPrefix, frameHead, InvalidResponseHeadError, LAST_CHUNK, requestKeepAlive } from '../../src/http/head.js';
import { parseWithLlhttp } from '../helpers/llhttp.js';

const SEED = Number(process.env.UNIT_SEED ?? 2213);
const VERSION = 'wsgid-test';

/** Every code unit up to U+02FF (Latin-1 and past it: U+010D's low byte is CR), and a few far ones. */
const CODE_UNITS = [...Array.from({ length: 0x300 }, (_, c) => String.fromCharCode(c)), '\u2028', '\ufffd', '\ud800', '\ud83d\ude00', '\uff0d'];

function nodeRefuses(check: () => void): boolean {
  try {
    check();
    return false;
  } catch (error) {
    assert.ok(['ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN', 'ERR_HTTP_INVALID_STATUS_CODE'].includes((error as NodeJS.ErrnoException).code!), String(error));
    return true;
  }
}

function wsgidRefuses(check: () => void): boolean {
  try {
    check();
    return false;
  } catch (error) {
    assert.ok(error instanceof InvalidResponseHeadError, `not an InvalidResponseHeadError: ${String(error)}`);
    assert.equal(error.code, 'WSGID_ERR_RESPONSE_HEAD');
    return true;
  }
}

const reply = { method: 'GET', httpVersion: 'HTTP/1.1', keepAlive: true };
const writeHead = (status: number, reason?: string): void => void new http.ServerResponse(new http.IncomingMessage(null as never)).writeHead(status, reason);

describe('the response-splitting guard refuses what node:http refuses', () => {
  test('header names: every code unit alone and inside a name', () => {
    for (const c of CODE_UNITS) {
      for (const name of [c, `x-${c}-y`]) {
        assert.equal(wsgidRefuses(() => assertSafeHeader(name, 'v')), nodeRefuses(() => validateHeaderName(name)), `name ${JSON.stringify(name)}`);
      }
    }
    assert.equal(wsgidRefuses(() => assertSafeHeader('', 'v')), nodeRefuses(() => validateHeaderName('')), 'the empty name');
  });

  test('header values and reason phrases: every code unit alone and inside', () => {
    for (const c of CODE_UNITS) {
      for (const value of [c, `a${c}b`]) {
        const refused = nodeRefuses(() => validateHeaderValue('x', value));
        assert.equal(wsgidRefuses(() => assertSafeHeader('x', value)), refused, `value ${JSON.stringify(value)}`);
        assert.equal(wsgidRefuses(() => frameHead(reply, 200, [['x', value]], 0, VERSION)), refused, `value ${JSON.stringify(value)} through frameHead`);
        assert.equal(wsgidRefuses(() => frameHead(reply, 200, [], 0, VERSION, value)), nodeRefuses(() => writeHead(200, value)), `reason ${JSON.stringify(value)}`);
      }
    }
  });

  test('seeded strings of those code units, as names, values and reasons', () => {
    const text = fc.string({ unit: fc.constantFrom(...CODE_UNITS, 'a', 'Z', '-', ' ', '\t'), maxLength: 12 });
    fc.assert(
      fc.property(text, text, (name, value) => {
        assert.equal(wsgidRefuses(() => assertSafeHeader(name, 'v')), nodeRefuses(() => validateHeaderName(name)), `name ${JSON.stringify(name)}`);
        assert.equal(wsgidRefuses(() => assertSafeHeader('x', value)), nodeRefuses(() => validateHeaderValue('x', value)), `value ${JSON.stringify(value)}`);
        assert.equal(wsgidRefuses(() => frameHead(reply, 200, [], 0, VERSION, value)), nodeRefuses(() => writeHead(200, value)), `reason ${JSON.stringify(value)}`);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  test('statuses: integers -1..1100 as node:http; a fractional status refused (node:http truncates it)', () => {
    for (let status = -1; status <= 1100; status++) {
      assert.equal(wsgidRefuses(() => frameHead(reply, status, [], 0, VERSION)), nodeRefuses(() => writeHead(status)), `status ${status}`);
    }
    for (const status of [NaN, Infinity, 200.5]) assert.equal(wsgidRefuses(() => frameHead(reply, status, [], 0, VERSION)), true, `status ${status}`);
  });

  test('a Content-Length the body would not obey is refused: not digits, or two that differ', () => {
    for (const value of ['', 'abc', '-1', '+5', '0x10', '1,1', '1 1', '5.0']) {
      assert.equal(wsgidRefuses(() => frameHead(reply, 200, [['Content-Length', value]], undefined, VERSION)), true, JSON.stringify(value));
    }
    assert.equal(wsgidRefuses(() => frameHead(reply, 200, [['content-length', '5'], ['Content-Length', '6']], undefined, VERSION)), true);
    assert.equal(wsgidRefuses(() => frameHead(reply, 200, [['content-length', '5'], ['Content-Length', ' 5 ']], undefined, VERSION)), false);
  });
});

const HOP_BY_HOP = new Set(['connection', 'transfer-encoding', 'keep-alive', 'content-length']);

describe('frameHead, read by llhttp', () => {
  const tokenChar = fc.constantFrom(...'!#$%&\'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ');
  const name = fc.oneof(
    fc.string({ unit: tokenChar, minLength: 1, maxLength: 16 }),
    fc.constantFrom('Set-Cookie', 'Content-Type', 'connection', 'Transfer-Encoding', 'Keep-Alive', 'Date', 'Location'),
  );
  const valueChar = fc.integer({ min: 0, max: 255 }).filter((c) => c === 9 || (c >= 0x20 && c !== 0x7f)).map((c) => String.fromCharCode(c));
  // llhttp trims the optional whitespace around a value (RFC 9112 §5): none generated there.
  const value = fc.string({ unit: valueChar, maxLength: 30 }).map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
  const status = fc.constantFrom(200, 201, 204, 206, 301, 304, 404, 418, 500, 599, 799, 999);

  test('generated heads and bodies: one complete response, the app\'s status, reason and headers in order, the body whole', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          method: fc.constantFrom('GET', 'HEAD', 'POST'),
          httpVersion: fc.constantFrom('HTTP/1.1', 'HTTP/1.0'),
          keepAlive: fc.boolean(),
          status,
          reason: fc.option(value.filter((v) => v !== '')),
          headers: fc.array(fc.tuple(name, value), { maxLength: 8 }),
          body: fc.oneof(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ minLength: 16, maxLength: 3000 })), // chunk sizes past 9: hex
          length: fc.constantFrom('known', 'unknown', 'app'),
          chunks: fc.integer({ min: 1, max: 4 }),
        }),
        async (c) => {
          const headers = c.headers.filter(([n]) => n.toLowerCase() !== 'content-length');
          if (c.length === 'app') headers.push(['Content-Length', String(c.body.length)]);
          const framed = frameHead(c, c.status, headers, c.length === 'known' ? c.body.length : undefined, VERSION, c.reason ?? undefined);
          const bodyAllowed = c.method !== 'HEAD' && c.status !== 204 && c.status !== 304;
          assert.equal(framed.framing === 'none', !bodyAllowed);
          let body: Buffer = Buffer.alloc(0);
          if (framed.framing === 'length' || framed.framing === 'close') body = Buffer.from(c.body);
          else if (framed.framing === 'chunked') {
            const parts: Buffer[] = [];
            const size = Math.ceil(c.body.length / c.chunks);
            for (let at = 0; at < c.body.length; at += size) {
              const piece = c.body.subarray(at, at + size);
              parts.push(Buffer.from(chunkPrefix(piece.length), 'latin1'), Buffer.from(piece), Buffer.from(CHUNK_SUFFIX, 'latin1'));
            }
            body = Buffer.concat([...parts, Buffer.from(LAST_CHUNK, 'latin1')]);
          }
          const parsed = await parseWithLlhttp(Buffer.concat([Buffer.from(framed.head, 'latin1'), body]), c.method);
          assert.equal(parsed.complete, true, 'a complete message');
          assert.equal(parsed.status, c.status);
          assert.equal(parsed.statusMessage, c.reason ?? STATUS_CODES[c.status] ?? 'Unknown');
          assert.ok(parsed.body.equals(bodyAllowed ? Buffer.from(c.body) : Buffer.alloc(0)), 'the body whole');

          const app = headers.filter(([n]) => !HOP_BY_HOP.has(n.toLowerCase()));
          assert.deepEqual(parsed.headers.slice(0, app.length), app, "the app's headers first, in order, as sent");
          const ours = parsed.headers.slice(app.length);
          const appDate = app.some(([n]) => n.toLowerCase() === 'date');
          const ourNames = ours.map(([n]) => n);
          assert.deepEqual(ourNames.slice(0, appDate ? 1 : 2), appDate ? ['X-Wsgid'] : ['Date', 'X-Wsgid']);
          if (!appDate) assert.ok(!Number.isNaN(Date.parse(ours[0]![1])), 'an HTTP date');
          const connection = ours.find(([n]) => n === 'Connection')?.[1];
          const appClose = c.headers.some(([n, v]) => n.toLowerCase() === 'connection' && /\bclose\b/i.test(v));
          assert.equal(framed.close, !c.keepAlive || appClose || framed.framing === 'close');
          assert.equal(connection, framed.close ? 'close' : c.httpVersion === 'HTTP/1.0' ? 'keep-alive' : undefined);
          const te = ours.find(([n]) => n === 'Transfer-Encoding')?.[1];
          assert.equal(te, framed.framing === 'chunked' ? 'chunked' : undefined);
          const cl = ours.find(([n]) => n === 'Content-Length')?.[1];
          const announced = framed.framing === 'length' || (c.method === 'HEAD' && c.status !== 204 && c.status !== 304 && c.length !== 'unknown');
          assert.equal(cl, announced ? String(c.body.length) : undefined);
        },
      ),
      { seed: SEED, numRuns: 150 },
    );
  });
});

describe('requestKeepAlive (RFC 9112 §9.3)', () => {
  test('HTTP/1.1 keeps the connection unless close; HTTP/1.0 closes unless keep-alive', () => {
    assert.equal(requestKeepAlive('HTTP/1.1', undefined), true);
    assert.equal(requestKeepAlive('HTTP/1.1', 'Close'), false);
    assert.equal(requestKeepAlive('HTTP/1.1', ['keep-alive', 'close']), false);
    assert.equal(requestKeepAlive('HTTP/1.0', undefined), false);
    assert.equal(requestKeepAlive('HTTP/1.0', 'Keep-Alive'), true);
    assert.equal(requestKeepAlive('HTTP/1.0', 'keep-alive, close'), false);
  });
});
