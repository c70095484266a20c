/**
 * The master ↔ worker lifecycle contract: the worker's boot configuration (passed in the
 * environment), the messages on the Node IPC channel and a worker's exit codes. Used by both
 * sides, master/ (arbiter, pool) and worker/ (main, orphan-guard). See docs/INTERNALS.md.
 */
import { EXIT, type ErrorCode } from '../errors.js';
import type { Settings } from '../config/settings.js';
import type { LogDestination, LogFormat, LogLevel } from '../log/logger.js';
import type { RequestCounts } from '../metrics/request-metrics.js';

/** Environment variable holding a worker's WorkerBootConfig as JSON. */
export const WORKER_ENV = 'WSGID_WORKER_CONFIG';

export interface WorkerBootConfig {
  /** Worker id: a spawn counter (gunicorn's `age`), unique within one master. */
  id: number;
  /** The master's pid: a worker whose parent pid differs has been orphaned and exits. */
  masterPid: number;
  settings: Settings;
  /** Path of the master's dispatch socket (unix domain, stream), relative to the app folder (`pid/.d<pid>/w`). */
  endpoint: string;
  /** Requests after which this worker retires (maxRequests + its jitter, fixed at spawn); 0 = never. */
  maxRequests: number;
  /** Heartbeat period (ms): the worker's own event loop sends `heartbeat` this often. */
  heartbeatMs: number;
  log: { destination: LogDestination; level: LogLevel; format?: LogFormat };
}

/** Worker → master. */
export type WorkerMessage =
  | { type: 'ready' }
  /**
   * Sent every heartbeatMs from the worker's event loop; carries its counters: `metrics` its request totals since it started (by status class, duration
   * histogram), `gateway` the kind of gateway serving its app (metrics label). All optional: the
   * master checks them.
   */
  | {
      type: 'heartbeat';
      served: number;
      inFlight: number;
      metrics?: RequestCounts;
      gateway?: string;
    }
  /** The worker reached its max-requests: please replace me (spawn, wait ready, drain me). */
  | { type: 'retire'; served: number }
  /** Boot failed; sent just before exiting with `exitCode` (3 or 4). */
  | {
      type: 'fatal';
      message: string;
      /** Why: WSGID_ERR_APP_LOAD (the app could not be loaded) or WSGID_ERR_BOOT (anything else). */
      code: ErrorCode;
      exitCode: WorkerExitCode;
      /** What to show the user verbatim (a Python traceback, a JavaScript code frame). */
      detail?: string;
      /** What to do about it (e.g. --python for a missing module). */
      hint?: string;
    };

/** Master → worker. */
export type MasterMessage =
  /** Stop taking work, finish what you have, exit 0. */
  | { type: 'drain' }
  /** Reopen log files (USR1). */
  | { type: 'reopen' };

/** A worker's exit codes that say it can never boot (gunicorn's): the master halts instead of
 *  respawning forever. Declared with the others in src/errors.ts (EXIT). */
export const EXIT_BOOT_ERROR = EXIT.BOOT;
export const EXIT_APP_LOAD_ERROR = EXIT.APP_LOAD;
export type WorkerExitCode = typeof EXIT_BOOT_ERROR | typeof EXIT_APP_LOAD_ERROR;

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}

export function isMasterMessage(value: unknown): value is MasterMessage {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}
