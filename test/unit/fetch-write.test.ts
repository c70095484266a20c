/**
 * gateways/fetch/write.ts and response.ts: a fetch Response as the bytes wsgid writes, read back
 * by llhttp (node:http's parser), against undici's own Response (Node's `Response`) as the oracle:
 * for generated bodies (strings with any Unicode, bytes, null, Blob, URLSearchParams, pulled and
 * pushed ReadableStreams with pauses) and inits (plain objects, arrays, Headers, Set-Cookie
 * repeats, statusText), the status, reason, headers and body a client parses are what undici's
 * Response holds: `status`, `statusText`, `headers` (plus getSetCookie()) and `arrayBuffer()`.
 * Each case is written three ways: a LightResponse (the fast path), a LightResponse whose headers
 * were touched (the standard path it falls back to), and Node's own Response (--standard-response).
 *
 * Known differences (not generated, written here): LightResponse accepts what undici's constructor
 * refuses — a body with status 204/304, an invalid statusText or header value — and wsgid refuses
 * the head at write time instead (http/head.ts), or writes a 204/304 without the body.
 *
 * UNIT_SEED=<n> replays (fast-check prints the seed of a failure).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { STATUS_CODES } from 'node:http';
import fc from 'fast-check';
import { LightResponse } from '../../src/gateways/fetch/response.js';
import { writeResponse } from '../../src/gateways/fetch/write.js';
import { TestReply } from '../helpers/reply-channel.js';
import { parseWithLlhttp, type LlhttpResponse } from '../helpers/llhttp.js';

const SEED = Number(process.env.UNIT_SEED ?? 2214);
const StandardResponse = globalThis.Response;
const OURS = new Set(['date', 'x-wsgid', 'content-length', 'transfer-encoding', 'connection']);

type Pause = 'none' | 'microtask' | 'immediate';
type BodySpec =
  | { kind: 'null' }
  | { kind: 'string'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'blob'; bytes: Uint8Array; type: string }
  | { kind: 'params'; pairs: Array<[string, string]> }
  | { kind: 'pull' | 'push'; chunks: Uint8Array[]; pause: Pause };

const wait = (pause: Pause): Promise<void> =>
  pause === 'none' ? Promise.resolve() : pause === 'microtask' ? new Promise((r) => queueMicrotask(r)) : new Promise((r) => setImmediate(r));

/** A fresh body for each Response built from the spec (a stream is read once). */
function makeBody(spec: BodySpec): BodyInit | null {
  switch (spec.kind) {
    case 'null':
      return null;
    case 'string':
      return spec.text;
    case 'bytes':
      return spec.bytes.slice();
    case 'blob':
      return new Blob([spec.bytes.slice()], { type: spec.type });
    case 'params':
      return new URLSearchParams(spec.pairs);
    case 'pull': {
      let k = 0;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          await wait(spec.pause);
          if (k < spec.chunks.length) controller.enqueue(spec.chunks[k++]!.slice());
          else controller.close();
        },
      });
    }
    case 'push': {
      let cancelled = false; // a HEAD response cancels the body: stop pushing
      return new ReadableStream<Uint8Array>({
        start(controller) {
          void (async () => {
            for (const chunk of spec.chunks) {
              await wait(spec.pause);
              if (cancelled) return;
              controller.enqueue(chunk.slice());
            }
            controller.close();
          })();
        },
        cancel() {
          cancelled = true;
        },
      });
    }
  }
}

type InitSpec = { status: number; statusText?: string; headers: Array<[string, string]>; as: 'object' | 'array' | 'Headers' | 'none' };

function makeInit(spec: InitSpec): ResponseInit | undefined {
  if (spec.as === 'none') return spec.statusText === undefined && spec.status === 200 ? undefined : { status: spec.status, statusText: spec.statusText };
  const headers: HeadersInit =
    spec.as === 'object' ? Object.fromEntries(spec.headers) : spec.as === 'array' ? spec.headers.map(([n, v]): [string, string] => [n, v]) : new Headers(spec.headers);
  const init: ResponseInit = { status: spec.status, headers };
  if (spec.statusText !== undefined) init.statusText = spec.statusText;
  return init;
}

/** Header lines grouped as a client reads them: by lowercased name, repeats joined with ", ", Set-Cookie apart. */
function semantic(lines: Iterable<readonly [string, string]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [rawName, value] of lines) {
    const name = rawName.toLowerCase();
    if (OURS.has(name)) continue;
    if (name === 'set-cookie') ((out[name] ??= []) as string[]).push(value);
    else out[name] = out[name] === undefined ? value : `${out[name] as string}, ${value}`;
  }
  return out;
}

