/**
 * Streaming as ORDER, against the reference servers: the client must see each chunk before the
 * app produces the next one. The app, after producing chunk k, asks a control server this test
 * runs (GET /wait?id&k) and blocks until the test's client has received every byte up to the end
 * of chunk k; a chunk still not at the client BOUND_MS later means "not streamed" (the wait then
 * answers anyway so that nothing hangs, and the case fails). No speed is measured: on a slow
 * machine everything takes longer, the order stays.
 *
 * The same seeded cases (2–4 chunks of 1 B to 70 kB, with or without a declared Content-Length,
 * each way the fixture can produce them; 5–8 Server-Sent Events, past the first four messages of a
 * response after which wsgid's reply coalescing waits up to 25 ms for more) go to the reference (gunicorn, uvicorn, node:http,
 * @hono/node-server: it defines what "streamed" means, and must pass too) and to wsgid behind a
 * real mongrel2 in the four variants of the conformance suite (--workers=0 and 1, JSON and
 * tnetstring handlers). Fixtures in test/fixtures/streaming: a WSGI app (generator and write()),
 * the same with --threads, a raw ASGI app (awaiting, and blocking its loop as sync code does),
 * a fetch handler (pulled and pushed ReadableStreams), a Node listener (res.write and pipeline),
 * Flask Server-Sent Events as Flask's docs write them, and a Django StreamingHttpResponse in a
 * `django-admin startproject` project, under WSGI and under --asgi=auto.
 *
 * STREAMING_SEED=<seed> replays a run (default: CONFORMANCE_SEED, else the clock);
 * CONFORMANCE_ONLY=<text> runs the suites whose name contains it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { prng } from '../helpers/prng.js';
import { REPO_ROOT } from '../helpers/wsgid.js';
import { gunicornReference, honoReference, nodeReference, underWsgid, uvicornReference, type Reference, type UnderTest } from './servers.js';

const STREAM_FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'streaming');
const PYTHON = '/usr/bin/python3';
const SEED = Number(process.env.STREAMING_SEED ?? process.env.CONFORMANCE_SEED ?? Date.now() % 2 ** 31);
/** A chunk not at the client this long after the app produced it was held back: not streamed. */
const BOUND_MS = 10_000;
const ONLY = process.env.CONFORMANCE_ONLY?.toLowerCase();

// -- the control server: the apps' side channel ---------------------------------------------------

class Control {
  private readonly received = new Set<string>();
  private readonly waiting = new Map<string, () => void>();
  /** "id/k" of every chunk the app waited for in vain (not at the client after BOUND_MS). */
  readonly late = new Set<string>();
  private readonly server = http.createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const key = `${query.get('id')}/${query.get('k')}`;
    const answer = (word: string): void => void res.end(word);
    if (this.received.has(key)) return answer('go');
    const timer = setTimeout(() => {
      this.waiting.delete(key);
      this.late.add(key);
      answer('late');
    }, BOUND_MS);
    this.waiting.set(key, () => {
      clearTimeout(timer);
      answer('go');
    });
  });
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** The client has every byte up to the end of chunk k of stream `id`. */
  receivedChunk(id: string, k: number): void {
    const key = `${id}/${k}`;
    this.received.add(key);
    this.waiting.get(key)?.();
    this.waiting.delete(key);
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// -- generated cases --------------------------------------------------------------------------------

interface StreamCase {
  id: string;
  sizes: number[];
  kind: string;
  cl: boolean;
}

function generateCases(seed: number, suite: StreamSuite, label: string): StreamCase[] {
  const { cases: count, kinds, lengths } = suite;
  const [fewest, most] = suite.chunks ?? [2, 4];
  const random = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const size = (): number => {
    const r = random();
    return r < 0.4 ? int(1, 16) : r < 0.85 ? int(17, 4096) : int(4097, 70_000);
  };
  return Array.from({ length: count }, (_, i) => ({
    id: `${label}-${i}`,
    sizes: Array.from({ length: int(fewest, most) }, size),
    kind: kinds[(i + int(0, kinds.length - 1)) % kinds.length]!,
    cl: lengths && random() < 0.5,
  }));
}

/** Chunk k as the fixtures make it (stream_spec.py, stream-spec.mjs). */
function chunkBytes(k: number, size: number, sse: boolean): Buffer {
  const payload = Buffer.alloc(size, String.fromCharCode(97 + (k % 26)));
  return sse ? Buffer.concat([Buffer.from('data: '), payload, Buffer.from('\n\n')]) : payload;
}

function describeCase(c: StreamCase): string {
  return `${c.id}: kind=${c.kind || '-'} sizes=${c.sizes.join(',')}${c.cl ? ' content-length' : ''} (replay: STREAMING_SEED=${SEED})`;
}

/**
 * GET the stream and tell the control server when each chunk is complete at the client. Resolves
 * with the status and the decoded body; rejects on a hang (every wait timing out, and then some).
 */
function fetchStream(port: number, prefix: string, c: StreamCase, control: Control, sse: boolean): Promise<{ status: number; body: Buffer; type: string }> {
  const ends: number[] = [];
  let total = 0;
  for (const [k, size] of c.sizes.entries()) ends.push((total += chunkBytes(k, size, sse).length));
  const query = `id=${encodeURIComponent(c.id)}&ctrl=${control.port}&sizes=${c.sizes.join('.')}&kind=${c.kind}&cl=${c.cl ? 1 : 0}&sse=${sse ? 1 : 0}`;
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `${prefix}/stream?${query}`, agent: false }, (res) => {
      const parts: Buffer[] = [];
      let got = 0;
      let next = 0;
      res.on('data', (data: Buffer) => {
        parts.push(data);
        got += data.length;
        while (next < ends.length && got >= ends[next]!) control.receivedChunk(c.id, next++);
      });
      res.on('end', () => {
        clearTimeout(hang);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), type: String(res.headers['content-type'] ?? '') });
      });
      res.on('error', reject);
    });
    const hang = setTimeout(() => req.destroy(new Error(`no complete response in ${(c.sizes.length + 3) * BOUND_MS} ms`)), (c.sizes.length + 3) * BOUND_MS);
    req.on('error', (error) => {
      clearTimeout(hang);
      reject(error);
    });
  });
}

