/**
 * Pid files as the original wsgid kept them: one file per process, `pid/master/<pid>.pid` and
 * `pid/worker/<pid>.pid`, created when a process starts and removed when it ends. Done the way
 * gunicorn's pidfile.py does it:
 * - written to a temp file in the same folder, then renamed into place (readers never see a
 *   half-written file);
 * - a process is alive when kill(pid, 0) succeeds or fails with EPERM (exists, not ours); ESRCH
 *   means the file is stale;
 * - a file is removed only if it still holds the pid we expect (never someone else's).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export type PidRole = 'master' | 'worker';

/** `<appPath>/pid/<role>` */
export function pidDir(appPath: string, role: PidRole): string {
  return path.join(appPath, 'pid', role);
}

export function pidFilePath(appPath: string, role: PidRole, pid: number): string {
  return path.join(pidDir(appPath, role), `${pid}.pid`);
}

/** Is a process with this pid alive (possibly owned by another user)? */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Write `<dir>/<pid>.pid` atomically (temp + rename). Returns the path. */
export function writePidFile(appPath: string, role: PidRole, pid: number): string {
  const dir = pidDir(appPath, role);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, `${pid}.pid`);
  const temp = path.join(dir, `.${pid}.pid.${process.pid}.tmp`);
  writeFileSync(temp, `${pid}\n`, { mode: 0o644 });
  renameSync(temp, file);
  return file;
}

/** The pid a pid file holds, or undefined when it is missing or unreadable. */
export function readPidFile(file: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (!/^\d+$/.test(text)) return undefined;
    return Number(text);
  } catch {
    return undefined;
  }
}

/** Remove `<dir>/<pid>.pid` if (and only if) it still holds `pid`. Returns true when removed. */
export function removePidFile(appPath: string, role: PidRole, pid: number): boolean {
  const file = pidFilePath(appPath, role, pid);
  if (readPidFile(file) !== pid) return false;
  try {
    unlinkSync(file);
    return true;
  } catch {
    return false;
  }
}

export interface PidEntry {
  pid: number;
  file: string;
  alive: boolean;
}

/** Every `<pid>.pid` in `pid/<role>/`, with liveness. */
export function listPidFiles(appPath: string, role: PidRole): PidEntry[] {
  const dir = pidDir(appPath, role);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: PidEntry[] = [];
  for (const name of names) {
    const m = /^(\d+)\.pid$/.exec(name);
    if (!m) continue;
    const file = path.join(dir, name);
    const pid = readPidFile(file) ?? Number(m[1]);
    out.push({ pid, file, alive: isAlive(pid) });
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** Remove the stale files of `pid/<role>/` (process gone). Returns the pids removed. */
export function removeStalePidFiles(appPath: string, role: PidRole): number[] {
  const removed: number[] = [];
  for (const entry of listPidFiles(appPath, role)) {
    if (entry.alive) continue;
    try {
      unlinkSync(entry.file);
      removed.push(entry.pid);
    } catch {
      /* raced with someone else: fine */
    }
  }
  return removed;
}
