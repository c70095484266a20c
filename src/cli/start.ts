/**
 * `wsgid [start]`: check the app folder, then either detach (daemon.ts) and wait for the daemon's
 * report, or run the master here (foreground with --no-daemon, or as the detached daemon itself).
 */
import { AppFolderError, EXIT, UsageError, WsgidError } from '../errors.js';
import { checkSettings } from '../config/resolve.js';
import type { Settings } from '../config/settings.js';
import { checkAppFolder } from '../app-folder/layout.js';
import { listPidFiles, removePidFile, writePidFile } from '../app-folder/pidfile.js';
import { enterAppFolder, prepareForWorkers } from '../app-folder/privileges.js';
import { createLogger, logFormatOf, type Logger, type LogFields } from '../log/logger.js';
import { reopenStdio } from '../app-folder/stdio.js';
import { AppLoadError } from '../loaders/errors.js';
import { PythonLoadError } from '../gateways/python/errors.js';
import { describeLoadFailure } from '../worker/load-failure.js';
import { formatFailureDetail, reportToParent, spawnDaemon, takeDaemonChildMarker, type FailureDetail, type SpawnDaemonResult } from './daemon.js';
import type { ChildProcess } from 'node:child_process';
import { readMasterStatus } from './status-report.js';
import { uploadStore } from '../worker/uploads.js';
import { fdLimitWarning, openFileLimit } from '../fs/fd-limit.js';
import type { ReadyInfo, ReloadedSettings } from '../master/index.js';
import { createSender, notifySocketFrom, systemdNotifier, type ServiceNotifier } from '../systemd/notify.js';

/** The master loop's tick (master/arbiter.ts TICK_MS): how often the systemd watchdog can be fed. */
const MASTER_TICK_MS = 1000;

/** How long `wsgid start` waits for the daemon to report "ready". */
export const READY_TIMEOUT_MS = 90_000;

/** Wrap a logger so the last error message is remembered (the reason a failed start reports). */
function rememberErrors(logger: Logger, memory: { last?: string }): Logger {
  const describe = (message: string, fields?: LogFields): string => {
    if (!fields) return message;
    for (const value of Object.values(fields)) {
      if (value instanceof Error) return `${message}: ${value.message}`;
    }
    const detail = fields.reason ?? fields.error ?? fields.message;
    return typeof detail === 'string' ? `${message}: ${detail}` : message;
  };
  return {
    ...logger,
    error: (message, fields) => {
      memory.last = describe(message, fields);
      logger.error(message, fields);
    },
    child: (role) => rememberErrors(logger.child(role), memory),
  };
}

function runningMasters(appPath: string, starter?: number): number[] {
  return listPidFiles(appPath, 'master')
    .filter((e) => e.alive && e.pid !== process.pid && e.pid !== starter)
    .map((e) => e.pid);
}

/**
 * The daemonizing `wsgid start` until its daemon is ready: its own pid file in pid/master stands
 * for the daemon, so a `wsgid stop` meanwhile finds it and signals it; the signal is passed on to
 * the daemon (spawned or about to be), and this process exits only once the daemon has.
 */
async function startDaemon(paths: { root: string; wsgidLog: string }, argv: readonly string[]): Promise<SpawnDaemonResult> {
  writePidFile(paths.root, 'master', process.pid);
  let stopSignal: NodeJS.Signals | undefined;
  let daemon: ChildProcess | undefined;
  const pass = (signal: NodeJS.Signals): void => {
    try {
      daemon?.kill(signal);
    } catch {
      /* gone */
    }
  };
  const onStop = (signal: NodeJS.Signals): void => {
    stopSignal = signal;
    pass(signal);
  };
  const signals = ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const;
  for (const sig of signals) process.on(sig, onStop);
  // `restart`, `reopen-logs`, TTIN/TTOU meanwhile signal us too: they are the daemon's (HUP and USR1 would end or debug us).
  const passed = ['SIGHUP', 'SIGUSR1', 'SIGTTIN', 'SIGTTOU'] as const;
  for (const sig of passed) process.on(sig, pass);
  try {
    const progress = startProgress(paths.root);
    const result = await spawnDaemon({
      argv,
      cwd: paths.root,
      readyTimeoutMs: READY_TIMEOUT_MS,
      logFile: paths.wsgidLog,
      onSpawn: (child) => {
        daemon = child;
        if (stopSignal) pass(stopSignal);
      },
    }).finally(() => clearInterval(progress));
    if (stopSignal && daemon) {
      // Stopped while starting: whoever stopped us waits for our pid, so we wait for the daemon's exit.
      const child = daemon;
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.ref(); // spawnDaemon unref'd it: keep this process alive until it exits
        await exited;
      }
      return { exitCode: EXIT.FAILURE, message: `wsgid start: stopped by ${stopSignal} before the app was ready` };
    }
    return result;
  } finally {
    for (const sig of signals) process.removeListener(sig, onStop);
    for (const sig of passed) process.removeListener(sig, pass);
    removePidFile(paths.root, 'master', process.pid);
  }
}

