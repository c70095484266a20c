/**
 * Commands that talk to a running wsgid through its pid files and signals: stop, restart/reload,
 * status. They need only the app folder (wsgid.json is read, when valid, just for graceful_timeout).
 */
import { constants as osConstants } from 'node:os';
import { EXIT, NotMasterError, UsageError, WsgidError } from '../errors.js';
import { readConfigFile } from '../config/file.js';
import { OPTIONS, checkSignal } from '../config/options.js';
import type { CommandValues } from '../config/options.js';
import type { Settings } from '../config/settings.js';
import { checkControlledAppFolder } from '../app-folder/layout.js';
import { isSameProcess, listPidFiles, stillHoldsPid, type PidEntry } from '../app-folder/pidfile.js';
import { canCheckIdentity, whyNotMasterOf } from '../app-folder/identity.js';
import { removeStaleState } from '../app-folder/stale.js';
import { collectStatus, readMasterStatus, statusProblems, STALE_STATUS_SECONDS, type MasterStatus, type StatusReport } from './status-report.js';
import { formatStatus } from './status-view.js';
import { formatFailureDetail } from './daemon.js';

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

/**
 * Why the process a live pid file names must not be signalled, or undefined when it is this folder's
 * master. The app's user writes pid/master/, so a file may name any process with its right start
 * time; as root, signalling it would be the user's way to kill anyone's process (docs/SECURITY.md).
 */
function whyNotSignal(appPath: string, pid: number): string | undefined {
  if (!canCheckIdentity()) {
    // Without /proc nothing tells a master from another process: only a CLI with no more rights
    // than the pid file's writer may take the file's word for it.
    return process.geteuid?.() === 0 ? 'it cannot be identified without /proc (refusing as root)' : undefined;
  }
  return whyNotMasterOf(pid, appPath);
}

function send(appPath: string, master: PidEntry, signal: NodeJS.Signals | number): void {
  const { pid } = master;
  // Checked again right before the signal: never signal a process that merely reuses the pid.
  if (!isSameProcess(master) || whyNotSignal(appPath, pid) !== undefined) return;
  try {
    process.kill(pid, signal);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return; // gone meanwhile: fine
    throw new WsgidError(`cannot signal master pid ${pid}: ${(error as Error).message}`, 'WSGID_ERR_SIGNAL');
  }
}

interface Masters {
  /** Live pid files whose process is this folder's master. */
  live: PidEntry[];
  /** Live pid files naming a process that is not: never signalled. */
  refused: number;
}

/** The live masters of the folder; a pid file naming another process is reported on stderr and skipped. */
function liveMasters(appPath: string, io: Output): Masters {
  const live: PidEntry[] = [];
  let refused = 0;
  for (const entry of listPidFiles(appPath, 'master')) {
    if (!entry.alive) continue;
    const why = whyNotSignal(appPath, entry.pid);
    if (why === undefined) {
      live.push(entry);
      continue;
    }
    refused++;
    io.err(`wsgid: ${new NotMasterError(entry.pid, entry.file, appPath, why).message}\n`);
  }
  return { live, refused };
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
  const paths = checkControlledAppFolder(settings.appPath);
  const signal = normalizeSignal(values.sendSignal ?? 'TERM');
  const { live: masters, refused } = liveMasters(paths.root, io);
  if (masters.length === 0) {
    if (refused > 0) return EXIT.FAILURE;
    clearStaleState(paths.root, io);
    io.out(`wsgid is not running in ${paths.root}\n`);
    return EXIT.OK;
  }
  for (const m of masters) send(paths.root, m, signal);
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
  clearStaleState(paths.root, io);
  io.out('stopped\n');
  return refused > 0 ? EXIT.FAILURE : EXIT.OK;
}