async function oracle(body: BodySpec, init: InitSpec): Promise<{ status: number; statusText: string; headers: Record<string, string | string[]>; body: Buffer }> {
  const response = new StandardResponse(makeBody(body), makeInit(init));
  const headers = semantic([...response.headers].filter(([n]) => n !== 'set-cookie'));
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  return { status: response.status, statusText: response.statusText, headers, body: Buffer.from(await response.arrayBuffer()) };
}

async function written(response: Response, method: string, httpVersion: string): Promise<{ reply: TestReply; parsed: LlhttpResponse }> {
  const reply = new TestReply({ method, httpVersion });
  await writeResponse(reply, response, 'wsgid-test');
  assert.equal(reply.ended, true, 'the response ended');
  assert.deepEqual(reply.violations, []);
  return { reply, parsed: await parseWithLlhttp(reply.data(), method) };
}

const latin1Text = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c)), maxLength: 20 });
const headerValue = latin1Text.map((v) => v.trim()); // undici trims HTTP whitespace; llhttp too
const headerName = fc.oneof(
  fc.constantFrom('Set-Cookie', 'set-cookie', 'Content-Type', 'Cache-Control', 'X-A', 'x-a', 'Vary'),
  fc.string({ unit: fc.constantFrom(...'abcxyz-_09!#$%&\'*+.^`|~'), minLength: 1, maxLength: 10 }),
);
const chunks = fc.array(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 1000, maxLength: 70_000 })), { maxLength: 5 });
const bodySpec: fc.Arbitrary<BodySpec> = fc.oneof(
  fc.constant({ kind: 'null' as const }),
  fc.string({ unit: 'binary', maxLength: 200 }).map((text) => ({ kind: 'string' as const, text })),
  fc.uint8Array({ maxLength: 3000 }).map((bytes) => ({ kind: 'bytes' as const, bytes })),
  fc.record({ kind: fc.constant('blob' as const), bytes: fc.uint8Array({ maxLength: 300 }), type: fc.constantFrom('', 'image/png', 'text/html;charset=utf-8') }),
  fc.record({ kind: fc.constant('params' as const), pairs: fc.array(fc.tuple(fc.string({ unit: 'binary', maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 8 })), { maxLength: 4 }) }),
  fc.record({ kind: fc.constantFrom('pull' as const, 'push' as const), chunks, pause: fc.constantFrom<Pause>('none', 'microtask', 'immediate') }),
);

