/**
 * Entry of a forked worker process (`dist/src/worker/main.js`), started by the master
 * (src/master/arbiter.ts) with its WorkerBootConfig in the environment.
 *
 * Boot: config → logger (`worker <id>`) → beforeAppLoad (privilege drop / chroot: the CLI's hook)
 * → cwd = app/ (./app-cwd.ts) → load the app → gateway → request loop (credit offered on the
 * dispatch socket) → IPC `ready`.
 * The dispatch socket is connected (hello sent) before beforeAppLoad.
 * Exit codes (gunicorn's contract): 0 normal, 3 boot error, 4 app load error.
 * Lifecycle: heartbeats from this event loop (a blocked loop is noticed by the master), `retire`
 * at max-requests, `drain` → finish in-flight → exit 0. SIGTERM = graceful, SIGINT/SIGQUIT = fast.
 * The worker exits when the master disappears (worker/orphan-guard.ts says what covers what).
 */
// First: it must run before the rest is imported (a worker never outlives its master).
import { masterGone, stopBootWatchdog, takeOverDisconnect } from './orphan-guard.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '../log/logger.js';
import type { Settings } from '../config/settings.js';
import type { Gateway } from '../gateways/types.js';
import { enterAppFolder, inAppFolder } from '../app-folder/privileges.js';
import { preloadGateways } from '../gateways/registry.js';
import { gatewayKind, loadGateway } from './app.js';
import { RequestMetrics } from '../metrics/request-metrics.js';
import { startWorker } from './serve.js';
import { createAccessLogger, type AccessLogger } from '../log/access-log.js';
import { accessEntry } from './access.js';
import { describeLoadFailure } from './load-failure.js';
import { BootError } from './boot-error.js';
import { DispatchedSource } from './dispatched-source.js';
import { anchorLogDestination, enterAppCwd } from './app-cwd.js';
import {
  EXIT_BOOT_ERROR,
  WORKER_ENV,
  isMasterMessage,
  type WorkerBootConfig,
  type WorkerMessage,
} from '../lifecycle/contract.js';

export interface WorkerHooks {
  /**
   * Runs after the logger exists and before the app is loaded: the place for privilege drop and
   * chroot (cwd is the app folder; the dispatch socket path is relative to it). The dispatch
   * socket is already connected. May return the settings as seen
   * from inside (after a chroot). Throwing makes the worker exit with code 3 (boot error).
   */
  beforeAppLoad?: (settings: Settings, logger: Logger) => Settings | void | Promise<Settings | void>;
}

function send(message: WorkerMessage): void {
  if (process.connected && process.send) {
    try {
      process.send(message);
    } catch {
      /* channel closing: the disconnect handler exits */
    }
  }
}

