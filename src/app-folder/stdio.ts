/**
 * The master's own fd 1 and 2 in daemon mode: logs/wsgid.log (set up by cli/daemon.ts), so what
 * no logger sees (an uncaught error's stack, Node's warnings) still lands in the log. After a
 * rotation (SIGUSR1) they must follow the new file: dup2(2), from the native addon (Node has no
 * dup2). Without the addon they keep pointing at the rotated file; `reopenStdio` says so.
 */
import { closeSync } from 'node:fs';
import path from 'node:path';
import { openAppendBelow } from '../fs/anchored.js';
import { loadNative } from './privileges.js';

type Dup2 = (oldfd: number, newfd: number) => void;

function nativeDup2(): Dup2 | undefined {
  try {
    const addon = loadNative() as unknown as { dup2?: Dup2 };
    return typeof addon.dup2 === 'function' ? addon.dup2 : undefined;
  } catch {
    return undefined;
  }
}

export type StdioReopen = { ok: true } | { ok: false; reason: string };

/**
 * Open `file` (under `root`, no symlink followed) and make it this process's fd 1 and 2. The file
 * is opened O_APPEND, so a copytruncate rotation leaves no hole.
 */
export function reopenStdio(root: string, file: string): StdioReopen {
  const dup2 = nativeDup2();
  if (!dup2) return { ok: false, reason: "wsgid's native addon (dup2) is not built: the master's stdout/stderr still point at the rotated file" };
  const fd = openAppendBelow(root, path.relative(root, file), 0o640);
  try {
    dup2(fd, 1);
    dup2(fd, 2);
  } finally {
    closeSync(fd);
  }
  return { ok: true };
}
