/**
 * mongrel2's async uploads (protocol notes §4), on the worker's side: which upload-start and
 * upload-done messages to believe, where their files are, cutting bytes mongrel2 appended, and
 * removing files nobody will read.
 *
 * The decisions (`judgeUploadStart`, `judgeUploadDone`, `uploadFilePath`, `excessLength`) are pure
 * and unit-tested; `Uploads` keeps the per-connection state and does the file I/O.
 */
import { constants as fsConstants } from 'node:fs';
import { access, lstat, realpath, truncate, unlink } from 'node:fs/promises';
import path from 'node:path';
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

/**
 * A path mongrel2 reported, as the file on our side: resolved under `chroot` (absolute; '..'
 * cannot climb out: the path is normalised from the root first). undefined = outside the chroot.
 */
export function uploadFilePath(chroot: string, reported: string): string | undefined {
  const file = path.resolve(chroot, '.' + path.posix.normalize('/' + reported));
  return file.startsWith(chroot === '/' ? '/' : chroot + path.sep) ? file : undefined;
}

/** What to do with an upload-start message. */
export type UploadStartDecision =
  /** The client sent the header itself on an ordinary request: serve it as one. */
  | { readonly action: 'serve-as-request' }
  /** The path is outside the mongrel2 chroot: ignore the message. */
  | { readonly action: 'ignore'; readonly reported: string }
  /** Remember the file, so a disconnect can remove it. Never answered: a reply would cancel the upload. */
  | { readonly action: 'track'; readonly file: string };

export function judgeUploadStart(message: Mongrel2Message, chroot: string): UploadStartDecision {
  const reported = plausibleUpload(message, 'x-mongrel2-upload-start');
  if (reported === undefined) return { action: 'serve-as-request' };
  const file = uploadFilePath(chroot, reported);
  return file === undefined ? { action: 'ignore', reported } : { action: 'track', file };
}

/** What to do with an upload-done message. */
export type UploadDoneDecision =
  | { readonly action: 'serve-as-request' }
  /**
   * A client forged the header (mongrel2 sends done == start), or the upload-start message carried
   * a forged done: answer 400, or nothing ever would (this also cancels the upload).
   */
  | { readonly action: 'refuse' }
  /** Check the file, then serve the request with it as the body. */
  | { readonly action: 'serve-file'; readonly file: string };

/** `expected`: the file of the upload-start seen on this connection, if any. */
export function judgeUploadDone(message: Mongrel2Message, expected: string | undefined, chroot: string): UploadDoneDecision {
  const done = plausibleUpload(message, 'x-mongrel2-upload-done');
  if (done === undefined) return { action: 'serve-as-request' };
  const file = message.headers['x-mongrel2-upload-start'] !== done ? undefined : uploadFilePath(chroot, done);
  if (file === undefined || (expected !== undefined && expected !== file)) return { action: 'refuse' };
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
  if (error.code === 'EACCES' || error.code === 'EPERM') {
    return (
      `permission denied (${error.message}; worker uid ${process.getuid?.() ?? '?'}; mongrel2 writes uploads ` +
      'with upload.temp_store_mode, 0600 by default, as its own user: run wsgid as that user or change the mode)'
    );
  }
  if (error.code === 'ENOENT') return `no such file (${error.message}; is --mongrel2-chroot right?)`;
  return error.message;
}

/** Upload files being written by mongrel2 (upload-start seen, done not yet), per connection key. */
export class Uploads {
  private readonly pending = new Map<number, string>();
  /** The chroot, absolute. */
  readonly chroot: string;

  constructor(
    mongrel2Chroot: string,
    private readonly logger: Logger,
  ) {
    this.chroot = path.resolve(mongrel2Chroot || '/');
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

  /**
   * The finished upload file may become the request body: inside the mongrel2 chroot also after
   * symlinks are resolved, a regular file, readable by this worker (mongrel2 writes it 0600 as its
   * own user). Cuts what mongrel2 appended. Returns why it cannot be used, or undefined when it can.
   */
  async check(file: string, message: Mongrel2Message): Promise<string | undefined> {
    try {
      const info = await lstat(file);
      if (!info.isFile()) return 'not a regular file';
      const [real, root] = await Promise.all([realpath(file), realpath(this.chroot)]);
      if (!(root === '/' || real.startsWith(root + path.sep))) return `it resolves to ${real}, outside the mongrel2 chroot`;
      await access(file, fsConstants.R_OK);
      const cutAt = excessLength(message.headers['content-length'], info.size);
      if (cutAt !== undefined) {
        this.logger.warn('the upload file is longer than Content-Length (mongrel2 wrote pipelined bytes into it): cutting it', {
          conn: message.connId,
          contentLength: cutAt,
          fileSize: info.size,
        });
        await truncate(file, cutAt);
      }
      return undefined;
    } catch (error) {
      return describeReadError(error as NodeJS.ErrnoException);
    }
  }

  /** The client left mid-upload: mongrel2 never deletes the file (protocol notes §4). */
  disconnected(key: number): void {
    const file = this.pending.get(key);
    if (file === undefined) return;
    this.pending.delete(key);
    void this.removeAbandoned(file);
  }

  /** A request's body file after it was served: remove it (logged when that fails). */
  discardServed(file: string): void {
    unlink(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') this.logger.warn('could not remove upload file', { file, error: error.message });
    });
  }

  /** A body file of a request that will never be served (disconnect, shutdown): remove it quietly. */
  discardUnserved(file: string): void {
    void unlink(file).catch(() => {});
  }

  /** Remove an abandoned upload file: only a regular file (never follow a symlink's target). */
  private async removeAbandoned(file: string): Promise<void> {
    try {
      if (!(await lstat(file)).isFile()) return;
      await unlink(file);
      this.logger.debug('removed an abandoned upload', { file });
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      if (e.code !== 'ENOENT') this.logger.warn('could not remove upload file', { file, error: e.message });
    }
  }
}