async function checkCase(where: string, port: number, prefix: string, c: StreamCase, control: Control, sse: boolean): Promise<void> {
  const what = `${where}, ${describeCase(c)}`;
  const answer = await fetchStream(port, prefix, c, control, sse);
  assert.equal(answer.status, 200, `status (${what}): ${answer.body.subarray(0, 500).toString('latin1')}`);
  if (sse) assert.match(answer.type, /^text\/event-stream/, `content-type (${what})`);
  const planned = Buffer.concat(c.sizes.map((size, k) => chunkBytes(k, size, sse)));
  assert.ok(answer.body.equals(planned), `body: ${answer.body.length} B, planned ${planned.length} B (${what})`);
  const late = c.sizes.slice(0, -1).map((_, k) => k).filter((k) => control.late.has(`${c.id}/${k}`));
  assert.deepEqual(late, [], `chunks ${late.join(', ')} had not reached the client ${BOUND_MS / 1000} s after the app produced them, the app waiting: not streamed (${what})`);
}

// -- the suites ---------------------------------------------------------------------------------------

interface StreamSuite {
  name: string;
  /** Ways the fixture produces its chunks (its `kind` query parameter). */
  kinds: string[];
  /** The fixture may declare a Content-Length. */
  lengths: boolean;
  /** The chunks are Server-Sent Events. */
  sse?: boolean;
  /** Cases per variant (and for the reference). */
  cases: number;
  /** Chunks per stream, fewest and most (default 2–4). */
  chunks?: [number, number];
  /** The folder holding the app's files (made once, when it is a generated project). */
  source(): Promise<string>;
  files: string[];
  reference(from: string): Promise<Reference>;
  extra: string[];
}

const fixtures = (): Promise<string> => Promise.resolve(STREAM_FIXTURES);
const PY_SPEC = 'stream_spec.py';
const JS_SPEC = 'stream-spec.mjs';

/** A project from `django-admin startproject` with a StreamingHttpResponse view added (made once). */
let djangoProject: Promise<string> | undefined;
const django = (): Promise<string> => (djangoProject ??= makeDjangoProject());
const temporary: string[] = [];

async function makeDjangoProject(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-streaming-django-'));
  temporary.push(dir);
  execFileSync(PYTHON, ['-m', 'django', 'startproject', 'mysite', dir]);
  const settings = path.join(dir, 'mysite', 'settings.py');
  await writeFile(settings, (await readFile(settings, 'utf8')).replace('ALLOWED_HOSTS = []', "ALLOWED_HOSTS = ['*']"));
  await cp(path.join(STREAM_FIXTURES, PY_SPEC), path.join(dir, PY_SPEC));
  await cp(path.join(STREAM_FIXTURES, 'django_stream_views.py'), path.join(dir, 'mysite', 'stream_views.py'));
  const urls = path.join(dir, 'mysite', 'urls.py');
  await writeFile(
    urls,
    (await readFile(urls, 'utf8')) +
      '\nfrom django.urls import re_path  # noqa: E402\nfrom mysite.stream_views import index, stream  # noqa: E402\n\n' +
      "urlpatterns += [re_path(r'^(?:[^/]+/)?stream$', stream), re_path(r'^(?:[^/]+/)?$', index)]\n",
  );
  return dir;
}

