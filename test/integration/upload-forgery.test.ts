/**
 * Issue 19 item 4: whoever can reach the handler endpoints can send upload-start/done messages of
 * its own. A worker must take as an upload only a file mongrel2's upload.temp_store can name
 * (--mongrel2-upload-store, default /tmp/upload.XXXXXX), opened without following a symlink, a
 * regular file with one link; it must never serve or unlink anything else. The test plays that peer
 * (test/helpers/fake-mongrel2.ts) against the real wsgid CLI; run as root, the worker is root too,
 * the worst case. A root-only file is the victim.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
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
