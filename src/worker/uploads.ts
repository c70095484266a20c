/**
 * mongrel2's async uploads (docs/MONGREL2.md §4), on the worker's side: which upload-start and
 * upload-done messages to believe, where their files are, cutting bytes mongrel2 appended, and
 * removing files nobody will read.
 *
 * The decisions (`judgeUploadStart`, `judgeUploadDone`, `uploadFilePath`, `excessLength`) are pure
 * and unit-tested; `Uploads` keeps the per-connection state and does the file I/O.
 */
import { closeSync, constants as fsConstants, fstatSync, ftruncateSync, lstatSync, openSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { UnsafePathError, withAnchoredDir, type AnchoredDir } from '../fs/anchored.js';
import type { Mongrel2Message } from '../protocol/index.js';
import type { Logger } from '../log/logger.js';

function singleHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value;
}

/**
 * Could this message be mongrel2's own upload-start/done rather than a client's forgery? Client
 * header names are lowercased like mongrel2's upload headers, so a small request can carry them.
 * A real one has an empty body and went the upload path: content-length over the inline limit
 * (so > 0), or a chunked body; and its path header is single (a client copy would make it a list).
 * Returns the reported path, or undefined for a forgery.
 */
export function plausibleUpload(message: Mongrel2Message, header: string): string | undefined {
  const value = message.headers[header];
  if (typeof value !== 'string' || value === '' || message.body.length !== 0) return undefined;
  const length = singleHeader(message.headers['content-length']);
  const chunked = /chunked/i.test(String(message.headers['transfer-encoding'] ?? ''));
  if (!chunked && !(length !== undefined && /^\d+$/.test(length) && Number(length) > 0)) return undefined;
  return value;
}

/** mkstemp(3) fills the template's trailing XXXXXX with letters and digits. */
const MKSTEMP_SUFFIX = /^[A-Za-z0-9]{6}$/;

/**
 * Where mongrel2 writes upload files (`upload.temp_store`, --mongrel2-upload-store), on our side.
 * Only a reported path that is the template with its XXXXXX filled in names an upload file: a
 * handler peer cannot name /etc/shadow, `../x` or another file of mongrel2's.
 */
export interface UploadStore {
  /** The template as mongrel2's config writes it, e.g. /tmp/upload.XXXXXX. */
  readonly template: string;
  /** The folder the files are in, absolute, on our side (under the mongrel2 chroot). */
  readonly dir: string;
}

/**
 * The upload store for `template` (mongrel2's `upload.temp_store`) under mongrel2's `chroot`, or why
 * there is none: uploads are then refused. A relative template is resolved by mongrel2 from its
 * working folder: the chroot's root when it chroots, unknown to us otherwise.
 */
export function uploadStore(template: string, chroot: string): UploadStore | string {
  if (template === '') return 'no --mongrel2-upload-store (mongrel2\'s upload.temp_store) is set';
  if (!template.endsWith('XXXXXX') || template.includes('\0')) return `--mongrel2-upload-store=${template} does not end in XXXXXX (mongrel2 needs an mkstemp template)`;
  if (!path.posix.isAbsolute(template) && chroot === '') {
    return `--mongrel2-upload-store=${template} is relative to mongrel2's working folder, unknown to wsgid: give it absolute, or give --mongrel2-chroot`;
  }
  const root = path.resolve(chroot || '/');
  const inside = path.posix.normalize('/' + path.posix.dirname(template));
  return { template, dir: path.resolve(root, '.' + inside) };
}

/** The name in the store folder of a path mongrel2 reported, or undefined when it is not one of its upload files. */
export function uploadFileName(store: UploadStore, reported: string): string | undefined {
  const { template } = store;
  if (reported.length !== template.length || !reported.startsWith(template.slice(0, -6))) return undefined;
  return MKSTEMP_SUFFIX.test(reported.slice(-6)) ? path.posix.basename(reported) : undefined;
}

/** What to do with an upload-start message. */
export type UploadStartDecision =
  /** The client sent the header itself on an ordinary request: serve it as one. */
  | { readonly action: 'serve-as-request' }
  /** The path is not a file of mongrel2's upload store: ignore the message. */
  | { readonly action: 'ignore'; readonly reported: string }
  /** Remember the file, so a disconnect can remove it. Never answered: a reply would cancel the upload. */
  | { readonly action: 'track'; readonly file: string };

