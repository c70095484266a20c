/**
 * What a master that died without cleaning up (SIGKILL, a crash) leaves in `pid/`: its pid files
 * and its workers', `status.json` (which would keep reporting its numbers) and its socket folder
 * `.d<pid>/`. Removed on the next start and by `wsgid stop`, once no live master owns them.
 */
import { readFileAt, removeAt, removeFlatFolderAt, withAnchoredDir } from '../fs/anchored.js';
import { listPidFiles, removeStalePidFiles } from './pidfile.js';
import { STATUS_FILE } from './status-file.js';

/** The master pid `pid/status.json` was written by, if it parses. */
function statusOwner(text: string): number | undefined {
  try {
    const raw: unknown = JSON.parse(text);
    const master = raw !== null && typeof raw === 'object' ? (raw as { master?: { pid?: unknown } }).master : undefined;
    return typeof master?.pid === 'number' ? master.pid : undefined;
  } catch {
    return undefined;
  }
}

/** Remove what dead masters left in `pid/`. Returns the pids whose pid files were removed. */
export function removeStaleState(appPath: string): number[] {
  const removed = [...removeStalePidFiles(appPath, 'master'), ...removeStalePidFiles(appPath, 'worker')];
  const live = new Set(listPidFiles(appPath, 'master').filter((e) => e.alive).map((e) => e.pid));
  live.add(process.pid);
  try {
    withAnchoredDir(appPath, ['pid'], (dir) => {
      for (const name of dir.list()) {
        const m = /^\.d(\d+)$/.exec(name);
        if (m && !live.has(Number(m[1]))) removeFlatFolderAt(dir, name);
      }
      const status = readFileAt(dir, STATUS_FILE);
      if (status) {
        const owner = statusOwner(status.text);
        if (owner === undefined || !live.has(owner)) removeAt(dir, STATUS_FILE);
      }
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return removed;
}
