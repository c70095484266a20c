/**
 * `pid/status.json` (mode 0640), the numbers the master publishes every tick for `wsgid status`. pid/ may be
 * the app user's: written under a random O_EXCL name and renamed, never through a symlink.
 */
import { readFileAt, removeAt, replaceFileAt, withAnchoredDir } from '../fs/anchored.js';
import { dropTarget } from './privileges.js';

export const STATUS_FILE = 'status.json';

/**
 * 0640 like the logs (it holds tracebacks, reload reasons, endpoints): readable by the folder's
 * owner (a root master gives it to them, as the logs) and root, not by every local user.
 */
export function writeStatusFile(appPath: string, json: string): void {
  const owner = dropTarget(appPath);
  withAnchoredDir(appPath, ['pid'], (dir) => replaceFileAt(dir, STATUS_FILE, json, 0o640, owner));
}

export function removeStatusFile(appPath: string): void {
  try {
    withAnchoredDir(appPath, ['pid'], (dir) => removeAt(dir, STATUS_FILE));
  } catch {
    /* pid/ gone or replaced: nothing of ours to remove */
  }
}

/** The status file's text, or undefined (missing, a symlink, not a regular file). */
export function readStatusFile(appPath: string): string | undefined {
  try {
    return withAnchoredDir(appPath, ['pid'], (dir) => readFileAt(dir, STATUS_FILE)?.text);
  } catch {
    return undefined;
  }
}
