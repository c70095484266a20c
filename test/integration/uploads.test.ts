/**
 * Async uploads through a real mongrel2 (limits.content_length 4096: bigger bodies and every chunked
 * body go to a temp file, docs/MONGREL2.md §4): the app gets the body streamed from the file, the file
 * is removed afterwards (also when the client leaves mid-upload), headers a client forges are not
 * taken for mongrel2's, an unreadable file gets a 500 with a reason in the log, and a 1 GB upload
 * does not grow the worker's memory.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chown, open, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { request } from '../helpers/http.js';
import { eventually, launch, rssOf, run, startPushServer, type PushServer, usePushServer } from '../helpers/push.js';

const MB = 1024 * 1024;

interface UploadAnswer {
  bytes: number;
  sha256: string;
  rss?: number;
}

async function uploadFiles(s: PushServer): Promise<string[]> {
  const tmp = path.join(s.m2.chrooted ? s.m2.dir : s.m2.dir, 'tmp');
  return (await readdir(tmp)).filter((name) => name.startsWith('upload.'));
}

for (const workers of [0, 1]) {
  describe(`async uploads (--workers=${workers})`, () => {
    let s!: PushServer;
    usePushServer({ workers }, (server) => (s = server));

    test('a 100 KB body arrives whole through request.text() and request.body; the file is removed', async () => {
      const body = randomBytes(100 * 1024).toString('base64').slice(0, 100 * 1024);
      const expected = createHash('sha256').update(body).digest('hex');
      for (const target of ['/upload-text', '/upload']) {
        const res = await request(`${s.url}${target}`, { method: 'POST', body, timeoutMs: 20_000 });
        assert.equal(res.status, 200, s.diagnostics());
        const answer = JSON.parse(res.text) as UploadAnswer;
        assert.equal(answer.bytes, body.length);
        assert.equal(answer.sha256, expected);
      }
      await eventually('upload files removed', async () => (await uploadFiles(s)).length === 0);
    });

    test('a chunked body (curl, Transfer-Encoding: chunked) takes the upload path and arrives whole', async () => {
      const file = path.join(os.tmpdir(), `wsgid-chunked-${process.pid}-${workers}`);
      const data = randomBytes(300 * 1024);
      await writeFile(file, data);
      try {
        const out = await run('curl', ['-sS', '-X', 'POST', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${file}`, `${s.url}/upload`]);
        assert.equal(out.code, 0, out.stderr);
        const answer = JSON.parse(out.stdout) as UploadAnswer;
        assert.equal(answer.bytes, data.length);
        assert.equal(answer.sha256, createHash('sha256').update(data).digest('hex'));
      } finally {
        await rm(file, { force: true });
      }
      await eventually('upload files removed', async () => (await uploadFiles(s)).length === 0);
    });

    test('the app does not read the body: the file is removed all the same', async () => {
      const res = await request(`${s.url}/slow-upload-reader?ms=10`, { method: 'POST', body: randomBytes(50_000), timeoutMs: 20_000 });
      assert.equal(res.text, 'ignored the body');
      await eventually('upload files removed', async () => (await uploadFiles(s)).length === 0);
    });

    test('the client disconnects mid-upload: the temp file is removed', async () => {
      const file = path.join(os.tmpdir(), `wsgid-partial-${process.pid}-${workers}`);
      await writeFile(file, randomBytes(4 * MB));
      try {
        const curl = launch('curl', ['-sS', '--limit-rate', '256k', '-X', 'POST', '-T', file, `${s.url}/upload`]);
        await eventually('the upload file to appear', async () => (await uploadFiles(s)).length > 0, 10_000);
        await new Promise((r) => setTimeout(r, 500));
        curl.kill('SIGKILL');
        await eventually('the abandoned upload file removed', async () => (await uploadFiles(s)).length === 0, 20_000);
      } finally {
        await rm(file, { force: true });
      }
      const res = await request(`${s.url}/`);
      assert.equal(res.text, 'ok');
    });

    test('forged x-mongrel2-upload-* headers on a small request: an ordinary request, no file touched', async () => {
      const victim = path.join(s.m2.dir, 'victim.txt');
      await writeFile(victim, 'precious');
      const reported = s.m2.chrooted ? '/victim.txt' : victim;
      const res = await request(`${s.url}/upload-text`, {
        method: 'POST',
        body: 'tiny',
        headers: { 'x-mongrel2-upload-start': reported, 'x-mongrel2-upload-done': reported },
      });
      assert.equal(res.status, 200);
      assert.equal((JSON.parse(res.text) as UploadAnswer).bytes, 4, 'the inline body, not the file');
      const empty = await request(`${s.url}/upload-text`, {
        method: 'POST',
        headers: { 'x-mongrel2-upload-start': reported, 'content-length': '0' },
      });
      assert.equal(empty.status, 200);
      const handle = await open(victim, 'r');
      await handle.close();
    });

    const forgeries: Array<[string, Array<[string, string]>]> = [
      ['done', [['x-mongrel2-upload-done', '/tmp/forged']]],
      ['start', [['x-mongrel2-upload-start', '/tmp/forged']]],
      ['done twice', [['x-mongrel2-upload-done', '/tmp/a'], ['x-mongrel2-upload-done', '/tmp/b']]],
      ['start and done', [['x-mongrel2-upload-start', '/tmp/a'], ['x-mongrel2-upload-done', '/tmp/a']]],
    ];
    for (const [what, headers] of forgeries) {
      test(`forged ${what} header on a real upload: the client is answered, not left waiting`, async () => {
        const res = await request(`${s.url}/upload`, { method: 'POST', body: randomBytes(50_000), headers, timeoutMs: 15_000 }).catch(
          (err: unknown) => {
            // A closed connection is an answer too; a timeout is not.
            assert.doesNotMatch(String(err), /timed out/, s.diagnostics());
            return undefined;
          },
        );
        // A done that does not match the upload's start is refused (the real done would be served).
        if (what === 'done' && res !== undefined) assert.equal(res.status, 400, res.text);
        await eventually('upload files removed', async () => (await uploadFiles(s)).length === 0, 20_000);
        const next = await request(`${s.url}/`);
        assert.equal(next.text, 'ok');
      });
    }
  });
}

describe('a 1 GB upload (sparse file, curl -T) does not grow the worker', () => {
  let s: PushServer;
  before(async () => {
    s = await startPushServer({ workers: 0 });
  });
  after(async () => {
    await s?.stop();
  });

  test('1 GB streamed through request.body: right size and hash, worker RSS bounded', { timeout: 240_000 }, async () => {
    const file = path.join(os.tmpdir(), `wsgid-1g-${process.pid}`);
    const size = 1024 * MB;
    const handle = await open(file, 'w');
    await handle.truncate(size); // sparse: all zeros, costs no disk
    await handle.close();
    try {
      const rssBefore = await rssOf(s.wsgid.pid);
      const started = Date.now();
      const out = await run('curl', ['-sS', '-X', 'POST', '-T', file, `${s.url}/upload`], 200_000);
      const seconds = (Date.now() - started) / 1000;
      assert.equal(out.code, 0, out.stderr + s.diagnostics());
      const answer = JSON.parse(out.stdout) as UploadAnswer;
      const zeros = Buffer.alloc(MB);
      const hash = createHash('sha256');
      for (let i = 0; i < 1024; i++) hash.update(zeros);
      assert.equal(answer.bytes, size);
      assert.equal(answer.sha256, hash.digest('hex'));
      const rssAfter = await rssOf(s.wsgid.pid);
      const growth = Math.max(answer.rss ?? 0, rssAfter) - rssBefore;
      console.log(`# 1 GB upload in ${seconds.toFixed(1)} s; worker RSS before ${(rssBefore / MB).toFixed(1)} MB, ` +
        `at the end of the request ${((answer.rss ?? 0) / MB).toFixed(1)} MB, after ${(rssAfter / MB).toFixed(1)} MB`);
      assert.ok(growth < 100 * MB, `worker RSS grew by ${(growth / MB).toFixed(1)} MB`);
      await eventually('upload file removed', async () => (await uploadFiles(s)).length === 0);
    } finally {
      await rm(file, { force: true });
    }
  });
});

describe('an upload file the worker cannot read', { skip: process.getuid?.() !== 0 ? 'needs root (workers drop to the app folder owner)' : false }, () => {
  let s: PushServer;
  before(async () => {
    // The app folder belongs to nobody: wsgid (root) serves as nobody, and cannot enter mongrel2's
    // private folder where the 0600 upload files are.
    s = await startPushServer({
      workers: 0,
      prepare: async (dir) => {
        for (const sub of ['', 'app', 'app/server.mjs']) await chown(path.join(dir, sub), 65534, 65534);
      },
    });
  });
  after(async () => {
    await s?.stop();
  });

  test('500, a log line that says why, the app is not called', async () => {
    const res = await request(`${s.url}/upload`, { method: 'POST', body: randomBytes(20_000), timeoutMs: 20_000 });
    assert.equal(res.status, 500, s.diagnostics());
    const log = await s.wsgid.waitForOutput(/cannot read the upload file/);
    assert.match(log, /permission denied/);
    assert.doesNotMatch(log, /app error/);
  });
});

describe('streaming uploads (mongrel2 upload.stream=1) are refused, not left hanging', () => {
  let s: PushServer;
  before(async () => {
    s = await startPushServer({ workers: 1, settings: { 'upload.stream': 1 } });
  });
  after(async () => {
    await s?.stop();
  });

  test('a body over content_length gets a 501 that says why, and the next request is served', async () => {
    const res = await request(`${s.url}/upload`, { method: 'POST', body: randomBytes(64 * 1024), timeoutMs: 20_000 });
    assert.equal(res.status, 501, s.diagnostics());
    assert.match(res.text, /upload\.stream=1/);
    await s.wsgid.waitForOutput(/does not support/);
    const ok = await request(`${s.url}/upload-text`, { method: 'POST', body: 'small' });
    assert.equal(ok.status, 200);
  });
});
