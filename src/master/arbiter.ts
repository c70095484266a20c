/**
 * The master: gunicorn's arbiter in Node. One loop, one tick (1 s): signals and child events are
 * only queued by their handlers; the loop takes them in order, then murders (timeouts, missing
 * heartbeats, overdue stops), manages (worker count, rolling replacement) and writes the status
 * file. The request hop itself (dispatch/) runs beside the loop on the same event loop.
 *
 * Verbs: spawn, reap, murder, manage, reload, halt.
 * Worker states: booting → serving → (retiring: wants a replacement, still serving) → draining
 * (end marker sent, finishing in-flight) → gone; `aborted` = timed out, SIGTERM then SIGKILL.
 *
 * Signals (as gunicorn): TERM graceful stop, INT/QUIT fast stop, HUP rolling reload,
 * TTIN/TTOU one worker more/less, USR1 reopen logs (master and workers).
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Settings } from '../config/settings.js';
import { MAX_WORKERS } from '../config/options.js';
import type { LogDestination, Logger } from '../log/logger.js';
import { VERSION } from '../version.js';
import { createAccessLogger, type AccessLogger } from '../log/access-log.js';
import { Dispatcher } from '../dispatch/dispatcher.js';
import { RECENT_MS } from '../dispatch/table.js';
import {
  EXIT_APP_LOAD_ERROR,
  EXIT_BOOT_ERROR,
  WORKER_ENV,
  isWorkerMessage,
  type MasterMessage,
  type WorkerBootConfig,
  type WorkerMessage,
} from '../dispatch/lifecycle.js';
import { listPidFiles, removePidFile, writePidFile } from '../app-folder/pidfile.js';
import { removeStaleState } from '../app-folder/stale.js';
import { removeStatusFile, writeStatusFile } from '../app-folder/status-file.js';

export interface MasterHooks {
  /** Called once, when the first full set of workers is ready. */
  onReady?: () => void;
}

/** The compiled worker entry, next to this file's folder: dist/src/worker/main.js. */
export const WORKER_ENTRY = fileURLToPath(new URL('../worker/main.js', import.meta.url));

/** Consecutive boot failures after which the master gives up (when no worker is serving). */
export const MAX_BOOT_FAILURES = 5;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 15_000;
/**
 * A worker that is killed while it boots (boot timeout, or stopped before it was ready) gets this
 * long after SIGTERM before SIGKILL: it has nothing in flight, and an app blocked in its import
 * cannot run the SIGTERM handler at all.
 */
const BOOT_KILL_GRACE_MS = 2000;
const TICK_MS = 1000;
/** Connections with nothing in flight and no word from mongrel2 for this long are forgotten. */
const CONN_IDLE_MS = 60 * 60 * 1000;

type WorkerState = 'booting' | 'serving' | 'draining' | 'aborted';

interface WorkerProc {
  /** Spawn counter (gunicorn's age): higher is newer. */
  readonly id: number;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly spawnedAt: number;
  readonly maxRequests: number;
  state: WorkerState;
  ipcReady: boolean;
  connected: boolean;
  readyAt: number;
  /** Should be replaced (reload, max-requests): drained once enough newer workers serve. */
  retiring: boolean;
  lastBeat: number;
  served: number;
  inFlight: number;
  /** SIGKILL after this time (draining/aborted); 0 = none. */
  killAt: number;
  /** The boot failure reason the worker reported. */
  fatal: string | undefined;
  /** The master asked it to stop (drain, abort, shutdown): its exit is expected. */
  stopRequested: boolean;
  /** Killed for not becoming ready within the boot timeout (still a boot failure). */
  bootTimedOut: boolean;
  /** Retiring at max-requests and sent all its overshoot bound allows: drain it even if alone. */
  overshot: boolean;
}

type Signal = 'SIGTERM' | 'SIGINT' | 'SIGQUIT' | 'SIGHUP' | 'SIGTTIN' | 'SIGTTOU' | 'SIGUSR1';
const SIGNALS: readonly Signal[] = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGUSR1'];

