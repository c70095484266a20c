/**
 * Python apps through a real mongrel2 (test/integration/wsgi.test.ts, asgi.test.ts): app folders
 * made from fixture files, and wsgid started on them with Debian's Python (python3-django, -flask,
 * -fastapi, -starlette live there).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { Mongrel2Handle } from './mongrel2.js';
import { startWsgid, wsgidArgs, type WsgidProcess } from './wsgid.js';

export const PYTHON = '/usr/bin/python3';

export interface FixtureFolders {
  /** A fresh app folder: DIR/app/ holding `files` copied from the fixtures (name → fixture name). */
  folder(files?: Record<string, string>): { dir: string; app: string };
  /** Another temporary path to remove after the test file. */
  track(temp: string): void;
}

/** App folders from the fixtures in `fixtures`, all removed after the calling test file's tests. */
export function fixtureFolders(fixtures: string, prefix: string): FixtureFolders {
  const temps: string[] = [];
  after(() => {
    for (const dir of temps) rmSync(dir, { recursive: true, force: true });
  });
  return {
    folder(files = {}) {
      const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
      temps.push(dir);
      const app = path.join(dir, 'app');
      mkdirSync(app);
      for (const [name, fixture] of Object.entries(files)) copyFileSync(path.join(fixtures, fixture), path.join(app, name));
      return { dir, app };
    },
    track(temp) {
      temps.push(temp);
    },
  };
}

/** wsgid in the foreground, one worker, on `dir`, behind handler `handler` (default app) of `m2`. */
export function startPythonApp(
  m2: Mongrel2Handle,
  dir: string,
  extra: string[] = [],
  options: { readyPath?: string; env?: NodeJS.ProcessEnv; handler?: string } = {},
): Promise<WsgidProcess> {
  const h = m2.handler(options.handler ?? 'app');
  return startWsgid(
    wsgidArgs(h, dir, ['--stdout', `--python=${PYTHON}`, `--mongrel2-chroot=${m2.chroot}`, '--workers=1', ...extra]),
    { readyUrl: `${m2.baseUrl}${options.readyPath ?? '/'}`, readyTimeoutMs: 30_000, env: options.env },
  );
}