/**
 * The `start` command. `argv` is the original command line (re-used to spawn the daemon);
 * `reread` resolves the settings again from it and wsgid.json (for HUP; throws when invalid).
 */
export async function startCommand(settings: Settings, argv: readonly string[], reread?: () => ReloadedSettings): Promise<number> {
  const isDaemonChild = takeDaemonChildMarker();
  const paths = checkAppFolder(settings.appPath);
  checkSettings(settings, true);
  if (settings.chroot && settings.workers === 0) {
    // The single-process runner imports gateways lazily, after which nothing outside the app folder
    // would be reachable: chroot needs the workers' order (import everything, connect, chroot, load).
    throw new UsageError('--chroot needs --workers=1 or more (the single-process mode cannot chroot)');
  }
  // The daemon's own `wsgid start` (our parent) holds a pid file until we are ready.
  const running = runningMasters(settings.appPath, isDaemonChild ? process.ppid : undefined);
  if (running.length > 0) {
    throw new WsgidError(
      `already running in ${paths.root} (master pid ${running.join(', ')}); use \`wsgid restart\` to reload`,
      'WSGID_ERR_RUNNING',
      EXIT.FAILURE,
    );
  }

  // Said once, by the command the admin typed (a misconfigured store makes every upload a 500).
  const store = isDaemonChild ? undefined : uploadStore(settings.mongrel2UploadStore, settings.mongrel2Chroot);
  if (typeof store === 'string') process.stderr.write(`wsgid: warning: async uploads will be refused: ${store}\n`);

  // Below what the settings need, EMFILE strikes later where it looks unrelated: say it now.
  const fdWarning = fdLimitWarning(openFileLimit(), settings.workers, settings.workerConnections);
  if (!settings.noDaemon && !isDaemonChild) {
    if (fdWarning) process.stderr.write(`wsgid: warning: ${fdWarning}\n`);
    const starting = startDaemon(paths, argv);
    process.stdout.write(`starting wsgid in ${paths.root}: waiting for ${settings.workers === 0 ? 'the app' : `${settings.workers} worker(s)`} to be ready\n`);
    const result = await starting;
    (result.exitCode === EXIT.OK ? process.stdout : process.stderr).write(result.message + '\n' + formatFailureDetail(result));
    for (const warning of result.warnings ?? []) process.stderr.write(`wsgid: warning: ${warning}\n`);
    if (result.exitCode === EXIT.OK && result.pid !== undefined) handOverToDaemon(result.pid, settings);
    return result.exitCode;
  }

  // We are the master: in the foreground (--no-daemon) or the detached daemon.
  process.chdir(paths.root);
  if (isDaemonChild) process.umask(0o022);
  const effective: Settings = isDaemonChild ? { ...settings, noDaemon: false } : settings;
  const level = settings.debug ? 'debug' : 'info';
  const memory: { last?: string } = {};
  let baseLogger: Logger;
  try {
    baseLogger = isDaemonChild
      ? createLogger({ path: paths.wsgidLog, root: paths.root }, level, 'master', logFormatOf(settings.logFormat))
      : createLogger({ fd: settings.stdout ? 1 : 2 }, level, 'master', logFormatOf(settings.logFormat));
  } catch (error) {
    const reason = `cannot open the log ${paths.wsgidLog}: ${(error as Error).message}`;
    if (isDaemonChild) reportToParent({ type: 'failed', reason, exitCode: EXIT.FAILURE });
    throw new AppFolderError(reason);
  }
  const logger = rememberErrors(baseLogger, memory);
  if (fdWarning) logger.warn(fdWarning);
  // Under systemd's Type=notify (NOTIFY_SOCKET set). A daemon child is not systemd's main process
  // until the `wsgid start` that spawned it hands over with MAINPID= (handOverToDaemon).
  const service = systemdNotifier(logger, { tickMs: MASTER_TICK_MS, readyBy: isDaemonChild ? 'parent' : 'self' });

  let ready = false;
  const onReady = (info: ReadyInfo): void => {
    if (ready) return;
    ready = true;
    logger.info('ready', { workers: effective.workers, appPath: paths.root });
    // The terminal hears about mongrel2 endpoints that are not connected a few seconds after start
    // (the log has the details; in the foreground the log is the terminal already).
    if (isDaemonChild) {
      void info.endpointProblems.then((warnings) =>
        reportToParent({ type: 'ready', pid: process.pid, workers: effective.workers, warnings: warnings.length ? warnings : undefined }),
      );
    }
  };
  // Why a worker could not boot (a traceback, a code frame): what a failed start shows the user.
  let fatal: (FailureDetail & { message: string }) | undefined;
  const onWorkerFatal = (report: FailureDetail & { message: string }): void => {
    fatal ??= report;
  };
  const fail = (reason: string, exitCode: number): number => {
    const why = fatal ? { reason: fatal.message, detail: fatal.detail, hint: fatal.hint } : { reason };
    if (isDaemonChild && !ready) reportToParent({ type: 'failed', exitCode, ...why });
    else if (!ready && fatal) {
      // Foreground: a text log (this terminal) showed the detail under the worker's line already;
      // a JSON one carried it as a field, which nobody reads on a terminal.
      const detail = logFormatOf(settings.logFormat) === 'json' ? why.detail : undefined;
      process.stderr.write(`wsgid could not start: ${why.reason}\n` + formatFailureDetail({ detail, hint: why.hint }));
    }
    return exitCode;
  };
  const onReopen = (): void => {
    if (!isDaemonChild) return;
    try {
      const result = reopenStdio(paths.root, paths.wsgidLog);
      if (!result.ok) logger.warn(result.reason);
    } catch (error) {
      logger.error('could not point stdout/stderr at the reopened log', { error: error instanceof Error ? error : new Error(String(error)) });
    }
  };

  let code: number;
  try {
    prepareForWorkers(effective);
    // Imported here, not at the top: `wsgid status`, `--help` etc. need neither ZeroMQ nor the app.
    if (effective.workers === 0) {
      code = await runStandalone(effective, logger, onReady, onReopen, service);
    } else {
      const { runMaster } = await import('../master/index.js');
      const reloadSettings =
        reread &&
        ((): ReloadedSettings => {
          const again = reread();
          return { settings: { ...again.settings, noDaemon: effective.noDaemon }, overridden: again.overridden };
        });
      const starter = isDaemonChild ? process.ppid : undefined;
      code = await runMaster(effective, logger, { onReady, reloadSettings, onReopen, onWorkerFatal, service, starter });
    }
  } catch (error) {
    if (error instanceof AppLoadError || error instanceof PythonLoadError) {
      // --workers=0: the app is loaded here; say why as a worker would (worker/load-failure.ts).
      const failure = describeLoadFailure(error, paths.root);
      fatal ??= { message: `app load error: ${failure.summary}`, detail: failure.detail, hint: failure.hint };
      logger.error(fatal.message, { exitCode: EXIT.APP_LOAD, hint: failure.hint, detail: failure.detail });
      return fail(fatal.message, EXIT.APP_LOAD);
    }
    const exitCode = error instanceof WsgidError ? error.exitCode : EXIT.FAILURE;
    logger.error('could not start', { error: error instanceof Error ? error : new Error(String(error)) });
    return fail(memory.last ?? String(error), exitCode === EXIT.USAGE ? EXIT.FAILURE : exitCode);
  }
  if (!ready) {
    if (code !== 0) return fail(memory.last ?? `the master exited with code ${code} before it was ready`, code);
    // Exit 0 before ready: stopped on request (TERM while workers were still booting). Not a failure
    // of this process, but a `wsgid start` waiting for readiness must not report success.
    if (isDaemonChild) reportToParent({ type: 'failed', reason: 'stopped before the workers were ready', exitCode: EXIT.FAILURE });
  }
  return code;
}

