/**
 * Request smuggling through mongrel2 (docs/SECURITY.md, "Request smuggling and request targets"):
 * raw bytes a smuggler would send — CL.TE, TE.CL, two Content-Lengths, `Content-Length: 5, 30`,
 * obs-fold, bare LF, chunk extensions, huge chunk sizes, `xchunked`, `chunked, identity`, a space
 * before the colon, absolute-form targets — and seeded variants of them, sent on raw TCP
 * connections through a real mongrel2 to wsgid serving a fetch app, a Node listener, a WSGI and an
 * ASGI app. Every app records each request it sees (method, target, Host, body).
 *
 * The oracle is node:http (llhttp, the strictest reference; gunicorn and uvicorn accept some of
 * these): the same bytes go to the same Node listener on node:http. The rule: what the app under
 * wsgid saw of a case is a prefix of what the reference app saw — the same requests, in order,
 * with the same body boundaries — so a request the reference refused (400) never reaches the app,
 * and nothing the reference read as body ever reaches it as a request (`GET /smug`). wsgid may
 * refuse more (mongrel2 answers some with its own 400, wsgid answers 400 and closes). Two
 * deliberate, documented differences: an absolute-form target reaches the app as its path and
 * query (the reference's req.url keeps the scheme and authority), and a bare LF ends a line for
 * mongrel2 (node:http refuses it; wsgid never sees line ends): there the reference is node:http
 * on the same bytes with CRLF line ends (likewise a chunk size `0x5`). And node:http refuses
 * methods it does not know, which mongrel2 and wsgid pass on (see knownMethods).
 *
 * Seeds: CORPUS_SEED=<n> replays the generated variants (printed at the start).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { REPO_ROOT, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { PYTHON } from '../helpers/python-app.js';
import { prng } from '../helpers/prng.js';
import { exchange } from './raw-http.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'smuggling');
const SEED = process.env.CORPUS_SEED !== undefined ? Number(process.env.CORPUS_SEED) : Date.now() % 2 ** 31;
const GENERATED = 60;
/**
 * A hang is a result, not a failure (mongrel2 waiting for body bytes it was promised): a case
 * whose answers have not all come after this long is closed, which can only shorten what the app
 * saw. Ordinary requests (controls) and refusals get far longer: they must complete.
 */
const HANG_MS = 3000;
const COMPLETE_MS = 30_000;

interface Seen {
  method: string;
  target: string;
  host: string | null;
  body: string;
}

interface Case {
  name: string;
  /** The bytes, with TAG standing for the case's path prefix (`/k12`). */
  raw: string;
  /**
   * A reading mongrel2 makes that node:http refuses and wsgid cannot see (mongrel2 hands on
   * neither line ends nor chunk sizes): the reference is given these bytes instead, the ones
   * mongrel2's reading amounts to. Documented in docs/SECURITY.md.
   */
  mongrel2Reads?: (raw: string) => string;
  /** An ordinary request: it must reach the app exactly as the reference app (the corpus is not vacuous). */
  control?: boolean;
}

const crlf = (raw: string) => raw.replace(/\r?\n/g, '\r\n');

const SMUGGLED = 'GET TAG/smug HTTP/1.1\r\nHost: x\r\n\r\n';
const post = (headers: string, body: string, version = 'HTTP/1.1') =>
  `POST TAG/a ${version}\r\nHost: x\r\n${headers}\r\n${body}${SMUGGLED}`;

