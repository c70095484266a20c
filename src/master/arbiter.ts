/**
 * The master: gunicorn's arbiter in Node, as effects around a pure pool. One loop, one tick (1 s):
 * signals and child events are only queued by their handlers; the loop takes them in order, then
 * murders (timeouts, missing heartbeats, overdue stops), manages (worker count, rolling
 * replacement) and writes the status file. The request hop itself (dispatch/) runs beside the loop
 * on the same event loop.
 *
 * Who owns what: ./pool.ts decides (worker lifecycle, supervision rules, returned as actions);
 * this file carries the actions out (fork, kill, IPC, the dispatch table's drain/retire, pid
 * files, the onReady hook) and feeds the pool its events; ./status.ts builds the status file and
 * ./publisher.ts writes it (with the /proc samples and the metrics endpoint).
 *
 * Signals (as gunicorn, the table in ./signals.ts): TERM graceful stop, INT/QUIT fast stop, HUP
 * rolling reload, TTIN/TTOU one worker more/less, USR1 reopen logs (master and workers).
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Settings } from '../config/settings.js';
import type { LogDestination, Logger } from '../log/logger.js';
import { VERSION } from '../version.js';
import { createAccessLogger, type AccessLogger } from '../log/access-log.js';
import { AppOutputLog } from '../log/app-output.js';
import { openAppendBelow } from '../fs/anchored.js';
import { Dispatcher } from '../dispatch/dispatcher.js';
import {
  EXIT_BOOT_ERROR,
  WORKER_ENV,
  isWorkerMessage,
  type MasterMessage,
  type WorkerBootConfig,
  type WorkerMessage,
} from '../lifecycle/contract.js';
import { listPidFiles, removePidFile, writePidFile } from '../app-folder/pidfile.js';
import { removeStaleState } from '../app-folder/stale.js';
import { planReload } from '../config/reload.js';
import { isOutOfFds, outOfFdsMessage } from '../fs/fd-limit.js';
import { EXIT, WsgidError, type ErrorCode } from '../errors.js';
import { poolOptionsOf, WorkerPool, type KillSignal, type PoolAction, type PoolWorker } from './pool.js';
import { buildStatus, type MasterStatusFile } from './status.js';
import { WorkerReports } from './reports.js';
import { StatusPublisher, type StatusSource } from './publisher.js';
import { MASTER_SIGNALS, type MasterSignal, type SignalAction, type SignalsFor } from './signals.js';
import { formatHostPort } from '../config/address.js';
import type { ServiceNotifier, ServiceSnapshot } from '../systemd/notify.js';

export interface ReadyInfo {
  /**
   * Resolves once every mongrel2 endpoint is connected (or refused, or a few seconds passed) with
   * one sentence per endpoint that is not connected: `wsgid start` prints them.
   */
  endpointProblems: Promise<string[]>;
}

/** The settings a HUP re-read, and the wsgid.json values the command line overrides (config/resolve.ts). */
export interface ReloadedSettings {
  settings: Settings;
  overridden: string[];
}

export interface MasterHooks {
  /** Called once, when the first full set of workers is ready. */
  onReady?: (info: ReadyInfo) => void;
  /**
   * On HUP: the settings again, as at start (wsgid.json, the command line, the environment, read
   * anew). Throws when they are invalid (the running configuration is kept). Without it, HUP
   * reloads the workers with the running settings.
   */
  reloadSettings?: () => ReloadedSettings;
  /** USR1, after the master's log files were reopened (the CLI re-points the daemon's fd 1/2). */
  onReopen?: () => void;
  /** A worker reported why it could not boot (what a failed start shows the user). */
  onWorkerFatal?: (report: { worker: number; message: string; code: ErrorCode; exitCode: number; detail?: string; hint?: string }) => void;
  /** Told of ready, reloads, stops and every tick (systemd's Type=notify: systemd/notify.ts). */
  service?: ServiceNotifier;
  /** The `wsgid start` that spawned this daemon: its pid file stands for us until we are ready. */
  starter?: number;
}

