/**
 * `wsgid dev [APP_DIR]`: serve an app at http://127.0.0.1:PORT/ in the foreground behind a private
 * mongrel2 (mongrel2/process.ts) and reload it when its code changes, as `uvicorn --reload` does.
 *
 * - APP_DIR is an app folder when it has app/ and either the layout's pid/ or wsgid.json, or
 *   nothing that marks an app at its top (package.json, pyproject.toml, manage.py, server.js, …);
 *   otherwise it is the app itself (an app/ folder is common inside apps: Next.js, FastAPI
 *   packages), served from a private app folder whose app/ links to it.
 * - The master runs in this process (`start --no-daemon`, with the given start options); a change
 *   under the app sends it SIGHUP: the rolling reload, which keeps the old workers when the new
 *   code fails to load and prints why.
 * - Ctrl-C reaches this process and its workers (the terminal's process group), not mongrel2: the
 *   master stops, then mongrel2 is stopped and the private folders removed.
 */
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, watch, type FSWatcher } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { OptionValues } from '../config/options.js';
import { resolveSettings } from '../config/resolve.js';
import { devStaticFolders } from './dev-static.js';
import { AppFolderError, EXIT, UsageError } from '../errors.js';
import { CONFIG_FILE_NAME } from '../config/file.js';
import { freePort, portIsFree, startPrivateMongrel2, type PrivateMongrel2 } from '../mongrel2/process.js';
import type { Output } from './control.js';
import { startCommand } from './start.js';

const HOST = '127.0.0.1';
const DEFAULT_PORT = 8080;
/** Changes closer together than this make one reload. */
export const RELOAD_DEBOUNCE_MS = 300;

/** Path segments whose changes never reload: dependencies, VCS, caches, build output. */
const IGNORED_SEGMENTS = new Set([
  'node_modules',
  '.git',
  '.hg',
  '.svn',
  '__pycache__',
  '.pytest_cache',
  '.mypy_cache',
  '.venv',
  'venv',
  '.next',
  '.nuxt',
  '.svelte-kit',
  '.turbo',
  '.cache',
  'dist',
  'build',
  'coverage',
]);