/** The fixed corpus. */
const CORPUS: Case[] = [
  { name: 'control: Content-Length', raw: post('Content-Length: 5\r\n', 'hello'), control: true },
  { name: 'control: chunked', raw: post('Transfer-Encoding: chunked\r\n', '2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n'), control: true },
  { name: 'control: no body', raw: 'GET TAG/c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n' + SMUGGLED, control: true },
  { name: 'CL.TE', raw: post('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n') },
  { name: 'TE.CL', raw: post('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', '0\r\n\r\n') },
  { name: 'CL.TE, TE obfuscated', raw: post('Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n', '0\r\n\r\n') },
  { name: 'two Content-Lengths', raw: post('Content-Length: 5\r\nContent-Length: 30\r\n', 'hello') },
  { name: 'two equal Content-Lengths', raw: post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello') },
  { name: 'Content-Length: 5, 30', raw: post('Content-Length: 5, 30\r\n', 'hello') },
  { name: 'Content-Length: 5, 5', raw: post('Content-Length: 5, 5\r\n', 'hello') },
  { name: 'Content-Length: +5', raw: post('Content-Length: +5\r\n', 'hello') },
  { name: 'Content-Length: -1', raw: post('Content-Length: -1\r\n', 'hello') },
  { name: 'Content-Length: 0x5', raw: post('Content-Length: 0x5\r\n', 'hello') },
  { name: 'obs-fold', raw: post('X-A: a\r\n b\r\nContent-Length: 5\r\n', 'hello') },
  { name: 'obs-fold of Content-Length', raw: post('Content-Length: 0\r\n 5\r\n', 'hello') },
  { name: 'bare LF everywhere', raw: post('Content-Length: 5\r\n', 'hello').replace(/\r\n/g, '\n'), mongrel2Reads: crlf },
  { name: 'bare LF in one header line', raw: 'POST TAG/a HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\nhello' + SMUGGLED, mongrel2Reads: crlf },
  { name: 'chunk extension', raw: post('Transfer-Encoding: chunked\r\n', '5;a=b\r\nhello\r\n0\r\n\r\n') },
  { name: 'chunk extension with quotes', raw: post('Transfer-Encoding: chunked\r\n', '5;a="b;c"\r\nhello\r\n0\r\n\r\n') },
  { name: 'huge chunk size', raw: post('Transfer-Encoding: chunked\r\n', 'FFFFFFFFFFFFFFFFF5\r\nhello\r\n0\r\n\r\n') },
  { name: 'chunk size with leading zeros', raw: post('Transfer-Encoding: chunked\r\n', '0005\r\nhello\r\n0\r\n\r\n') },
  // mongrel2 reads the chunk size `0x5` as 5 (llhttp refuses it).
  { name: 'chunk size 0x', raw: post('Transfer-Encoding: chunked\r\n', '0x5\r\nhello\r\n0\r\n\r\n'), mongrel2Reads: (raw: string) => raw.replace('0x5', '5') },
  { name: 'chunk with trailers', raw: post('Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n') },
  { name: 'Transfer-Encoding: xchunked', raw: post('Transfer-Encoding: xchunked\r\n', '0\r\n\r\n') },
  { name: 'Transfer-Encoding: chunked, identity', raw: post('Transfer-Encoding: chunked, identity\r\n', '0\r\n\r\n') },
  { name: 'Transfer-Encoding: identity, chunked', raw: post('Transfer-Encoding: identity, chunked\r\n', '0\r\n\r\n') },
  { name: 'two Transfer-Encodings', raw: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n', '0\r\n\r\n') },
  { name: 'Transfer-Encoding: CHUNKED', raw: post('Transfer-Encoding: CHUNKED\r\n', '5\r\nhello\r\n0\r\n\r\n') },
  { name: 'Transfer-Encoding with a tab', raw: post('Transfer-Encoding:\tchunked\r\n', '5\r\nhello\r\n0\r\n\r\n') },
  { name: 'Transfer-Encoding in HTTP/1.0', raw: post('Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n', 'HTTP/1.0') },
  { name: 'space before the colon of Content-Length', raw: post('Content-Length : 5\r\n', 'hello') },
  { name: 'space before the colon of Transfer-Encoding', raw: post('Transfer-Encoding : chunked\r\nContent-Length: 5\r\n', '0\r\n\r\n') },
  { name: 'HTTP/1.0 without keep-alive, a request pipelined behind', raw: post('Content-Length: 5\r\n', 'hello', 'HTTP/1.0') },
  { name: 'Connection: close, a request pipelined behind', raw: post('Connection: close\r\nContent-Length: 5\r\n', 'hello') },
  { name: 'absolute-form target', raw: 'GET http://evil.example/TAG/c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n' },
  { name: 'absolute-form target, https and a port', raw: 'GET https://evil.example:8443/TAG/c/d?x HTTP/1.1\r\nHost: x\r\n\r\n' },
  { name: 'absolute-form target with userinfo', raw: 'GET http://u:p@evil.example/TAG/c HTTP/1.1\r\nHost: x\r\n\r\n' },
].map((c) => ({ ...c, raw: c.raw.replace(/\/TAG/g, 'TAG') }));

/** Seeded variants: framing headers, their spelling and order, and bodies mixed at random. */
function generated(seed: number, count: number): Case[] {
  const rand = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const payload = pick(['hello', '', 'a\r\n\r\nb', '0\r\n\r\n']);
    const chunked = rand() < 0.5;
    let body = payload;
    if (chunked) {
      const parts: string[] = [];
      for (let at = 0; at < payload.length; ) {
        // A chunk never claims more than is left: a size beyond its data is a framing error only
        // mongrel2 sees (it de-chunks; wsgid gets the body), read one way by it and another by
        // llhttp, so no prefix rule can hold for it (CORPUS_SEED=1392309882, case 51).
        const n = 1 + Math.floor(rand() * (payload.length - at));
        const size = pick([n.toString(16), n.toString(16).toUpperCase(), '00' + n.toString(16)]);
        parts.push(`${size}${pick(['', '', ';ext', ';e="x;y"'])}\r\n${payload.slice(at, at + n)}\r\n`);
        at += n;
      }
      body = parts.join('') + '0\r\n' + pick(['', 'X-Trailer: t\r\n']) + '\r\n';
    }
    const lengths = [String(body.length), String(payload.length), String(Math.floor(rand() * 40))];
    const headers: string[] = [];
    const lengthName = () => pick(['Content-Length', 'content-length', 'CONTENT-LENGTH']);
    const codingName = () => pick(['Transfer-Encoding', 'transfer-encoding']);
    const colon = () => pick([': ', ':', ':\t', ': ', ': ']);
    const clCount = chunked ? pick([0, 0, 1, 2]) : pick([1, 1, 1, 2]);
    for (let k = 0; k < clCount; k++) {
      const value = pick([pick(lengths), pick(lengths), `${pick(lengths)}, ${pick(lengths)}`, `+${pick(lengths)}`, `${pick(lengths)} `]);
      headers.push(`${lengthName()}${colon()}${value}\r\n`);
    }
    const teCount = chunked ? pick([1, 1, 1, 2]) : pick([0, 0, 0, 1]);
    for (let k = 0; k < teCount; k++) {
      const value = pick(['chunked', 'chunked', 'Chunked', 'CHUNKED', 'xchunked', 'chunked, identity', 'identity', ' chunked', 'chunked ']);
      headers.push(`${codingName()}${colon()}${value}\r\n`);
    }
    for (let k = headers.length - 1; k > 0; k--) {
      const j = Math.floor(rand() * (k + 1));
      [headers[k], headers[j]] = [headers[j]!, headers[k]!];
    }
    const version = rand() < 0.15 ? 'HTTP/1.0' : 'HTTP/1.1';
    cases.push({ name: `generated ${i} (seed ${seed})`, raw: post(headers.join(''), body, version) });
  }
  return cases;
}

const CASES: Case[] = [...CORPUS, ...generated(SEED, GENERATED)];
const tagOf = (index: number) => `/k${index}`;
const bytesOf = (c: Case, index: number) => Buffer.from(c.raw.replace(/TAG/g, tagOf(index)), 'latin1');

/** The case a recorded request belongs to, from its target. */
function caseIndex(target: string): number | undefined {
  const match = /^\/k(\d+)\//.exec(target);
  return match ? Number(match[1]) : undefined;
}

/**
 * The reference's target as the app under wsgid is given it (the one documented difference):
 * an absolute-form target, and a path starting with `//` (mongrel2 delivers both alike), as its
 * path and query.
 */
function originForm(target: string): string {
  if (!/^([a-z][a-z0-9+.-]*:)?\/\//i.test(target)) return target;
  const url = new URL(target, 'http://reference.invalid');
  return url.pathname + url.search;
}

/**
 * The requests up to the first whose method node:http does not know. node:http refuses any method
 * outside its list (http.METHODS); mongrel2 and wsgid take any token (RFC 9110 §9.1: WebDAV,
 * custom methods). A body cut short by a wrong Content-Length can leave `ET /k1/smug HTTP/1.1`
 * behind it: the same framing on both sides, then a request only one side accepts.
 */
function knownMethods(seen: Seen[]): Seen[] {
  const unknown = seen.findIndex((s) => !http.METHODS.includes(s.method));
  return unknown < 0 ? seen : seen.slice(0, unknown);
}

/** node:http with the Node listener: every request it hands the app, by case. */
async function referenceOutcome(): Promise<Map<number, Seen[]>> {
  const { listener } = (await import(pathToFileURL(path.join(FIXTURES, 'node-app.mjs')).href)) as {
    listener: (log: (seen: Seen) => void) => http.RequestListener;
  };
  const seen = new Map<number, Seen[]>();
  const record = (s: Seen) => {
    const index = caseIndex(originForm(s.target));
    if (index !== undefined) seen.set(index, [...(seen.get(index) ?? []), s]);
  };
  const server = http.createServer(listener(record));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    for (const [index, c] of CASES.entries()) {
      let bytes = bytesOf(c, index);
      if (c.mongrel2Reads) bytes = Buffer.from(c.mongrel2Reads(bytes.toString('latin1')), 'latin1');
      // The client half-closes: node:http answers every request it parsed, then closes. No timing.
      await new Promise<void>((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => {});
        socket.on('close', () => resolve());
        socket.resume();
        socket.end(bytes);
      });
    }
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  return seen;
}

interface Gateway {
  name: string;
  files: Record<string, string>;
  args: string[];
  workers: number;
  protocol: 'json' | 'tnetstring';
}

const GATEWAYS: Gateway[] = [
  { name: 'fetch', files: { 'fetch-app.mjs': 'fetch-app.mjs' }, args: ['--wsgi-app=fetch-app.mjs'], workers: 0, protocol: 'tnetstring' },
  { name: 'node', files: { 'node-app.mjs': 'node-app.mjs' }, args: ['--wsgi-app=node-app.mjs'], workers: 1, protocol: 'json' },
  { name: 'wsgi', files: { 'wsgi_app.py': 'wsgi_app.py' }, args: [`--python=${PYTHON}`, '--wsgi-app=wsgi_app:application'], workers: 1, protocol: 'json' },
  { name: 'asgi', files: { 'asgi_app.py': 'asgi_app.py' }, args: [`--python=${PYTHON}`, '--asgi=asgi_app:app'], workers: 1, protocol: 'tnetstring' },
];

interface Served {
  m2: Mongrel2Handle;
  wsgid: WsgidProcess;
  dir: string;
}

async function serveGateway(gateway: Gateway): Promise<Served> {
  const m2 = await startMongrel2({
    handlers: [{ name: 'app', route: '/', protocol: gateway.protocol }],
    settings: { 'upload.temp_store': '/tmp/upload.XXXXXX' },
  });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-smuggling-'));
  try {
    await mkdir(path.join(dir, 'app'));
    for (const [name, fixture] of Object.entries(gateway.files)) await cp(path.join(FIXTURES, fixture), path.join(dir, 'app', name));
    const args = [`--workers=${gateway.workers}`, '--graceful-timeout=10', '--stdout', ...gateway.args];
    if (m2.chrooted) args.push(`--mongrel2-chroot=${m2.dir}`);
    const wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, args), { cwd: dir, readyUrl: `${m2.baseUrl}/ready`, readyTimeoutMs: 30_000 });
    return { m2, wsgid, dir };
  } catch (error) {
    await m2.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The app's log: JavaScript apps run in the app folder, Python apps in its app/. */
async function readSeen(dir: string): Promise<string> {
  const logs = await Promise.all([path.join(dir, 'seen.jsonl'), path.join(dir, 'app', 'seen.jsonl')].map((file) => readFile(file, 'utf8').catch(() => '')));
  return logs.join('');
}

/** What the app under wsgid saw, by case (read once wsgid has drained and exited). */
async function appOutcome(dir: string): Promise<Map<number, Seen[]>> {
  const seen = new Map<number, Seen[]>();
  const text = await readSeen(dir);
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const s = JSON.parse(line) as Seen;
    const index = caseIndex(s.target);
    if (index !== undefined) seen.set(index, [...(seen.get(index) ?? []), s]);
  }
  return seen;
}

