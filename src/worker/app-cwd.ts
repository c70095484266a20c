/**
 * A worker runs with `app/` as its working folder (gunicorn's --chdir, PM2's cwd), so an app finds
 * its files the way `npm start` in app/ does (`next start` reads ./.next, `dotenv` reads ./.env).
 * Entered after the chroot and privilege drop (worker/main.ts): the folder is then reached as the
 * app sees it. Paths that were relative to the app folder (the master's cwd) must not move with it:
 * the dispatch socket is connected before (connect(2) is synchronous), and relative `ipc://`
 * endpoints, which ZeroMQ resolves again on every reconnect, and the worker's log file (reopened
 * on USR1 through a path the master gave relative to the app folder), are anchored to it first.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Settings } from '../config/settings.js';
import type { LogDestination } from '../log/logger.js';

/** `ipc://relative/x.sock` → `ipc://<appPath>/relative/x.sock`; anything else unchanged. */
export function anchorEndpoint(endpoint: string, appPath: string): string {
  if (!endpoint.startsWith('ipc://')) return endpoint;
  const file = endpoint.slice('ipc://'.length);
  return file.startsWith('/') ? endpoint : `ipc://${path.join(appPath, file)}`;
}

/** chdir into `<appPath>/app` (when it is a folder); returns the settings with endpoints anchored. */
export function enterAppCwd(settings: Settings): Settings {
  const anchored: Settings = {
    ...settings,
    recv: settings.recv.map((e) => anchorEndpoint(e, settings.appPath)),
    send: settings.send.map((e) => anchorEndpoint(e, settings.appPath)),
  };
  const appDir = path.join(settings.appPath, 'app');
  let isDir = false;
  try {
    isDir = statSync(appDir).isDirectory();
  } catch {
    /* no app/: the loader says so */
  }
  if (isDir) process.chdir(appDir);
  return anchored;
}

/** A log file given relative to the cwd (`{path: 'logs/wsgid.log', root: '.'}`) → under `appPath`. */
export function anchorLogDestination(destination: LogDestination, appPath: string): LogDestination {
  if (!('path' in destination) || destination.root === undefined || path.isAbsolute(destination.root)) return destination;
  const root = path.join(appPath, destination.root);
  return { path: path.join(root, path.relative(destination.root, destination.path)), root };
}
