/**
 * Privileges and chroot, the original wsgid's model: when started as root, the app runs as the
 * owner (uid/gid) of the app folder, with or without --chroot; with --chroot it is also confined to
 * the app folder.
 *
 * Who does what:
 * - The master stays root (like gunicorn's arbiter with `user=`): it must be able to fork workers that
 *   chroot, signal them, and write pid files. Before forking it calls `prepareForWorkers()`, which
 *   hands the files the workers write or reopen (logs/, logs/*.log, pid/worker/) to the owner.
 *   Anything else the master creates for workers (e.g. the dispatch socket folder) is given to the
 *   owner through an fd opened without following symlinks (fs/anchored.ts, docs/SECURITY.md).
 * - A worker (or the master itself with --workers=0) calls `enterAppFolder()` after it has imported
 *   every module it needs and connected its sockets, and before it loads the app. It chroots into the
 *   app folder (when asked), then drops to the owner: supplementary groups, gid, uid (in that order;
 *   after setuid nothing can be regained).
 *
 * chroot(2): Node has setuid/setgid/setgroups/initgroups but no chroot, so wsgid ships a tiny N-API
 * addon (native/chroot.c, built by node-gyp at install: `npm run build:native`). Without it,
 * --chroot is refused with a clear message; privilege dropping works without it.
 *
 * Consequences of chroot (documented in docs/CLI.md, "Privileges and chroot"): after it, only files under the app folder exist.
 * The app's own dependencies must be in app/node_modules (or app/…); wsgid's modules and native
 * addons (zeromq) are already loaded; the master↔worker socket is connected before the chroot (its
 * path is relative to the app folder anyway); relative ipc:// endpoints keep working; /etc (DNS
 * resolv.conf, passwd, TLS CAs) and /dev are absent unless copied or bind-mounted in; Python WSGI
 * apps need a Python inside the folder; async uploads need mongrel2's chroot inside the app folder.
 * Log files are reopened through paths relative to the new root (`inAppFolder()`).
 */
import { closeSync, fchownSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WsgidError } from '../errors.js';
import type { Settings } from '../config/settings.js';
import { nativeAddonOverride } from '../config/test-hooks.js';
import type { Logger } from '../log/logger.js';
import { chownDir, openAppendAt, withAnchoredDir } from '../fs/anchored.js';
import { appFolderPaths } from './layout.js';

export interface Owner {
  uid: number;
  gid: number;
}

export class PrivilegeError extends WsgidError {
  constructor(message: string) {
    super(message, 'WSGID_ERR_PRIVILEGES');
  }
}

