/**
 * File descriptors: the soft limit (RLIMIT_NOFILE, from /proc/self/limits: Node has no
 * getrlimit), what a configuration needs of it (pure), and how an EMFILE is said. A master out of
 * descriptors fails in places that look unrelated (reading wsgid.json, spawning a worker,
 * writing status.json): naming EMFILE there is what tells the operator to raise the limit.
 */
import { readFileSync } from 'node:fs';

/** This process's soft limit on open files, or undefined when it cannot be read (not Linux). */
export function openFileLimit(limitsFile = '/proc/self/limits'): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(readFileSync(limitsFile, 'utf8'));
    if (!m) return undefined;
    return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Descriptors a process of wsgid uses whatever it serves (node, libuv, ZeroMQ, logs). */
const BASE_FDS = 64;
/** The master's per worker: stdout and stderr pipes, the IPC channel, the dispatch connection, slack. */
const MASTER_FDS_PER_WORKER = 8;

export interface FdNeeds {
  /** The master during a rolling reload (old and new workers at once). */
  master: number;
  /** One worker with every request slot in use, one descriptor each (a socket, a file). */
  worker: number;
}

/** What `--workers` and `--worker-connections` need of the limit (each process has its own). */
export function fdNeeds(workers: number, workerConnections: number): FdNeeds {
  return { master: BASE_FDS + 2 * Math.max(1, workers) * MASTER_FDS_PER_WORKER, worker: BASE_FDS + workerConnections };
}

/** The warning `wsgid start` prints when the limit is below what the settings need, else undefined. */
export function fdLimitWarning(limit: number | undefined, workers: number, workerConnections: number): string | undefined {
  if (limit === undefined) return undefined;
  const needs = fdNeeds(workers, workerConnections);
  const need = Math.max(needs.master, needs.worker);
  if (limit >= need) return undefined;
  return (
    `the open-file limit is ${limit}, below the ${need} that --workers=${workers} and --worker-connections=${workerConnections} need ` +
    `(master ${needs.master} during a reload, each worker ${needs.worker}); out of descriptors, requests, reloads and respawns fail with EMFILE: ` +
    'raise it (ulimit -n, systemd LimitNOFILE=)'
  );
}

/** Whether an error is "out of file descriptors" (this process: EMFILE; the system: ENFILE). */
export function isOutOfFds(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EMFILE' || code === 'ENFILE';
}

/** `<what>: out of file descriptors (EMFILE, limit 256): raise ...`. */
export function outOfFdsMessage(what: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const limit = openFileLimit();
  return `${what}: out of file descriptors (${code}${limit !== undefined && code === 'EMFILE' ? `, limit ${limit}` : ''}); raise the limit (ulimit -n, systemd LimitNOFILE=)`;
}