/** The compiled worker entry, next to this file's folder: dist/src/worker/main.js. */
export const WORKER_ENTRY = fileURLToPath(new URL('../worker/main.js', import.meta.url));

const TICK_MS = 1000;
/** Connections with nothing in flight and no word from mongrel2 for this long are forgotten. */
const CONN_IDLE_MS = 60 * 60 * 1000;
const SWEEP_EVERY_MS = 60_000;

type Signal = MasterSignal;
const SIGNALS = Object.keys(MASTER_SIGNALS) as readonly Signal[];

interface Exited {
  id: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** When its dispatch connection closed (≈ when it died). */
  at: number;
}

export class Arbiter {
  /** The running settings: a HUP may replace the reloadable ones (config/reload.ts). */
  private settings: Settings;
  private readonly log: Logger;
  private readonly hooks: MasterHooks;
  private readonly dispatcher: Dispatcher;
  /** The master's own answers (502, 503, 504) go to the same access log as the workers' lines. */
  private readonly accessLog: AccessLogger;
  /** The workers' stdout/stderr in daemon mode (logs/app.log); undefined: they inherit the master's. */
  private readonly appOutput: AppOutputLog | undefined;
  /** status.json each tick, /proc samples, the metrics endpoint (how `status` and `restart` learn of an EMFILE). */
  private readonly publisher: StatusPublisher;
  private readonly pool: WorkerPool;
  /** The worker processes, by worker id: the effects' handles (the pool has their state). */
  private readonly children = new Map<number, ChildProcess>();
  private readonly signalQueue: Signal[] = [];
  private readonly exitQueue: Exited[] = [];
  private wake: (() => void) | undefined;
  private readonly startedAt = Date.now();
  private lastSweep = Date.now();
  private exitCode: number | undefined;
  private readonly listeners: Array<[Signal, () => void]> = [];
  /** Observed, not decided: request totals from heartbeats, memory and CPU from /proc. */
  private readonly reports = new WorkerReports();

  constructor(settings: Settings, logger: Logger, hooks: MasterHooks = {}) {
    this.settings = settings;
    this.log = logger;
    this.hooks = hooks;
    this.pool = new WorkerPool(poolOptionsOf(settings));
    this.accessLog = createAccessLogger(settings);
    this.appOutput = this.openAppOutput();
    this.publisher = new StatusPublisher(settings.appPath, this.statusSource(), logger);
    this.dispatcher = new Dispatcher({
      accessLog: this.accessLog.enabled ? (entry) => this.accessLog.log(entry) : undefined,
      recv: settings.recv,
      send: settings.send,
      maxQueued: settings.maxQueued,
      appPath: settings.appPath,
      version: VERSION,
      logger,
      onConnected: (id) => this.applyAndWake(this.pool.connected(id, Date.now())),
      onPause: (id) => this.applyAndWake(this.pool.paused(id, Date.now())),
      // From inside the table: only note it; manage() drains it.
      onRetireLimit: (id) => {
        if (this.pool.overshootReached(id)) this.wakeUp();
      },
    });
  }

  // ------------------------------------------------------------------ the loop

