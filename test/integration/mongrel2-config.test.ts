/**
 * `wsgid mongrel2-config`: what it prints is loaded by the real `m2sh load` into a real mongrel2,
 * which then serves the app folder through wsgid as an admin would set it up by hand (the folder's
 * saved --recv/--send, the config written into mongrel2's chroot): a request gets the app's
 * answer, app/static/ is served by mongrel2 itself, and a body over limits.content_length (the
 * async upload path, which needs upload.temp_store and --mongrel2-chroot to agree) reaches the app
 * whole.
 *
 * The generated config is a production one: its log paths are relative to mongrel2's chroot, which
 * mongrel2 honours only when it runs as root (without root it runs in "test mode" and does not
 * prefix them). So the serving part needs root, and says so when skipped.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePorts, startMongrel2WithConfig, type Mongrel2ConfigRun } from '../helpers/mongrel2.js';
import { request } from '../helpers/http.js';
import { startWsgid, type WsgidProcess } from '../helpers/wsgid.js';
import { runCli } from '../helpers/processes.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const APP = `import { createHash } from 'node:crypto';
export default async (request) => {
  const body = Buffer.from(await request.arrayBuffer());
  const sha = createHash('sha256').update(body).digest('hex');
  return new Response(\`generated config: \${request.method} \${new URL(request.url).pathname} \${body.length} \${sha}\`);
};
`;

describe('wsgid mongrel2-config', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  test('without endpoints it still prints a config, and says which endpoints to save', async () => {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'wsgid-m2conf-'));
    cleanup.push(() => rm(parent, { recursive: true, force: true }));
    const site = path.join(parent, 'site');
    assert.equal((await runCli(['init', `--app-path=${site}`])).code, 0);
    const result = await runCli(['mongrel2-config', `--app-path=${site}`]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /send_spec="tcp:\/\/127\.0\.0\.1:9997"/);
    assert.match(result.stdout, /recv_spec="tcp:\/\/127\.0\.0\.1:9996"/);
    assert.match(result.stderr, /wsgid config --app-path=\S+ --recv=tcp:\/\/127\.0\.0\.1:9997 --send=tcp:\/\/127\.0\.0\.1:9996/);
    const missing = await runCli(['mongrel2-config', `--app-path=${path.join(parent, 'nope')}`]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /does not exist/);
  });

  test('m2sh loads it and mongrel2 serves the app folder through wsgid', { skip: isRoot ? false : 'needs root: mongrel2 honours a chroot only as root' }, async () => {
    // mongrel2's chroot holds the app folder, so app/static/ is reachable by mongrel2 (a Dir route).
    const chroot = await mkdtemp(path.join(os.tmpdir(), 'wsgid-m2chroot-'));
    const site = path.join(chroot, 'site');
    assert.equal((await runCli(['init', `--app-path=${site}`])).code, 0);
    await writeFile(path.join(site, 'app', 'server.mjs'), APP);
    await mkdir(path.join(site, 'app', 'static'));
    await writeFile(path.join(site, 'app', 'static', 'hello.txt'), 'static hello\n');
    const [httpPort, recvPort, sendPort] = await freePorts(3);
    const saved = await runCli([
      'config',
      `--app-path=${site}`,
      `--recv=tcp://127.0.0.1:${recvPort}`,
      `--send=tcp://127.0.0.1:${sendPort}`,
      `--mongrel2-chroot=${chroot}`,
    ]);
    assert.equal(saved.code, 0, saved.stderr);

    const generated = await runCli(['mongrel2-config', `--app-path=${site}`, `--port=${httpPort}`]);
    assert.equal(generated.code, 0, generated.stderr);
    assert.equal(generated.stderr, '', 'nothing to warn about: endpoints and chroot are saved');
    await writeFile(path.join(chroot, 'mongrel2.conf'), generated.stdout);
    const uuid = /uuid="([0-9a-f-]+)"/.exec(generated.stdout)?.[1];
    assert.ok(uuid, generated.stdout);

    let m2: Mongrel2ConfigRun | undefined;
    let wsgid: WsgidProcess | undefined;
    cleanup.push(async () => {
      await wsgid?.stop();
      if (m2) await m2.stop();
      else await rm(chroot, { recursive: true, force: true });
    });
    m2 = await startMongrel2WithConfig(chroot, uuid, httpPort);
    wsgid = await startWsgid(['--no-daemon', `--app-path=${site}`], { readyUrl: `${m2.baseUrl}/probe`, readyTimeoutMs: 30_000 });

    const hello = await request(`${m2.baseUrl}/hello/you`);
    assert.equal(hello.status, 200, hello.text + m2.log());
    assert.match(hello.text, /^generated config: GET \/hello\/you 0 /);
    assert.ok(hello.headers['x-wsgid'], 'answered by wsgid');

    const file = await request(`${m2.baseUrl}/static/hello.txt`);
    assert.equal(file.status, 200, m2.log());
    assert.equal(file.text, 'static hello\n');
    assert.equal(file.headers['x-wsgid'], undefined, 'served by mongrel2 itself');

    // 2 MiB: over limits.content_length, so mongrel2 writes it to upload.temp_store and wsgid reads
    // the file under --mongrel2-chroot.
    const body = randomBytes(2 * 1024 * 1024);
    const upload = await request(`${m2.baseUrl}/upload`, { method: 'POST', body, timeoutMs: 30_000 });
    assert.equal(upload.status, 200, upload.text + wsgid.output());
    assert.equal(upload.text, `generated config: POST /upload ${body.length} ${createHash('sha256').update(body).digest('hex')}`);
  });
});