export function judgeUploadStart(message: Mongrel2Message, store: UploadStore | undefined): UploadStartDecision {
  const reported = plausibleUpload(message, 'x-mongrel2-upload-start');
  if (reported === undefined) return { action: 'serve-as-request' };
  const name = store && uploadFileName(store, reported);
  return store === undefined || name === undefined ? { action: 'ignore', reported } : { action: 'track', file: path.join(store.dir, name) };
}

/** What to do with an upload-done message. */
export type UploadDoneDecision =
  | { readonly action: 'serve-as-request' }
  /**
   * A client forged the header (mongrel2 sends done == start), or the upload-start message carried
   * a forged done: answer 400, or nothing ever would (this also cancels the upload).
   */
  | { readonly action: 'refuse' }
  /** The path is not a file of mongrel2's upload store (or there is no store): answer 5xx, touch nothing. */
  | { readonly action: 'outside-store'; readonly reported: string }
  /** Check the file, then serve the request with it as the body. */
  | { readonly action: 'serve-file'; readonly file: string };

/** `expected`: the file of the upload-start seen on this connection, if any. */
export function judgeUploadDone(message: Mongrel2Message, expected: string | undefined, store: UploadStore | undefined): UploadDoneDecision {
  const done = plausibleUpload(message, 'x-mongrel2-upload-done');
  if (done === undefined) return { action: 'serve-as-request' };
  if (message.headers['x-mongrel2-upload-start'] !== done) return { action: 'refuse' };
  const name = store && uploadFileName(store, done);
  if (store === undefined || name === undefined) return { action: 'outside-store', reported: done };
  const file = path.join(store.dir, name);
  if (expected !== undefined && expected !== file) return { action: 'refuse' };
  return { action: 'serve-file', file };
}

/**
 * mongrel2 1.12 appends the bytes of requests pipelined behind an upload to the upload file (and
 * never serves those requests): the body is Content-Length bytes. Returns the length to cut the
 * file to, or undefined when it needs no cut (a chunked upload has no length to cut at).
 */
export function excessLength(contentLength: string | string[] | undefined, fileSize: number): number | undefined {
  const declared = Number(singleHeader(contentLength));
  if (!Number.isSafeInteger(declared) || declared < 0 || fileSize <= declared) return undefined;
  return declared;
}

/** Why the worker cannot read an upload file, worded for the operator. */
function describeReadError(error: NodeJS.ErrnoException): string {
  if (error instanceof UnsafePathError) return error.message;
  if (error.code === 'EACCES' || error.code === 'EPERM') {
    return (
      `permission denied (${error.message}; worker uid ${process.getuid?.() ?? '?'}; mongrel2 writes uploads ` +
      'with upload.temp_store_mode, 0600 by default, as its own user: run wsgid as that user or change the mode)'
    );
  }
  if (error.code === 'ENOENT') return `no such file (${error.message}; are --mongrel2-chroot and --mongrel2-upload-store right?)`;
  return error.message;
}