/** Run `work` over `items` with at most `limit` at once. */
async function pooled<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

const show = (c: Case, index: number) => `${c.name}: ${JSON.stringify(bytesOf(c, index).toString('latin1'))}`;

console.log(`smuggling corpus: ${CORPUS.length} fixed cases, ${GENERATED} generated with CORPUS_SEED=${SEED}`);

describe('request smuggling through mongrel2: every gateway sees what node:http sees, or less', () => {
  let reference: Map<number, Seen[]>;
  before(async () => {
    reference = await referenceOutcome();
  });

  for (const gateway of GATEWAYS) {
    describe(`${gateway.name} (--workers=${gateway.workers}, ${gateway.protocol})`, () => {
      let served: Served;
      let outcome: Map<number, Seen[]>;
      before(async () => {
        served = await serveGateway(gateway);
        await pooled([...CASES.keys()], 6, async (index) => {
          const expected = reference.get(index)?.length ?? 0;
          const hangMs = CASES[index]!.control ? COMPLETE_MS : HANG_MS;
          await exchange(served.m2.port, bytesOf(CASES[index]!, index), Array(expected + 1).fill('POST'), { hangMs });
        });
        // A graceful stop serves (or drops) everything mongrel2 handed over: the log is complete.
        assert.equal(await served.wsgid.stop(), 0, served.wsgid.output());
        outcome = await appOutcome(served.dir);
      });
      after(async () => {
        await served?.m2.stop();
        if (served) await rm(served.dir, { recursive: true, force: true });
      });

      test('each case reaches the app as a prefix of what reached the reference app', () => {
        const failures: string[] = [];
        for (const [index, c] of CASES.entries()) {
          const ours = knownMethods(outcome.get(index) ?? []);
          const theirs = (reference.get(index) ?? []).map((s) => ({ ...s, target: originForm(s.target) }));
          // The last request may see its body end early: the client left (mongrel2 closed the
          // connection on bytes it refused) and the gateway cancelled the request.
          const same = (s: Seen, t: Seen | undefined, last: boolean) =>
            t !== undefined && s.method === t.method && s.target === t.target && s.host === t.host && (s.body === t.body || (last && t.body.startsWith(s.body)));
          const prefix = ours.length <= theirs.length && ours.every((s, i) => same(s, theirs[i], i === ours.length - 1));
          if (!prefix) failures.push(`${show(c, index)}\n  app under wsgid: ${JSON.stringify(ours)}\n  reference app:   ${JSON.stringify(theirs)}`);
        }
        assert.deepEqual(failures, [], `${failures.length} case(s) differ (CORPUS_SEED=${SEED}):\n${failures.join('\n')}`);
      });

      test('the ordinary requests of the corpus reach the app exactly as the reference app', () => {
        for (const [index, c] of CASES.entries()) {
          if (!c.control) continue;
          const theirs = reference.get(index) ?? [];
          assert.equal(theirs.length, 2, `the reference saw both requests of ${c.name}`);
          assert.deepEqual(outcome.get(index), theirs, show(c, index));
        }
      });

      test('no smuggled request ever reaches the app unless the reference read it as a request', () => {
        for (const [index, c] of CASES.entries()) {
          const smuggled = knownMethods(outcome.get(index) ?? []).filter((s) => s.target.endsWith('/smug'));
          const legit = (reference.get(index) ?? []).filter((s) => s.target.endsWith('/smug'));
          assert.ok(smuggled.length <= legit.length, show(c, index));
        }
      });

      test('an absolute-form target reaches the app as its path and query, with the Host mongrel2 routed on', () => {
        for (const [index, c] of CASES.entries()) {
          if (!c.name.startsWith('absolute-form')) continue;
          const seen = outcome.get(index) ?? [];
          assert.equal(seen.length, 1, show(c, index));
          assert.equal(seen[0]!.target, originForm(c.raw.split(' ')[1]!.replace(/TAG/g, tagOf(index))), show(c, index));
          assert.ok(seen[0]!.target.startsWith(tagOf(index) + '/c'), seen[0]!.target);
          assert.equal(seen[0]!.host, 'x');
        }
      });
    });
  }
});