/** While `wsgid start` waits: say how many workers are ready (and failed boots) as it changes. */
function startProgress(appPath: string): NodeJS.Timeout {
  let said = '';
  return setInterval(() => {
    const status = readMasterStatus(appPath);
    if (!status?.workers) return;
    const ready = status.workers.filter((w) => w.state === 'serving').length;
    const failed = status.bootFailures ? `, ${status.bootFailures} failed boot(s) so far` : '';
    const line = `  ${ready}/${status.workersWanted ?? '?'} worker(s) ready${failed}`;
    if (line !== said) process.stdout.write(line + '\n');
    said = line;
  }, 500);
}

/**
 * The daemonizing `wsgid start` is systemd's main process (when it runs under Type=notify): tell
 * systemd the daemon it spawned is now the service (MAINPID=) and ready, so that its later
 * RELOADING=1/STOPPING=1 are accepted (sd_notify(3): how a forking daemon uses Type=notify).
 */
function handOverToDaemon(pid: number, settings: Settings): void {
  const quiet = createLogger({ fd: 2 }, 'warn', 'start');
  const socket = notifySocketFrom(process.env, quiet);
  if (socket === undefined) return;
  const sender = createSender(socket, quiet, pid);
  if ('reason' in sender) {
    quiet.warn('NOTIFY_SOCKET is set but wsgid cannot notify systemd; run it with Type=exec or build the addon', { reason: sender.reason });
    return;
  }
  const workers = settings.workers === 0 ? 'serving in the master process' : `${settings.workers} worker${settings.workers === 1 ? '' : 's'} serving`;
  sender.send(`MAINPID=${pid}\nREADY=1\nSTATUS=${workers}`);
}