const DJANGO_FILES = ['manage.py', 'mysite', PY_SPEC];
const SUITES: StreamSuite[] = [
  {
    name: 'WSGI generator and write() vs gunicorn',
    kinds: ['gen', 'write'],
    lengths: true,
    cases: 4,
    source: fixtures,
    files: [PY_SPEC, 'streaming_wsgi.py'],
    reference: (from) => gunicornReference('streaming_wsgi:application', from),
    extra: ['--wsgi-app=streaming_wsgi:application', `--python=${PYTHON}`],
  },
  {
    name: 'WSGI with --threads=4 vs gunicorn',
    kinds: ['gen', 'write'],
    lengths: true,
    cases: 3,
    source: fixtures,
    files: [PY_SPEC, 'streaming_wsgi.py'],
    reference: (from) => gunicornReference('streaming_wsgi:application', from),
    extra: ['--wsgi-app=streaming_wsgi:application', `--python=${PYTHON}`, '--threads=4'],
  },
  {
    name: 'ASGI more_body vs uvicorn',
    kinds: ['await', 'block'],
    lengths: true,
    cases: 4,
    source: fixtures,
    files: [PY_SPEC, 'streaming_asgi.py'],
    reference: (from) => uvicornReference('streaming_asgi:application', from),
    extra: ['--asgi=streaming_asgi:application', `--python=${PYTHON}`],
  },
  {
    name: 'fetch ReadableStream vs @hono/node-server',
    kinds: ['pull', 'push'],
    lengths: true,
    cases: 4,
    source: fixtures,
    files: [JS_SPEC, 'streaming-fetch.mjs'],
    reference: (from) => honoReference('streaming-fetch.mjs', from),
    extra: ['--wsgi-app=streaming-fetch.mjs'],
  },
  {
    name: 'Node res.write() and pipeline() vs node:http',
    kinds: ['write', 'pipeline'],
    lengths: true,
    cases: 4,
    source: fixtures,
    files: [JS_SPEC, 'streaming-node.mjs'],
    reference: (from) => nodeReference('streaming-node.mjs', from),
    extra: ['--wsgi-app=streaming-node.mjs'],
  },
  {
    name: 'Flask Server-Sent Events vs gunicorn',
    kinds: [''],
    lengths: false,
    sse: true,
    cases: 2,
    chunks: [5, 8],
    source: fixtures,
    files: [PY_SPEC, 'flask_sse.py'],
    reference: (from) => gunicornReference('flask_sse:app', from),
    extra: ['--wsgi-app=flask_sse:app', `--python=${PYTHON}`],
  },
  {
    name: 'Django StreamingHttpResponse (startproject, WSGI) vs gunicorn',
    kinds: [''],
    lengths: false,
    sse: true,
    cases: 2,
    chunks: [5, 8],
    source: django,
    files: DJANGO_FILES,
    reference: (from) => gunicornReference('mysite.wsgi:application', from),
    extra: [`--python=${PYTHON}`],
  },
  {
    name: 'Django StreamingHttpResponse (startproject) under --asgi=auto vs uvicorn',
    kinds: [''],
    lengths: false,
    sse: true,
    cases: 2,
    chunks: [5, 8],
    source: django,
    files: DJANGO_FILES,
    reference: (from) => uvicornReference('mysite.asgi:application', from),
    extra: ['--asgi=auto', `--python=${PYTHON}`],
  },
];

const control = new Control();
before(() => control.start());
after(async () => {
  await control.stop();
  await Promise.all(temporary.map((dir) => rm(dir, { recursive: true, force: true })));
});

for (const [index, suite] of SUITES.entries()) {
  if (ONLY !== undefined && !suite.name.toLowerCase().includes(ONLY)) continue;
  describe(`streaming order — ${suite.name}`, () => {
    let reference: Reference;
    let served: UnderTest;
    before(async () => {
      const from = await suite.source();
      reference = await suite.reference(from);
      served = await underWsgid(suite.files, suite.extra, from);
    });
    after(async () => {
      await reference?.stop();
      const codes = await served?.stop();
      assert.deepEqual(codes, codes?.map(() => 0), 'every wsgid stops cleanly');
    });

    const seed = (SEED + index * 7919) % 2 ** 31;
    const sse = suite.sse ?? false;

    test('the reference server streams: each chunk reaches the client before the app produces the next', { timeout: 10 * 60_000 }, async () => {
      console.log(`# ${suite.name}: seed ${SEED}`);
      for (const c of generateCases(seed, suite, `s${index}-ref`)) {
        await checkCase('reference', reference.port, '/ref', c, control, sse);
      }
    });

    test('wsgid streams the same way (workers=0 and 1, JSON and tnetstring handlers)', { timeout: 10 * 60_000 }, async () => {
      try {
        await Promise.all(
          served.variants.map(async (variant) => {
            const label = `s${index}-${variant.prefix.slice(1)}`;
            for (const c of generateCases(seed, suite, label)) {
              await checkCase(`wsgid ${variant.name}`, served.port, variant.prefix, c, control, sse);
            }
          }),
        );
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${served.diagnostics()}`);
      }
    });
  });
}
