/**
 * Commands that talk to a running wsgid through its pid files and signals: stop, restart/reload,
 * status. They need only the app folder (wsgid.json is read, when valid, just for graceful_timeout).
 */
import { constants as osConstants } from 'node:os';
import { EXIT, UsageError, WsgidError } from '../errors.js';
import { readConfigFile } from '../config/file.js';
import { OPTIONS, checkSignal } from '../config/options.js';
import type { CommandValues } from '../config/options.js';
import type { Settings } from '../config/settings.js';
import { checkAppFolderExists } from '../app-folder/layout.js';
import { isSameProcess, listPidFiles, stillHoldsPid, type PidEntry } from '../app-folder/pidfile.js';
import { removeStaleState } from '../app-folder/stale.js';
import { readStatusFile } from '../app-folder/status-file.js';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

/** Normalize a signal given as TERM, SIGTERM, term or 15 to what process.kill accepts. */
export function normalizeSignal(value: string): NodeJS.Signals | number {
  const problem = checkSignal(value);
  if (problem) throw new UsageError(`--send-signal: ${problem}`);
  if (/^\d+$/.test(value)) return Number(value);
  const upper = value.toUpperCase();
  return (upper.startsWith('SIG') ? upper : 'SIG' + upper) as NodeJS.Signals;
}

function signalName(signal: NodeJS.Signals | number): string {
  if (typeof signal === 'string') return signal;
  const entry = Object.entries(osConstants.signals).find(([, n]) => n === signal);
  return entry ? `${entry[0]} (${signal})` : String(signal);
}

function send(master: PidEntry, signal: NodeJS.Signals | number): void {
  const { pid } = master;
  // Checked again right before the signal: never signal a process that merely reuses the pid.
  if (!isSameProcess(master)) return;
  try {
    process.kill(pid, signal);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return; // gone meanwhile: fine
    throw new WsgidError(`cannot signal master pid ${pid}: ${(error as Error).message}`, 'WSGID_ERR_SIGNAL', EXIT.FAILURE);
  }
}

function liveMasters(appPath: string): PidEntry[] {
  return listPidFiles(appPath, 'master').filter((e) => e.alive);
}