export function readBootConfig(env: NodeJS.ProcessEnv = process.env): WorkerBootConfig {
  const raw = env[WORKER_ENV];
  if (!raw) throw new BootError(`${WORKER_ENV} is not set: this program is started by the wsgid master`, 'WSGID_ERR_BOOT');
  try {
    return JSON.parse(raw) as WorkerBootConfig;
  } catch (err) {
    throw new BootError(`${WORKER_ENV} is not valid JSON`, 'WSGID_ERR_BOOT', err);
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.stack ?? err.message;
  return String(err);
}

/** Run a worker to the end; resolves with its exit code. */
export async function runWorker(config: WorkerBootConfig, hooks: WorkerHooks = {}): Promise<number> {
  let settings = config.settings;
  // The logger's sink reads this object again on reopen: re-anchored below once the cwd is app/.
  const logDestination = { ...config.log.destination };
  let logger: Logger;
  try {
    logger = createLogger(logDestination, config.log.level, `worker ${config.id}`, config.log.format);
  } catch (err) {
    // E.g. the app folder became read-only (EROFS): say which file and why, to the master too.
    const where = 'path' in config.log.destination ? config.log.destination.path : `fd ${config.log.destination.fd}`;
    throw new BootError(`worker boot error: cannot open its log ${where}: ${err instanceof Error ? err.message : String(err)}`, 'WSGID_ERR_BOOT', err);
  }
  let exitCode = 0;
  let stopping: Promise<void> | undefined;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));

  // The master is gone: nobody will send us work or read our answers' completion. Fast exit.
  process.on('disconnect', () => {
    logger.warn('master went away; exiting');
    process.exit(exitCode || 0);
  });
  takeOverDisconnect();
  // In daemon mode fd 1 and 2 are pipes to the master: once it is gone, EPIPE must not crash us.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  // Signals meant for the master's process group must not kill workers (gunicorn#1868).
  for (const sig of ['SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGUSR2', 'SIGWINCH'] as const) process.on(sig, () => {});
  const reopen = (): void => {
    try {
      logger.reopen();
      accessLog?.reopen();
    } catch (err) {
      logger.error('could not reopen the log', { error: err });
    }
  };
  process.on('SIGUSR1', reopen);

  let worker: ReturnType<typeof startWorker> | undefined;
  let gateway: Gateway | undefined;
  let accessLog: AccessLogger | undefined;
  let completed = 0;
  const requestMetrics = new RequestMetrics();

  const graceful = (why: string): Promise<void> => {
    if (worker === undefined && stopping === undefined) {
      // Still booting: nothing in flight, nothing to drain; the app load would only delay the exit.
      logger.info('stopping before ready', { reason: why });
      process.exit(0);
    }
    stopping ??= (async () => {
      logger.info('draining', { reason: why, inFlight: worker?.inFlight ?? 0 });
      try {
        // close() = drain (pause the source: wait for the master's end marker; finish in-flight),
        // then sockets and the gateway.
        // Cut off what still runs a little before the master's SIGKILL at the graceful timeout,
        // so those clients see their connection closed rather than a dead worker.
        if (worker) await worker.close(Math.max(0, settings.gracefulTimeout * 1000 - 500));
        else if (gateway) await gateway.close();
        accessLog?.close();
      } catch (err) {
        logger.error('error while stopping', { error: err });
        exitCode = exitCode || 1;
      }
      logger.info('stopped', { served: worker?.served ?? 0 });
      finish(exitCode);
    })();
    return stopping;
  };
  const fast = (why: string): void => {
    logger.info('stopping now', { reason: why, inFlight: worker?.inFlight ?? 0 });
    accessLog?.flush();
    finish(exitCode);
  };
  process.on('SIGTERM', () => void graceful('SIGTERM'));
  process.on('SIGINT', () => fast('SIGINT'));
  process.on('SIGQUIT', () => fast('SIGQUIT'));
  process.on('message', (message: unknown) => {
    if (!isMasterMessage(message)) return;
    if (message.type === 'drain') void graceful('master asked');
    else if (message.type === 'reopen') reopen();
  });

  try {
    let source: DispatchedSource;
    try {
      // Connect before a chroot / privilege drop (one stream connection for the worker's life; the
      // path is relative to the app folder anyway); credit is offered only once the app is up.
      source = new DispatchedSource({
        endpoint: config.endpoint,
        workerId: config.id,
        credits: settings.workerConnections,
        logger,
      });
      source.connect();
      settings = (await hooks.beforeAppLoad?.(settings, logger)) ?? settings;
      // After the chroot and drop: the app runs in app/, as `npm start` there would (worker/app-cwd.ts).
      Object.assign(logDestination, anchorLogDestination(logDestination, settings.appPath));
      settings = enterAppCwd(settings);
    } catch (err) {
      throw new BootError(`worker boot error: ${errorText(err)}`, 'WSGID_ERR_BOOT', err);
    }
    try {
      gateway = await loadGateway(settings, logger);
      source.bound(gateway.capacity);
    } catch (err) {
      const failure = describeLoadFailure(err, inAppFolder(settings.appPath));
      throw new BootError(`app load error: ${failure.summary}`, 'WSGID_ERR_APP_LOAD', err, failure);
    }
    try {
      accessLog = createAccessLogger(settings, inAppFolder(settings.appPath));
      const log = accessLog;
      worker = startWorker({
        settings,
        logger,
        gateway,
        source,
        onComplete: (done) => {
          requestMetrics.observe(done.status, done.durationMs);
          if (log.enabled) log.log(accessEntry(done));
          // Retire as soon as the count is reached (not at the next heartbeat): the master spawns
          // the replacement while this worker keeps serving, then drains it.
          if (++completed === config.maxRequests) {
            logger.info('max requests reached; asking to be replaced', { served: completed, max: config.maxRequests });
            send({ type: 'retire', served: completed });
          }
        },
      });
    } catch (err) {
      throw new BootError(`worker boot error: ${errorText(err)}`, 'WSGID_ERR_BOOT', err);
    }
  } catch (err) {
    const boot = err instanceof BootError ? err : new BootError(errorText(err), 'WSGID_ERR_BOOT', err);
    const summary = boot.message.split('\n')[0]!;
    const { failure } = boot;
    if (failure) logger.error(summary, { exitCode: boot.exitCode, hint: failure.hint, detail: failure.detail });
    else logger.error(summary, { exitCode: boot.exitCode, error: boot.cause ?? boot });
    send({ type: 'fatal', message: summary, code: boot.code, exitCode: boot.exitCode, detail: failure?.detail, hint: failure?.hint });
    return boot.exitCode;
  }

  const running = worker;
  const kind = gatewayKind(gateway!);
  const heartbeat = (): WorkerMessage => ({
    type: 'heartbeat',
    served: running.served,
    inFlight: running.inFlight,
    metrics: requestMetrics.snapshot(),
    gateway: kind,
  });
  const beat = setInterval(() => {
    if (masterGone()) {
      logger.warn('master went away (reparented); exiting');
      process.exit(exitCode || 0);
    }
    send(heartbeat());
  }, config.heartbeatMs);
  send({ type: 'ready' });
  stopBootWatchdog();
  logger.info('ready', { pid: process.pid, credits: settings.workerConnections, maxRequests: config.maxRequests });

  const code = await done;
  clearInterval(beat);
  // Last counters for the master's totals; wait for the IPC write (bounded) before exiting.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 200);
    if (!process.connected || !process.send) return resolve();
    try {
      process.send(heartbeat(), () => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      resolve();
    }
  });
  return code;
}