  async run(): Promise<number> {
    const { settings } = this;
    if (settings.workers < 1) this.log.warn('--workers below 1 means single-process mode (the CLI\'s); the master runs 1 worker');
    const others = listPidFiles(settings.appPath, 'master').filter((e) => e.alive && e.pid !== process.pid && e.pid !== this.hooks.starter);
    if (others.length > 0) {
      this.log.error('another master is running in this app folder', { pids: others.map((e) => e.pid) });
      return 1;
    }
    const stale = removeStaleState(settings.appPath);
    if (stale.length > 0) this.log.info('removed stale pid files', { pids: stale });
    writePidFile(settings.appPath, 'master', process.pid);
    try {
      try {
        await this.dispatcher.start();
      } catch (err) {
        this.log.error('could not set up the dispatch sockets', { error: err });
        return 1;
      }
      if (settings.metrics !== undefined) {
        try {
          await this.publisher.serveMetrics(settings.metrics);
        } catch (err) {
          this.log.error(`could not serve the metrics on ${formatHostPort(settings.metrics)}`, { error: err });
          return 1;
        }
      }
      for (const sig of SIGNALS) {
        const handler = (): void => this.queueSignal(sig);
        process.on(sig, handler);
        this.listeners.push([sig, handler]);
      }
      this.log.info('master started', {
        workers: this.pool.wanted,
        recv: settings.recv,
        send: settings.send,
        endpoint: this.dispatcher.endpoint,
        version: VERSION,
      });
      this.apply(this.pool.manage(Date.now()));
      while (this.exitCode === undefined) {
        await this.sleep(TICK_MS);
        this.handleSignals();
        this.reap();
        if (this.exitCode !== undefined) break;
        this.murder();
        this.apply(this.pool.manage(Date.now()));
        this.publisher.tick();
        this.hooks.service?.tick(this.serviceSnapshot());
        if (this.pool.stopped) this.exitCode = 0;
      }
      await this.shutdownNow();
      return this.exitCode;
    } finally {
      for (const [sig, handler] of this.listeners) process.removeListener(sig, handler);
      await this.dispatcher.close().catch(() => {});
      this.accessLog.close();
      await this.appOutput?.close();
      await this.publisher.close();
      removePidFile(settings.appPath, 'master', process.pid);
    }
  }