interface Exited {
  worker: WorkerProc;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** When its dispatch connection closed (≈ when it died). */
  at: number;
}

/** The status file (`pid/status.json`) the master rewrites every tick; see docs/INTERNALS.md. */
export interface MasterStatusFile {
  version: 1;
  wsgid: string;
  updatedAt: string;
  master: { pid: number; startedAt: string; uptime: number; state: 'starting' | 'running' | 'stopping' };
  workersWanted: number;
  workers: Array<{
    id: number;
    pid: number;
    state: WorkerState;
    retiring: boolean;
    startedAt: string;
    uptime: number;
    served: number;
    inFlight: number;
    credit: number;
    maxRequests: number;
  }>;
  requests: {
    served: number;
    inFlight: number;
    queued: number;
    received: number;
    answered502: number;
    answered503: number;
    answered504: number;
    closed: number;
    malformed: number;
  };
  restarts: number;
  recycled: number;
  reloads: number;
  bootFailures: number;
}

export class Arbiter {
  private readonly settings: Settings;
  private readonly log: Logger;
  private readonly hooks: MasterHooks;
  private readonly dispatcher: Dispatcher;
  /** The master's own answers (502, 503, 504) go to the same access log as the workers' lines. */
  private readonly accessLog: AccessLogger;
  private readonly workers = new Map<number, WorkerProc>();
  private readonly signalQueue: Signal[] = [];
  private readonly exitQueue: Exited[] = [];
  private wake: (() => void) | undefined;
  private nextId = 1;
  private numWorkers: number;
  private readonly startedAt = Date.now();
  private phase: 'starting' | 'running' | 'stopping' = 'starting';
  private lastSweep = Date.now();
  private exitCode: number | undefined;
  private bootFailures = 0;
  private nextSpawnAt = 0;
  private readySignalled = false;
  private restarts = 0;
  private recycled = 0;
  private reloads = 0;
  private servedByGone = 0;
  private readonly listeners: Array<[Signal, () => void]> = [];

  constructor(settings: Settings, logger: Logger, hooks: MasterHooks = {}) {
    this.settings = settings;
    this.log = logger;
    this.hooks = hooks;
    this.numWorkers = Math.max(1, settings.workers);
    this.accessLog = createAccessLogger(settings);
    this.dispatcher = new Dispatcher({
      accessLog: this.accessLog.enabled ? (entry) => this.accessLog.log(entry) : undefined,
      recv: settings.recv,
      send: settings.send,
      maxQueued: settings.maxQueued,
      appPath: settings.appPath,
      version: VERSION,
      logger,
      onConnected: (id) => {
        const w = this.workers.get(id);
        if (w) {
          w.connected = true;
          this.checkReady(w);
        }
      },
      onPause: (id) => {
        const w = this.workers.get(id);
        if (w && w.state !== 'draining' && w.state !== 'aborted') {
          this.log.info('worker is stopping on its own; draining it', { worker: id, pid: w.pid });
          w.state = 'draining';
          w.stopRequested = true;
          w.killAt = Date.now() + this.settings.gracefulTimeout * 1000;
          this.dispatcher.table.drain(id, Date.now());
          this.wakeUp();
        }
      },
      onRetireLimit: (id) => {
        // From inside the table: only note it; manage() drains it.
        const w = this.workers.get(id);
        if (w && w.retiring && !w.overshot) {
          w.overshot = true;
          this.wakeUp();
        }
      },
    });
  }

  // ------------------------------------------------------------------ the loop

