/**
 * `wsgid dev`: one command from "I have an app" to serving it, through the real CLI, a real
 * mongrel2 it configures itself and a real HTTP client. It serves an app given by itself (a folder
 * with server.mjs, no app folder around it); an edit changes the answer (polled, bounded); an edit
 * with a syntax error keeps the old answer and prints the error; a fix after it is served; SIGINT
 * exits 0 and leaves neither mongrel2 nor its private folder behind. An app folder (`wsgid init`
 * layout) is served with its start options, takes an upload over limits.content_length, and a
 * change in a subfolder reloads it too.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { startWsgid } from '../helpers/wsgid.js';
import { alive, runCli, waitFor } from '../helpers/processes.js';
import { mongrel2Of, untilAnswer } from '../helpers/dev.js';

const version = (v: string): string => `export default () => new Response('answer ${v}');\n`;

describe('wsgid dev', () => {
  const folders: string[] = [];
  after(async () => {
    for (const dir of folders) await rm(dir, { recursive: true, force: true });
  });

  test('serves an app folder-less app, reloads on edits, survives a syntax error, stops on SIGINT', { timeout: 240_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-dev-test-'));
    folders.push(dir);
    const entry = path.join(dir, 'server.mjs');
    await writeFile(entry, version('one'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const wsgid = await startWsgid(['dev', dir, `--port=${port}`], { readyUrl: `${base}/`, readyTimeoutMs: 60_000 });
    let exited = false;
    try {
      const m2 = mongrel2Of(wsgid.output());
      assert.ok(alive(m2.pid));
      const first = await request(`${base}/`);
      assert.equal(first.status, 200, wsgid.output());
      assert.equal(first.text, 'answer one');
      assert.ok(first.headers['x-wsgid'], 'served by wsgid');
      await wsgid.waitForOutput(/"GET \/ HTTP\/1\.1" 200/, 10_000); // the request log on the terminal

      await writeFile(entry, version('two'));
      await untilAnswer(`${base}/`, 'answer two', wsgid);
      assert.match(wsgid.output(), /server\.mjs changed: reloading/);

      // A broken edit: the new workers cannot load it; the old ones keep answering, the error is printed.
      await writeFile(entry, "export default () => new Response('answer three' ;\n");
      await wsgid.waitForOutput(/SyntaxError/, 60_000);
      await wsgid.waitForOutput(/new workers cannot start; keeping the old ones/, 60_000);
      const kept = await request(`${base}/`);
      assert.equal(kept.status, 200);
      assert.equal(kept.text, 'answer two');

      await writeFile(entry, version('four'));
      await untilAnswer(`${base}/`, 'answer four', wsgid);

      const code = await wsgid.stop('SIGINT', 20_000);
      exited = true;
      assert.equal(code, 0, wsgid.output());
      assert.equal(alive(m2.pid), false, 'mongrel2 was stopped with wsgid');
      assert.equal(existsSync(m2.dir), false, "mongrel2's private folder is removed");
      assert.match(wsgid.output(), /fast stop[\s\S]*worker exited/, 'wsgid stopped its workers');
    } finally {
      if (!exited) await wsgid.stop('SIGKILL');
    }
  });

  test('an app folder: its start options pass through, a change in a subfolder reloads', { timeout: 240_000 }, async () => {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'wsgid-dev-test-'));
    folders.push(parent);
    const site = path.join(parent, 'site');
    assert.equal((await runCli(['init', `--app-path=${site}`])).code, 0);
    await mkdir(path.join(site, 'app', 'lib'));
    await writeFile(path.join(site, 'app', 'lib', 'greeting.mjs'), "export const greeting = 'hello';\n");
    await writeFile(
      path.join(site, 'app', 'server.mjs'),
      "import { greeting } from './lib/greeting.mjs';\n" +
        'export default async (request) => request.method === "POST"\n' +
        '  ? new Response(`got ${(await request.arrayBuffer()).byteLength} bytes`)\n' +
        '  : new Response(`${greeting} from pid ${process.pid} of ${process.env.WSGID_WORKERS_SEEN}`);\n',
    );
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const wsgid = await startWsgid(['dev', `--app-path=${site}`, `--port=${port}`, '--workers=2', '--env=WSGID_WORKERS_SEEN=two'], {
      readyUrl: `${base}/`,
      readyTimeoutMs: 60_000,
    });
    let exited = false;
    try {
      const m2 = mongrel2Of(wsgid.output());
      assert.match((await request(`${base}/`)).text, /^hello from pid \d+ of two$/);
      assert.match(wsgid.output(), /master started workers=2/);
      // Over limits.content_length: mongrel2's async upload path, a file wsgid finds in its private chroot.
      const upload = await request(`${base}/upload`, { method: 'POST', body: Buffer.alloc(3 * 1024 * 1024, 7), timeoutMs: 30_000 });
      assert.equal(upload.text, `got ${3 * 1024 * 1024} bytes`, wsgid.output());
      // Both workers have loaded the old code before the edit: only a reload can serve the new one.
      await wsgid.waitForOutput(/all workers ready workers=2/, 60_000);
      await writeFile(path.join(site, 'app', 'lib', 'greeting.mjs'), "export const greeting = 'goodbye';\n");
      await wsgid.waitForOutput(/lib\/greeting\.mjs changed: reloading/, 30_000);
      await waitFor('the new greeting', async () => /^goodbye /.test((await request(`${base}/`)).text), 60_000);
      const code = await wsgid.stop('SIGINT', 20_000);
      exited = true;
      assert.equal(code, 0, wsgid.output());
      assert.equal(alive(m2.pid), false);
    } finally {
      if (!exited) await wsgid.stop('SIGKILL');
    }
  });

  test('an app that cannot start is tried again after the next change; Ctrl-C while it waits exits 0', { timeout: 240_000 }, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-dev-test-'));
    folders.push(dir);
    const entry = path.join(dir, 'server.mjs');
    await writeFile(entry, "export default () => new Response('answer broken' ;\n");
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const waits = /the app did not start; trying again when a file under \S+ changes/;
    let wsgid = await startWsgid(['dev', dir, `--port=${port}`]);
    try {
      await wsgid.waitForOutput(waits, 60_000);
      assert.match(wsgid.output(), /SyntaxError/);
      await writeFile(entry, version('fixed'));
      await untilAnswer(`${base}/`, 'answer fixed', wsgid);
      assert.equal(await wsgid.stop('SIGINT', 20_000), 0, wsgid.output());
    } finally {
      await wsgid.stop('SIGKILL');
    }

    await writeFile(entry, "export default () => new Response('answer broken' ;\n");
    wsgid = await startWsgid(['dev', dir, `--port=${port}`]);
    try {
      await wsgid.waitForOutput(waits, 60_000);
      const m2 = mongrel2Of(wsgid.output());
      assert.equal(await wsgid.stop('SIGINT', 20_000), 0, wsgid.output());
      assert.equal(alive(m2.pid), false, 'mongrel2 was stopped');
    } finally {
      await wsgid.stop('SIGKILL');
    }
  });

  test('without mongrel2 installed it says what to install, and leaves nothing running', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-dev-test-'));
    folders.push(dir);
    await writeFile(path.join(dir, 'server.mjs'), version('one'));
    const result = await runCli(['dev', dir, `--port=${await freePort()}`], 60_000, { env: { ...process.env, M2SH_BIN: path.join(dir, 'no-m2sh') } });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /no-m2sh not found: install mongrel2 \(Debian: apt-get install mongrel2-core\)/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });
});