/** The uid/gid owning the app folder. */
export function appFolderOwner(appPath: string): Owner {
  const st = statSync(appPath);
  return { uid: st.uid, gid: st.gid };
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The owner to drop to, or undefined when no drop happens (not root, or the folder is root's). */
export function dropTarget(appPath: string): Owner | undefined {
  if (!isRoot()) return undefined;
  const owner = appFolderOwner(appPath);
  return owner.uid === 0 ? undefined : owner;
}

/**
 * Master side, before the first worker: create logs/wsgid.log, access.log and app.log if missing and
 * give them, logs/, pid/master/ and pid/worker/ to the owner, so dropped workers (and the
 * single-process mode, which drops in the master) can write, reopen and remove them.
 * Also checks early that --chroot can work (root + addon), so `wsgid start` fails up front.
 */
export function prepareForWorkers(settings: Settings): void {
  if (settings.chroot) {
    if (!isRoot()) throw new PrivilegeError('--chroot needs root (wsgid chroots into the app folder, then drops to its owner)');
    loadNative();
  }
  const owner = dropTarget(settings.appPath);
  if (!owner) return;
  // The owner may have planted symlinks anywhere below the folder: everything is opened without
  // following them and chowned through the open fd (fs/anchored.ts).
  const { root } = appFolderPaths(settings.appPath);
  withAnchoredDir(root, ['logs'], (logs) => {
    // app.log: written by the master, but the app's output is the owner's to read.
    for (const name of ['wsgid.log', 'access.log', 'app.log']) {
      const fd = openAppendAt(logs, name, 0o640);
      try {
        fchownSync(fd, owner.uid, owner.gid);
      } finally {
        closeSync(fd);
      }
    }
    chownDir(logs, owner.uid, owner.gid);
  });
  for (const role of ['master', 'worker']) withAnchoredDir(root, ['pid', role], (dir) => chownDir(dir, owner.uid, owner.gid));
}

// ---------------------------------------------------------------------------------------------
// The native addon

interface NativeAddon {
  /** chroot(path) then chdir("/"); throws an Error with `code` (EPERM, ENOENT, ...) on failure. */
  chroot(path: string): void;
  /** One datagram to systemd's NOTIFY_SOCKET (native/notify.c); absent from addons built before it. */
  notify?(socketPath: string, message: string): void;
}

let native: NativeAddon | undefined;

/** Where node-gyp puts the addon, relative to the package root. */
const ADDON_RELATIVE = path.join('native', 'build', 'Release', 'wsgid_native.node');

function packageRoot(): string {
  // This file is src/app-folder/privileges.ts, or dist/src/app-folder/privileges.js once built.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    dir = path.dirname(dir);
    try {
      statSync(path.join(dir, 'package.json'));
      return dir;
    } catch {
      /* keep climbing */
    }
  }
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
}

/** The addon, or why it could not be loaded (for features that have a fallback: systemd notify). */
export function nativeAddonOrReason(): { addon: NativeAddon } | { reason: string } {
  try {
    return { addon: loadNative() };
  } catch (error) {
    return { reason: (error as Error).message.replace(/^--chroot needs/, 'needs') };
  }
}

/** Load the chroot addon (once); throws a PrivilegeError saying how to build it. */
export function loadNative(): NativeAddon {
  if (native) return native;
  const file = nativeAddonOverride() ?? path.join(packageRoot(), ADDON_RELATIVE);
  try {
    native = createRequire(import.meta.url)(file) as NativeAddon;
    return native;
  } catch (error) {
    throw new PrivilegeError(
      `--chroot needs wsgid's native addon (${file}), which could not be loaded: ${(error as Error).message}. ` +
        'Build it with `npm run build:native` (needs a C compiler and the Node headers).',
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Worker side

/** process.initgroups exists on POSIX Node but is missing from @types/node 20. */
type ProcessWithInitgroups = NodeJS.Process & { initgroups?: (user: number | string, extraGroup: number | string) => void };

let chrootedInto: string | undefined;

/** The folder this process is chrooted into (outside path), or undefined. */
export function chrootedAppFolder(): string | undefined {
  return chrootedInto;
}

/**
 * A path under the app folder, valid in this process now: `/segments…` after a chroot into the app
 * folder, `appPath/segments…` otherwise. Use it for files opened (or reopened) after enterAppFolder.
 */
export function inAppFolder(appPath: string, ...segments: string[]): string {
  return chrootedInto !== undefined && path.resolve(appPath) === chrootedInto
    ? path.join('/', ...segments)
    : path.join(appPath, ...segments);
}

/** Map an absolute outside path into the chroot; undefined when it is outside the app folder. */
function mapIntoChroot(root: string, p: string): string | undefined {
  const rel = path.relative(root, path.resolve(p));
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return path.join('/', rel);
}

/**
 * Worker side: chroot (if settings.chroot) and drop privileges (if root and the folder is not
 * root's). Call it after every wsgid module and native addon is loaded and sockets are connected,
 * before loading the app. Returns the Settings as seen from inside: with --chroot, `appPath` is `/`
 * and folder settings are mapped into it (a folder outside the app folder is reported and kept as
 * is: it will not be reachable).
 */
export function enterAppFolder(settings: Settings, logger?: Logger): Settings {
  const root = path.resolve(settings.appPath);
  const owner = dropTarget(root);
  let result = settings;

  if (owner) {
    // Supplementary groups first, while /etc/group is still reachable (before the chroot).
    try {
      const initgroups = (process as ProcessWithInitgroups).initgroups;
      if (!initgroups) throw new Error('no initgroups');
      initgroups(owner.uid, owner.gid);
    } catch {
      // uid without a passwd entry: just its primary group.
      process.setgroups?.([owner.gid]);
    }
  }

  if (settings.chroot) {
    if (!isRoot()) throw new PrivilegeError('--chroot needs root');
    const addon = loadNative();
    try {
      addon.chroot(root);
      // The addon chdir()s to the new "/", but Node caches the cwd and only refreshes it in
      // process.chdir(): without this, process.cwd() and path.resolve() keep the old folder.
      process.chdir('/');
    } catch (error) {
      throw new PrivilegeError(`chroot(${root}) failed: ${(error as Error).message}`);
    }
    chrootedInto = root;
    const mapFolder = (name: string, p: string): string => {
      const inside = mapIntoChroot(root, p);
      if (inside === undefined) {
        logger?.warn(`${name} is outside the app folder: not reachable after chroot`, { path: p });
        return p;
      }
      return inside;
    };
    result = {
      ...settings,
      appPath: '/',
      loaderDir: settings.loaderDir.map((d) => mapFolder('--loader-dir', d)),
      mongrel2Chroot: settings.mongrel2Chroot ? mapFolder('--mongrel2-chroot', settings.mongrel2Chroot) : '',
    };
    logger?.info('chrooted into the app folder', { root });
  }

  if (owner) {
    try {
      process.setgid!(owner.gid);
      process.setuid!(owner.uid);
    } catch (error) {
      throw new PrivilegeError(`cannot drop privileges to uid ${owner.uid} gid ${owner.gid}: ${(error as Error).message}`);
    }
    logger?.info('dropped privileges to the app folder owner', { uid: owner.uid, gid: owner.gid });
  }
  return result;
}
