/**
 * The wsgid app folder, as the original laid it out:
 *
 *   DIR/app/           the application (code, its node_modules, or a Python package)
 *   DIR/logs/          wsgid.log (daemon log), access.log, app.log (the workers' output; docs/LOGGING.md)
 *   DIR/plugins/       app-loader plugins
 *   DIR/pid/master/    <pid>.pid of the master
 *   DIR/pid/worker/    <pid>.pid of each worker
 *   DIR/wsgid.json     saved options (`wsgid config`)
 *
 * `wsgid init` creates the folders (and DIR itself) if needed; it never touches existing files.
 */
import { accessSync, constants as fsConstants, lstatSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { AppFolderError } from '../errors.js';
import { withAnchoredDir } from '../fs/anchored.js';
import { CONFIG_FILE_NAME } from '../config/file.js';

/** Folders `wsgid init` creates, relative to the app folder. */
export const LAYOUT_DIRS = ['app', 'logs', 'plugins', 'pid', 'pid/master', 'pid/worker'] as const;

export interface AppFolderPaths {
  root: string;
  app: string;
  logs: string;
  plugins: string;
  pid: string;
  pidMaster: string;
  pidWorker: string;
  /** The daemon's log (logs/wsgid.log). */
  wsgidLog: string;
  /** The access log (logs/access.log). */
  accessLog: string;
  /** wsgid.json */
  configFile: string;
}

export function appFolderPaths(appPath: string): AppFolderPaths {
  const root = path.resolve(appPath);
  const logs = path.join(root, 'logs');
  const pid = path.join(root, 'pid');
  return {
    root,
    app: path.join(root, 'app'),
    logs,
    plugins: path.join(root, 'plugins'),
    pid,
    pidMaster: path.join(pid, 'master'),
    pidWorker: path.join(pid, 'worker'),
    wsgidLog: path.join(logs, 'wsgid.log'),
    accessLog: path.join(logs, 'access.log'),
    configFile: path.join(root, CONFIG_FILE_NAME),
  };
}

function isDirectory(p: string): boolean | undefined {
  try {
    return statSync(p).isDirectory();
  } catch {
    return undefined;
  }
}

/**
 * Create the layout under `appPath` (and `appPath` itself). Idempotent: existing folders and files
 * are left alone. Returns the folders it created. Throws AppFolderError when a path that should be a
 * folder is something else.
 */
export function initAppFolder(appPath: string): string[] {
  const root = path.resolve(appPath);
  const created: string[] = [];
  const state = isDirectory(root);
  if (state === false) throw new AppFolderError(`${root} exists and is not a folder`);
  if (state === undefined) {
    try {
      mkdirSync(root, { mode: 0o755, recursive: true });
    } catch (error) {
      throw new AppFolderError(`cannot create ${root}: ${(error as Error).message}`);
    }
    created.push(root);
  }
  // Below the folder, nothing is followed: init may run as root in a folder its user can write.
  for (const dir of LAYOUT_DIRS) {
    const full = path.join(root, dir);
    let existed: boolean;
    try {
      const st = lstatSync(full);
      if (!st.isDirectory()) throw new AppFolderError(`${full} exists and is not a folder${st.isSymbolicLink() ? ' (a symlink)' : ''}`);
      existed = true;
    } catch (error) {
      if (error instanceof AppFolderError) throw error;
      existed = false;
    }
    if (existed) continue;
    try {
      withAnchoredDir(root, dir.split('/'), () => {}, 0o755);
    } catch (error) {
      throw new AppFolderError(`cannot create ${full}: ${(error as Error).message}`);
    }
    created.push(full);
  }
  return created;
}

/**
 * Check that `appPath` is a usable app folder before starting: it exists and has app/. Creates the
 * folders wsgid writes to (logs/, pid/…) when they are missing, so an older folder still starts.
 */
export function checkAppFolder(appPath: string): AppFolderPaths {
  const paths = appFolderPaths(appPath);
  const root = isDirectory(paths.root);
  if (root === undefined) {
    throw new AppFolderError(`app folder ${paths.root} does not exist (create it with: wsgid init --app-path=${paths.root})`);
  }
  if (root === false) throw new AppFolderError(`app folder ${paths.root} is not a folder`);
  const app = isDirectory(paths.app);
  if (app !== true) {
    throw new AppFolderError(
      `${paths.app} ${app === false ? 'is not a folder' : 'is missing'}: put your application there ` +
        `(wsgid init --app-path=${paths.root} creates the layout)`,
    );
  }
  for (const dir of [paths.logs, paths.pidMaster, paths.pidWorker]) {
    try {
      // Walked without following symlinks: we may be root in a folder the app's user can write.
      withAnchoredDir(paths.root, path.relative(paths.root, dir).split(path.sep), () => {}, 0o755);
    } catch (error) {
      throw new AppFolderError(`cannot create ${dir}: ${(error as Error).message}`);
    }
  }
  return paths;
}

/** A folder wsgid has started in or laid out has one of these (app/ alone may be a package named `app`). */
const APP_FOLDER_MARKS = ['pid', 'logs', CONFIG_FILE_NAME] as const;

function isAppFolder(root: string): boolean {
  return APP_FOLDER_MARKS.some((mark) => {
    try {
      lstatSync(path.join(root, mark));
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * For the commands that control a running wsgid (stop, restart, status, reopen-logs): `appPath`
 * exists and is an app folder. Run elsewhere (e.g. inside app/) they would report "not running"
 * about a folder wsgid never used; say which path was checked, and the app folder above if any.
 */
export function checkControlledAppFolder(appPath: string): AppFolderPaths {
  const paths = checkAppFolderExists(appPath);
  if (isAppFolder(paths.root)) return paths;
  let hint = ' (give it with --app-path=DIR)';
  // Two levels up at most: run inside app/ or a folder of it, not any parent that has a logs/.
  for (let up = path.dirname(paths.root), level = 0; level < 2 && up !== paths.root; up = path.dirname(up), level++) {
    if (isAppFolder(up)) {
      hint = ` (did you mean --app-path=${up}?)`;
      break;
    }
  }
  throw new AppFolderError(`${paths.root} is not a wsgid app folder: it has no ${APP_FOLDER_MARKS.map((m) => (m.includes('.') ? m : m + '/')).join(', ')}${hint}`);
}

/**
 * The folders the master must write (pid files, status.json, logs) that are on a read-only file
 * system (EROFS). Only EROFS: "permission denied" depends on who asks.
 */
export function readOnlyFolders(paths: AppFolderPaths): string[] {
  const out: string[] = [];
  for (const dir of [paths.pid, paths.pidWorker, paths.logs]) {
    try {
      accessSync(dir, fsConstants.W_OK);
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      if (e.code === 'EROFS') out.push(dir);
    }
  }
  return out;
}

/** Check that `appPath` exists (for stop/status/restart, which need no app/). */
export function checkAppFolderExists(appPath: string): AppFolderPaths {
  const paths = appFolderPaths(appPath);
  const state = isDirectory(paths.root);
  if (state !== true) {
    throw new AppFolderError(`app folder ${paths.root} ${state === false ? 'is not a folder' : 'does not exist'}`);
  }
  return paths;
}
