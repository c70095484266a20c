/**
 * Whoever can reach the handler endpoints can send upload-start/done messages of
 * its own. A worker must take as an upload only a file mongrel2's upload.temp_store can name
 * (--mongrel2-upload-store, default /tmp/upload.XXXXXX), opened without following a symlink, a
 * regular file with one link; it must never serve or unlink anything else. The test plays that peer
 * (test/helpers/fake-mongrel2.ts) against the real wsgid CLI; run as root, the worker is root too,
 * the worst case. A root-only file is the victim.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, linkSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { appFolderWith, waitFor } from '../helpers/processes.js';
import { startFakeMongrel2, type FakeMongrel2 } from '../helpers/fake-mongrel2.js';
import { frame, tnetHeaders } from '../unit/protocol-helpers.js';

const ECHO_APP = `export default { fetch: async (request) => new Response('body=' + (await request.text())) };\n`;
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A name mkstemp could make from /tmp/upload.XXXXXX, free now. */
function uploadName(): string {
  for (;;) {
    const suffix = [...randomBytes(6)].map((b) => ALNUM[b % ALNUM.length]).join('');
    const file = `/tmp/upload.${suffix}`;
    if (!existsSync(file)) return file;
  }
}

describe('upload messages forged by a peer on the handler endpoints', () => {
  let peer: FakeMongrel2;
  let wsgid: WsgidProcess;
  let dir: string;
  let victimDir: string;
  let victim: string;
  const planted: string[] = [];
  let nextConn = 1;

  before(async () => {
    victimDir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-victim-'));
    victim = path.join(victimDir, 'secret');
    writeFileSync(victim, 'root only\n', { mode: 0o600 });
    dir = await appFolderWith(ECHO_APP, 'wsgid-upforge-');
    peer = await startFakeMongrel2();
    wsgid = await startWsgid(wsgidArgs({ recv: peer.recv, send: peer.send }, dir, ['--workers=1', '--stdout']));
    await wsgid.waitForOutput(/\[master \d+\] ready\b/, 30_000);
    // The worker's PUB may join after its first reply: ask until one arrives.
    for (let i = 0; ; i++) {
      try {
        await peer.request(nextConn++, { PATH: '/', METHOD: 'GET', VERSION: 'HTTP/1.1', connection: 'close' }, '', 1000);
        break;
      } catch (error) {
        if (i > 30) throw error;
      }
    }
  });

  after(async () => {
    await wsgid?.stop();
    peer?.close();
    for (const p of planted) rmSync(p, { force: true });
    rmSync(dir, { recursive: true, force: true });
    rmSync(victimDir, { recursive: true, force: true });
  });

  /** upload-start then upload-done naming `reported`, as mongrel2 sends them; what the peer got back. */
  async function upload(reported: string, length: number): Promise<string> {
    const conn = nextConn++;
    const headers = { PATH: '/up', METHOD: 'POST', VERSION: 'HTTP/1.1', host: 'x', connection: 'close', 'content-length': String(length) };
    await peer.sendRaw(frame(peer.sender, conn, '/up', tnetHeaders({ ...headers, 'x-mongrel2-upload-start': reported }), ''));
    return peer.request(conn, { ...headers, 'x-mongrel2-upload-start': reported, 'x-mongrel2-upload-done': reported });
  }

  function victimIntact(): void {
    assert.equal(readFileSync(victim, 'utf8'), 'root only\n', 'the victim was changed or removed');
  }

  test('a real upload file of the store is served and removed (the peer speaks the protocol right)', async () => {
    const file = uploadName();
    planted.push(file);
    writeFileSync(file, 'hello', { mode: 0o600 });
    const reply = await upload(file, 5);
    assert.match(reply, /^HTTP\/1\.1 200 /);
    assert.match(reply, /body=hello$/);
    await waitFor('the upload file removed', async () => !existsSync(file), 10_000);
  });

  for (const [what, reported] of [
    ['the victim by its path', () => victim],
    ['the victim through ..', () => `/tmp/upload.XXXXXX/../../..${victim}`],
    ['the victim climbing out of the root', () => `/../../..${victim}`],
  ] as const) {
    test(`an upload-done naming ${what}: 500, the victim neither served nor removed`, async () => {
      const reply = await upload(reported(), 10);
      assert.match(reply, /^HTTP\/1\.1 500 /);
      assert.doesNotMatch(reply, /root only/);
      victimIntact();
      await wsgid.waitForOutput(/refused an upload naming a file outside mongrel2's upload store/);
    });
  }

  test('a symlink in the upload folder, named like an upload: 500, neither it nor its target removed', async () => {
    const link = uploadName();
    planted.push(link);
    symlinkSync(victim, link);
    const reply = await upload(link, 10);
    assert.match(reply, /^HTTP\/1\.1 500 /);
    assert.doesNotMatch(reply, /root only/);
    victimIntact();
    assert.ok(lstatSync(link).isSymbolicLink(), 'the symlink was removed');
    await wsgid.waitForOutput(new RegExp(`cannot read the upload file.*${path.basename(link)}.*symlink`));
  });

  test('a fifo in the upload folder, named like an upload: 500 at once (never opened to block), not removed', async () => {
    const fifo = uploadName();
    planted.push(fifo);
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
    const reply = await upload(fifo, 10);
    assert.match(reply, /^HTTP\/1\.1 500 /);
    assert.ok(lstatSync(fifo).isFIFO(), 'the fifo was removed');
    await wsgid.waitForOutput(new RegExp(`cannot read the upload file.*${path.basename(fifo)}.*not a regular file`));
  });

  test('a hard link to the victim in the upload folder: 500, neither name removed', async () => {
    const link = uploadName();
    planted.push(link);
    linkSync(victim, link);
    const reply = await upload(link, 10);
    assert.match(reply, /^HTTP\/1\.1 500 /);
    assert.doesNotMatch(reply, /root only/);
    victimIntact();
    assert.ok(existsSync(link), 'the hard link was removed');
    await wsgid.waitForOutput(new RegExp(`cannot read the upload file.*${path.basename(link)}.*hard links`));
  });
});

/** A wsgid behind a fake mongrel2 peer; `prepare` may chown the app folder. */
async function served(extra: string[], prepare?: (dir: string) => void): Promise<{ peer: FakeMongrel2; wsgid: WsgidProcess; dir: string; close(): Promise<void> }> {
  const dir = await appFolderWith(ECHO_APP, 'wsgid-upstore-');
  prepare?.(dir);
  const peer = await startFakeMongrel2();
  const wsgid = await startWsgid(wsgidArgs({ recv: peer.recv, send: peer.send }, dir, ['--workers=1', '--stdout', ...extra]));
  await wsgid.waitForOutput(/\[master \d+\] ready\b/, 30_000);
  return {
    peer,
    wsgid,
    dir,
    async close() {
      await wsgid.stop();
      peer.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** upload-start then upload-done naming `reported`; what came back (retried until the worker's PUB has joined). */
async function uploadTo(peer: FakeMongrel2, conn: number, reported: string): Promise<string> {
  const headers = { PATH: '/up', METHOD: 'POST', VERSION: 'HTTP/1.1', host: 'x', connection: 'close', 'content-length': '5' };
  for (let i = 0; ; i++) {
    await peer.sendRaw(frame(peer.sender, conn + i, '/up', tnetHeaders({ ...headers, 'x-mongrel2-upload-start': reported }), ''));
    try {
      return await peer.request(conn + i, { ...headers, 'x-mongrel2-upload-start': reported, 'x-mongrel2-upload-done': reported }, '', 2000);
    } catch (error) {
      if (i > 15) throw error;
    }
  }
}

describe('uploads wsgid cannot read', { skip: process.getuid?.() !== 0 ? 'needs root (the worker drops to the app folder owner)' : false }, () => {
  test('a relative upload store without --mongrel2-chroot: start warns; an upload gets a 500 that says so', async () => {
    const s = await served(['--mongrel2-upload-store=tmp/upload.XXXXXX']);
    try {
      assert.match(s.wsgid.output(), /warning: async uploads will be refused: --mongrel2-upload-store=tmp\/upload\.XXXXXX is relative to mongrel2's working folder/);
      const reply = await uploadTo(s.peer, 100, 'tmp/upload.a1B2c3');
      assert.match(reply, /^HTTP\/1\.1 500 [^]*cannot accept the upload/);
      await s.wsgid.waitForOutput(/cannot accept an upload: --mongrel2-upload-store=tmp\/upload\.XXXXXX is relative/);
    } finally {
      await s.close();
    }
  });

  test("an upload file the worker may not read: a 500 that says so, and mongrel2's temp file is removed", async () => {
    // The store folder is the worker's (nobody) to write, the file root's 0600: unreadable, removable.
    const store = mkdtempSync(path.join(os.tmpdir(), 'wsgid-store-'));
    chownSync(store, 65534, 65534);
    const file = path.join(store, 'upload.Zz9Yy8');
    writeFileSync(file, 'hello', { mode: 0o600 });
    const s = await served([`--mongrel2-upload-store=${store}/upload.XXXXXX`], (dir) => {
      for (const sub of ['', 'app', 'app/server.mjs']) chownSync(path.join(dir, sub), 65534, 65534);
    });
    try {
      const reply = await uploadTo(s.peer, 200, file);
      assert.match(reply, /^HTTP\/1\.1 500 [^]*cannot read the uploaded body/);
      const log = await s.wsgid.waitForOutput(/cannot read the upload file/);
      assert.match(log, /permission denied/);
      await waitFor('the temp file removed', async () => !existsSync(file), 10_000);
    } finally {
      await s.close();
      rmSync(store, { recursive: true, force: true });
    }
  });
});