/** Open `name` of `dir` without following a symlink (O_NONBLOCK: a fifo must not hang); must be a regular file with one link. */
function openUploadFile(dir: AnchoredDir, name: string, flags: number): { fd: number; size: number; dev: number; ino: number } {
  let fd: number;
  try {
    fd = openSync(dir.at(name), flags | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw new UnsafePathError(`refusing ${path.join(dir.path, name)}: it is a symlink`);
    throw error;
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1) {
    closeSync(fd);
    throw new UnsafePathError(`refusing ${path.join(dir.path, name)}: ${st.isFile() ? 'it has other hard links' : 'not a regular file'}`);
  }
  return { fd, size: st.size, dev: st.dev, ino: st.ino };
}

/** Why an upload cannot be the request's body; `removable`: it is mongrel2's temp file all the same (remove it). */
export interface UploadProblem {
  readonly reason: string;
  readonly removable: boolean;
}

/** Upload files being written by mongrel2 (upload-start seen, done not yet), per connection key. */
export class Uploads {
  private readonly pending = new Map<number, string>();
  /** Where mongrel2's upload files are, or why uploads cannot be accepted. */
  readonly store: UploadStore | undefined;
  readonly storeProblem: string | undefined;

  constructor(
    mongrel2Chroot: string,
    uploadStoreTemplate: string,
    private readonly logger: Logger,
  ) {
    const store = uploadStore(uploadStoreTemplate, mongrel2Chroot);
    if (typeof store === 'string') this.storeProblem = store;
    else this.store = store;
  }

  /** Remember the file of an upload that began (judgeUploadStart said 'track'). */
  started(key: number, file: string): void {
    this.pending.set(key, file);
  }

  /** The file of the upload in progress on this connection, if any. */
  expected(key: number): string | undefined {
    return this.pending.get(key);
  }

  /** The upload-done arrived (or was refused): the file is the request's now, or nobody's. */
  finished(key: number): void {
    this.pending.delete(key);
  }

  /** Run `fn` with the store folder open (anchored: the file is opened through its fd, never a swapped path). */
  private inStore<T>(file: string, fn: (dir: AnchoredDir, name: string) => T): T {
    const store = this.store;
    if (store === undefined || path.dirname(file) !== store.dir) throw new UnsafePathError(`${file} is not in mongrel2's upload store`);
    return withAnchoredDir(store.dir, [], (dir) => fn(dir, path.basename(file)));
  }

  /**
   * The finished upload file (judged 'serve-file': a name of the store) may become the request
   * body: opened without following a symlink, a regular file with one link, readable by this worker
   * (mongrel2 writes it 0600 as its own user). Cuts what mongrel2 appended. Returns why it cannot be
   * used, or undefined when it can.
   */
  check(file: string, message: Mongrel2Message): UploadProblem | undefined {
    try {
      this.inStore(file, (dir, name) => {
        const read = openUploadFile(dir, name, fsConstants.O_RDONLY);
        closeSync(read.fd);
        const cutAt = excessLength(message.headers['content-length'], read.size);
        if (cutAt === undefined) return;
        this.logger.warn('the upload file is longer than Content-Length (mongrel2 wrote pipelined bytes into it): cutting it', {
          conn: message.connId,
          contentLength: cutAt,
          fileSize: read.size,
        });
        const write = openUploadFile(dir, name, fsConstants.O_WRONLY);
        try {
          if (write.dev !== read.dev || write.ino !== read.ino) throw new UnsafePathError(`refusing ${file}: it was replaced`);
          ftruncateSync(write.fd, cutAt);
        } finally {
          closeSync(write.fd);
        }
      });
      return undefined;
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      // Unreadable, but mongrel2's own file: nobody else will ever remove it.
      return { reason: describeReadError(e), removable: !(error instanceof UnsafePathError) && e.code !== 'ENOENT' };
    }
  }

  /** The client left mid-upload: mongrel2 never deletes the file (docs/MONGREL2.md §4). */
  disconnected(key: number): void {
    const file = this.pending.get(key);
    if (file === undefined) return;
    this.pending.delete(key);
    if (this.remove(file)) this.logger.debug('removed an abandoned upload', { file });
  }

  /** A request's body file after it was served: remove it (logged when that fails). */
  discardServed(file: string): void {
    this.remove(file);
  }

  /** A body file of a request that will never be served (disconnect, shutdown): remove it. */
  discardUnserved(file: string): void {
    this.remove(file);
  }

  /**
   * Remove an upload file of the store: unlink(2) through the store folder's fd, only while the name
   * is a regular file with one link (a symlink or hard link planted there is never ours to remove).
   * Returns true when removed; failures other than "already gone" are logged.
   */
  remove(file: string): boolean {
    try {
      return this.inStore(file, (dir, name) => {
        const st = lstatSync(dir.at(name));
        if (!st.isFile() || st.nlink !== 1) {
          this.logger.warn('not removing the upload file: it is no longer a regular file with one link', { file });
          return false;
        }
        unlinkSync(dir.at(name));
        return true;
      });
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      if (e.code !== 'ENOENT') this.logger.warn('could not remove upload file', { file, error: e.message });
      return false;
    }
  }
}