  private queueSignal(sig: Signal): void {
    // No logging, no work: the loop handles it (gunicorn's rule).
    if (this.signalQueue.length < 16) this.signalQueue.push(sig);
    this.wakeUp();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private sleep(ms: number): Promise<void> {
    if (this.signalQueue.length > 0 || this.exitQueue.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private handleSignals(): void {
    for (let sig = this.signalQueue.shift(); sig !== undefined; sig = this.signalQueue.shift()) {
      (this.onSignal[MASTER_SIGNALS[sig]] as (sig: Signal) => void)(sig);
    }
  }

  /** Each signal's action (gunicorn's handle_<name>), taken by the loop in the order they came. */
  private readonly onSignal: { [A in SignalAction]: (sig: SignalsFor<A>) => void } = {
    stop: (sig) => {
      this.apply(this.pool.signal(sig, Date.now()));
      this.hooks.service?.stopping(this.serviceSnapshot());
    },
    reload: () => {
      this.reload();
      if (this.pool.phase !== 'stopping') this.hooks.service?.reloading(this.serviceSnapshot());
    },
    resize: (sig) => this.apply(this.pool.signal(sig, Date.now())),
    reopen: () => this.reopenLogs(),
  };

  /** HUP: re-read the configuration (when the CLI gave the means), then the rolling reload. */
  private reload(): void {
    // A HUP while stopping changes nothing (the pool ignores it): do not read or announce a configuration.
    if (this.pool.phase === 'stopping') return;
    const reread = this.hooks.reloadSettings;
    if (!reread) {
      this.apply(this.pool.reloadWith(Date.now()));
      return;
    }
    let next: Settings;
    let overridden: string[];
    try {
      ({ settings: next, overridden } = reread());
    } catch (err) {
      // Out of descriptors is not an invalid configuration: said as such (config/file.ts, here).
      const reason = isOutOfFds(err) ? outOfFdsMessage('cannot re-read the configuration', err) : err instanceof Error ? err.message : String(err);
      if (isOutOfFds(err) || (err instanceof WsgidError && err.code === 'WSGID_ERR_RESOURCES')) this.publisher.noteOutOfFds('', reason);
      const code = err instanceof WsgidError ? err.exitCode : EXIT.FAILURE;
      this.apply(this.pool.reloadRefused(Date.now(), reason, code));
      return;
    }
    const plan = planReload(this.settings, next);
    if (plan.needsRestart.length > 0) {
      this.log.warn('HUP: changed settings that need a full restart (stop, then start); running with the old values', {
        settings: plan.needsRestart.join(' '),
      });
    }
    if (overridden.length > 0) {
      this.log.warn('HUP: wsgid.json values overridden by the command line the master was started with (the command line wins)', {
        settings: overridden.join(' '),
      });
    }
    if (plan.changed.length > 0) this.log.info('HUP: configuration changes apply to the new workers', { settings: plan.changed.join(' ') });
    if (plan.settings.workers < 1) this.log.warn('--workers below 1 means single-process mode, which needs a full restart; the master runs 1 worker');
    this.settings = plan.settings;
    this.apply(
      this.pool.reloadWith(Date.now(), {
        options: poolOptionsOf(plan.settings),
        changed: plan.changed,
        needsRestart: plan.needsRestart,
        overridden,
      }),
    );
  }

  private reopenLogs(): void {
    // Each on its own: a refused one (a symlink planted at its name) keeps its old file only.
    const files: Array<[string, () => void]> = [
      ['wsgid.log', () => this.log.reopen()],
      ['access.log', () => this.accessLog.reopen()],
      ['app.log', () => this.appOutput?.reopen()],
    ];
    for (const [file, reopen] of files) {
      try {
        reopen();
      } catch (err) {
        this.log.error('could not reopen the log', { file, error: err });
      }
    }
    this.hooks.onReopen?.();
    this.log.info('USR1: logs reopened');
    for (const id of this.pool.workers.keys()) this.tell(id, { type: 'reopen' });
  }

  /** Handle the exits the child 'exit' events queued. */
  private reap(): void {
    for (let e = this.exitQueue.shift(); e !== undefined; e = this.exitQueue.shift()) {
      const lastReport = this.dispatcher.table.workers.get(e.id)?.lastReport ?? 0;
      this.apply(this.pool.exited(e.id, { code: e.code, signal: e.signal, closedAt: e.at, lastReport }, Date.now()));
    }
  }

  /**
   * Timeouts: the table answers 504s and cancels those requests at their workers; the workers of
   * cancelled requests still running are named (stuck) and the pool decides the rest. While no
   * worker serves, what waits in the master gets a 503 after NO_WORKER_WAIT_MS.
   */
  private murder(): void {
    const now = Date.now();
    const { timeout } = this.settings;
    const table = this.dispatcher.table;
    if (timeout > 0) table.expire(now, timeout * 1000);
    this.apply(this.pool.murder(now, table.stuck(now)));
    if (this.pool.refusesWaiting) table.refuseWaiting(now);
    if (now - this.lastSweep >= SWEEP_EVERY_MS) {
      this.lastSweep = now;
      this.dispatcher.table.sweep(now, CONN_IDLE_MS);
    }
  }

  /** Last step: whatever is left gets SIGKILL (SIGINT after a halt); wait for their exits (bounded). */
  private async shutdownNow(): Promise<void> {
    if (this.pool.workers.size === 0) return;
    this.apply(this.pool.shutdown(this.exitCode === 0 ? 'SIGKILL' : 'SIGINT'));
    const deadline = Date.now() + 3000;
    while (this.pool.workers.size > 0 && Date.now() < deadline) {
      await this.sleep(100);
      this.reap();
      if (Date.now() > deadline - 1000) for (const id of this.pool.workers.keys()) this.kill(id, 'SIGKILL');
    }
    for (const w of this.pool.workers.values()) if (w.pid > 0) removePidFile(this.settings.appPath, 'worker', w.pid);
  }

  // ------------------------------------------------------------------ effects

  private applyAndWake(actions: PoolAction[]): void {
    if (actions.length === 0) return;
    this.apply(actions);
    this.wakeUp();
  }

  /** Carry out what the pool decided, in its order. */
  private apply(actions: readonly PoolAction[]): void {
    const table = this.dispatcher.table;
    for (const action of actions) {
      switch (action.type) {
        case 'spawn':
          this.spawn(action.worker);
          break;
        case 'undispatch':
          table.drain(action.id, Date.now());
          break;
        case 'retire':
          table.retire(action.id, action.bound);
          break;
        case 'unretire':
          table.unretire(action.id);
          break;
        case 'tell':
          this.tell(action.id, action.message);
          break;
        case 'kill':
          this.kill(action.id, action.signal);
          break;
        case 'bury':
          this.children.delete(action.id);
          this.reports.buried(action.id);
          table.workerGone(action.id, Date.now(), action.suspectSince);
          if (action.pid > 0) removePidFile(this.settings.appPath, 'worker', action.pid);
          break;
        case 'stopReceiving':
          if (action.graceful) {
            void this.dispatcher.stopReceiving().then(() => {
              this.apply(this.pool.drainAll(Date.now()));
              this.wakeUp();
            });
          } else {
            this.dispatcher.stopReceiving(0, 0).catch(() => {});
          }
          break;
        case 'backoff':
          // The 1 s tick picks the spawn up once the delay is over.
          this.log.warn('next worker spawn delayed', { ms: action.delayMs });
          break;
        case 'allReady':
          this.hooks.onReady?.({ endpointProblems: this.dispatcher.endpoints.settled() });
          this.hooks.service?.ready(this.serviceSnapshot());
          break;
        case 'halt':
          this.exitCode = action.code;
          break;
        case 'log':
          this.log[action.level](action.message, action.fields);
          break;
      }
    }
  }

  /** Fork the worker the pool registered. */
  private spawn(w: PoolWorker): void {
    const { settings } = this;
    const { id } = w;
    const heartbeatMs = settings.timeout > 0 ? Math.min(1000, Math.max(100, Math.floor((settings.timeout * 1000) / 4))) : 1000;
    const config: WorkerBootConfig = {
      id,
      masterPid: process.pid,
      settings,
      endpoint: this.dispatcher.endpoint,
      maxRequests: w.maxRequests,
      heartbeatMs,
      log: { destination: this.workerLogDestination(), level: this.log.level, format: this.log.format },
    };
    this.dispatcher.table.addWorker(id);
    const child = fork(WORKER_ENTRY, [], {
      cwd: settings.appPath,
      env: { ...process.env, ...settings.envs, [WORKER_ENV]: JSON.stringify(config) },
      // Daemon: fd 1 and 2 are pipes the master reads into logs/app.log; foreground: the terminal.
      stdio: ['ignore', this.appOutput ? 'pipe' : 'inherit', this.appOutput ? 'pipe' : 'inherit', 'ipc'],
      serialization: 'json',
    });
    const pid = child.pid ?? -1;
    this.children.set(id, child);
    this.pool.forked(id, pid);
    if (this.appOutput && child.stdout && child.stderr) {
      this.appOutput.attach(child.stdout, { worker: id, pid, stream: 'stdout' });
      this.appOutput.attach(child.stderr, { worker: id, pid, stream: 'stderr' });
    }
    if (pid > 0) {
      try {
        writePidFile(settings.appPath, 'worker', pid);
      } catch (err) {
        this.log.warn('could not write the worker pid file', { pid, error: err });
      }
    }
    child.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.onWorkerMessage(id, message);
    });
    let reported = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (reported) return;
      reported = true;
      // Read what it wrote on its dispatch connection before it exited (its last 'D' reports)
      // before burying it, or requests it finished would be answered 502.
      void this.dispatcher.unlinked(id, 1000).then((at) => {
        this.exitQueue.push({ id, code, signal, at });
        this.wakeUp();
      });
    };
    child.on('exit', onGone);
    child.on('error', (err) => {
      if (isOutOfFds(err)) {
        // Said as what it is (not a stack): the reason of the boot failure, the reload's, status's.
        const message = outOfFdsMessage('cannot spawn a worker', err);
        this.log.error('worker process error', { worker: id, reason: message });
        this.publisher.noteOutOfFds('', message);
        this.pool.fatal(id, message);
      } else {
        this.log.error('worker process error', { worker: id, error: err });
        if (child.pid === undefined) this.pool.fatal(id, `cannot spawn a worker: ${err.message}`);
      }
      if (child.pid === undefined) onGone(EXIT_BOOT_ERROR, null);
    });
    this.log.info('spawned worker', { worker: id, pid, maxRequests: w.maxRequests || undefined });
  }