/** The systemd snapshot of the single-process mode: the master is the one "worker". */
const STANDALONE = { serving: 1, booting: 0, replacing: 0, draining: 0, wanted: 1 } as const;

/** --workers=0: serve in this process (worker/standalone.ts) until SIGTERM, SIGINT or SIGQUIT. */
async function runStandalone(
  settings: Settings,
  logger: Logger,
  onReady: (info: ReadyInfo) => void,
  onReopen: () => void,
  service?: ServiceNotifier,
): Promise<number> {
  const { serveStandalone } = await import('../worker/standalone.js');
  const { publishStandalone } = await import('./standalone-status.js');
  writePidFile(settings.appPath, 'master', process.pid);
  let published: { close(): Promise<void> } | undefined;
  try {
    // With root, serve as the app folder's owner (no chroot here, see above).
    const inside = enterAppFolder(settings, logger);
    const server = await serveStandalone(inside, logger);
    try {
      // status.json every second and, with --metrics, the Prometheus endpoint.
      published = await publishStandalone(settings, server, logger);
    } catch (error) {
      await server.close();
      throw error;
    }
    onReady({ endpointProblems: server.endpoints.settled() });
    service?.ready(STANDALONE);
    // No master loop here: the event loop's liveness is what the watchdog (if any) sees.
    const ticker = service ? setInterval(() => service.tick(STANDALONE), MASTER_TICK_MS) : undefined;
    ticker?.unref();
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals): void => {
        logger.info('stopping', { signal });
        clearInterval(ticker);
        service?.stopping({ ...STANDALONE, serving: 0, draining: 1 });
        resolve();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      process.once('SIGQUIT', stop);
      process.on('SIGUSR1', () => {
        try {
          logger.reopen();
          server.reopenLogs();
          onReopen();
        } catch (error) {
          // A refused or failed reopen (e.g. a symlink planted at the log's name) keeps the old file.
          logger.error('could not reopen the log', { error: error instanceof Error ? error : new Error(String(error)) });
        }
      });
    });
    await published.close();
    await server.close();
    return EXIT.OK;
  } finally {
    await published?.close();
    removePidFile(settings.appPath, 'master', process.pid);
  }
}

export { formatFailureDetail };