/** Remove what a dead master left in pid/; a folder that refuses (read-only) is said, not thrown. */
function clearStaleState(appPath: string, io: Output): void {
  try {
    removeStaleState(appPath);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    io.err(`wsgid: warning: could not remove the stale pid files and status in ${appPath}/pid: ${e.message.replace(/\/proc\/self\/fd\/\d+\//, '')}\n`);
  }
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
  const paths = checkControlledAppFolder(settings.appPath);
  const signal = normalizeSignal(values.sendSignal ?? 'HUP');
  const { live: masters, refused } = liveMasters(paths.root, io);
  if (masters.length === 0) {
    if (refused > 0) return EXIT.FAILURE;
    io.err(`wsgid: not running in ${paths.root} (start it with: wsgid --app-path=${paths.root})\n`);
    return EXIT.NOT_RUNNING;
  }
  const wait = !values.noWait && (signal === 'SIGHUP' || signal === 1) && masters.length === 1;
  // The generation before ours: we wait for a newer one (a concurrent restart's newer one covers ours).
  const seen = readMasterStatus(paths.root);
  const before = { generation: seen?.reload?.generation ?? 0, reloads: seen?.reloads ?? 0 };
  for (const m of masters) send(paths.root, m, signal);
  const pids = masters.map((m) => m.pid).join(', ');
  if (!wait) {
    io.out(`sent ${signalName(signal)} to master pid ${pids}: ${signal === 'SIGHUP' || signal === 1 ? 'rolling reload requested' : 'done'}\n`);
    return refused > 0 ? EXIT.FAILURE : EXIT.OK;
  }
  io.out(`sent SIGHUP to master pid ${pids}: rolling reload; waiting for the new workers to be ready\n`);
  const code = await waitForReload(paths.root, masters[0]!, before, io);
  return refused > 0 && code === EXIT.OK ? EXIT.FAILURE : code;
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
    } else if (Date.now() - lastChange > STALE_STATUS_SECONDS * 1000 && statusProblems(appPath, false, undefined).length > 0) {
      // The master cannot write its status (a read-only folder): no outcome will come.
      const problems = statusProblems(appPath, false, undefined);
      io.err(`wsgid: the reload's outcome cannot be known: ${problems.join('; ')} (see ${appPath}/logs/wsgid.log)\n`);
      return EXIT.FAILURE;
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
        if (r.overridden && r.overridden.length > 0) {
          const flags = [...new Set(r.overridden.map((o) => o.split('=')[0]!))];
          io.err(
            `wsgid: warning: wsgid.json is overridden by the master's command line (the command line wins over wsgid.json): ` +
              `${r.overridden.join(', ')}; for wsgid.json to decide, stop and start again without ${flags.join(' ')}\n`,
          );
        }
        if (r.outcome === 'done') {
          io.out(`reloaded: ${r.ready} new worker(s) ready\n`);
          return EXIT.OK;
        }
        io.err(`wsgid: reload failed: ${r.reason ?? 'unknown reason'}; the running workers keep serving (see ${appPath}/logs/wsgid.log)\n`);
        // As a failed start shows it: Python's traceback (file, line, caret), the code frame, a hint.
        io.err(formatFailureDetail({ detail: r.detail, hint: r.hint }));
        return r.exitCode && r.exitCode !== EXIT.NOT_RUNNING ? r.exitCode : EXIT.FAILURE;
      }
    }
    await sleep(100);
  }
}

/** `wsgid reopen-logs`: SIGUSR1 to the master (logrotate's postrotate). */
export function reopenLogsCommand(settings: Settings, io: Output): number {
  const paths = checkControlledAppFolder(settings.appPath);
  const { live: masters, refused } = liveMasters(paths.root, io);
  if (masters.length === 0) {
    if (refused > 0) return EXIT.FAILURE;
    io.err(`wsgid: not running in ${paths.root}\n`);
    return EXIT.NOT_RUNNING;
  }
  for (const m of masters) send(paths.root, m, 'SIGUSR1');
  io.out(`sent SIGUSR1 to master pid ${masters.map((m) => m.pid).join(', ')}: reopening the logs\n`);
  return refused > 0 ? EXIT.FAILURE : EXIT.OK;
}

/** `wsgid status [--json] [--watch [--count=N]]`: exit 0 when running, 1 when crash-looping, 3 when stopped. */
export async function statusCommand(settings: Settings, values: CommandValues, io: Output): Promise<number> {
  const paths = checkControlledAppFolder(settings.appPath);
  const print = (report: StatusReport): void => {
    io.out(values.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report));
  };
  if (!values.watch) {
    const report = collectStatus(paths.root);
    print(report);
    return statusExitCode(report);
  }
  return watchStatus(() => collectStatus(paths.root), values, io, print);
}

/**
 * `--watch`: a frame a second (on a terminal: clear the screen and redraw, like top) until Ctrl-C
 * or `--count` frames. Exit code of the last frame (0 running, 1 crash-looping, 3 stopped); Ctrl-C ends with 0.
 */
async function watchStatus(
  collect: () => StatusReport,
  values: CommandValues,
  io: Output,
  print: (report: StatusReport) => void,
): Promise<number> {
  const tty = process.stdout.isTTY === true && !values.json;
  let interrupted = false;
  let wake: (() => void) | undefined;
  const onSignal = (): void => {
    interrupted = true;
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let code: number = EXIT.OK;
  try {
    for (let frame = 1; !interrupted; frame++) {
      const report = collect();
      code = statusExitCode(report);
      // Home + clear below: redraw in place without the flicker of a full clear.
      if (tty) io.out('\x1b[H\x1b[2J');
      else if (frame > 1) io.out('\n');
      if (!values.json) io.out(`wsgid status  ${new Date().toISOString()}  (Ctrl-C to quit)\n`);
      print(report);
      if (values.count > 0 && frame >= values.count) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  return interrupted ? EXIT.OK : code;
}

function statusExitCode(report: StatusReport): number {
  if (report.status === 'stopped') return EXIT.NOT_RUNNING;
  return report.status === 'crash-looping' ? EXIT.FAILURE : EXIT.OK;
}
