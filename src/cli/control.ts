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
import { collectStatus, type StatusReport } from './status-report.js';
import { formatStatus } from './status-view.js';

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

/** `wsgid status [--json] [--watch [--count=N]]`: exit 0 when running, 3 when stopped. */
export async function statusCommand(settings: Settings, values: CommandValues, io: Output): Promise<number> {
  const paths = checkAppFolderExists(settings.appPath);
  const print = (report: StatusReport): void => {
    io.out(values.json ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report));
  };
  if (!values.watch) {
    const report = collectStatus(paths.root);
    print(report);
    return report.status === 'running' ? EXIT.OK : EXIT.NOT_RUNNING;
  }
  return watchStatus(() => collectStatus(paths.root), values, io, print);
}

/**
 * `--watch`: a frame a second (on a terminal: clear the screen and redraw, like top) until Ctrl-C
 * or `--count` frames. Exit code of the last frame (0 running, 3 stopped); Ctrl-C ends with 0.
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
      code = report.status === 'running' ? EXIT.OK : EXIT.NOT_RUNNING;
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
