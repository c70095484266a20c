/**
 * Test helper for the long-lived, upload and flow-control tests: a fresh app folder serving
 * test/fixtures/push-app/server.mjs through a fresh real mongrel2 and the real wsgid CLI, plus
 * clients that keep a connection open (event streams) and curl.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { startMongrel2, type Mongrel2Handle } from './mongrel2.js';
import { REPO_ROOT, startWsgid, wsgidArgs, type WsgidProcess } from './wsgid.js';

export const PUSH_APP = path.join(REPO_ROOT, 'test', 'fixtures', 'push-app', 'server.mjs');

export const MB = 1024 * 1024;

/** The first `length` bytes of the push app's /stream body. */
export function pattern(length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + 3) & 255;
  return out;
}

/** sha256 (hex) of the push app's /stream body of `length` bytes. */
export function patternHash(length: number): string {
  const block = Buffer.allocUnsafe(64 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7 + 3) & 255;
  const hash = createHash('sha256');
  let left = length;
  while (left > 0) {
    const n = Math.min(left, block.length);
    hash.update(n === block.length ? block : block.subarray(0, n));
    left -= n;
  }
  return hash.digest('hex');
}

/**
 * The payload of a chunked body, as far as it came (up to anything that is not a chunk); complete
 * when its last chunk arrived.
 */
export function dechunk(body: Buffer): { payload: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd < 0) return { payload: Buffer.concat(parts), complete: false };
    const size = parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
    if (!(size >= 0)) return { payload: Buffer.concat(parts), complete: false };
    if (size === 0) return { payload: Buffer.concat(parts), complete: true };
    parts.push(body.subarray(lineEnd + 2, Math.min(body.length, lineEnd + 2 + size)));
    at = lineEnd + 2 + size + 2;
    if (at > body.length) return { payload: Buffer.concat(parts), complete: false };
  }
}

/** mongrel2 settings that send every body over 4 KiB down the async upload path (a temp file). */
export const UPLOAD_SETTINGS: Readonly<Record<string, string | number>> = { 'limits.content_length': 4096, 'upload.temp_store': '/tmp/upload.XXXXXX' };

/**
 * wsgid's arguments to find the upload files of `m2` (started with `store` as upload.temp_store):
 * --mongrel2-chroot when it chrooted (root), else the store as the helper moved it (mongrel2.ts).
 */
export function uploadArgs(m2: Mongrel2Handle, store = String(UPLOAD_SETTINGS['upload.temp_store'])): string[] {
  if (m2.chrooted) return [`--mongrel2-chroot=${m2.dir}`];
  // In test mode the helper moved the store into mongrel2's folder (mongrel2.ts): say where.
  return [`--mongrel2-upload-store=${path.join(m2.dir, store)}`];
}

export interface PushServer {
  m2: Mongrel2Handle;
  wsgid: WsgidProcess;
  dir: string;
  url: string;
  diagnostics(): string;
  stop(): Promise<number>;
}

export interface PushServerOptions {
  settings?: Record<string, string | number>;
  workers?: number;
  extra?: string[];
  env?: NodeJS.ProcessEnv;
  /** Called with the app folder before wsgid starts (e.g. chown it). */
  prepare?: (dir: string) => Promise<void>;
}

export async function startPushServer(options: PushServerOptions = {}): Promise<PushServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-push-'));
  await mkdir(path.join(dir, 'app'), { recursive: true });
  await copyFile(PUSH_APP, path.join(dir, 'app', 'server.mjs'));
  await options.prepare?.(dir);
  const settings = { ...UPLOAD_SETTINGS, ...options.settings };
  const m2 = await startMongrel2({ settings });
  try {
    // A short graceful timeout: a test that ends with an event stream still open (its client's
    // disconnect racing the stop) must not outlast startWsgid's 10 s stop budget.
    const extra = ['--wsgi-app=server.mjs', `--workers=${options.workers ?? 0}`, '--graceful-timeout=5', ...(options.extra ?? [])];
    extra.push(...uploadArgs(m2, String(settings['upload.temp_store'])));
    const wsgid = await startWsgid(wsgidArgs(m2.handler('app'), dir, extra), {
      cwd: dir,
      readyUrl: `${m2.baseUrl}/`,
      env: options.env,
    });
    let stopped: Promise<number> | undefined;
    return {
      m2,
      wsgid,
      dir,
      url: m2.baseUrl,
      diagnostics: () => `--- wsgid output\n${wsgid.output()}\n--- mongrel2 log\n${m2.log()}`,
      stop: () =>
        (stopped ??= (async () => {
          const code = await wsgid.stop();
          await m2.stop();
          await rm(dir, { recursive: true, force: true });
          return code;
        })()),
    };
  } catch (error) {
    await m2.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * For a test suite: start a push server before its tests (handing it to `started`), stop it after
 * them and require that wsgid exited 0 (a clean stop is part of what every suite checks).
 */
export function usePushServer(options: PushServerOptions, started: (server: PushServer) => void): void {
  let server: PushServer | undefined;
  before(async () => {
    server = await startPushServer(options);
    started(server);
  });
  after(async () => {
    const code = await server?.stop();
    assert.equal(code, 0, server?.wsgid.output());
  });
}

/** A client holding a connection open: writes a request, collects everything that comes back. */
export class OpenClient {
  readonly socket: net.Socket;
  closed = false;
  private waiters: Array<() => void> = [];
  // Chunks are kept as received and joined only when read: joining on every 'data' event made a
  // 50 MB body quadratic (the client crawled at ~1 MB/s and tests timed out on a busy machine).
  private chunks: Buffer[] = [];
  private joined: Buffer | undefined = Buffer.alloc(0);
  private joinedText: string | undefined;

  constructor(port: number, target: string, extraHeaders = '') {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('connect', () => {
      this.socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extraHeaders}\r\n`);
    });
    this.socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.joined = undefined;
      this.joinedText = undefined;
      this.wake();
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Every byte received so far. */
  get data(): Buffer {
    if (this.joined === undefined) {
      this.joined = Buffer.concat(this.chunks);
      this.chunks = [this.joined];
    }
    return this.joined;
  }

  get text(): string {
    return (this.joinedText ??= this.data.toString('latin1'));
  }

  /** Wait until the received text matches, or the connection closes, or `timeoutMs` passes (then throw). */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.text.match(pattern);
      if (match) return match;
      if (this.closed) throw new Error(`connection closed before ${pattern}; got:\n${this.text.slice(0, 2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${pattern}; got:\n${this.text.slice(0, 2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Wait for the server to close the connection (true) or `timeoutMs` (false). */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Run a command, resolve with its stdout/stderr and exit code (never rejects on a non-zero exit). */
export function run(
  file: string,
  args: string[],
  timeoutMs = 120_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Start a long-running command (e.g. a curl upload to kill midway). */
export function launch(file: string, args: string[]): ChildProcess {
  return spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Poll `check` every 50 ms until it returns a truthy value or `timeoutMs` passes (then throw with `what`). */
export async function eventually<T>(what: string, check: () => Promise<T> | T, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** RSS in bytes of a process, from /proc. */
export async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}