/** Should a change of `file` (relative to the watched folder) reload the app? */
export function isSourceChange(file: string): boolean {
  const parts = file.split(/[\\/]/).filter(Boolean);
  if (parts.length === 0) return false;
  if (parts.some((p) => IGNORED_SEGMENTS.has(p))) return false;
  const name = parts[parts.length - 1]!;
  // Editors' swap, backup and lock files; compiled Python.
  if (/^\.#|^#.*#$|~$|\.sw[a-p]$|\.tmp$|^\d+$|\.py[co]$/.test(name)) return false;
  return true;
}

function isDirectory(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Files at the top of a folder that make it an app rather than an app folder around one. */
const APP_MARKERS = [
  'package.json',
  'pyproject.toml',
  'requirements.txt',
  'Pipfile',
  'setup.py',
  'manage.py',
  'wsgi.py',
  'asgi.py',
  'app.py',
  'application.py',
  'main.py',
  ...['server', 'app', 'index', 'main'].flatMap((name) => ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'].map((ext) => name + ext)),
];

interface Target {
  /** The app folder wsgid serves. */
  appPath: string;
  /** The folder watched for changes (the app's code). */
  watchRoot: string;
  /** A private app folder made for an app given by itself (removed at the end). */
  privateFolder?: string;
}

/** An app folder (`wsgid init` layout) or an app by itself, which gets a private app folder. */
export function devTarget(dir: string): Target {
  const root = path.resolve(dir);
  if (!exists(root)) throw new AppFolderError(`${root} does not exist`);
  if (!isDirectory(root)) throw new AppFolderError(`${root} is not a folder`);
  const app = path.join(root, 'app');
  const layout = isDirectory(path.join(root, 'pid')) || exists(path.join(root, CONFIG_FILE_NAME));
  if (isDirectory(app) && (layout || !APP_MARKERS.some((name) => exists(path.join(root, name))))) {
    return { appPath: root, watchRoot: app };
  }
  const folder = mkdtempSync(path.join(os.tmpdir(), 'wsgid-dev-app-'));
  for (const sub of ['logs', 'plugins', 'pid', 'pid/master', 'pid/worker']) mkdirSync(path.join(folder, sub), { mode: 0o700 });
  symlinkSync(root, path.join(folder, 'app'));
  return { appPath: folder, watchRoot: root, privateFolder: folder };
}

async function choosePort(given: number | undefined, io: Output): Promise<number> {
  if (given !== undefined) {
    if (!(await portIsFree(HOST, given))) throw new UsageError(`--port=${given}: ${HOST}:${given} is in use`);
    return given;
  }
  if (await portIsFree(HOST, DEFAULT_PORT)) return DEFAULT_PORT;
  const port = await freePort(HOST);
  io.err(`wsgid dev: ${HOST}:${DEFAULT_PORT} is in use, serving on ${port} instead (--port=N to choose)\n`);
  return port;
}

/** Watch `root` (recursively) and call `reload` once per burst of source changes. */
function watchSources(root: string, reload: (file: string) => void, io: Output): FSWatcher | undefined {
  let timer: NodeJS.Timeout | undefined;
  let first: string | undefined;
  try {
    const watcher = watch(root, { recursive: true }, (_event, file) => {
      const name = file === null ? '' : String(file);
      if (!isSourceChange(name)) return;
      first ??= name;
      clearTimeout(timer);
      timer = setTimeout(() => {
        const changed = first!;
        first = undefined;
        reload(changed);
      }, RELOAD_DEBOUNCE_MS);
    });
    watcher.on('error', (error) => io.err(`wsgid dev: watching ${root} stopped (${error.message}): no more reloads\n`));
    return watcher;
  } catch (error) {
    io.err(`wsgid dev: cannot watch ${root} (${(error as Error).message}): no reloads on changes\n`);
    return undefined;
  }
}

/**
 * The `dev` command. `values` are the command line's (start options, --port, --app-path);
 * `positionals` at most the one APP_DIR.
 */
export async function devCommand(values: Partial<OptionValues>, positionals: readonly string[], io: Output): Promise<number> {
  if (positionals.length > 1) throw new UsageError(`wsgid dev takes one APP_DIR, got: ${positionals.join(' ')}`);
  if (positionals.length === 1 && values.appPath !== undefined) throw new UsageError('give the app as APP_DIR or as --app-path, not both');
  // (--recv, --send and --mongrel2-chroot are not among its options: its mongrel2 is its own.)
  if (values.noDaemon !== undefined) throw new UsageError('wsgid dev always runs in the foreground: --no-daemon is not for it');
  const cwd = process.cwd();
  const { port: givenPort, appPath: givenPath, ...startValues } = values;
  const target = devTarget(path.resolve(cwd, positionals[0] ?? givenPath ?? '.'));
  let m2: PrivateMongrel2 | undefined;
  let watcher: FSWatcher | undefined;
  const cleanUp = async (): Promise<void> => {
    watcher?.close();
    await m2?.stop();
    if (target.privateFolder) rmSync(target.privateFolder, { recursive: true, force: true });
  };
  // While the app could not start: resolves on the next change ('change') or on Ctrl-C ('stop').
  let waiting: ((why: 'change' | 'stop') => void) | undefined;
  // Until the master listens for signals itself, a Ctrl-C stops what was started so far.
  const early = (signal: NodeJS.Signals): void => {
    if (process.listenerCount(signal) > 1) return; // the master has it
    if (waiting) return waiting('stop');
    void cleanUp().finally(() => process.exit(128 + (os.constants.signals[signal] ?? 2)));
  };
  process.on('SIGINT', early);
  process.on('SIGTERM', early);
  try {
    const port = await choosePort(givenPort, io);
    const statics = devStaticFolders(target.watchRoot, resolveSettings({ ...startValues, appPath: target.appPath }, { readFile: true, cwd }).settings.python);
    for (const note of statics.notes) io.err(`wsgid dev: static files: ${note}\n`);
    try {
      m2 = await startPrivateMongrel2({ seed: target.watchRoot, port, bindAddr: HOST, staticDirs: statics.dirs });
    } finally {
      statics.cleanUp(); // mongrel2 has its copy
    }
    const serveValues: Partial<OptionValues> = {
      ...startValues,
      appPath: target.appPath,
      recv: [m2.recv],
      send: [m2.send],
      mongrel2Chroot: m2.chroot,
      noDaemon: true,
    };
    const reread = () => resolveSettings(serveValues, { readFile: true, requireEndpoints: true, cwd });
    const reloads = reread().settings.workers > 0;
    io.err(
      `wsgid dev: serving ${target.watchRoot} at http://${HOST}:${port}/ (mongrel2 pid ${m2.pid} in ${m2.dir}); ` +
        `${reloads ? 'reloading on changes' : 'no reloads with --workers=0'}; Ctrl-C stops\n`,
    );
    if (reloads) {
      watcher = watchSources(
        target.watchRoot,
        (file) => {
          if (waiting) {
            io.err(`wsgid dev: ${file} changed: starting again\n`);
            return waiting('change');
          }
          // Before the master listens for HUP no worker has loaded the code yet: nothing to reload
          // (and a HUP nobody handles would end this process).
          if (process.listenerCount('SIGHUP') === 0) return;
          io.err(`wsgid dev: ${file} changed: reloading\n`);
          process.kill(process.pid, 'SIGHUP');
        },
        io,
      );
    }
    let done = false;
    let mongrel2Gone = false;
    // mongrel2 gone by itself: nothing can reach the app any more, stop it too.
    void m2.exited.then(() => {
      if (done) return;
      mongrel2Gone = true;
      io.err(`wsgid dev: mongrel2 exited: stopping\n${m2?.log() ?? ''}\n`);
      if (waiting) waiting('stop');
      else if (process.listenerCount('SIGTERM') > 1) process.kill(process.pid, 'SIGTERM');
    });
    // As uvicorn --reload: an app that cannot start is tried again after the next change.
    for (;;) {
      const code = await startCommand(reread().settings, [], reread);
      const retry = reloads && !mongrel2Gone && (code === EXIT.APP_LOAD || code === EXIT.NOT_RUNNING);
      if (!retry) {
        done = true;
        return mongrel2Gone ? EXIT.FAILURE : code;
      }
      io.err(`wsgid dev: the app did not start; trying again when a file under ${target.watchRoot} changes (Ctrl-C stops)\n`);
      const why = await new Promise<'change' | 'stop'>((wake) => (waiting = wake));
      waiting = undefined;
      if (why === 'stop') {
        done = true;
        return mongrel2Gone ? EXIT.FAILURE : EXIT.OK;
      }
    }
  } finally {
    // Still listening meanwhile: a second Ctrl-C while mongrel2 stops must not leave it running.
    await cleanUp();
    process.off('SIGINT', early);
    process.off('SIGTERM', early);
  }
}