  /** logs/app.log in daemon mode (no symlink followed: the master may be root). */
  private openAppOutput(): AppOutputLog | undefined {
    const { settings } = this;
    if (settings.noDaemon) return undefined;
    try {
      return new AppOutputLog({
        open: () => openAppendBelow(settings.appPath, path.join('logs', 'app.log'), 0o640),
        format: settings.logFormat,
        ratePerWorker: settings.appOutputRate,
      });
    } catch (err) {
      this.log.error('could not open logs/app.log; app output goes to logs/wsgid.log', { error: err });
      return undefined;
    }
  }

  private workerLogDestination(): LogDestination {
    // Relative to the app folder (the worker's cwd), so it can be reopened inside a chroot.
    if (this.settings.noDaemon) return { fd: this.settings.stdout ? 1 : 2 };
    return { path: path.join('logs', 'wsgid.log'), root: '.' };
  }

  private onWorkerMessage(id: number, message: WorkerMessage): void {
    const now = Date.now();
    switch (message.type) {
      case 'ready': {
        // Serving needs its dispatch connection too; the table knows whether it is up.
        const connected = this.dispatcher.table.workers.get(id)?.connected ?? false;
        this.applyAndWake(this.pool.announced(id, connected, now));
        break;
      }
      case 'heartbeat':
        this.applyAndWake(this.pool.heartbeat(id, message.served, now));
        this.reports.heartbeat(id, message.metrics, message.gateway);
        break;
      case 'retire':
        this.applyAndWake(this.pool.retireRequested(id, message.served));
        break;
      case 'fatal':
        this.pool.fatal(id, message.message, { detail: message.detail, hint: message.hint });
        this.hooks.onWorkerFatal?.({ worker: id, message: message.message, code: message.code, exitCode: message.exitCode, detail: message.detail, hint: message.hint });
        break;
    }
  }

