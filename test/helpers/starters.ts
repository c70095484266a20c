/**
 * Test helper for the apps made by their starters (test/fixtures/starters/, starters.test.ts,
 * recipes.test.ts): set them up, run one under its own `npm start` (the oracle), give wsgid an app
 * folder whose app/ is the fixture.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './mongrel2.js';
import { waitForHttp } from './http.js';
import { REPO_ROOT } from './wsgid.js';

export const STARTERS = path.join(REPO_ROOT, 'test', 'fixtures', 'starters');
export const appDirOf = (name: string): string => path.join(STARTERS, name, 'app');

/** scripts/setup-starters.mjs (npm ci, build; cached), for the named starters only when given. */
export function setUpStarters(names: readonly string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'setup-starters.mjs'), ...names], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`scripts/setup-starters.mjs exited with ${code}`))));
  });
}

export interface Oracle {
  readonly base: string;
  stop(): Promise<void>;
}

/** `npm start` in the app's folder, on a free port (PORT: next start, fastify-cli and adapter-node read it). */
export async function npmStart(appDir: string, command: readonly string[] = ['npm', 'start']): Promise<Oracle> {
  const port = await freePort();
  const child: ChildProcess = spawn(command[0]!, command.slice(1), {
    cwd: appDir,
    env: { ...process.env, PORT: String(port), NEXT_TELEMETRY_DISABLED: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true, // its own process group: npm, sh and the server stop together
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const base = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(-child.pid!, 'SIGTERM');
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  };
  try {
    await waitForHttp(`${base}/`, 60_000, { attemptMs: 5000, abort: () => (child.exitCode !== null ? `${command.join(' ')} exited: ${stderr}` : undefined) });
  } catch (error) {
    await stop();
    throw error;
  }
  return { base, stop };
}

/** An app folder whose app/ is the fixture's (built) app folder. */
export async function wsgidFolder(name: string, dirs: string[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `wsgid-starter-${name}-`));
  dirs.push(dir);
  await symlink(appDirOf(name), path.join(dir, 'app'), 'dir');
  return dir;
}
