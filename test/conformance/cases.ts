/**
 * Generated conformance cases (fast-check arbitraries): a request (method, path, query, headers,
 * body sent inline, as a mongrel2 async upload, or chunked) and the response the app must make
 * from it (the spec the fixture apps interpret, test/fixtures/conformance/spec.mjs).
 */
import fc from 'fast-check';

export interface ResponseSpec {
  st: number;
  h: Array<[string, string]>;
  k: string;
  c: Array<[number, number]>;
  x: number;
  e: 0 | 1;
  t: 0 | 1;
  cl: 0 | 1;
  sd: number;
}

export type BodyMode = 'none' | 'inline' | 'upload' | 'chunked';

export interface Case {
  method: string;
  version: '1.0' | '1.1';
  /** After the route prefix; starts with '/'. */
  path: string;
  query: string | undefined;
  headers: Array<[string, string]>;
  bodyMode: BodyMode;
  /** The body is made from its size and seed when sent (bodyOf), so failure reports stay short. */
  bodySize: number;
  bodySeed: number;
  /** Sizes of the chunks a chunked body is sent in. */
  splits: number[];
  contentType: string | undefined;
  spec: ResponseSpec;
}

/** How one app under test makes bodies: which kinds it has, and which of them may fail midway. */
export interface GatewayProfile {
  kinds: string[];
  streaming: string[];
  /** Kinds that need text chunks (a JavaScript string body). */
  text?: string[];
  /** The kind used for bodiless statuses (204, 304). */
  empty: string;
  /**
   * false: request header names without `_`. wsgid drops them from a WSGI environ (`x_a` and `x-a`
   * both become HTTP_X_A, so a client could pass for a header a proxy set), as gunicorn ≥ 22, nginx
   * and Apache do; the gunicorn 20 of Debian 12 keeps them. Tested apart in wsgi-names.test.ts.
   */
  underscoreHeaders?: boolean;
}

/** mongrel2's limits.content_length in the suite: larger bodies become async uploads. */
export const INLINE_LIMIT = 4096;

const UNRESERVED = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~';
const SUB_DELIMS = "!$&'()*+,;=:@";
const TOKEN = UNRESERVED.replace('.', '') + "!#$%&'*+^`|";
const HEX = '0123456789ABCDEFabcdef';

const pctEncoded = fc.tuple(fc.constantFrom(...HEX), fc.constantFrom(...HEX)).map(([a, b]) => `%${a}${b}`);
const pathChar = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...UNRESERVED) },
  { weight: 2, arbitrary: fc.constantFrom(...SUB_DELIMS) },
  { weight: 1, arbitrary: pctEncoded },
);
const segment = fc.array(pathChar, { minLength: 0, maxLength: 12 }).map((parts) => parts.join(''));
const pathArb = fc.array(segment, { minLength: 0, maxLength: 4 }).map((segments) => '/' + segments.join('/'));
const queryArb = fc.option(
  fc.array(fc.oneof({ weight: 6, arbitrary: pathChar }, { weight: 1, arbitrary: fc.constantFrom('/', '?', '=', '&') }), {
    minLength: 0,
    maxLength: 40,
  }).map((parts) => parts.join('')),
  { nil: undefined, freq: 3 },
);

const headerName = fc.string({ unit: fc.constantFrom(...TOKEN), minLength: 1, maxLength: 12 });
/** Visible ASCII with inner spaces and tabs, and Latin-1 letters (obs-text) now and then. */
const headerValue = fc
  .array(
    fc.oneof(
      { weight: 12, arbitrary: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)) },
      { weight: 2, arbitrary: fc.constant(' ') },
      { weight: 1, arbitrary: fc.integer({ min: 0xa0, max: 0xff }).map((c) => String.fromCharCode(c)) },
    ),
    { minLength: 0, maxLength: 30 },
  )
  .map((chars) => chars.join('').trim());
/** Request header values: what mongrel2 and node:http both accept (visible ASCII, inner spaces and tabs). */
const requestHeaderValue = fc
  .array(
    fc.oneof(
      { weight: 12, arbitrary: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)) },
      { weight: 2, arbitrary: fc.constant(' ') },
      { weight: 1, arbitrary: fc.constant('\t') },
    ),
    { minLength: 1, maxLength: 30 },
  )
  .map((chars) => chars.join('').trim() || 'v');

/** Names wsgid and the reference servers own (framing, hop-by-hop, Date, our own X-Wsgid). */
const RESERVED = /^(content-length|transfer-encoding|connection|keep-alive|date|x-wsgid|server|trailer|upgrade|te|x-spec)$/i;

