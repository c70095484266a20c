/**
 * Test helper: app folders for the supervision tests, and what the tests ask of processes
 * (is a pid alive, which workers does pid/worker/ list, run the wsgid CLI to completion).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, WSGID_CLI } from './wsgid.js';

/** A fresh app folder (the layout `wsgid init` makes) whose app/server.mjs is `source`. */
export async function appFolderWith(source: string, prefix = 'wsgid-app-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  for (const d of ['app', 'logs', 'plugins', 'pid', 'pid/master', 'pid/worker']) await mkdir(path.join(dir, d), { recursive: true });
  await writeFile(path.join(dir, 'app', 'server.mjs'), source);
  return dir;
}

/**
 * A fresh folder holding app/ and `files` (paths relative to the folder: `app/server.mjs`,
 * `wsgid.json`), written synchronously; the caller removes it.
 */
export function appFolderOf(files: Record<string, string>, prefix = 'wsgid-app-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  mkdirSync(path.join(dir, 'app'), { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return dir;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids the app folder's pid/<role>/ lists (alive or not), in file order. */
export function listedPids(dir: string, role: 'master' | 'worker'): number[] {
  try {
    return readdirSync(path.join(dir, 'pid', role))
      .filter((f) => /^\d+\.pid$/.test(f))
      .map((f) => Number(f.slice(0, -4)));
  } catch {
    return [];
  }
}

/** Live pids listed in the app folder's pid/worker/, in order. */
export async function workerPids(dir: string): Promise<number[]> {
  return listedPids(dir, 'worker').filter(alive).sort((a, b) => a - b);
}

/** Poll `fn` every 100 ms until it gives something other than undefined or false (a hang bound, not a speed test). */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Poll the synchronous `check` every 50 ms until it holds (a hang bound, not a speed test). */
export async function waitUntil(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** `wsgid stop --app-path=<dir>`, which must succeed. */
export async function stopApp(dir: string): Promise<void> {
  const stop = await runCli(['stop', `--app-path=${dir}`]);
  assert.equal(stop.code, 0, stop.stderr);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `wsgid ...args` to completion (bounded: a hang is killed after `timeoutMs`). */
export function runCli(args: string[], timeoutMs = 60_000, options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const spawnOptions = { timeout: timeoutMs, encoding: 'utf8' as const, env: options.env ?? process.env, cwd: options.cwd };
    execFile(process.execPath, [WSGID_CLI, ...args], spawnOptions, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/**
 * A `wsgid init`ed app folder `<parent>/site` serving the cli-app fixture, and the start arguments
 * for it (ipc endpoints nobody listens on: workers get ready anyway, which is all such tests need).
 */
export async function cliAppFolder(prefix: string): Promise<{ parent: string; dir: string; args: string[] }> {
  const parent = mkdtempSync(path.join(os.tmpdir(), prefix));
  const dir = path.join(parent, 'site');
  const init = await runCli(['init', `--app-path=${dir}`]);
  assert.equal(init.code, 0, init.stderr);
  cpSync(path.join(REPO_ROOT, 'test', 'fixtures', 'cli-app', 'app'), path.join(dir, 'app'), { recursive: true });
  return { parent, dir, args: [`--app-path=${dir}`, `--recv=ipc://${parent}/recv`, `--send=ipc://${parent}/send`, '--workers=1'] };
}

/** Lines of `text` from the first line matching `first` through the first matching `last`. */
export function block(text: string, first: RegExp, last: RegExp): string[] {
  const lines = text.split('\n');
  const from = lines.findIndex((l) => first.test(l));
  assert.ok(from >= 0, `no ${first} in:\n${text}`);
  const to = lines.findIndex((l, i) => i >= from && last.test(l));
  assert.ok(to >= 0, `no ${last} in:\n${text}`);
  return lines.slice(from, to + 1);
}
