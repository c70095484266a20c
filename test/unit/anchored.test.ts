/**
 * fs/anchored.ts on a real file system (no root needed): what a root master relies on to never
 * follow a name the app's user planted. The attacks as root are in test/integration/security-files.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, watch, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  openAnchoredDir,
  openAppendBelow,
  readFileAt,
  removeFlatFolderAt,
  replaceFileAt,
  withAnchoredDir,
} from '../../src/fs/anchored.js';

const folders: string[] = [];
after(() => {
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

/** An app folder with logs/, and a file outside it that must never change. */
function setup(): { root: string; outside: string; secret: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'wsgid-anchored-'));
  const outside = mkdtempSync(path.join(os.tmpdir(), 'wsgid-outside-'));
  folders.push(root, outside);
  mkdirSync(path.join(root, 'logs'));
  const secret = path.join(outside, 'secret');
  writeFileSync(secret, 'untouched\n');
  return { root, outside, secret };
}

test('appending: a symlinked file or folder is refused, a plain file is appended to', () => {
  const { root, outside, secret } = setup();
  symlinkSync(secret, path.join(root, 'logs', 'wsgid.log'));
  assert.throws(() => openAppendBelow(root, 'logs/wsgid.log', 0o640), { code: 'WSGID_ERR_UNSAFE_PATH' });

  rmSync(path.join(root, 'logs'), { recursive: true });
  symlinkSync(outside, path.join(root, 'logs'));
  assert.throws(() => openAppendBelow(root, 'logs/secret', 0o640), { code: 'WSGID_ERR_UNSAFE_PATH' });
  assert.equal(readFileSync(secret, 'utf8'), 'untouched\n');

  rmSync(path.join(root, 'logs'));
  mkdirSync(path.join(root, 'logs'));
  const fd = openAppendBelow(root, 'logs/wsgid.log', 0o640);
  writeSync(fd, 'line\n');
  closeSync(fd);
  assert.equal(readFileSync(path.join(root, 'logs', 'wsgid.log'), 'utf8'), 'line\n');
});

test('appending: a hard link to another file and a fifo are refused (the fifo without hanging)', () => {
  const { root, secret } = setup();
  linkSync(secret, path.join(root, 'logs', 'wsgid.log'));
  assert.throws(() => openAppendBelow(root, 'logs/wsgid.log', 0o640), /other hard links/);
  execFileSync('mkfifo', [path.join(root, 'logs', 'access.log')]);
  assert.throws(() => openAppendBelow(root, 'logs/access.log', 0o640));
  assert.equal(readFileSync(secret, 'utf8'), 'untouched\n');
});

test('replacing: a symlink at the name is replaced, not followed; no temp file is left', () => {
  const { root, secret } = setup();
  mkdirSync(path.join(root, 'pid'));
  symlinkSync(secret, path.join(root, 'pid', 'status.json'));
  withAnchoredDir(root, ['pid'], (dir) => replaceFileAt(dir, 'status.json', '{}\n', 0o644));
  assert.equal(lstatSync(path.join(root, 'pid', 'status.json')).isFile(), true);
  assert.equal(readFileSync(path.join(root, 'pid', 'status.json'), 'utf8'), '{}\n');
  assert.deepEqual(readdirSync(path.join(root, 'pid')), ['status.json']);
  assert.equal(readFileSync(secret, 'utf8'), 'untouched\n');
});

test('a folder opened stays the one opened when its name is swapped afterwards', () => {
  const { root, outside, secret } = setup();
  const dir = openAnchoredDir(root, ['logs']);
  try {
    rmSync(path.join(root, 'logs'), { recursive: true });
    symlinkSync(outside, path.join(root, 'logs'));
    assert.throws(() => replaceFileAt(dir, 'secret', 'overwritten\n', 0o644), { code: 'ENOENT' }, 'the removed folder, not the symlink target');
  } finally {
    dir.close();
  }
  assert.equal(readFileSync(secret, 'utf8'), 'untouched\n');
});

test('reading: symlinks and fifos give undefined', () => {
  const { root, secret } = setup();
  symlinkSync(secret, path.join(root, 'logs', 'a'));
  execFileSync('mkfifo', [path.join(root, 'logs', 'b')]);
  writeFileSync(path.join(root, 'logs', 'c'), 'c\n');
  withAnchoredDir(root, ['logs'], (dir) => {
    assert.equal(readFileAt(dir, 'a'), undefined);
    assert.equal(readFileAt(dir, 'b'), undefined);
    assert.equal(readFileAt(dir, 'c')?.text, 'c\n');
  });
});

test('removing a folder flat: files go, a symlink inside is unlinked itself, a sub-folder keeps it', () => {
  const { root, outside, secret } = setup();
  mkdirSync(path.join(root, 'pid', '.d1'), { recursive: true });
  writeFileSync(path.join(root, 'pid', '.d1', 'w'), '');
  symlinkSync(outside, path.join(root, 'pid', '.d1', 'link'));
  mkdirSync(path.join(root, 'pid', '.d2', 'sub'), { recursive: true });
  writeFileSync(path.join(root, 'pid', '.d2', 'sub', 'keep'), '');
  symlinkSync(outside, path.join(root, 'pid', '.d3'));
  withAnchoredDir(root, ['pid'], (dir) => {
    assert.equal(removeFlatFolderAt(dir, '.d1'), true);
    assert.equal(removeFlatFolderAt(dir, '.d2'), false);
    assert.equal(removeFlatFolderAt(dir, '.d3'), true);
  });
  assert.deepEqual(readdirSync(path.join(root, 'pid')), ['.d2']);
  assert.deepEqual(readdirSync(path.join(root, 'pid', '.d2', 'sub')), ['keep']);
  assert.deepEqual(readdirSync(outside), ['secret']);
  assert.equal(readFileSync(secret, 'utf8'), 'untouched\n');
});

test('replaceFileAt temp names cannot be planted ahead: seen through inotify, each write uses a new random name, nothing derived from the pid', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'wsgid-anchored-'));
  folders.push(root);
  const seen = new Set<string>();
  const watcher = watch(root, (_event, name) => {
    if (typeof name === 'string' && name.endsWith('.tmp')) seen.add(name);
  });
  const writes = 40;
  try {
    withAnchoredDir(root, [], (dir) => {
      for (let k = 0; k < writes / 2; k++) {
        replaceFileAt(dir, 'status.json', `{"k":${k}}\n`, 0o640);
        replaceFileAt(dir, `${process.pid}.pid`, `${process.pid}\n`, 0o644);
      }
    });
    const deadline = Date.now() + 30_000; // inotify events arrive after the writes; this bounds a hang
    while (seen.size < writes && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  } finally {
    watcher.close();
  }
  assert.equal(seen.size, writes, `${writes} writes, ${seen.size} distinct temp names: ${[...seen].slice(0, 4).join(' ')}`);
  const randomParts = new Set<string>();
  for (const name of seen) {
    const m = /^\.(status\.json|\d+\.pid)\.([0-9a-f]{16})\.tmp$/.exec(name);
    assert.ok(m, `temp name ${name}: .<name>.<16 hex>.tmp`);
    assert.ok(!m[2]!.includes(String(process.pid)), `temp name ${name} carries the pid`);
    randomParts.add(m[2]!);
  }
  assert.equal(randomParts.size, writes, 'no random part repeats');
  assert.deepEqual(readdirSync(root).sort(), [`${process.pid}.pid`, 'status.json'].sort(), 'no temp file left');
});