function headerList(extraNames: string[]): fc.Arbitrary<Array<[string, string]>> {
  const name = fc.oneof(
    { weight: 4, arbitrary: headerName.map((n) => `x-r-${n}`) },
    { weight: 1, arbitrary: fc.constantFrom('Set-Cookie', 'Cache-Control', 'Vary', 'Location', 'Link', ...extraNames) },
  );
  return fc
    .array(fc.tuple(name, headerValue), { minLength: 0, maxLength: 8 })
    .chain((pairs) =>
      // Repeat some names (Set-Cookie above all): order within a name must survive.
      fc.array(fc.nat({ max: Math.max(0, pairs.length - 1) }), { maxLength: pairs.length === 0 ? 0 : 3 }).chain((repeats) =>
        fc.array(headerValue, { minLength: repeats.length, maxLength: repeats.length }).map((values) => {
          const out = pairs.filter(([n]) => !RESERVED.test(n));
          repeats.forEach((index, i) => {
            const original = out[index];
            if (original) out.push([original[0], values[i]!]);
          });
          return out;
        }),
      ),
    );
}

/** A chunk size: mostly small, sometimes tens of KiB, rarely up to 1 MiB; 0 now and then. */
const chunkSize = fc.oneof(
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 2048 }) },
  { weight: 4, arbitrary: fc.integer({ min: 2049, max: 65536 }) },
  { weight: 1, arbitrary: fc.integer({ min: 65537, max: 1 << 20 }) },
);
/** 0 none, -1 a microtask, -2 setImmediate, N ms (1–20). */
const pauseCode = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.constant(-1) },
  { weight: 2, arbitrary: fc.constant(-2) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 20 }) },
);
const STATUSES = [200, 200, 200, 200, 201, 202, 203, 204, 206, 301, 302, 304, 400, 403, 404, 410, 418, 500, 503];

function specArb(profile: GatewayProfile, method: string): fc.Arbitrary<ResponseSpec> {
  return fc
    .record({
      st: fc.constantFrom(...STATUSES),
      h: headerList(['Content-Type']),
      k: fc.constantFrom(...profile.kinds),
      c: fc.array(fc.tuple(chunkSize, pauseCode), { minLength: 0, maxLength: 8 }),
      fail: fc.nat({ max: 99 }),
      failAt: fc.nat({ max: 8 }),
      e: fc.constantFrom<0 | 1>(0, 1),
      cl: fc.constantFrom<0 | 1>(0, 0, 0, 1),
      sd: fc.nat({ max: 255 }),
    })
    .map(({ st, h, k, c, fail, failAt, e, cl, sd }): ResponseSpec => {
      // Keep whole responses reasonable (2 MiB).
      let total = 0;
      c = k === 'null' ? [] : c.filter(([size]) => (total += size) <= 2 << 20);
      const text: 0 | 1 = profile.text?.includes(k) ? 1 : 0;
      if (st === 204 || st === 304) return { st, h, k: profile.empty, c: [], x: -1, e: 0, t: 0, cl: 0, sd };
      const streaming = profile.streaming.includes(k);
      // A planned failure (about 1 case in 8 for streaming kinds) has no echo: the test must know the bytes.
      // (Not for HEAD: whether a server has sent the head when the bodiless body fails is a race.)
      const x = streaming && fail < 12 && method !== 'HEAD' ? Math.min(failAt, c.length) : -1;
      const echo: 0 | 1 = x >= 0 || method === 'HEAD' ? 0 : e;
      const declared: 0 | 1 = echo ? 0 : cl;
      if (declared) {
        const length = c.reduce((sum, [size]) => sum + size, 0);
        h = [...h.filter(([n]) => !/^content-length$/i.test(n)), ['Content-Length', String(length)]];
      }
      return { st, h, k, c, x, e: echo, t: text, cl: declared, sd };
    });
}

const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const CONTENT_TYPES = ['application/octet-stream', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'application/json'];

