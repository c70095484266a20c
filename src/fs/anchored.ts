/**
 * File operations that never follow a symlink below a trusted folder (docs/SECURITY.md).
 *
 * The master may be root while the app's user can write most of the app folder, so every name
 * below that folder is the user's to replace: `logs/wsgid.log` by a symlink to /etc/shadow, or
 * `logs/` itself by a symlink to /root. Node has no openat(2); instead a folder is opened one
 * component at a time with O_DIRECTORY|O_NOFOLLOW through `/proc/self/fd/<fd>/<name>`, which Linux
 * resolves from the open folder, as openat does. Once a folder is open, swapping any path component
 * changes nothing. Files are then opened with O_NOFOLLOW, created with O_EXCL under random names
 * and renamed into place (rename(2) replaces a symlink at the destination instead of following it).
 *
 * Without /proc (a chroot), the walk falls back to plain paths with O_NOFOLLOW on each component
 * (racy); that is allowed only when we are not root, i.e. have no privileges the folder's writers lack.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  lchownSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { WsgidError } from '../errors.js';

const { O_RDONLY, O_WRONLY, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;

/** A path under the app folder that is not what it must be (a symlink, a hard link, a fifo…). */
export class UnsafePathError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_ERR_UNSAFE_PATH');
  }
}

function isRoot(): boolean {
  return typeof process.geteuid === 'function' && process.geteuid() === 0;
}

function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new UnsafePathError(`not a plain file name: ${JSON.stringify(name)}`);
  }
}

function refuse(what: string, error: unknown): never {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') throw new UnsafePathError(`refusing ${what}: it is a symlink`);
  if (code === 'ENOTDIR') throw new UnsafePathError(`refusing ${what}: a symlink or not a folder`);
  throw error;
}

/** An open folder; `at(name)` names an entry of it resolved through the fd, never through `path`. */
export class AnchoredDir {
  constructor(
    readonly fd: number,
    /** For messages only. */
    readonly path: string,
    readonly viaProc: boolean,
  ) {}

  at(name: string): string {
    checkName(name);
    return this.viaProc ? `/proc/self/fd/${this.fd}/${name}` : path.join(this.path, name);
  }