/** graceful_timeout from wsgid.json (if readable) or the default: how long stop waits, plus slack. */
function gracefulTimeoutSeconds(appPath: string): number {
  try {
    return readConfigFile(appPath)?.values.gracefulTimeout ?? (OPTIONS.gracefulTimeout.default as number);
  } catch {
    return OPTIONS.gracefulTimeout.default as number;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `wsgid stop`: signal the master (TERM by default) and wait until it is gone. */
export async function stopCommand(settings: Settings, values: CommandValues, io: Output): Promise<number> {
  const paths = checkAppFolderExists(settings.appPath);
  const signal = normalizeSignal(values.sendSignal ?? 'TERM');
  const masters = liveMasters(paths.root);
  if (masters.length === 0) {
    removeStaleState(paths.root);
    io.out(`wsgid is not running in ${paths.root}\n`);
    return EXIT.OK;
  }
  for (const m of masters) send(m, signal);
  io.out(`sent ${signalName(signal)} to master pid ${masters.map((m) => m.pid).join(', ')}; waiting for it to exit\n`);
  const limitMs = (gracefulTimeoutSeconds(paths.root) + 10) * 1000;
  const deadline = Date.now() + limitMs;
  // Until the pid is released (reaped), as before; a pid taken over by another process ends the wait.
  while (masters.some(stillHoldsPid)) {
    if (Date.now() > deadline) {
      const left = masters.filter(stillHoldsPid).map((m) => m.pid);
      io.err(`wsgid: master pid ${left.join(', ')} still running after ${limitMs / 1000} s (try --send-signal=KILL)\n`);
      return EXIT.FAILURE;
    }
    await sleep(100);
  }
  // The master removes its own files; clear what a crash (or SIGKILL) left behind.
  removeStaleState(paths.root);
  io.out('stopped\n');
  return EXIT.OK;
}

/** `wsgid restart` / `wsgid reload`: SIGHUP (rolling reload) to the master. */
export function restartCommand(settings: Settings, values: CommandValues, io: Output): number {
  const paths = checkAppFolderExists(settings.appPath);
  const signal = normalizeSignal(values.sendSignal ?? 'HUP');
  const masters = liveMasters(paths.root);
  if (masters.length === 0) {
    io.err(`wsgid: not running in ${paths.root} (start it with: wsgid --app-path=${paths.root})\n`);
    return EXIT.NOT_RUNNING;
  }
  for (const m of masters) send(m, signal);
  io.out(`sent ${signalName(signal)} to master pid ${masters.map((m) => m.pid).join(', ')}: rolling reload requested\n`);
  return EXIT.OK;
}

/** `wsgid reopen-logs`: SIGUSR1 to the master (logrotate's postrotate). */
export function reopenLogsCommand(settings: Settings, io: Output): number {
  const paths = checkAppFolderExists(settings.appPath);
  const masters = liveMasters(paths.root);
  if (masters.length === 0) {
    io.err(`wsgid: not running in ${paths.root}\n`);
    return EXIT.NOT_RUNNING;
  }
  for (const m of masters) send(m, 'SIGUSR1');
  io.out(`sent SIGUSR1 to master pid ${masters.map((m) => m.pid).join(', ')}: reopening the logs\n`);
  return EXIT.OK;
}

/** What the master publishes about itself in pid/status.json (master/status.ts MasterStatusFile). */
export interface MasterStatus {
  updatedAt?: string;
  master?: { pid?: number; startedAt?: string; uptime?: number; state?: string };
  workersWanted?: number;
  workers?: { pid?: number; state?: string; served?: number; inFlight?: number; uptime?: number; startedAt?: string }[];
  requests?: Record<string, number>;
  restarts?: number;
  recycled?: number;
  reloads?: number;
  bootFailures?: number;
}

/** The master's status file, if it has one and it parses. */
export function readMasterStatus(appPath: string): MasterStatus | undefined {
  try {
    const raw: unknown = JSON.parse(readStatusFile(appPath) ?? 'null');
    return raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as MasterStatus) : undefined;
  } catch {
    return undefined;
  }
}

export interface ProcessStatus {
  pid: number;
  alive: boolean;
  state?: string;
  startedAt?: string;
  /** Seconds. */
  uptime?: number;
  served?: number;
  inFlight?: number;
}

/** `wsgid status --json`. Numbers come from the master's status file (absent when it has none). */
export interface StatusReport {
  status: 'running' | 'stopped';
  appPath: string;
  /** Every master pid file (normally one); dead ones have alive=false. */
  master: ProcessStatus[];
  workers: ProcessStatus[];
  /** Master uptime in seconds. */
  uptime?: number;
  workersWanted?: number;
  requests?: { served: number; inFlight: number } & Record<string, number>;
  /** Workers respawned after dying, recycled (max-requests), rolling reloads, boot failures. */
  restarts?: number;
  recycled?: number;
  reloads?: number;
  bootFailures?: number;
  /** When the master last wrote its numbers. */
  updatedAt?: string;
}

export function collectStatus(appPath: string): StatusReport {
  const stats = readMasterStatus(appPath);
  const workerStats = new Map((stats?.workers ?? []).map((w) => [w.pid, w]));
  const master: ProcessStatus[] = listPidFiles(appPath, 'master').map(({ pid, alive }) => {
    const own = stats?.master?.pid === pid ? stats.master : undefined;
    return { pid, alive, state: own?.state, startedAt: own?.startedAt, uptime: own?.uptime };
  });
  const workers: ProcessStatus[] = listPidFiles(appPath, 'worker').map(({ pid, alive }) => {
    const w = workerStats.get(pid);
    return { pid, alive, state: w?.state, startedAt: w?.startedAt, uptime: w?.uptime, served: w?.served, inFlight: w?.inFlight };
  });
  const running = master.some((m) => m.alive);
  const report: StatusReport = { status: running ? 'running' : 'stopped', appPath, master, workers };
  if (running && stats && master.some((m) => m.alive && m.pid === stats.master?.pid)) {
    report.uptime = stats.master?.uptime;
    report.workersWanted = stats.workersWanted;
    if (stats.requests) {
      report.requests = { ...stats.requests, served: stats.requests.served ?? 0, inFlight: stats.requests.inFlight ?? 0 };
    }
    report.restarts = stats.restarts;
    report.recycled = stats.recycled;
    report.reloads = stats.reloads;
    report.bootFailures = stats.bootFailures;
    report.updatedAt = stats.updatedAt;
  }
  return report;
}

function pidList(entries: { pid: number; alive: boolean }[]): string {
  return entries.length ? entries.map((e) => (e.alive ? String(e.pid) : `${e.pid}(dead)`)).join(', ') : '-';
}

/** `wsgid status [--json]`: exit 0 when running, 3 when stopped. */
export function statusCommand(settings: Settings, values: CommandValues, io: Output): number {
  const paths = checkAppFolderExists(settings.appPath);
  const report = collectStatus(paths.root);
  if (values.json) {
    io.out(JSON.stringify(report, null, 2) + '\n');
  } else {
    io.out(
      `Status: ${report.status === 'running' ? 'Running' : 'Stopped'}\n` +
        `Master pid(s): ${pidList(report.master)}\n` +
        `Worker pid(s): ${pidList(report.workers)}\n`,
    );
  }
  return report.status === 'running' ? EXIT.OK : EXIT.NOT_RUNNING;
}