  async run(): Promise<number> {
    const { settings } = this;
    if (settings.workers < 1) this.log.warn('--workers below 1 means single-process mode (the CLI\'s); the master runs 1 worker');
    const others = listPidFiles(settings.appPath, 'master').filter((e) => e.alive && e.pid !== process.pid);
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
      for (const sig of SIGNALS) {
        const handler = (): void => this.queueSignal(sig);
        process.on(sig, handler);
        this.listeners.push([sig, handler]);
      }
      this.log.info('master started', {
        workers: this.numWorkers,
        recv: settings.recv,
        send: settings.send,
        endpoint: this.dispatcher.endpoint,
        version: VERSION,
      });
      this.manage();
      while (this.exitCode === undefined) {
        await this.sleep(TICK_MS);
        this.handleSignals();
        this.reap();
        if (this.exitCode !== undefined) break;
        this.murder();
        this.manage();
        this.writeStatus();
        if (this.phase === 'stopping' && this.workers.size === 0) this.exitCode = 0;
      }
      await this.shutdownNow();
      return this.exitCode;
    } finally {
      for (const [sig, handler] of this.listeners) process.removeListener(sig, handler);
      await this.dispatcher.close().catch(() => {});
      this.accessLog.close();
      removeStatusFile(settings.appPath);
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
      switch (sig) {
        case 'SIGTERM':
          this.stop(true);
          break;
        case 'SIGINT':
        case 'SIGQUIT':
          this.stop(false);
          break;
        case 'SIGHUP':
          this.reload();
          break;
        case 'SIGTTIN':
          if (this.phase === 'stopping' || this.numWorkers >= MAX_WORKERS) break;
          this.numWorkers++;
          this.log.info('TTIN: one more worker', { workers: this.numWorkers });
          break;
        case 'SIGTTOU':
          if (this.phase === 'stopping') break;
          if (this.numWorkers > 1) this.numWorkers--;
          this.log.info('TTOU: one worker less', { workers: this.numWorkers });
          break;
        case 'SIGUSR1':
          try {
            this.log.reopen();
            this.accessLog.reopen();
          } catch (err) {
            this.log.error('could not reopen the log', { error: err });
          }
          this.log.info('USR1: logs reopened');
          for (const w of this.workers.values()) this.tell(w, { type: 'reopen' });
          break;
      }
    }
  }

  // ------------------------------------------------------------------ verbs

  private spawn(): WorkerProc {
    const { settings } = this;
    const id = this.nextId++;
    const jitter = settings.maxRequests > 0 && settings.maxRequestsJitter > 0 ? Math.floor(Math.random() * (settings.maxRequestsJitter + 1)) : 0;
    const maxRequests = settings.maxRequests > 0 ? settings.maxRequests + jitter : 0;
    const heartbeatMs = settings.timeout > 0 ? Math.min(1000, Math.max(100, Math.floor((settings.timeout * 1000) / 4))) : 1000;
    const config: WorkerBootConfig = {
      id,
      masterPid: process.pid,
      settings,
      endpoint: this.dispatcher.endpoint,
      maxRequests,
      heartbeatMs,
      log: { destination: this.workerLogDestination(), level: this.log.level },
    };
    this.dispatcher.table.addWorker(id);
    const child = fork(WORKER_ENTRY, [], {
      cwd: settings.appPath,
      env: { ...process.env, ...settings.envs, [WORKER_ENV]: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    const now = Date.now();
    const w: WorkerProc = {
      id,
      child,
      pid: child.pid ?? -1,
      spawnedAt: now,
      maxRequests,
      state: 'booting',
      ipcReady: false,
      connected: false,
      readyAt: 0,
      retiring: false,
      lastBeat: now,
      served: 0,
      inFlight: 0,
      killAt: 0,
      fatal: undefined,
      stopRequested: false,
      bootTimedOut: false,
      overshot: false,
    };
    this.workers.set(id, w);
    if (w.pid > 0) {
      try {
        writePidFile(settings.appPath, 'worker', w.pid);
      } catch (err) {
        this.log.warn('could not write the worker pid file', { pid: w.pid, error: err });
      }
    }
    child.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.onWorkerMessage(w, message);
    });
    let reported = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (reported) return;
      reported = true;
      // Read what it wrote on its dispatch connection before it exited (its last 'D' reports)
      // before burying it, or requests it finished would be answered 502.
      void this.dispatcher.unlinked(id, 1000).then((at) => {
        this.exitQueue.push({ worker: w, code, signal, at });
        this.wakeUp();
      });
    };
    child.on('exit', onGone);
    child.on('error', (err) => {
      this.log.error('worker process error', { worker: id, error: err });
      if (child.pid === undefined) onGone(EXIT_BOOT_ERROR, null);
    });
    this.log.info('spawned worker', { worker: id, pid: w.pid, maxRequests: maxRequests || undefined });
    return w;
  }

  private workerLogDestination(): LogDestination {
    // Relative to the app folder (the worker's cwd), so it can be reopened inside a chroot.
    if (this.settings.noDaemon) return { fd: this.settings.stdout ? 1 : 2 };
    return { path: path.join('logs', 'wsgid.log'), root: '.' };
  }

  private onWorkerMessage(w: WorkerProc, message: WorkerMessage): void {
    switch (message.type) {
      case 'ready':
        w.ipcReady = true;
        this.checkReady(w);
        break;
      case 'heartbeat':
        w.lastBeat = Date.now();
        w.served = message.served;
        w.inFlight = message.inFlight;
        break;
      case 'retire':
        w.served = message.served;
        if (!w.retiring && w.state === 'serving') {
          w.retiring = true;
          // New connections go to other workers from now on; its own (sticky) ones and, while
          // nobody else has credit, new ones too keep it serving until the replacement is ready,
          // but no more than one credit's worth: then it is drained even if alone.
          this.dispatcher.table.retire(w.id, this.settings.workerConnections);
          this.recycled++;
          this.log.info('worker reached max requests; replacing it', { worker: w.id, pid: w.pid, served: message.served });
          this.wakeUp();
        }
        break;
      case 'fatal':
        w.fatal = message.message;
        break;
    }
  }

  private checkReady(w: WorkerProc): void {
    if (w.state !== 'booting' || !w.ipcReady || !w.connected) return;
    w.state = 'serving';
    w.readyAt = Date.now();
    w.lastBeat = w.readyAt;
    this.bootFailures = 0;
    this.log.info('worker ready', { worker: w.id, pid: w.pid, bootMs: w.readyAt - w.spawnedAt });
    this.wakeUp();
  }

  private tell(w: WorkerProc, message: MasterMessage): void {
    if (!w.child.connected) return;
    try {
      w.child.send(message);
    } catch {
      /* exiting */
    }
  }

  private kill(w: WorkerProc, signal: NodeJS.Signals): void {
    try {
      w.child.kill(signal);
    } catch {
      /* already gone */
    }
  }

  /** Stop sending it work; let it finish in-flight; SIGKILL after the graceful timeout. */
  private drain(w: WorkerProc, why: string): void {
    if (w.state === 'draining' || w.state === 'aborted') return;
    const now = Date.now();
    this.log.info('draining worker', { worker: w.id, pid: w.pid, reason: why });
    const booting = w.state === 'booting';
    w.state = 'draining';
    w.stopRequested = true;
    this.dispatcher.table.drain(w.id, now);
    if (booting) {
      // Nothing in flight: no reason to wait the graceful timeout (the app may hang in its import).
      w.killAt = now + BOOT_KILL_GRACE_MS;
      this.kill(w, 'SIGTERM');
      return;
    }
    w.killAt = now + this.settings.gracefulTimeout * 1000;
    this.tell(w, { type: 'drain' });
  }

  /** Timed out or stuck: no new work, SIGTERM now, SIGKILL soon. */
  private abort(w: WorkerProc, why: string): void {
    if (w.state === 'aborted') return;
    const now = Date.now();
    this.log.error('worker timed out; replacing it', { worker: w.id, pid: w.pid, reason: why });
    w.state = 'aborted';
    w.stopRequested = true;
    w.killAt = now + Math.min(this.settings.gracefulTimeout, 5) * 1000;
    this.dispatcher.table.drain(w.id, now);
    this.kill(w, 'SIGTERM');
  }

  /** Handle the exits the child 'exit' events queued. */
  private reap(): void {
    const now = Date.now();
    for (let e = this.exitQueue.shift(); e !== undefined; e = this.exitQueue.shift()) {
      const w = e.worker;
      if (!this.workers.delete(w.id)) continue;
      this.servedByGone += w.served;
      // A worker that exited 0 after being asked to stop flushed its replies; any other end may
      // have lost replies it had already reported done.
      const clean = w.stopRequested && e.code === 0;
      // Replies it reported done within RECENT_MS before it was last heard from (report or
      // heartbeat) may have died in its ZeroMQ queue: for a frozen worker that is long before it
      // exits. Those clients get a 502 + close.
      const lastHeard = Math.min(e.at, Math.max(w.lastBeat, this.dispatcher.table.workers.get(w.id)?.lastReport ?? 0));
      this.dispatcher.table.workerGone(w.id, now, clean ? Infinity : lastHeard - RECENT_MS);
      if (w.pid > 0) removePidFile(this.settings.appPath, 'worker', w.pid);
      const how = e.signal ? `signal ${e.signal}` : `code ${e.code}`;
      if (w.state === 'booting') {
        this.bootFailed(w, e.code, how);
        continue;
      }
      if (w.stopRequested) {
        this.log.info('worker exited', { worker: w.id, pid: w.pid, exit: how, served: w.served });
      } else {
        this.restarts++;
        const hint = e.signal === 'SIGKILL' ? ' (killed: perhaps out of memory?)' : '';
        this.log.error(`worker died unexpectedly${hint}`, { worker: w.id, pid: w.pid, exit: how, served: w.served });
        if (!this.settings.keepAlive && this.phase === 'running' && this.numWorkers > 1) this.numWorkers--;
      }
    }
  }

  private bootFailed(w: WorkerProc, code: number | null, how: string): void {
    if (this.phase === 'stopping' || w.stopRequested) {
      this.log.info('worker exited before it was ready', { worker: w.id, pid: w.pid, exit: how });
      return;
    }
    this.bootFailures++;
    const reason = w.fatal ?? `exited with ${how} before it was ready`;
    const serving = [...this.workers.values()].some((x) => x.state === 'serving');
    const fatalCode = code === EXIT_APP_LOAD_ERROR || code === EXIT_BOOT_ERROR ? code : undefined;
    this.log.error('worker failed to boot', { worker: w.id, pid: w.pid, exit: how, reason, failures: this.bootFailures });
    if (!serving && (fatalCode !== undefined || this.bootFailures >= MAX_BOOT_FAILURES)) {
      const what = fatalCode === EXIT_APP_LOAD_ERROR ? 'the app could not be loaded' : 'workers could not boot';
      this.log.error(`giving up: ${what}; the master halts`, { reason, failures: this.bootFailures });
      this.exitCode = fatalCode ?? EXIT_BOOT_ERROR;
      return;
    }
    if (serving && (fatalCode !== undefined || this.bootFailures >= MAX_BOOT_FAILURES)) {
      // A reload or recycling whose new workers cannot start: keep the old ones serving.
      let kept = 0;
      for (const x of this.workers.values()) {
        if (x.retiring && x.state === 'serving' && !x.overshot) {
          x.retiring = false;
          this.dispatcher.table.unretire(x.id);
          kept++;
        }
      }
      if (kept > 0) this.log.error('new workers cannot start; keeping the old ones', { kept, reason });
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.bootFailures - 1));
    this.nextSpawnAt = Date.now() + delay;
    this.log.warn('next worker spawn delayed', { ms: delay });
  }

  /** Timeouts: requests not started in time (504), silent workers, boot too slow, overdue stops. */
  private murder(): void {
    const now = Date.now();
    const { timeout } = this.settings;
    if (timeout > 0) {
      for (const id of this.dispatcher.table.expire(now, timeout * 1000)) {
        const w = this.workers.get(id);
        if (w) this.abort(w, `a request was not answered within ${timeout} s`);
      }
    }
    const silence = timeout > 0 ? Math.max(timeout * 1000, 2000) : 30_000;
    for (const w of this.workers.values()) {
      if (w.killAt > 0 && now >= w.killAt) {
        this.log.warn('worker did not stop in time: SIGKILL', { worker: w.id, pid: w.pid, state: w.state });
        this.kill(w, 'SIGKILL');
        w.killAt = now + 5000;
        continue;
      }
      if (w.state === 'serving' && now - w.lastBeat > silence) {
        this.abort(w, `no heartbeat for ${Math.round((now - w.lastBeat) / 1000)} s (event loop blocked?)`);
      } else if (w.state === 'booting' && !w.bootTimedOut && now - w.spawnedAt > this.settings.bootTimeout * 1000) {
        // Once: the SIGKILL at killAt above follows (re-arming killAt every tick never escalated).
        this.log.error('worker did not become ready in time: SIGTERM, then SIGKILL', {
          worker: w.id,
          pid: w.pid,
          bootTimeout: this.settings.bootTimeout,
        });
        w.bootTimedOut = true;
        w.fatal ??= `not ready within the boot timeout (${this.settings.bootTimeout} s)`;
        w.killAt = now + BOOT_KILL_GRACE_MS;
        this.kill(w, 'SIGTERM');
      }
    }
    if (now - this.lastSweep >= 60_000) {
      this.lastSweep = now;
      this.dispatcher.table.sweep(now, CONN_IDLE_MS);
    }
  }

  /** Keep `numWorkers` serving: spawn what's missing, drain what's extra or replaced. */
  private manage(): void {
    if (this.phase === 'stopping' || this.exitCode !== undefined) return;
    const all = [...this.workers.values()];
    // Active: will keep serving (booting or serving, not retiring).
    const active = all.filter((w) => (w.state === 'booting' || w.state === 'serving') && !w.retiring);
    const now = Date.now();
    if (active.length < this.numWorkers && now >= this.nextSpawnAt) {
      // After a boot failure, one at a time until one comes up.
      const missing = this.bootFailures > 0 ? 1 : this.numWorkers - active.length;
      const booting = active.filter((w) => w.state === 'booting').length;
      for (let i = 0; i < missing && !(this.bootFailures > 0 && booting > 0); i++) this.spawn();
    } else if (active.length > this.numWorkers) {
      // TTOU: drain the oldest extra ones (booting ones first).
      const extra = active.sort((a, b) => (a.state === b.state ? a.id - b.id : a.state === 'booting' ? -1 : 1));
      for (const w of extra.slice(0, active.length - this.numWorkers)) this.drain(w, 'fewer workers wanted');
    }
    // Rolling replacement: drain retiring workers only while enough others serve.
    let serving = all.filter((w) => w.state === 'serving').length;
    const retiring = all.filter((w) => w.retiring && (w.state === 'serving' || w.state === 'booting')).sort((a, b) => a.id - b.id);
    for (const w of retiring) {
      if (w.state === 'booting') {
        this.drain(w, 'replaced before it was ready');
        continue;
      }
      // Not while replacements fail to boot: then the old worker is all the capacity there is.
      if (w.overshot && this.bootFailures === 0) {
        this.drain(w, 'max requests reached; overshoot bound used up');
        serving--;
        continue;
      }
      if (serving - 1 < this.numWorkers) continue;
      this.drain(w, 'replaced by a newer worker');
      serving--;
    }
    if (this.phase === 'starting') {
      const ready = all.filter((w) => w.state === 'serving' && !w.retiring).length;
      if (ready >= this.numWorkers) {
        this.phase = 'running';
        this.log.info('all workers ready', { workers: ready });
        if (!this.readySignalled) {
          this.readySignalled = true;
          this.hooks.onReady?.();
        }
      }
    }
  }

  private reload(): void {
    if (this.phase === 'stopping') return;
    this.reloads++;
    let n = 0;
    for (const w of this.workers.values()) {
      if (w.state === 'serving' || w.state === 'booting') {
        w.retiring = true;
        this.dispatcher.table.retire(w.id);
        n++;
      }
    }
    this.bootFailures = 0;
    this.nextSpawnAt = 0;
    this.log.info('HUP: rolling reload', { replacing: n, workers: this.numWorkers });
  }

  private stop(graceful: boolean): void {
    const now = Date.now();
    if (this.phase === 'stopping' && graceful) return;
    const first = this.phase !== 'stopping';
    this.phase = 'stopping';
    if (graceful) {
      this.log.info('TERM: graceful stop', { gracefulTimeout: this.settings.gracefulTimeout });
      // Let mongrel2 keep new requests (it holds them until a handler connects); serve what we
      // already received, then drain every worker.
      void this.dispatcher.stopReceiving().then(() => {
        for (const w of this.workers.values()) this.drain(w, 'shutdown');
        this.wakeUp();
      });
    } else {
      this.log.info(first ? 'fast stop' : 'fast stop (second signal)');
      this.dispatcher.stopReceiving(0, 0).catch(() => {});
      for (const w of this.workers.values()) {
        w.stopRequested = true;
        w.state = 'aborted';
        w.killAt = now + 2000;
        this.kill(w, 'SIGINT');
      }
    }
  }

  /** Last step: whatever is left gets SIGKILL; wait for their exits (bounded). */
  private async shutdownNow(): Promise<void> {
    if (this.workers.size === 0) return;
    for (const w of this.workers.values()) {
      w.stopRequested = true;
      this.kill(w, this.exitCode === 0 ? 'SIGKILL' : 'SIGINT');
    }
    const deadline = Date.now() + 3000;
    while (this.workers.size > 0 && Date.now() < deadline) {
      await this.sleep(100);
      this.reap();
      if (Date.now() > deadline - 1000) for (const w of this.workers.values()) this.kill(w, 'SIGKILL');
    }
    for (const w of this.workers.values()) if (w.pid > 0) removePidFile(this.settings.appPath, 'worker', w.pid);
  }

  // ------------------------------------------------------------------ status

  status(): MasterStatusFile {
    const now = Date.now();
    const table = this.dispatcher.table;
    const c = table.counters;
    let served = this.servedByGone;
    const workers: MasterStatusFile['workers'] = [];
    for (const w of this.workers.values()) {
      served += w.served;
      const slot = table.workers.get(w.id);
      workers.push({
        id: w.id,
        pid: w.pid,
        state: w.state,
        retiring: w.retiring,
        startedAt: new Date(w.spawnedAt).toISOString(),
        uptime: Math.round((now - w.spawnedAt) / 1000),
        served: w.served,
        inFlight: slot?.inFlight ?? w.inFlight,
        credit: slot?.credit ?? 0,
        maxRequests: w.maxRequests,
      });
    }
    return {
      version: 1,
      wsgid: VERSION,
      updatedAt: new Date(now).toISOString(),
      master: {
        pid: process.pid,
        startedAt: new Date(this.startedAt).toISOString(),
        uptime: Math.round((now - this.startedAt) / 1000),
        state: this.phase,
      },
      workersWanted: this.numWorkers,
      workers,
      requests: {
        served,
        inFlight: table.inFlight,
        queued: table.queued,
        received: c.received,
        answered502: c.answered502,
        answered503: c.answered503,
        answered504: c.answered504,
        closed: c.closed,
        malformed: c.malformed,
      },
      restarts: this.restarts,
      recycled: this.recycled,
      reloads: this.reloads,
      bootFailures: this.bootFailures,
    };
  }

  private writeStatus(): void {
    try {
      writeStatusFile(this.settings.appPath, JSON.stringify(this.status(), null, 2) + '\n');
    } catch (err) {
      this.log.debug('could not write the status file', { error: err });
    }
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
