/**
 * Pid files as the original wsgid kept them: one file per process, `pid/master/<pid>.pid` and
 * `pid/worker/<pid>.pid`, created when a process starts and removed when it ends. Done the way
 * gunicorn's pidfile.py does it, plus what a root master in a user-writable folder needs
 * (docs/SECURITY.md):
 * - written under a random temp name (O_EXCL) in the same folder, then renamed into place (readers
 *   never see a half-written file; a symlink planted at either name is never followed);
 * - folders are opened from the app folder without following symlinks (fs/anchored.ts);
 * - line 1 is the pid (what older readers expect); line 2, when known, the process's start time
 *   (identity.ts). A process is the file's only while kill(pid, 0) succeeds or fails with EPERM
 *   *and* its start time matches: a pid reused by another program makes the file stale. A file
 *   without line 2 (older wsgid) is stale when its process started after the file was written;
 * - a file is removed only if it still holds the pid we expect (never someone else's).
 */
import path from 'node:path';
import { openAnchoredDir, readFileAt, removeAt, replaceFileAt, withAnchoredDir, type AnchoredDir } from '../fs/anchored.js';
import { isZombie, processStartMs, processStartTicks } from './identity.js';

export type PidRole = 'master' | 'worker';

/** How far a start time may lie after the file's mtime (clock granularity, coarse mtimes). */
const LEGACY_SLACK_MS = 1000;

/** `<appPath>/pid/<role>` */
export function pidDir(appPath: string, role: PidRole): string {
  return path.join(appPath, 'pid', role);
}

export function pidFilePath(appPath: string, role: PidRole, pid: number): string {
  return path.join(pidDir(appPath, role), `${pid}.pid`);
}

/** Is a process with this pid alive (possibly owned by another user)? Says nothing of which one. */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What a pid file says. */
export interface PidRecord {
  pid: number;
  /** The process's start time (clock ticks since boot) when it was written; absent in older files. */
  startTicks?: number;
  /** When the file was last written. */
  mtimeMs: number;
}

/** Does the process that wrote the record still hold its pid (running, or a zombie not reaped yet)? */
export function stillHoldsPid(record: PidRecord): boolean {
  if (!isAlive(record.pid)) return false;
  if (record.startTicks !== undefined) {
    const now = processStartTicks(record.pid);
    return now === undefined || now === record.startTicks; // undefined: no /proc, kill(0) is all we have
  }
  const started = processStartMs(record.pid);
  return started === undefined || started <= record.mtimeMs + LEGACY_SLACK_MS;
}

/** Is the process that wrote the record still running (a zombie has exited)? */
export function isSameProcess(record: PidRecord): boolean {
  return stillHoldsPid(record) && !isZombie(record.pid);
}

function parse(text: string, mtimeMs: number): PidRecord | undefined {
  const [first, second] = text.split('\n');
  if (!first || !/^\d+$/.test(first.trim())) return undefined;
  const record: PidRecord = { pid: Number(first.trim()), mtimeMs };
  if (second !== undefined && /^\d+$/.test(second.trim())) record.startTicks = Number(second.trim());
  return record;
}

function openPidDir(appPath: string, role: PidRole): AnchoredDir | undefined {
  try {
    return openAnchoredDir(appPath, ['pid', role]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Write `pid/<role>/<pid>.pid` atomically, with the process's start time. Returns the path. */
export function writePidFile(appPath: string, role: PidRole, pid: number): string {
  const ticks = processStartTicks(pid);
  withAnchoredDir(appPath, ['pid', role], (dir) => replaceFileAt(dir, `${pid}.pid`, ticks === undefined ? `${pid}\n` : `${pid}\n${ticks}\n`, 0o644), 0o755);
  return pidFilePath(appPath, role, pid);
}

/** What `pid/<role>/<pid>.pid` holds, or undefined when it is missing or unreadable. */
function readRecordAt(dir: AnchoredDir, name: string): PidRecord | undefined {
  const file = readFileAt(dir, name);
  return file && parse(file.text, file.mtimeMs);
}

/** Remove `pid/<role>/<pid>.pid` if (and only if) it still holds `pid`. Returns true when removed. */
export function removePidFile(appPath: string, role: PidRole, pid: number): boolean {
  let dir: AnchoredDir | undefined;
  try {
    dir = openPidDir(appPath, role);
    if (!dir) return false;
    const name = `${pid}.pid`;
    if (readRecordAt(dir, name)?.pid !== pid) return false;
    return removeAt(dir, name);
  } catch {
    return false; // pid/ swapped for a symlink, or raced away: nothing of ours to remove there
  } finally {
    dir?.close();
  }
}

export interface PidEntry extends PidRecord {
  file: string;
  /** The process that wrote the file is still running (pid alive and identity matching). */
  alive: boolean;
}

function entriesIn(dir: AnchoredDir): (PidEntry & { name: string })[] {
  const out: (PidEntry & { name: string })[] = [];
  for (const name of dir.list()) {
    const m = /^(\d+)\.pid$/.exec(name);
    if (!m) continue;
    const record = readRecordAt(dir, name) ?? { pid: Number(m[1]), mtimeMs: 0 };
    out.push({ ...record, name, file: path.join(dir.path, name), alive: isSameProcess(record) });
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** Every `<pid>.pid` in `pid/<role>/`, with liveness (identity checked). */
export function listPidFiles(appPath: string, role: PidRole): PidEntry[] {
  const dir = openPidDir(appPath, role);
  if (!dir) return [];
  try {
    return entriesIn(dir).map(({ name: _name, ...entry }) => entry);
  } finally {
    dir.close();
  }
}

/** Remove the stale files of `pid/<role>/` (process gone or pid reused). Returns the pids removed. */
export function removeStalePidFiles(appPath: string, role: PidRole): number[] {
  const dir = openPidDir(appPath, role);
  if (!dir) return [];
  const removed: number[] = [];
  try {
    for (const entry of entriesIn(dir)) {
      if (entry.alive) continue;
      try {
        if (removeAt(dir, entry.name)) removed.push(entry.pid);
      } catch {
        /* raced with someone else: fine */
      }
    }
  } finally {
    dir.close();
  }
  return removed;
}
