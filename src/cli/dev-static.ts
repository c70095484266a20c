/**
 * The static files `wsgid dev` has its private mongrel2 serve itself, as `runserver` or a front
 * server would in production: a Django project's files (every app's `static/`, gathered by
 * `collectstatic` into a temporary folder at its STATIC_URL — the project's own STATIC_ROOT is
 * left alone), else an `app/static/` folder at /static/. Gathered once at start: a changed static
 * file is served after the next `wsgid dev`, not after a reload.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface DevStatic {
  readonly dirs: ReadonlyArray<{ readonly route: string; readonly from: string }>;
  /** What was found or why nothing was, for the terminal. */
  readonly notes: readonly string[];
  /** Removes the temporary folder (once mongrel2 has its copy). */
  cleanUp(): void;
}

/** The settings module manage.py names (`os.environ.setdefault('DJANGO_SETTINGS_MODULE', '…')`). */
export function djangoSettingsModule(managePy: string): string | undefined {
  return /DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]/.exec(managePy)?.[1];
}

/** STATIC_URL as a mongrel2 route ('/static/'), or undefined when it is not a local path. */
export function staticRoute(staticUrl: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:|^\/\//i.test(staticUrl)) return undefined; // on another host (a CDN)
  const inner = staticUrl.replace(/^\/+|\/+$/g, '');
  return inner === '' ? undefined : `/${inner}/`;
}

const COLLECT = `
import json, os, sys
root, module, out = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, root)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", module)
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
settings.STATIC_ROOT = out
call_command("collectstatic", interactive=False, verbosity=0)
print(json.dumps(str(settings.STATIC_URL or "")))
`;

const isDirectory = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

export function devStaticFolders(appRoot: string, python: string): DevStatic {
  const managePy = path.join(appRoot, 'manage.py');
  const module = existsSync(managePy) ? djangoSettingsModule(readFileSync(managePy, 'utf8')) : undefined;
  if (module !== undefined) {
    const out = mkdtempSync(path.join(os.tmpdir(), 'wsgid-dev-static-'));
    const cleanUp = (): void => rmSync(out, { recursive: true, force: true });
    const run = spawnSync(python, ['-c', COLLECT, appRoot, module, out], { cwd: appRoot, encoding: 'utf8', timeout: 120_000 });
    let route: string | undefined;
    try {
      route = run.status === 0 ? staticRoute(JSON.parse(run.stdout.trim().split('\n').pop() ?? '""') as string) : undefined;
    } catch {
      route = undefined;
    }
    if (run.status === 0 && route !== undefined) {
      return { dirs: [{ route, from: out }], notes: [`the Django project's static files (collectstatic) at ${route}`], cleanUp };
    }
    cleanUp();
    const why = run.status === 0 ? 'STATIC_URL is not a path on this server' : (run.stderr || run.error?.message || '').trim().split('\n').pop();
    return { dirs: [], notes: [`the Django project's static files are not served: ${why}`], cleanUp: () => undefined };
  }
  const folder = path.join(appRoot, 'static');
  if (isDirectory(folder)) return { dirs: [{ route: '/static/', from: folder }], notes: [`${folder} at /static/`], cleanUp: () => undefined };
  return { dirs: [], notes: [], cleanUp: () => undefined };
}
