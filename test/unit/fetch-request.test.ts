/**
 * gateways/fetch/request.ts: the LightRequest a fetch app gets, from a real mongrel2 message
 * (written by the test's own encoder, read by src/protocol), against undici's own Request (Node's
 * `Request`) as the oracle: for generated methods, client headers (repeats, any Latin-1), paths,
 * queries and bodies, LightRequest's members equal those of `new Request(light.url, {method,
 * headers, body})`; and whatever the client's Host says (every byte value), the URL stays valid
 * and its path and query are the ones mongrel2 routed (it found a Host with a port past 65535 or a
 * dotted number past 255 making `request.url` no valid URL).
 *
 * Known difference (written here, not generated): `blob().type` is the Content-Type lowercased, as
 * `new Blob([], {type})` makes it; undici parses and re-serialises the MIME type (`Text/HTML;
 * Charset=UTF-8` → `text/html;charset=utf-8`, an invalid one → '').
 *
 * UNIT_SEED=<n> replays (fast-check prints the seed of a failure).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseMessage } from '../../src/protocol/index.js';
import { LightRequest } from '../../src/gateways/fetch/request.js';
import type { GatewayRequest } from '../../src/gateways/types.js';
import { frame, jsonHeaders, type Headers as M2Headers } from './protocol-helpers.js';

const SEED = Number(process.env.UNIT_SEED ?? 2215);
const StandardRequest = globalThis.Request;

function source(method: string, path: string, query: string | undefined, client: Array<[string, string]>, body: Uint8Array): GatewayRequest {
  const headers: M2Headers = { PATH: path, METHOD: method, VERSION: 'HTTP/1.1', URI: query === undefined ? path : `${path}?${query}`, PATTERN: '/' };
  if (query !== undefined) headers['QUERY'] = query;
  for (const [name, value] of client) {
    const seen = headers[name];
    headers[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  const message = parseMessage(frame('54c6755b-9628-40a4-9a2d-cc82a816345e', 3, path, jsonHeaders(headers), Buffer.from(body)));
  return { message, signal: new AbortController().signal };
}

const light = (s: GatewayRequest): Request => new LightRequest(s) as unknown as Request;

const pathChar = fc.constantFrom(...'abcXYZ019-._~!$&\'()*+,;=:@%/');
const path = fc.string({ unit: pathChar, maxLength: 20 }).map((p) => '/' + p);
const query = fc.option(fc.string({ unit: fc.constantFrom(...'ab=&%20+?/:@'), maxLength: 12 }), { nil: undefined });
const headerName = fc.oneof(fc.constantFrom('host', 'content-type', 'accept', 'cookie', 'x-a'), fc.string({ unit: fc.constantFrom(...'abcxyz-_09'), minLength: 1, maxLength: 8 }));
const headerValue = fc
  .string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength: 20 })
  .map((v) => v.trim());
const method = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS');

describe('LightRequest against undici\'s Request', () => {
  test('generated messages: method, url, headers and body as undici\'s Request for the same input', async () => {
    await fc.assert(
      fc.asyncProperty(method, path, query, fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }), fc.uint8Array({ maxLength: 2000 }), fc.constantFrom('bytes', 'text', 'arrayBuffer', 'blob', 'body'), async (m, p, q, client, body, reader) => {
          const s = source(m, p, q, client, body);
          const request = light(s);
          const hasBody = m !== 'GET' && m !== 'HEAD';
          const oracle = new StandardRequest(request.url, { method: m, headers: client.filter(([n]) => n !== 'host'), body: hasBody ? Buffer.from(body) : undefined, duplex: 'half' } as RequestInit);
          assert.equal(request instanceof StandardRequest, true, 'instanceof Request');
          assert.equal(request.method, oracle.method);
          assert.equal(new URL(request.url).pathname + new URL(request.url).search, new URL(oracle.url).pathname + new URL(oracle.url).search);
          const expectedHeaders = new Headers(client);
          assert.deepEqual([...request.headers], [...expectedHeaders], 'headers as undici\'s Headers holds them');
          assert.deepEqual(request.headers.getSetCookie(), expectedHeaders.getSetCookie());
          assert.equal(request.bodyUsed, false);
          const read = async (r: Request): Promise<Buffer> => {
            if (reader === 'bytes') return Buffer.from(await (r as unknown as { bytes(): Promise<Uint8Array> }).bytes());
            if (reader === 'text') return Buffer.from(await r.text());
            if (reader === 'arrayBuffer') return Buffer.from(await r.arrayBuffer());
            if (reader === 'blob') return Buffer.from(await (await r.blob()).arrayBuffer());
            return r.body === null ? Buffer.alloc(0) : Buffer.from(await new Response(r.body).arrayBuffer());
          };
          const got = await read(request);
          const want = await read(oracle);
          assert.ok(got.equals(want), `${reader}(): the body as undici reads it`);
          // Read twice: both refuse the same way (a TypeError), or both give an empty body (no body: undici allows it).
          const again = await read(request).then(() => 'ok', (e: unknown) => (e instanceof TypeError ? 'TypeError' : String(e)));
          const againOracle = await read(oracle).then(() => 'ok', (e: unknown) => (e instanceof TypeError ? 'TypeError' : String(e)));
          if (hasBody) assert.equal(again, againOracle, 'a second read');
          if (hasBody) assert.equal(request.bodyUsed, oracle.bodyUsed);
        },
      ),
      { seed: SEED, numRuns: 200 },
    );
  });

  test('members LightRequest delegates (cache, mode, redirect, clone…) are those of a real Request', async () => {
    const s = source('POST', '/a/b', 'x=1', [['host', 'example.org:8080'], ['content-type', 'text/plain']], Buffer.from('hello'));
    const request = light(s);
    const oracle = new StandardRequest('http://example.org:8080/a/b?x=1', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    assert.equal(request.url, oracle.url);
    for (const member of ['cache', 'mode', 'redirect', 'credentials', 'referrer', 'referrerPolicy', 'integrity', 'keepalive', 'destination'] as const) {
      assert.equal(request[member], oracle[member], member);
    }
    assert.equal(Object.prototype.toString.call(request), Object.prototype.toString.call(oracle));
    const clone = request.clone();
    assert.equal(await clone.text(), 'hello');
    assert.equal(await request.text(), 'hello', 'the clone leaves the original readable');
  });

  test('blob().type: the Content-Type as undici gives it when it is already in normal form, none without one', async () => {
    for (const type of ['text/plain', 'application/json', undefined]) {
      const client: Array<[string, string]> = type === undefined ? [] : [['content-type', type]];
      const request = light(source('POST', '/', undefined, client, Buffer.from('x')));
      const oracle = new StandardRequest('http://localhost/', { method: 'POST', headers: client, body: Buffer.from('x') });
      assert.equal((await request.blob()).type, (await oracle.blob()).type);
    }
  });

  test('the Host header changes the authority only: any byte in it leaves the URL valid and the routed path and query', () => {
    const hostChar = fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: hostChar, maxLength: 20 }), fc.constantFrom('x/admin?', '[::1', 'a@b', '%zz', 'evil.org/..', 'h:99999', '[::1]:8080', 'example.org.', '1.2.3.999', '4294967296', '[:::]', 'h:65535')), path, query, (host, p, q) => {
        const url = light(source('GET', p, q, [['host', host]], new Uint8Array())).url;
        const parsed = new URL(url); // throws if invalid
        const routed = new URL('http://localhost' + p + (q === undefined ? '' : '?' + q));
        assert.equal(parsed.pathname, routed.pathname, `Host ${JSON.stringify(host)}`);
        assert.equal(parsed.search, routed.search, `Host ${JSON.stringify(host)}`);
        assert.equal(parsed.username + parsed.password, '', 'no userinfo from a Host');
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });
});
