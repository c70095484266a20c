/**
 * Test helper: app folders for the supervision tests, and what the tests ask of processes
 * (is a pid alive, which workers does pid/worker/ list, run the wsgid CLI to completion).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WSGID_CLI } from './wsgid.js';

/** A fresh app folder (the layout `wsgid init` makes) whose app/server.mjs is `source`. */
export async function appFolderWith(source: string, prefix = 'wsgid-app-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  for (const d of ['app', 'logs', 'plugins', 'pid', 'pid/master', 'pid/worker']) await mkdir(path.join(dir, d), { recursive: true });
  await writeFile(path.join(dir, 'app', 'server.mjs'), source);
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

/** Live pids listed in the app folder's pid/worker/, in order. */
export async function workerPids(dir: string): Promise<number[]> {
  const names = await readdir(path.join(dir, 'pid', 'worker')).catch(() => [] as string[]);
  return names
    .filter((n) => /^\d+\.pid$/.test(n))
    .map((n) => Number(n.slice(0, -4)))
    .filter(alive)
    .sort((a, b) => a - b);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `wsgid ...args` to completion (bounded: a hang is killed after `timeoutMs`). */
export function runCli(args: string[], timeoutMs = 60_000, options: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WSGID_CLI, ...args], { timeout: timeoutMs, encoding: 'utf8', env: options.env ?? process.env }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}
