/**
 * The worker's request checks (http/framing.ts, http/request-target.ts): which framing headers are
 * refused (the integration corpus, test/integration/smuggling.test.ts, checks the same against
 * node:http through a real mongrel2) and how an absolute-form target becomes the app's path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { framingProblem } from '../../src/http/framing.js';
import { originForm, originFormHeaders } from '../../src/http/request-target.js';
import type { Mongrel2Headers } from '../../src/protocol/types.js';

const base: Mongrel2Headers = { METHOD: 'POST', VERSION: 'HTTP/1.1', PATH: '/a', URI: '/a', host: 'x' };
const judge = (extra: Mongrel2Headers, dechunked = false) => framingProblem({ ...base, ...extra }, dechunked);

test('unambiguous framing is served', () => {
  assert.equal(judge({}), undefined);
  assert.equal(judge({ 'content-length': '5' }), undefined);
  assert.equal(judge({ 'content-length': '0' }), undefined);
  assert.equal(judge({ 'content-length': ' 12 ' }), undefined);
  assert.equal(judge({ 'content-length': '30000' }, true), undefined); // a large body, uploaded
  assert.equal(judge({ 'transfer-encoding': 'chunked' }, true), undefined);
  assert.equal(judge({ 'transfer-encoding': 'Chunked' }, true), undefined); // codings are case-insensitive
});

test('Content-Length with Transfer-Encoding (CL.TE, TE.CL) is refused', () => {
  assert.match(judge({ 'content-length': '5', 'transfer-encoding': 'chunked' }) ?? '', /both/);
  assert.match(judge({ 'content-length': '5', 'transfer-encoding': 'chunked' }, true) ?? '', /both/);
});

test('repeated or malformed Content-Length is refused, even when the values agree (as llhttp does)', () => {
  for (const value of [['5', '30'], ['5', '5']]) assert.match(judge({ 'content-length': value }) ?? '', /more than one/);
  for (const value of ['5, 30', '5, 5', '+5', '-1', '0x5', '5a', '', ' ', '1e3', '٥']) {
    assert.match(judge({ 'content-length': value }) ?? '', /not a number/, JSON.stringify(value));
  }
});

test('a Transfer-Encoding mongrel2 did not de-chunk, or not exactly chunked, is refused', () => {
  for (const value of ['xchunked', 'chunked, identity', 'identity', 'gzip, chunked', 'chunked;q=1', '']) {
    assert.match(judge({ 'transfer-encoding': value }, true) ?? '', /other than chunked/, value);
  }
  assert.match(judge({ 'transfer-encoding': ['chunked', 'identity'] }, true) ?? '', /more than one/);
  assert.match(judge({ 'transfer-encoding': 'CHUNKED' }, false) ?? '', /did not decode/);
  assert.match(judge({ 'transfer-encoding': 'chunked', VERSION: 'HTTP/1.0' }, true) ?? '', /HTTP\/1\.0/);
});

test('generated framing headers: refused exactly when the rules say, never thrown on (seeded)', () => {
  const length = fc.oneof(fc.constantFrom('0', '5', '007', '5, 5', '+5', '-1', ' 5'), fc.string({ maxLength: 6 }));
  const coding = fc.oneof(fc.constantFrom('chunked', 'CHUNKED', 'chunked, identity', 'xchunked', ' chunked '), fc.string({ maxLength: 8 }));
  fc.assert(
    fc.property(
      fc.option(fc.oneof(length, fc.array(length, { minLength: 2, maxLength: 5 }))),
      fc.option(fc.oneof(coding, fc.array(coding, { minLength: 2, maxLength: 5 }))),
      fc.boolean(),
      fc.constantFrom('HTTP/1.0', 'HTTP/1.1'),
      (cl, te, dechunked, version) => {
        const headers: Mongrel2Headers = { ...base, VERSION: version };
        if (cl !== null) headers['content-length'] = cl;
        if (te !== null) headers['transfer-encoding'] = te;
        const problem = framingProblem(headers, dechunked);
        const plainLength = cl === null || (typeof cl === 'string' && /^[ \t]*\d+[ \t]*$/.test(cl));
        const plainChunked = te === null || (typeof te === 'string' && te.trim().toLowerCase() === 'chunked' && dechunked && version === 'HTTP/1.1');
        const expectServed = te === null ? plainLength : cl === null && plainChunked;
        assert.equal(problem === undefined, expectServed, JSON.stringify({ cl, te, dechunked, version, problem }));
      },
    ),
    { seed: 9112, numRuns: 2000 },
  );
});

test('an absolute-form target (mongrel2 passes //host/path) becomes its path and query', () => {
  assert.equal(originForm('//evil.example/c'), '/c');
  assert.equal(originForm('//evil.example/c?q=1'), '/c?q=1');
  assert.equal(originForm('//evil.example'), '/');
  assert.equal(originForm('//evil.example?x=1'), '/?x=1');
  assert.equal(originForm('//u:p@evil.example:8443/c/d'), '/c/d');
  assert.equal(originForm('//evil.example//d'), '//d'); // one authority only; the rest is the path
  assert.equal(originForm('/c//d'), '/c//d');
  assert.equal(originForm('/'), '/');
  const headers = originFormHeaders({ ...base, PATH: '//evil.example/c', URI: '//evil.example/c?q=1', QUERY: 'q=1' });
  assert.deepEqual(headers, { ...base, PATH: '/c', URI: '/c?q=1', QUERY: 'q=1' });
  assert.equal(originFormHeaders(base), undefined, 'an origin-form request is not copied');
});

test('originForm agrees with the WHATWG URL parser on generated //authority/path?query references (seeded)', () => {
  const segment = fc.stringMatching(/^[a-z0-9._~!$&'()*+,;=:@-]{1,8}$/).filter((s) => s !== '.' && s !== '..');
  fc.assert(
    fc.property(
      fc.stringMatching(/^[a-z0-9-]{1,10}(\.[a-z]{2,5})?(:[0-9]{1,4})?$/),
      fc.array(segment, { maxLength: 4 }),
      fc.option(fc.stringMatching(/^[a-z0-9=&]{0,10}$/)),
      (authority, segments, query) => {
        const target = `//${authority}${segments.map((s) => '/' + s).join('')}${query === null ? '' : '?' + query}`;
        const url = new URL(target, 'http://routed.example');
        assert.equal(originForm(target), url.pathname + (query === null ? '' : '?' + query), target);
      },
    ),
    { seed: 3986, numRuns: 500 },
  );
});