describe('ambiguous framing mongrel2 passes on: 400 and close from wsgid, for every gateway', () => {
  // Each is answered by wsgid (mongrel2 finds nothing wrong in what follows, so it does not answer
  // first with a 400 of its own, as it does for `Transfer-Encoding: CHUNKED`).
  const refused = ['CL.TE', 'two Content-Lengths', 'Content-Length: 5, 30', 'Content-Length: +5', 'Transfer-Encoding in HTTP/1.0', 'two Transfer-Encodings'];
  for (const gateway of GATEWAYS) {
    test(`${gateway.name}: one 400 from wsgid, the connection closed, nothing behind it served`, { timeout: 120_000 }, async () => {
      const served = await serveGateway(gateway);
      try {
        for (const name of refused) {
          const index = CASES.findIndex((c) => c.name === name);
          const result = await exchange(served.m2.port, bytesOf(CASES[index]!, index), ['POST', 'GET'], { hangMs: COMPLETE_MS, awaitClose: true });
          assert.equal(result.responses.length, 1, `${name}: ${JSON.stringify(result)}`);
          const [response] = result.responses;
          assert.equal(response!.status, 400, name);
          assert.ok(response!.headers.some(([n, v]) => n.toLowerCase() === 'x-wsgid' && v !== ''), `${name}: wsgid's own answer`);
          assert.equal(result.closed, true, `${name}: closed`);
        }
        // The worker keeps serving: an ordinary request on a new connection.
        const ok = await exchange(served.m2.port, Buffer.from('GET /after HTTP/1.1\r\nHost: x\r\n\r\n'), ['GET'], { hangMs: COMPLETE_MS });
        assert.equal(ok.responses[0]?.status, 200, JSON.stringify(ok));
        assert.equal(await served.wsgid.stop(), 0);
        const seen = await readSeen(served.dir);
        assert.match(seen, /"\/after"/, 'the app log is where the test reads it');
        assert.doesNotMatch(seen, /\/k\d+\//, 'no refused request (nor what followed it) reached the app');
        assert.match(served.wsgid.output(), /WSGID_ERR_REQUEST_FRAMING/);
      } finally {
        await served.wsgid.stop();
        await served.m2.stop();
        await rm(served.dir, { recursive: true, force: true });
      }
    });
  }
});
