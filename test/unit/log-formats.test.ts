/**
 * The pure parts of logging: JSON lines (pino's field names), the text line's detail
 * block, the access log as JSON, cutting captured output into lines (seeded random chunking), the
 * captured-output writer's bounded queue, and the load-failure helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatJsonLine, formatTextLine, jsonValue } from '../../src/log/logger.js';
import { formatAccessJson, formatAccessLine, type AccessLogEntry } from '../../src/log/access-log.js';
import { AppOutputLog, formatOutputLine, LineSplitter, MAX_LINE_BYTES } from '../../src/log/app-output.js';
import { codeFrame, firstFrameLocation, missingPythonModule, relativeImports } from '../../src/worker/load-failure.js';
import { prng } from '../helpers/prng.js';


const ALPHABET = ['a', 'b', ' ', '"', '\\', '=', '\t', 'é', '€', '😀', '\u0000', '\u001b', '\u007f', '\u0085', '\u2028'];
function randomText(rand: () => number, max = 40): string {
  let s = '';
  const n = Math.floor(rand() * max);
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

test('JSON lines: pino core fields, fields after, colliding keys renamed, errors serialized, always parseable', () => {
  const rand = prng(10);
  for (let i = 0; i < 300; i++) {
    const message = randomText(rand);
    const value = randomText(rand);
    const line = formatJsonLine(1_700_000_000_123, 'warn', 'worker 2', 4242, message, { value, pid: 7, n: i, missing: undefined });
    assert.ok(line.endsWith('}\n'));
    assert.equal(line.indexOf('\n'), line.length - 1, 'one line');
    assert.doesNotMatch(line.slice(0, -1), /[\x00-\x1f\x7f-\x9f\u2028]/, 'no raw control bytes');
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.deepEqual(parsed, { level: 40, time: 1_700_000_000_123, pid: 4242, hostname: os.hostname(), role: 'worker 2', msg: message, value, _pid: 7, n: i });
  }
  const error = Object.assign(new Error('boom'), { code: 'EBOOM' });
  const parsed = JSON.parse(formatJsonLine(0, 'error', 'master', 1, 'failed', { error })) as { level: number; error: Record<string, unknown> };
  assert.equal(parsed.level, 50);
  assert.deepEqual({ ...parsed.error, stack: undefined }, { type: 'Error', message: 'boom', code: 'EBOOM', stack: undefined });
  assert.match(String(parsed.error.stack), /^Error: boom\n/);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.equal(typeof JSON.parse(jsonValue(cyclic)), 'string');
  assert.equal(JSON.parse(jsonValue(10n)), '10');
});

test('text lines: a multi-line detail follows indented (never starting like a log line), controls escaped', () => {
  const line = formatTextLine(new Date(0), 'error', 'worker 1', 9, 'app load error', { exitCode: 4, detail: 'Traceback:\n  File "x"\n\u001b[31mBoom\n' });
  assert.equal(line, '1970-01-01T00:00:00.000Z ERROR [worker 1 9] app load error exitCode=4\n  Traceback:\n    File "x"\n  \\u001b[31mBoom\n');
  assert.equal(formatTextLine(new Date(0), 'info', 'm', 1, 'x', { detail: 'one line' }), '1970-01-01T00:00:00.000Z INFO  [m 1] x detail="one line"\n');
});

test('access log as JSON: pino-http names, the values of the entry, for generated entries', () => {
  const rand = prng(20);
  for (let i = 0; i < 300; i++) {
    const entry: AccessLogEntry = {
      remoteAddr: rand() < 0.2 ? '' : `10.0.0.${i % 256}`,
      method: ['GET', 'POST', 'PUT'][i % 3]!,
      uri: '/' + randomText(rand),
      httpVersion: 'HTTP/1.1',
      status: 200 + Math.floor(rand() * 400),
      bytes: Math.floor(rand() * 1e6),
      referer: rand() < 0.5 ? undefined : randomText(rand),
      userAgent: rand() < 0.5 ? undefined : randomText(rand),
      durationMs: rand() * 1000,
    };
    const line = formatAccessJson(entry, 1_700_000_000_000, 99);
    assert.equal(line.indexOf('\n'), line.length - 1);
    const parsed = JSON.parse(line) as { req: Record<string, unknown>; res: Record<string, unknown>; responseTime: number; time: number; pid: number; level: number; msg: string };
    assert.equal(parsed.msg, 'request completed');
    assert.equal(parsed.level, 30);
    assert.equal(parsed.time, 1_700_000_000_000);
    assert.equal(parsed.pid, 99);
    assert.equal(parsed.req.method, entry.method);
    assert.equal(parsed.req.url, entry.uri);
    assert.equal(parsed.req.remoteAddress, entry.remoteAddr || undefined);
    assert.equal(parsed.req.referer, entry.referer || undefined);
    assert.equal(parsed.req.userAgent, entry.userAgent || undefined);
    assert.deepEqual(parsed.res, { statusCode: entry.status, bytes: entry.bytes });
    assert.ok(Math.abs(parsed.responseTime - entry.durationMs) < 0.001);
    // The text format of the same entry stays the Apache combined line.
    assert.match(formatAccessLine(entry), new RegExp(`" ${entry.status} `));
  }
});

test('captured output is cut into the same lines however the bytes arrive (seeded chunking, UTF-8 split anywhere)', () => {
  const rand = prng(30);
  for (let round = 0; round < 50; round++) {
    const lines = Array.from({ length: 1 + Math.floor(rand() * 20) }, () => randomText(rand).replace(/\u0000/g, '').replace(/\r/g, ''));
    const text = lines.map((l, i) => l + (i % 3 === 0 ? '\r\n' : '\n')).join('');
    const bytes = Buffer.from(text, 'utf8');
    const got: string[] = [];
    const splitter = new LineSplitter((l) => got.push(l));
    for (let at = 0; at < bytes.length; ) {
      const size = 1 + Math.floor(rand() * 7);
      splitter.push(bytes.subarray(at, at + size));
      at += size;
    }
    splitter.end();
    assert.deepEqual(got, lines);
  }
  const got: string[] = [];
  const splitter = new LineSplitter((l) => got.push(l));
  splitter.push(Buffer.alloc(MAX_LINE_BYTES * 2 + 5, 'x'));
  splitter.push(Buffer.from('tail'));
  splitter.end();
  assert.deepEqual(got.map((l) => l.length), [MAX_LINE_BYTES, MAX_LINE_BYTES, 9], 'a line without end is cut, not held forever');
});

test('captured output: tags in both formats', () => {
  const tag = { worker: 3, pid: 77, stream: 'stderr' as const };
  assert.equal(formatOutputLine('text', 0, tag, 'hello'), '1970-01-01T00:00:00.000Z [worker 3 77 stderr] hello\n');
  assert.deepEqual(JSON.parse(formatOutputLine('json', 5, tag, 'x"y')), { level: 40, time: 5, pid: 77, hostname: os.hostname(), worker: 3, stream: 'stderr', msg: 'x"y' });
});

test('captured output: while the disk lags, the queue is bounded, drops are counted and reported; reopen follows a rename', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-appout-'));
  try {
    const file = path.join(dir, 'app.log');
    const log = new AppOutputLog({ open: () => openSync(file, 'a'), format: 'text', maxPendingBytes: 2000, now: () => 0 });
    const tag = { worker: 1, pid: 2, stream: 'stdout' as const };
    // One synchronous burst: the first line's write is in flight, the rest wait for it or are dropped.
    for (let i = 0; i < 200; i++) log.line(tag, `line ${i}`);
    assert.ok(log.dropped > 0 && log.dropped < 200, `some dropped (${log.dropped})`);
    await log.drained();
    const written = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(written.filter((l) => / line \d+$/.test(l)).length, 200 - log.dropped);
    assert.ok(written.includes(`1970-01-01T00:00:00.000Z [master ${process.pid}] ${log.dropped} line(s) of app output dropped: the disk did not keep up`));
    renameSync(file, `${file}.1`);
    log.reopen();
    log.line(tag, 'after');
    await log.close();
    assert.equal(readFileSync(file, 'utf8'), '1970-01-01T00:00:00.000Z [worker 1 2 stdout] after\n');
    assert.doesNotMatch(readFileSync(`${file}.1`, 'utf8'), /after/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('load failures: a missing Python module, stack locations, Node-style code frames, relative imports', () => {
  assert.equal(missingPythonModule("Traceback (most recent call last):\n  File \"a.py\"\nModuleNotFoundError: No module named 'django.core'\n"), 'django.core');
  assert.equal(missingPythonModule('ImportError: cannot import name x'), undefined);
  assert.deepEqual(firstFrameLocation('Error: x\n    at node:internal/a:1:2\n    at file:///app/a.mjs:3:9\n'), { location: 'file:///app/a.mjs', line: 3, column: 9 });
  assert.deepEqual(firstFrameLocation('Error: x\n    at f (/app/b.cjs:12:1)'), { location: '/app/b.cjs', line: 12, column: 1 });
  assert.equal(codeFrame('file:///a.mjs', 2, 7, 'one\nthrow new Error()\n'), 'file:///a.mjs:2\nthrow new Error()\n      ^\n');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-imports-'));
  try {
    for (const f of ['a.mjs', 'b.js', 'c.cjs']) openSync(path.join(dir, f), 'w');
    const found = relativeImports(path.join(dir, 'main.mjs'), 'import x from "./a.mjs";\nconst b = await import("./b");\nrequire(\'./c.cjs\');\nimport y from "pkg";\nimport "./missing.js";');
    assert.deepEqual(found, ['a.mjs', 'b.js', 'c.cjs'].map((f) => path.join(dir, f)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