/** Is this module the process's entry point? */
function isEntry(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return path.resolve(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

/**
 * The before-app-load step of a forked worker: chroot into the app folder (--chroot) and drop
 * privileges to its owner (when root). See app-folder/privileges.ts.
 */
async function beforeAppLoad(settings: Settings, logger: Logger): Promise<Settings> {
  // Inside the chroot wsgid's own files are out of reach: import every gateway first.
  if (settings.chroot) await preloadGateways();
  return enterAppFolder(settings, logger);
}

if (isEntry()) {
  let config: WorkerBootConfig;
  try {
    config = readBootConfig();
  } catch (err) {
    process.stderr.write(`wsgid worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof BootError ? err.exitCode : EXIT_BOOT_ERROR);
  }
  runWorker(config, { beforeAppLoad }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // No logger to say it with (it could not be opened): stderr (app.log) and the master.
      const message = err instanceof BootError ? err.message : errorText(err);
      process.stderr.write(`wsgid worker ${config.id}: ${message}\n`);
      const boot = err instanceof BootError ? err : new BootError(message, 'WSGID_ERR_BOOT', err);
      const code = boot.exitCode;
      if (!process.send || !process.connected) process.exit(code);
      setTimeout(() => process.exit(code), 1000).unref();
      const fatal: WorkerMessage = { type: 'fatal', message: message.split('\n')[0]!, code: boot.code, exitCode: code };
      process.send(fatal, () => process.exit(code));
    },
  );
}