  /** The entries of the folder (read through the fd). */
  list(): string[] {
    return readdirSync(this.viaProc ? `/proc/self/fd/${this.fd}` : this.path);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Open the folder `name` of `dir` without following a symlink there (created first with `createMode`). */
export function openChildDir(dir: AnchoredDir, name: string, createMode?: number): AnchoredDir {
  const entry = dir.at(name);
  if (createMode !== undefined) {
    try {
      mkdirSync(entry, createMode);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  let fd: number;
  try {
    fd = openSync(entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (error) {
    refuse(path.join(dir.path, name), error);
  }
  return new AnchoredDir(fd, path.join(dir.path, name), dir.viaProc);
}

/**
 * Open `root` (trusted: followed as given), then each of `segments` below it without following
 * symlinks. With `createMode`, missing folders are created with that mode (umask applies).
 */
export function openAnchoredDir(root: string, segments: readonly string[], createMode?: number): AnchoredDir {
  const viaProc = existsSync('/proc/self/fd');
  if (!viaProc && isRoot()) throw new UnsafePathError('root needs /proc mounted to open files in the app folder safely');
  let dir = new AnchoredDir(openSync(root, O_RDONLY | O_DIRECTORY), root, viaProc);
  try {
    for (const segment of segments) {
      const next = openChildDir(dir, segment, createMode);
      dir.close();
      dir = next;
    }
    return dir;
  } catch (error) {
    dir.close();
    throw error;
  }
}

/** Run `fn` with the folder `root/segments…` open, closing it afterwards. */
export function withAnchoredDir<T>(root: string, segments: readonly string[], fn: (dir: AnchoredDir) => T, createMode?: number): T {
  const dir = openAnchoredDir(root, segments, createMode);
  try {
    return fn(dir);
  } finally {
    dir.close();
  }
}

/** Throw unless `fd` is a regular file with one link (a hard link to a foreign file is refused). */
function checkRegular(fd: number, what: string): void {
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1) {
    closeSync(fd);
    throw new UnsafePathError(`refusing ${what}: ${st.isFile() ? 'it has other hard links' : 'not a regular file'}`);
  }
}

/** Open `name` for appending (created with `mode` if missing): no symlink, regular, one link. */
export function openAppendAt(dir: AnchoredDir, name: string, mode: number): number {
  const what = path.join(dir.path, name);
  let fd: number;
  try {
    // O_NONBLOCK: a fifo planted under the name must not hang the open; it is then refused.
    fd = openSync(dir.at(name), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, mode);
  } catch (error) {
    refuse(what, error);
  }
  checkRegular(fd, what);
  return fd;
}

/** `root/relative` (a/b/file) opened for appending; folders walked without following symlinks. */
export function openAppendBelow(root: string, relative: string, mode: number): number {
  const parts = relative.split('/').filter((p) => p !== '' && p !== '.');
  const name = parts.pop();
  if (name === undefined) throw new UnsafePathError(`no file name in ${JSON.stringify(relative)}`);
  return withAnchoredDir(root, parts, (dir) => openAppendAt(dir, name, mode));
}

/** Read `name` if it is a regular file (no symlink, no fifo); undefined when missing or refused. */
export function readFileAt(dir: AnchoredDir, name: string): { text: string; mtimeMs: number } | undefined {
  let fd: number;
  try {
    fd = openSync(dir.at(name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    return { text: readFileSync(fd, 'utf8'), mtimeMs: st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

/**
 * Replace `name` with `data` atomically: written to a new file under a random name (O_EXCL, so
 * nothing planted is reused), then renamed over `name` (a symlink there is replaced, not followed).
 */
export function replaceFileAt(dir: AnchoredDir, name: string, data: string, mode: number, owner?: { uid: number; gid: number }): void {
  checkName(name);
  const temp = `.${name}.${randomBytes(8).toString('hex')}.tmp`;
  const fd = openSync(dir.at(temp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    try {
      fchmodSync(fd, mode); // the umask must not narrow what readers (status, stop) need
      if (owner) fchownSync(fd, owner.uid, owner.gid); // through the fd: the name may be raced
      writeSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(dir.at(temp), dir.at(name));
  } catch (error) {
    try {
      unlinkSync(dir.at(temp));
    } catch {
      /* already gone */
    }
    throw error;
  }
}

/** unlink(2) `name` (a symlink is removed itself). Returns false when it was missing. */
export function removeAt(dir: AnchoredDir, name: string): boolean {
  try {
    unlinkSync(dir.at(name));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Remove the folder `name` and what is directly in it, never descending: sub-folders (which a
 * writer could swap for symlinks mid-walk) make it stay. A symlink or file there is unlinked
 * itself. Returns true when the name is gone.
 */
export function removeFlatFolderAt(dir: AnchoredDir, name: string): boolean {
  let inner: AnchoredDir;
  try {
    inner = openChildDir(dir, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    if (!(error instanceof UnsafePathError)) throw error;
    removeAt(dir, name); // a symlink (or file) planted there: removed itself, never followed
    return true;
  }
  try {
    for (const entry of inner.list()) {
      try {
        unlinkSync(inner.at(entry));
      } catch {
        /* a folder (EISDIR) or raced away: rmdir below reports it */
      }
    }
  } finally {
    inner.close();
  }
  try {
    rmdirSync(dir.at(name));
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** chown the open folder itself. */
export function chownDir(dir: AnchoredDir, uid: number, gid: number): void {
  fchownSync(dir.fd, uid, gid);
}

/** chown `name` without following it (lchown through the folder fd). */
export function chownAt(dir: AnchoredDir, name: string, uid: number, gid: number): void {
  lchownSync(dir.at(name), uid, gid);
}
