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
  let said = '';
  let saidAt = 0;
  while (masters.some(stillHoldsPid)) {
    // Say what the stop waits for (workers finishing requests), when it changes (at most once a second).
    const line = stopProgress(readMasterStatus(paths.root));
    if (line && line !== said && Date.now() - saidAt >= 1000) {
      io.out(`  ${line}\n`);
      said = line;
      saidAt = Date.now();
    }
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

/** What a stopping master still waits for, from its status file. */
function stopProgress(status: MasterStatus | undefined): string | undefined {
  const workers = status?.workers;
  if (!workers || workers.length === 0) return undefined;
  const inFlight = workers.reduce((n, w) => n + (w.inFlight ?? 0), 0);
  return `waiting for ${workers.length} worker(s) to stop, ${inFlight} request(s) in flight`;
}

/** The master stops writing its status file for this long: it is stuck, stop waiting for it. */
const STALLED_MS = 30_000;

/**
 * `wsgid restart` / `wsgid reload`: SIGHUP (rolling reload) to the master, then wait for its
 * outcome in the status file (master/status.ts `reload`): 0 once the new workers serve; non-zero
 * with the reason when they cannot start or the configuration is invalid (the old workers keep
 * serving). `--no-wait` or another `--send-signal` only sends the signal.
 */
export async function restartCommand(settings: Settings, values: CommandValues, io: Output): Promise<number> {
  const paths = checkAppFolderExists(settings.appPath);
  const signal = normalizeSignal(values.sendSignal ?? 'HUP');
  const masters = liveMasters(paths.root);
  if (masters.length === 0) {
    io.err(`wsgid: not running in ${paths.root} (start it with: wsgid --app-path=${paths.root})\n`);
    return EXIT.NOT_RUNNING;
  }
  const wait = !values.noWait && (signal === 'SIGHUP' || signal === 1) && masters.length === 1;
  // The generation before ours: we wait for a newer one (a concurrent restart's newer one covers ours).
  const seen = readMasterStatus(paths.root);
  const before = { generation: seen?.reload?.generation ?? 0, reloads: seen?.reloads ?? 0 };
  for (const m of masters) send(m, signal);
  const pids = masters.map((m) => m.pid).join(', ');
  if (!wait) {
    io.out(`sent ${signalName(signal)} to master pid ${pids}: ${signal === 'SIGHUP' || signal === 1 ? 'rolling reload requested' : 'done'}\n`);
    return EXIT.OK;
  }
  io.out(`sent SIGHUP to master pid ${pids}: rolling reload; waiting for the new workers to be ready\n`);
  return waitForReload(paths.root, masters[0]!, before, io);
}

async function waitForReload(appPath: string, master: PidEntry, before: { generation: number; reloads: number }, io: Output): Promise<number> {
  let progress = '';
  let lastUpdate: string | undefined;
  let lastChange = Date.now();
  for (;;) {
    if (!stillHoldsPid(master)) {
      io.err(`wsgid: the master (pid ${master.pid}) exited during the reload (see ${appPath}/logs/wsgid.log)\n`);
      return EXIT.FAILURE;
    }
    const status = readMasterStatus(appPath);
    const updated = status?.updatedAt ?? '';
    if (updated !== lastUpdate) {
      lastUpdate = updated;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > STALLED_MS) {
      io.err(`wsgid: the master (pid ${master.pid}) has not updated its status for ${STALLED_MS / 1000} s; the reload's outcome is unknown\n`);
      return EXIT.FAILURE;
    }
    const r = status?.reload;
    if (!r && (status?.reloads ?? 0) > before.reloads) {
      // A master of an older wsgid counts the HUP but does not publish its outcome.
      io.out('reload requested (this master does not report the outcome: it runs an older wsgid)\n');
      return EXIT.OK;
    }
    if (r && (r.generation ?? 0) > before.generation) {
      const line = `  ${r.ready ?? 0}/${r.wanted ?? 0} new worker(s) ready`;
      if (r.outcome === 'pending' && line !== progress) {
        io.out(line + '\n');
        progress = line;
      }
      if (r.outcome === 'done' || r.outcome === 'failed') {
        if (r.changed && r.changed.length > 0) io.out(`applied: ${r.changed.join(' ')}\n`);
        if (r.needsRestart && r.needsRestart.length > 0) {
          io.err(
            `wsgid: changed but not applied, these need a full restart (wsgid stop, then start): ${r.needsRestart.join(' ')}\n`,
          );
        }
        if (r.outcome === 'done') {
          io.out(`reloaded: ${r.ready} new worker(s) ready\n`);
          return EXIT.OK;
        }
        io.err(`wsgid: reload failed: ${r.reason ?? 'unknown reason'}; the running workers keep serving (see ${appPath}/logs/wsgid.log)\n`);
        return r.exitCode && r.exitCode !== EXIT.NOT_RUNNING ? r.exitCode : EXIT.FAILURE;
      }
    }
    await sleep(100);
  }
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
  memoryRecycled?: number;
  crashLoop?: { looping?: boolean; deaths?: number; since?: string; lastExit?: string; nextSpawnIn?: number };
  reload?: {
    generation?: number;
    outcome?: string;
    reason?: string;
    exitCode?: number;
    wanted?: number;
    ready?: number;
    changed?: string[];
    needsRestart?: string[];
  };
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
  /** 'crash-looping': running, but workers die soon after becoming ready (see `crashLoop`). */
  status: 'running' | 'crash-looping' | 'stopped';
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
  /** Workers recycled by --max-memory. */
  memoryRecycled?: number;
  /** Workers dying soon after becoming ready, in a row (master/status.ts). */
  crashLoop?: MasterStatus['crashLoop'];
  /** The latest HUP and its outcome. */
  reload?: MasterStatus['reload'];
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
    report.memoryRecycled = stats.memoryRecycled;
    report.crashLoop = stats.crashLoop;
    report.reload = stats.reload;
    if (stats.crashLoop?.looping) report.status = 'crash-looping';
    report.updatedAt = stats.updatedAt;
  }
  return report;
}

function pidList(entries: { pid: number; alive: boolean }[]): string {
  return entries.length ? entries.map((e) => (e.alive ? String(e.pid) : `${e.pid}(dead)`)).join(', ') : '-';
}

/** `wsgid status [--json]`: exit 0 when running, 1 when crash-looping, 3 when stopped. */
export function statusCommand(settings: Settings, values: CommandValues, io: Output): number {
  const paths = checkAppFolderExists(settings.appPath);
  const report = collectStatus(paths.root);
  if (values.json) {
    io.out(JSON.stringify(report, null, 2) + '\n');
  } else {
    const title = { running: 'Running', 'crash-looping': 'Crash-looping', stopped: 'Stopped' }[report.status];
    const c = report.crashLoop;
    const crash = report.status === 'crash-looping' && c
      ? `Crash loop: ${c.deaths} worker(s) in a row died soon after becoming ready (last: ${c.lastExit}); ` +
        `${c.nextSpawnIn ? `next spawn in ${c.nextSpawnIn} s` : 'respawning'}\n`
      : '';
    io.out(`Status: ${title}\nMaster pid(s): ${pidList(report.master)}\nWorker pid(s): ${pidList(report.workers)}\n${crash}`);
  }
  if (report.status === 'stopped') return EXIT.NOT_RUNNING;
  return report.status === 'crash-looping' ? EXIT.FAILURE : EXIT.OK;
}