describe('a fetch Response as wsgid writes it, read by llhttp, against undici', () => {
  test('generated responses: status, reason, headers and body as undici holds them; framing complete', async () => {
    await fc.assert(
      fc.asyncProperty(
        bodySpec,
        fc.record({
          status: fc.constantFrom(200, 201, 204, 206, 304, 404, 418, 500, 599),
          statusText: fc.option(latin1Text.map((t) => t.trim()).filter((t) => t !== ''), { nil: undefined }),
          headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
          as: fc.constantFrom('object' as const, 'array' as const, 'Headers' as const, 'none' as const),
        }),
        fc.constantFrom('GET', 'HEAD'),
        fc.constantFrom('HTTP/1.1', 'HTTP/1.0'),
        async (body, init, method, httpVersion) => {
          if (init.status === 204 || init.status === 304) body = { kind: 'null' }; // undici refuses a body there
          const expected = await oracle(body, init);
          const variants: Array<[string, () => Response]> = [
            ['LightResponse', () => new LightResponse(makeBody(body), makeInit(init)) as unknown as Response],
            ['LightResponse, headers touched', () => {
              const r = new LightResponse(makeBody(body), makeInit(init)) as unknown as Response;
              void r.headers.has('x'); // builds the standard Response underneath
              return r;
            }],
            ['Response', () => new StandardResponse(makeBody(body), makeInit(init))],
          ];
          for (const [label, make] of variants) {
            const { parsed } = await written(make(), method, httpVersion);
            assert.equal(parsed.complete, true, `${label}: a complete message`);
            assert.equal(parsed.status, expected.status, label);
            assert.equal(parsed.statusMessage, expected.statusText || (STATUS_CODES[expected.status] ?? 'Unknown'), `${label}: reason`);
            assert.deepEqual(semantic(parsed.headers), expected.headers, `${label}: headers`);
            const bodyAllowed = method !== 'HEAD' && expected.status !== 204 && expected.status !== 304;
            assert.ok(parsed.body.equals(bodyAllowed ? expected.body : Buffer.alloc(0)), `${label}: body`);
            if (method === 'HEAD' && body.kind !== 'pull' && body.kind !== 'push' && bodyAllowed === false && expected.status < 300) {
              const length = parsed.headers.find(([n]) => n.toLowerCase() === 'content-length')?.[1];
              if (length !== undefined) assert.equal(Number(length), expected.body.length, `${label}: a HEAD announces the GET's length`);
            }
          }
        },
      ),
      { seed: SEED, numRuns: 120 },
    );
  });

  test('Response.json(): LightResponse.json written as undici\'s Response.json is', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.constantFrom(200, 201, 400, 422), fc.constantFrom(undefined, 'application/problem+json'), async (data, status, type) => {
        const init: ResponseInit = type === undefined ? { status } : { status, headers: { 'Content-Type': type } };
        const expected = await oracle({ kind: 'string', text: JSON.stringify(data) }, { status, headers: [['content-type', type ?? 'application/json']], as: 'array' });
        const fromUndici = StandardResponse.json(data, init);
        assert.deepEqual(semantic([...fromUndici.headers]), expected.headers, 'the oracle agrees with itself');
        const { parsed } = await written(LightResponse.json(data, init), 'GET', 'HTTP/1.1');
        assert.equal(parsed.status, fromUndici.status);
        assert.deepEqual(semantic(parsed.headers), semantic([...fromUndici.headers]));
        assert.ok(parsed.body.equals(Buffer.from(await fromUndici.arrayBuffer())));
      }),
      { seed: SEED, numRuns: 60 },
    );
  });

  test('a stream still producing is sent chunked on HTTP/1.1, close-delimited on HTTP/1.0; each chunk reaches the channel before the next is made', async () => {
    for (const httpVersion of ['HTTP/1.1', 'HTTP/1.0']) {
      const reply = new TestReply({ httpVersion });
      let release: () => void = () => {};
      const produced: number[] = [];
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const k = produced.length;
          if (k === 3) return controller.close();
          if (k > 0) await new Promise<void>((resolve) => (release = resolve)); // the test says when
          produced.push(k);
          controller.enqueue(new TextEncoder().encode(`chunk ${k};`));
        },
      });
      const writing = writeResponse(reply, new StandardResponse(stream), 'wsgid-test');
      for (let k = 1; k <= 3; k++) {
        const deadline = Date.now() + 30_000; // bounds a hang only
        while (!reply.text().includes(`chunk ${k - 1};`)) {
          assert.ok(Date.now() < deadline && !reply.ended, `chunk ${k - 1} never reached the channel: ${JSON.stringify(reply.text())}`);
          await new Promise((r) => setImmediate(r));
        }
        release();
      }
      await writing;
      const parsed = await parseWithLlhttp(reply.data());
      assert.equal(parsed.complete, true);
      assert.equal(parsed.body.toString(), 'chunk 0;chunk 1;chunk 2;');
      const te = parsed.headers.find(([n]) => n === 'Transfer-Encoding')?.[1];
      assert.equal(te, httpVersion === 'HTTP/1.1' ? 'chunked' : undefined);
      assert.equal(reply.closeAfter, httpVersion === 'HTTP/1.0', 'HTTP/1.0: the end of the body is the close');
    }
  });

  test('back-pressure: no write while the channel says wait; the body still whole', async () => {
    const reply = new TestReply({ backPressure: 'manual' });
    const chunk = new Uint8Array(1000).fill(0x41);
    let k = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((r) => setImmediate(r));
        if (k++ < 20) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const writing = writeResponse(reply, new StandardResponse(stream), 'wsgid-test');
    const deadline = Date.now() + 30_000; // bounds a hang only
    while (!reply.ended) {
      assert.ok(Date.now() < deadline, `the response never ended (${reply.bytes} bytes)`);
      await new Promise((r) => setImmediate(r));
      reply.release();
    }
    await writing;
    assert.ok(reply.maxOutstandingWhileWaiting <= 4, `${reply.maxOutstandingWhileWaiting} writes between two drains (at most the head and one chunk: prefix, data, suffix)`);
    const parsed = await parseWithLlhttp(reply.data());
    assert.equal(parsed.body.length, 20_000);
  });

  test('the client gone mid-stream: the stream is cancelled, nothing more is read', async () => {
    const reply = new TestReply();
    const controller = new AbortController();
    let cancelled = false;
    let pulls = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(c) {
        pulls++;
        if (pulls === 3) {
          reply.clientGone();
          controller.abort();
        }
        await new Promise((r) => setImmediate(r));
        c.enqueue(new Uint8Array(10));
      },
      cancel() {
        cancelled = true;
      },
    });
    await writeResponse(reply, new StandardResponse(stream), 'wsgid-test', () => controller.signal);
    assert.equal(cancelled, true);
    assert.ok(pulls <= 5, `${pulls} pulls`);
  });
});