export function caseArb(profile: GatewayProfile): fc.Arbitrary<Case> {
  return fc.constantFrom(...METHODS).chain((method) => {
    const hasBody = method === 'POST' || method === 'PUT' || method === 'PATCH';
    const bodyMode: fc.Arbitrary<BodyMode> = hasBody
      ? fc.constantFrom<BodyMode>('inline', 'inline', 'upload', 'chunked')
      : fc.constant<BodyMode>('none');
    return fc
      .record({
        version: fc.constantFrom<'1.0' | '1.1'>('1.1', '1.1', '1.1', '1.1', '1.1', '1.1', '1.1', '1.1', '1.1', '1.0'),
        path: pathArb,
        query: queryArb,
        headers: fc.array(
          fc.tuple(headerName.map((n) => `x-t-${profile.underscoreHeaders === false ? n.replace(/_/g, '-') : n}`), requestHeaderValue),
          { maxLength: 5 },
        ),
        bodyMode,
        inlineSize: fc.integer({ min: 0, max: INLINE_LIMIT }),
        uploadSize: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: INLINE_LIMIT + 1, max: 200_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 200_001, max: 1 << 20 }) }),
        chunkedSize: fc.integer({ min: 0, max: 20_000 }),
        splitSeeds: fc.array(fc.integer({ min: 1, max: 8192 }), { minLength: 1, maxLength: 6 }),
        bodySeed: fc.nat({ max: 255 }),
        contentType: fc.option(fc.constantFrom(...CONTENT_TYPES), { nil: undefined }),
        spec: specArb(profile, method),
      })
      .map((r): Case => {
        // Chunked framing is HTTP/1.1 only (RFC 9112 §6.1); gunicorn refuses it on 1.0, mongrel2 not.
        if (r.version === '1.0' && r.bodyMode === 'chunked') r.bodyMode = 'inline';
        const size = r.bodyMode === 'inline' ? r.inlineSize : r.bodyMode === 'upload' ? r.uploadSize : r.bodyMode === 'chunked' ? r.chunkedSize : 0;
        const splits: number[] = [];
        if (r.bodyMode === 'chunked') {
          let left = size;
          for (let i = 0; left > 0; i++) {
            const take = Math.min(left, r.splitSeeds[i % r.splitSeeds.length]!);
            splits.push(take);
            left -= take;
          }
        }
        return {
          method,
          version: r.version,
          path: r.path,
          query: r.query,
          headers: r.headers,
          bodyMode: r.bodyMode,
          bodySize: size,
          bodySeed: r.bodySeed,
          splits,
          contentType: r.bodyMode === 'none' ? undefined : r.contentType,
          spec: r.spec,
        };
      });
  });
}

/**
 * Requests sent on one connection: 1–4, cut after the first that closes it (HTTP/1.0, a planned
 * failure) or goes the upload path: mongrel2 1.12 writes the bytes of requests pipelined behind an
 * upload into the upload file and never serves them (docs/MONGREL2.md).
 */
export function batchArb(profile: GatewayProfile): fc.Arbitrary<Case[]> {
  return fc.array(caseArb(profile), { minLength: 1, maxLength: 4 }).map((cases) => {
    const end = cases.findIndex((c) => c.version === '1.0' || c.spec.x >= 0 || c.bodyMode === 'upload' || c.bodyMode === 'chunked');
    return end < 0 ? cases : cases.slice(0, end + 1);
  });
}

export function bodyOf(c: Case): Buffer {
  const body = Buffer.allocUnsafe(c.bodySize);
  for (let i = 0; i < c.bodySize; i++) body[i] = (c.bodySeed + i * 31) & 255;
  return body;
}

/** The request's bytes, with `prefix` (the route) in front of the path. */
export function requestBytes(c: Case, prefix: string): Buffer {
  const target = prefix + '/c' + c.path + (c.query === undefined ? '' : '?' + c.query);
  const lines = [`${c.method} ${target} HTTP/${c.version}`, 'Host: conformance.test'];
  if (c.version === '1.0') lines.push('Connection: close');
  lines.push(`x-spec: ${Buffer.from(JSON.stringify(c.spec)).toString('base64url')}`);
  for (const [name, value] of c.headers) lines.push(`${name}: ${value}`);
  if (c.contentType !== undefined) lines.push(`Content-Type: ${c.contentType}`);
  const content = bodyOf(c);
  let body = content;
  if (c.bodyMode === 'chunked') {
    lines.push('Transfer-Encoding: chunked');
    const parts: Buffer[] = [];
    let at = 0;
    for (const size of c.splits) {
      parts.push(Buffer.from(size.toString(16) + '\r\n', 'latin1'), content.subarray(at, at + size), Buffer.from('\r\n'));
      at += size;
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    body = Buffer.concat(parts);
  } else if (c.bodyMode !== 'none') {
    lines.push(`Content-Length: ${c.bodySize}`);
  }
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

/** A short description for failure messages (the spec without its bulk). */
export function describeCase(c: Case): string {
  return JSON.stringify({
    method: c.method,
    version: c.version,
    path: c.path,
    query: c.query,
    headers: c.headers,
    body: `${c.bodyMode} ${c.bodySize} B${c.splits.length ? ` in ${c.splits.length} chunks` : ''}`,
    contentType: c.contentType,
    spec: c.spec,
  });
}
