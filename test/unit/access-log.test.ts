/**
 * The access log line format (Apache combined + %D) and its file handling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createAccessLogger, escapeField, formatAccessLine, formatClfTime } from '../../src/log/access-log.js';
import { resolveSettings } from '../../src/config/resolve.js';

test('combined format with the response time in microseconds', () => {
  const time = new Date(2000, 9, 10, 13, 55, 36);
  const line = formatAccessLine({
    remoteAddr: '127.0.0.1',
    method: 'GET',
    uri: '/a.gif?x=1',
    httpVersion: 'HTTP/1.1',
    status: 200,
    bytes: 2326,
    referer: 'http://example.com/',
    userAgent: 'Mozilla/5.0 "quoted"',
    durationMs: 1.8434,
    time,
  });
  assert.equal(
    line,
    `127.0.0.1 - - ${formatClfTime(time)} "GET /a.gif?x=1 HTTP/1.1" 200 2326 "http://example.com/" "Mozilla/5.0 \\"quoted\\"" 1843\n`,
  );
  assert.match(formatClfTime(time), /^\[10\/Oct\/2000:13:55:36 [+-]\d{4}\]$/);
});

test('empty values become "-"; control characters are escaped', () => {
  const line = formatAccessLine({ remoteAddr: '', method: 'HEAD', uri: '/\x1b', httpVersion: 'HTTP/1.0', status: 304, bytes: 0, durationMs: 0 });
  assert.match(line, /^- - - \[[^\]]+\] "HEAD \/\\x1b HTTP\/1.0" 304 - "-" "-" 0\n$/);
  assert.equal(escapeField('a\\b'), 'a\\\\b');
});

test('daemon: logs/access.log, buffered per turn, reopen after a rotation; --no-access-log: nothing', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-access-'));
  try {
    mkdirSync(path.join(dir, 'logs'));
    const { settings } = resolveSettings({ appPath: dir });
    const log = createAccessLogger(settings);
    const entry = { remoteAddr: '10.0.0.1', method: 'GET', uri: '/', httpVersion: 'HTTP/1.1', status: 200, bytes: 2, durationMs: 1 };
    log.log(entry);
    await new Promise((r) => setImmediate(r));
    renameSync(path.join(dir, 'logs', 'access.log'), path.join(dir, 'logs', 'access.log.1'));
    log.reopen();
    log.log({ ...entry, status: 404 });
    log.close();
    assert.match(readFileSync(path.join(dir, 'logs', 'access.log.1'), 'utf8'), /" 200 2 /);
    assert.match(readFileSync(path.join(dir, 'logs', 'access.log'), 'utf8'), /" 404 2 /);
    const off = createAccessLogger({ ...settings, accessLog: false });
    assert.equal(off.enabled, false);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
