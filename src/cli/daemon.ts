/**
 * Daemonizing without fork(): Node cannot fork() a running process, so the `wsgid` you type re-runs
 * itself (`process.execPath [execArgv] <this cli> <same arguments>`) as a detached child:
 * - `detached: true` → the child calls setsid(): new session and process group, no controlling tty;
 * - stdin → /dev/null, stdout and stderr → logs/wsgid.log (so a crash's stack trace, which no logger
 *   sees, still lands in the log; SIGUSR1 points them at the new file: app-folder/stdio.ts), plus a
 *   Node IPC channel to report back;
 * - cwd = the app folder; the child sets umask 022 itself;
 * - env WSGID_DAEMON_CHILD=1 tells it that it *is* the daemon (it runs the master in-process and logs
 *   to logs/wsgid.log); it removes the variable from its environment so workers don't inherit it.
 * The child reports `{type:'ready'}` or `{type:'failed', reason, exitCode}` over IPC, then
 * disconnects; the parent prints the outcome and exits 0 or non-zero. One less fork than the classic
 * double fork: the child is a session leader, but since it never opens a tty (stdio is /dev/null and
 * it opens no terminal devices) it can't acquire one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import path from 'node:path';
import { openAppendBelow } from '../fs/anchored.js';
import { EXIT } from '../errors.js';

export const DAEMON_CHILD_ENV = 'WSGID_DAEMON_CHILD';

/** What a failed start shows under its one-line reason: a traceback or code frame, and a hint. */
export interface FailureDetail {
  detail?: string;
  hint?: string;
}

/** The verbatim detail (traceback, code frame) and the hint of a failure, for the terminal. */
export function formatFailureDetail(failure: FailureDetail): string {
  let text = '';
  if (failure.detail) text += failure.detail.replace(/\s+$/, '') + '\n';
  if (failure.hint) text += `hint: ${failure.hint}\n`;
  return text;
}

export type DaemonReport =
  /** `warnings`: lines for the terminal (e.g. mongrel2 endpoints not connected). */
  | { type: 'ready'; pid: number; workers: number; warnings?: string[] }
  | ({ type: 'failed'; reason: string; exitCode: number } & FailureDetail);

function isReport(value: unknown): value is DaemonReport {
  if (value === null || typeof value !== 'object') return false;
  const type = (value as { type?: unknown }).type;
  return type === 'ready' || type === 'failed';
}

/** In the child: are we the daemon started by `spawnDaemon`? (Reads and clears the marker.) */
export function takeDaemonChildMarker(): boolean {
  const marked = process.env[DAEMON_CHILD_ENV] === '1';
  delete process.env[DAEMON_CHILD_ENV];
  return marked && typeof process.send === 'function';
}

/** In the child: report to the waiting parent, then drop the channel (so the parent can exit). */
export function reportToParent(report: DaemonReport): void {
  if (!process.send || !process.connected) return;
  try {
    process.send(report, (error: Error | null) => {
      void error; // the parent is gone: nothing to tell
      if (process.connected) process.disconnect();
    });
  } catch {
    if (process.connected) process.disconnect();
  }
}

export interface SpawnDaemonOptions {
  /** The CLI arguments to re-run (without node and the script). */
  argv: readonly string[];
  /** The app folder (the daemon's cwd). */
  cwd: string;
  /** Give up waiting for "ready" after this long (the daemon is then stopped with SIGTERM). */
  readyTimeoutMs: number;
  /** Where the daemon logs, for messages. */
  logFile: string;
  /** Called with the daemon's process as soon as it is spawned (e.g. to pass a stop on to it). */
  onSpawn?: (child: ChildProcess) => void;
}

export interface SpawnDaemonResult extends FailureDetail {
  exitCode: number;
  message: string;
  /** Started, but something needs attention (printed on stderr after the message). */
  warnings?: string[];
  pid?: number;
}

/** In the parent: start the daemon and wait for its report. */
export function spawnDaemon(options: SpawnDaemonOptions): Promise<SpawnDaemonResult> {
  const script = process.argv[1];
  let stderr: number | 'ignore' = 'ignore';
  try {
    // The app folder's user may have planted a symlink there: never follow one (we may be root).
    stderr = openAppendBelow(options.cwd, path.relative(options.cwd, options.logFile), 0o640);
  } catch {
    /* the daemon reports the problem when it opens its log */
  }
  const child = spawn(process.execPath, [...process.execArgv, script, ...options.argv], {
    detached: true,
    stdio: ['ignore', stderr, stderr, 'ipc'],
    cwd: options.cwd,
    env: { ...process.env, [DAEMON_CHILD_ENV]: '1' },
  });
  if (typeof stderr === 'number') closeSync(stderr);
  options.onSpawn?.(child);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: SpawnDaemonResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.connected) child.disconnect();
      child.unref();
      resolve(result);
    };
    const timer = setTimeout(() => {
      try {
        child.kill('SIGTERM');
      } catch {
        /* gone */
      }
      finish({
        exitCode: EXIT.FAILURE,
        message: `the app did not become ready within ${Math.round(options.readyTimeoutMs / 1000)} s; stopped it (see ${options.logFile})`,
      });
    }, options.readyTimeoutMs);
    child.on('message', (message: unknown) => {
      if (!isReport(message)) return;
      if (message.type === 'ready') {
        const warnings = Array.isArray(message.warnings) ? message.warnings.filter((w) => typeof w === 'string') : [];
        finish({
          exitCode: EXIT.OK,
          pid: message.pid,
          message: `wsgid started: master pid ${message.pid}, ${message.workers === 0 ? 'serving in the master process' : `${message.workers} worker(s) ready`}; log: ${options.logFile}`,
          warnings,
        });
      } else {
        finish({
          exitCode: message.exitCode || EXIT.FAILURE,
          message: `wsgid could not start: ${message.reason} (see ${options.logFile})`,
          detail: typeof message.detail === 'string' ? message.detail : undefined,
          hint: typeof message.hint === 'string' ? message.hint : undefined,
        });
      }
    });
    child.on('error', (error) => finish({ exitCode: EXIT.FAILURE, message: `wsgid could not start: ${error.message}` }));
    child.on('exit', (code, signal) => {
      finish({
        exitCode: EXIT.FAILURE,
        message: `wsgid could not start: the daemon exited (${signal ?? `code ${code}`}) before it was ready (see ${options.logFile})`,
      });
    });
  });
}