  private tell(id: number, message: MasterMessage): void {
    const child = this.children.get(id);
    if (!child?.connected) return;
    try {
      child.send(message);
    } catch {
      /* exiting */
    }
  }

  private kill(id: number, signal: KillSignal): void {
    try {
      this.children.get(id)?.kill(signal);
    } catch {
      /* already gone */
    }
  }

  // ------------------------------------------------------------------ status

  status(): MasterStatusFile {
    const { pool, startedAt, reports } = this;
    return buildStatus({
      pool,
      table: this.dispatcher.table,
      masterPid: process.pid,
      startedAt,
      now: Date.now(),
      reports,
      masterUsage: this.publisher.usage,
      endpoints: this.dispatcher.endpoints.snapshot(),
      metricsUrl: this.publisher.metricsUrl,
      lastStderr: (worker) => this.appOutput?.lastStderr(worker),
    });
  }

  /** What the publisher samples and writes each tick: the pool's workers, their reports, the table's numbers. */
  private statusSource(): StatusSource {
    return {
      status: () => this.status(),
      requests: () => this.reports.totals(),
      workers: () => this.pool.workers.values(),
      sampled: (id, usage) => {
        this.reports.usage.set(id, usage);
        // --max-memory's measure: the worker plus its children (its Python). Read here, not in the
        // worker: the master is never chrooted, so /proc is always there.
        const { self, children } = usage;
        if (self !== undefined) this.apply(this.pool.memory(id, children.reduce((sum, c) => sum + c.rss, self.rss)));
      },
    };
  }

  /** The counts systemd's STATUS= and the end of a reload are read from. */
  private serviceSnapshot(): ServiceSnapshot {
    let serving = 0;
    let booting = 0;
    let replacing = 0;
    let draining = 0;
    for (const w of this.pool.workers.values()) {
      if (w.state === 'serving' && w.retiring) replacing++;
      else if (w.state === 'serving') serving++;
      else if (w.state === 'booting') booting++;
      else draining++;
    }
    return { serving, booting, replacing, draining, wanted: this.pool.wanted };
  }
}

/**
 * Run the master until it stops; resolves with the process exit code (0 stopped by a signal, 3
 * workers cannot boot, 4 the app cannot be loaded, 1 other failures). Expects the cwd to be the app
 * folder (the CLI's start command does that); daemonization is the caller's.
 */
export async function runMaster(settings: Settings, logger: Logger, hooks: MasterHooks = {}): Promise<number> {
  if (path.resolve(process.cwd()) !== path.resolve(settings.appPath)) process.chdir(settings.appPath);
  return new Arbiter(settings, logger, hooks).run();
}
