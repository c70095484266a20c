/**
 * The master's worker pool: every supervision decision, pure. It holds each worker's lifecycle
 * state and changes it in one place; it is fed events (forked, announced/connected = ready,
 * heartbeat, retireRequested, paused, exited, signal) and runs its verbs each tick (murder, manage),
 * with the clock passed in, and returns what to do as actions. No timers, no processes, no I/O:
 * ./arbiter.ts carries the actions out, test/unit/master-pool.test.ts checks the rules
 * (docs/INTERNALS.md, "Supervision").
 *
 * What it does not own: a worker's routing state (connected, credit, in-flight, retiring as a
 * routing preference) lives in the dispatch table (dispatch/table.ts); when a decision needs it,
 * the caller passes it in.
 *
 * Lifecycle: booting → serving → (retiring: wants a replacement, still serving) → draining (end
 * marker sent, finishing in-flight) → gone; `aborted` = timed out or fast-stopped: SIGTERM/SIGINT,
 * then SIGKILL.
 */
import { MAX_WORKERS } from '../config/options.js';
import type { Settings } from '../config/settings.js';
import { EXIT_APP_LOAD_ERROR, EXIT_BOOT_ERROR, type MasterMessage } from '../lifecycle/contract.js';
import { RECENT_MS } from '../dispatch/table.js';
import type { LogFields, LogLevel } from '../log/logger.js';

/** Consecutive boot failures after which the master gives up (when no worker is serving). */
export const MAX_BOOT_FAILURES = 5;
export const BACKOFF_BASE_MS = 250;
export const BACKOFF_MAX_MS = 15_000;
/**
 * A worker that is killed while it boots (boot timeout, or stopped before it was ready) gets this
 * long after SIGTERM before SIGKILL: it has nothing in flight, and an app blocked in its import
 * cannot run the SIGTERM handler at all.
 */
export const BOOT_KILL_GRACE_MS = 2000;
/** After a fast stop (INT/QUIT), workers get this long before SIGKILL. */
export const FAST_STOP_GRACE_MS = 2000;
/** The first respawn delay after a quick death (doubled for each next one, up to crashBackoffMaxMs). */
export const CRASH_BACKOFF_BASE_MS = 1000;
/** Heartbeats in a row over --max-memory after which a worker is recycled (one spike is not enough). */
export const MEMORY_CHECKS = 3;
/** After a SIGKILL that did not end a worker, the next one this much later. */
const KILL_RETRY_MS = 5000;
/** A timed-out worker gets at most this long (and at most the graceful timeout) before SIGKILL. */
const ABORT_GRACE_MAX_MS = 5000;

export type WorkerState = 'booting' | 'serving' | 'draining' | 'aborted';
export type PoolPhase = 'starting' | 'running' | 'stopping';
export type PoolSignal = 'SIGTERM' | 'SIGINT' | 'SIGQUIT' | 'SIGHUP' | 'SIGTTIN' | 'SIGTTOU';
export type KillSignal = 'SIGTERM' | 'SIGINT' | 'SIGKILL';

/** One worker as the supervisor sees it. Outside the pool it is read-only (see `workers`). */
export interface PoolWorker {
  /** Spawn counter (gunicorn's age): higher is newer. */
  readonly id: number;
  /** Its process id once forked (-1 before, or when the fork failed). */
  pid: number;
  readonly spawnedAt: number;
  /** Requests after which it retires (max-requests + its jitter, fixed at spawn); 0 = never. */
  readonly maxRequests: number;
  state: WorkerState;
  /** It sent its IPC 'ready' (serving needs its dispatch connection too, which the table knows). */
  announced: boolean;
  /** Should be replaced (reload, max-requests): drained once enough newer workers serve. */
  retiring: boolean;
  /** Its last heartbeat (or when it became ready). */
  lastBeat: number;
  /** Requests it answered, from its heartbeats. */
  served: number;
  /** SIGKILL after this time (draining/aborted/boot timeout); 0 = none. */
  killAt: number;
  /** Why the master stopped it (drain or abort reason); undefined while it is wanted. */
  stopReason: string | undefined;
  /** The boot failure reason the worker reported (or the boot timeout). */
  fatal: string | undefined;
  /** What it reported to show verbatim under the reason (a traceback, a code frame), and a hint. */
  fatalDetail?: { detail?: string; hint?: string };
  /** The master asked it to stop (drain, abort, shutdown): its exit is expected. */
  stopRequested: boolean;
  /** Killed for not becoming ready within the boot timeout (still a boot failure). */
  bootTimedOut: boolean;
  /** Retiring at max-requests and sent all its overshoot bound allows: drain it even if alone. */
  overshot: boolean;
  /** When it became ready (0 while booting): a death soon after is a quick one (crash loop). */
  readyAt: number;
  /** Resident memory of its process and its children (bytes), from its last heartbeat; 0 = unknown. */
  rss: number;
  /** Heartbeats in a row whose rss was over maxMemoryBytes. */
  overMemory: number;
}

/** What the pool asks the arbiter to do, in order. */
export type PoolAction =
  /** Fork this worker (already registered, booting) and report its pid with `forked`. */
  | { type: 'spawn'; worker: Readonly<PoolWorker> }
  /** Stop routing to it: the table's drain (end marker, its idle connections move). */
  | { type: 'undispatch'; id: number }
  /** New connections prefer other workers; `bound` = messages it may still be sent (table.retire). */
  | { type: 'retire'; id: number; bound: number }
  /** Keep it after all (table.unretire). */
  | { type: 'unretire'; id: number }
  | { type: 'tell'; id: number; message: MasterMessage }
  | { type: 'kill'; id: number; signal: KillSignal }
  /**
   * It exited: answer its connections (table.workerGone with `suspectSince`) and remove its pid
   * file.
   */
  | { type: 'bury'; id: number; pid: number; suspectSince: number }
  /** Stop taking requests from mongrel2 (graceful: serve what already arrived first). */
  | { type: 'stopReceiving'; graceful: boolean }
  /** The first full set of workers serves. */
  | { type: 'allReady' }
  /** Boot failures: the next spawn waits `delayMs` (manage() holds it back until then). */
  | { type: 'backoff'; delayMs: number }
  /** Give up: the master exits with `code`. */
  | { type: 'halt'; code: number }
  | { type: 'log'; level: LogLevel; message: string; fields?: LogFields };

export interface PoolOptions {
  /** Workers wanted at start (at least 1). */
  workers: number;
  /** TTIN stops here. */
  maxWorkers: number;
  /** Request timeout (ms); 0 = none (heartbeats then may be silent for 30 s). */
  timeoutMs: number;
  gracefulTimeoutMs: number;
  bootTimeoutMs: number;
  /** Respawn workers that die unexpectedly (else, while running, want one less). */
  respawn: boolean;
  /** A retiring worker at max-requests may still be sent this many messages (one credit's worth). */
  workerConnections: number;
  /** 0 = never recycle. */
  maxRequests: number;
  maxRequestsJitter: number;
  /** Recycle a worker whose rss stays above this (MEMORY_CHECKS samples in a row, one a second); 0 = never. */
  maxMemoryBytes: number;
  /** A serving worker dying unexpectedly within this long of becoming ready is a quick death; 0 = off. */
  crashWindowMs: number;
  /** Quick deaths in a row that make a crash loop (reported; spawns one at a time). */
  crashLoopAfter: number;
  /** Cap of the quick-death respawn backoff. */
  crashBackoffMaxMs: number;
  /** In [0, 1), for the jitter (tests pass their own). */
  random?: () => number;
}

/** The pool's options from an instance's settings (seconds → milliseconds). */
export function poolOptionsOf(settings: Settings): PoolOptions {
  return {
    workers: settings.workers,
    maxWorkers: MAX_WORKERS,
    timeoutMs: settings.timeout * 1000,
    gracefulTimeoutMs: settings.gracefulTimeout * 1000,
    bootTimeoutMs: settings.bootTimeout * 1000,
    respawn: settings.respawn,
    workerConnections: settings.workerConnections,
    maxRequests: settings.maxRequests,
    maxRequestsJitter: settings.maxRequestsJitter,
    maxMemoryBytes: settings.maxMemory,
    crashWindowMs: settings.crashWindow * 1000,
    crashLoopAfter: settings.crashLoopAfter,
    crashBackoffMaxMs: settings.crashBackoffMax * 1000,
  };
}

/** How a worker process ended, and what the table knows of its last words. */
export interface WorkerExit {
  code: number | null;
  signal: string | null;
  /** When its dispatch connection closed (≈ when it died). */
  closedAt: number;
  /** Its last report on the dispatch connection (table slot's lastReport), 0 if none. */
  lastReport: number;
}

/** The latest worker that died without being asked to (while booting or serving): why, for `status`. */
export interface LastDeath {
  worker: number;
  pid: number;
  at: number;
  /** `code 3`, `signal SIGKILL`. */
  exit: string;
  /** It died while booting (a boot failure), not while serving. */
  booting: boolean;
  /** The first line of what it reported as the reason it could not boot (the load error). */
  reason?: string;
}

/** Workers dying soon after becoming ready, one after the other. */
export interface CrashLoop {
  /** Quick deaths in a row. */
  deaths: number;
  /** The first of them. */
  since: number;
  lastDeathAt: number;
  /** How the last one ended ("code 1", "signal SIGSEGV"). */
  lastExit: string;
  /** No spawn before this time (the backoff). */
  nextSpawnAt: number;
  /** deaths >= crashLoopAfter: reported as a crash loop. */
  looping: boolean;
}

export type ReloadOutcome = 'pending' | 'done' | 'failed';

/** The latest HUP and how it went (status file → `wsgid restart` waits on it). */
export interface ReloadRecord {
  /** Counts HUPs (refused ones included): `wsgid restart` waits for one newer than it saw. */
  generation: number;
  requestedAt: number;
  outcome: ReloadOutcome;
  finishedAt?: number;
  /** Why it failed (the new workers' boot error, the invalid configuration). */
  reason?: string;
  /** The exit code `wsgid restart` reports a failure with (4: the app cannot be loaded). */
  exitCode?: number;
  /** Shown verbatim under the reason (the new workers' traceback or code frame), and a hint. */
  detail?: string;
  hint?: string;
  /** New workers wanted, and those of them serving so far. */
  wanted: number;
  ready: number;
  /** Settings applied through this reload, and those that changed but need a full restart (flags). */
  changed: string[];
  needsRestart: string[];
  /** wsgid.json values the master's command line overrides (`--workers=2 (wsgid.json: 1)`). */
  overridden?: string[];
}

/** What a HUP brings besides the rolling reload (the arbiter re-read the configuration). */
export interface ReloadChange {
  /** The new pool options (from the re-read settings). */
  options?: PoolOptions;
  changed?: string[];
  needsRestart?: string[];
  overridden?: string[];
}

export interface PoolCounters {
  /** Unexpected deaths of serving workers. */
  restarts: number;
  /** max-requests replacements. */
  recycled: number;
  /** --max-memory replacements. */
  memoryRecycled: number;
  /** HUPs. */
  reloads: number;
  /** Consecutive boot failures (reset when a worker becomes ready, or on HUP). */
  bootFailures: number;
  /** Requests served by workers that are gone. */
  servedByGone: number;
}

/** A log line for the arbiter to write. */
function note(level: LogLevel, message: string, fields?: LogFields): PoolAction {
  return { type: 'log', level, message, fields };
}

export function backoffDelay(failures: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1));
}

export class WorkerPool {
  private readonly live = new Map<number, PoolWorker>();
  private readonly count: PoolCounters = { restarts: 0, recycled: 0, memoryRecycled: 0, reloads: 0, bootFailures: 0, servedByGone: 0 };
  private crash: CrashLoop | undefined;
  private death: LastDeath | undefined;
  private lastReload: ReloadRecord | undefined;
  /** Workers with this id or higher were spawned after the latest HUP. */
  private reloadFirstId = 0;
  private phaseNow: PoolPhase = 'starting';
  private halted: number | undefined;
  private wantedCount: number;
  private nextId = 1;
  private nextSpawnAt = 0;
  private readySignalled = false;
  private options: PoolOptions;
  private readonly random: () => number;

  constructor(options: PoolOptions) {
    this.options = options;
    this.wantedCount = Math.max(1, options.workers);
    this.random = options.random ?? Math.random;
  }

  /** The live workers by id, oldest first. */
  get workers(): ReadonlyMap<number, Readonly<PoolWorker>> {
    return this.live;
  }

  get counters(): Readonly<PoolCounters> {
    return this.count;
  }

  /** The latest unexpected worker death, if any. */
  get lastDeath(): Readonly<LastDeath> | undefined {
    return this.death;
  }

  /** The current run of quick deaths, if any (`looping` once it is a crash loop). */
  get crashLoop(): Readonly<CrashLoop> | undefined {
    return this.crash;
  }

  /** The latest HUP and its outcome. */
  get reload(): Readonly<ReloadRecord> | undefined {
    return this.lastReload;
  }

  get phase(): PoolPhase {
    return this.phaseNow;
  }

  /** The exit code once the pool gave up (halt). */
  get haltCode(): number | undefined {
    return this.halted;
  }

  /** Workers wanted (TTIN/TTOU change it). */
  get wanted(): number {
    return this.wantedCount;
  }

  /** A stop is complete: every worker is gone. */
  get stopped(): boolean {
    return this.phaseNow === 'stopping' && this.live.size === 0;
  }

  /** Requests served by every worker so far (live ones up to one heartbeat behind). */
  get served(): number {
    let n = this.count.servedByGone;
    for (const w of this.live.values()) n += w.served;
    return n;
  }

  // ------------------------------------------------------------------ events

  /** The process of a worker the pool asked for was forked (pid -1: the fork failed). */
  forked(id: number, pid: number): void {
    const w = this.live.get(id);
    if (w) w.pid = pid;
  }

  /**
   * It sent IPC 'ready'. `connected`: its dispatch connection is up (the table's slot). Serving
   * needs both.
   */
  announced(id: number, connected: boolean, now: number): PoolAction[] {
    const w = this.live.get(id);
    if (!w) return [];
    w.announced = true;
    return this.checkReady(w, connected, now);
  }

  /** Its dispatch connection came up (first credit seen). */
  connected(id: number, now: number): PoolAction[] {
    const w = this.live.get(id);
    return w ? this.checkReady(w, true, now) : [];
  }

  /** Its heartbeat: counters. */
  heartbeat(id: number, served: number, now: number): PoolAction[] {
    const w = this.live.get(id);
    if (!w) return [];
    w.lastBeat = now;
    w.served = served;
    return [];
  }

  /**
   * One sample of its resident memory (bytes, the worker and its Python), once per sample: a
   * spike counts once however often the worker beats (--max-memory, MEMORY_CHECKS in a row).
   */
  memory(id: number, rss: number): PoolAction[] {
    const w = this.live.get(id);
    if (!w) return [];
    w.rss = rss;
    const limit = this.options.maxMemoryBytes;
    w.overMemory = limit > 0 && rss > limit ? w.overMemory + 1 : 0;
    if (w.overMemory < MEMORY_CHECKS || w.retiring || w.state !== 'serving') return [];
    // Like max-requests: replaced, finishing what it has; nothing in flight is cut.
    w.retiring = true;
    this.count.memoryRecycled++;
    return [
      { type: 'retire', id, bound: this.options.workerConnections },
      note('warn', 'worker over --max-memory; replacing it', { worker: id, pid: w.pid, rss, maxMemory: limit, checks: w.overMemory }),
    ];
  }

  fatal(id: number, message: string, detail?: { detail?: string; hint?: string }): void {
    const w = this.live.get(id);
    if (!w) return;
    w.fatal = message;
    if (detail?.detail !== undefined || detail?.hint !== undefined) w.fatalDetail = detail;
  }

  /** It reached its max-requests: replace it, with a bound on what it may still be sent. */
  retireRequested(id: number, served: number): PoolAction[] {
    const w = this.live.get(id);
    if (!w) return [];
    w.served = served;
    if (w.retiring || w.state !== 'serving') return [];
    w.retiring = true;
    this.count.recycled++;
    // New connections go to other workers from now on; its own (sticky) ones and, while nobody
    // else has credit, new ones too keep it serving until the replacement is ready, but no more
    // than one credit's worth: then it is drained even if alone.
    return [
      { type: 'retire', id, bound: this.options.workerConnections },
      note('info', 'worker reached max requests; replacing it', { worker: id, pid: w.pid, served }),
    ];
  }

  /** The table sent a retiring worker all its bound allows. Returns whether anything changed. */
  overshootReached(id: number): boolean {
    const w = this.live.get(id);
    if (!w || !w.retiring || w.overshot) return false;
    w.overshot = true;
    return true;
  }

  /** The worker stops on its own (it told the table 'P'): drain it. */
  paused(id: number, now: number): PoolAction[] {
    const w = this.live.get(id);
    if (!w || w.state === 'draining' || w.state === 'aborted') return [];
    this.toStopping(w, 'draining', 'stopping on its own', now + this.options.gracefulTimeoutMs);
    return [
      note('info', 'worker is stopping on its own; draining it', { worker: id, pid: w.pid }),
      { type: 'undispatch', id },
    ];
  }

  /** Its process exited (and its dispatch connection was read out). */
  exited(id: number, exit: WorkerExit, now: number): PoolAction[] {
    const w = this.live.get(id);
    if (!w) return [];
    this.live.delete(id);
    this.count.servedByGone += w.served;
    // A worker that exited 0 after being asked to stop flushed its replies; any other end may
    // have lost replies it had already reported done: those within RECENT_MS before it was last
    // heard from (report or heartbeat); for a frozen worker that is long before it exits.
    const clean = w.stopRequested && exit.code === 0;
    const lastHeard = Math.min(exit.closedAt, Math.max(w.lastBeat, exit.lastReport));
    const actions: PoolAction[] = [{ type: 'bury', id, pid: w.pid, suspectSince: clean ? Infinity : lastHeard - RECENT_MS }];
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    if (!w.stopRequested && this.phaseNow !== 'stopping') {
      const reason = w.fatal?.split('\n')[0];
      this.death = { worker: id, pid: w.pid, at: now, exit: how, booting: w.state === 'booting', ...(reason ? { reason } : {}) };
    }
    if (w.state === 'booting') {
      actions.push(...this.bootFailed(w, exit.code, how, now));
    } else if (w.stopRequested) {
      actions.push(note('info', 'worker exited', { worker: id, pid: w.pid, exit: how, served: w.served }));
    } else {
      this.count.restarts++;
      const hint = exit.signal === 'SIGKILL' ? ' (killed: perhaps out of memory?)' : '';
      actions.push(note('error', `worker died unexpectedly${hint}`, { worker: id, pid: w.pid, exit: how, served: w.served }));
      if (!this.options.respawn && this.phaseNow === 'running' && this.wantedCount > 1) this.wantedCount--;
      else if (w.state === 'serving' && this.phaseNow !== 'stopping') actions.push(...this.quickDeath(w, how, now));
    }
    return actions;
  }

  /** A signal the master received (USR1 is the arbiter's alone: it only reopens files; the arbiter turns HUP into reloadWith). */
  signal(sig: PoolSignal, now: number): PoolAction[] {
    switch (sig) {
      case 'SIGTERM':
        return this.stopGracefully();
      case 'SIGINT':
      case 'SIGQUIT':
        return this.stopFast(now);
      case 'SIGHUP':
        return this.reloadWith(now);
      case 'SIGTTIN':
        if (this.phaseNow === 'stopping' || this.wantedCount >= this.options.maxWorkers) return [];
        this.wantedCount++;
        return [note('info', 'TTIN: one more worker', { workers: this.wantedCount })];
      case 'SIGTTOU':
        if (this.phaseNow === 'stopping') return [];
        if (this.wantedCount > 1) this.wantedCount--;
        return [note('info', 'TTOU: one worker less', { workers: this.wantedCount })];
    }
  }

  /** A graceful stop has taken in what mongrel2 had sent: drain every worker. */
  drainAll(now: number): PoolAction[] {
    const actions: PoolAction[] = [];
    for (const w of this.live.values()) actions.push(...this.drain(w, 'shutdown', now));
    return actions;
  }

  /** The last step of a stop: whatever is left gets `signal`. */
  shutdown(signal: KillSignal): PoolAction[] {
    const actions: PoolAction[] = [];
    for (const w of this.live.values()) {
      w.stopRequested = true;
      actions.push({ type: 'kill', id: w.id, signal });
    }
    return actions;
  }

  // ------------------------------------------------------------------ verbs (each tick)

  /**
   * Timeouts: workers running a request that timed out and could not be cancelled (`stuck`: the
   * table answered it 504 and sent the cancel; a WSGI thread cannot be stopped) are replaced
   * gracefully, their other requests finishing; silent workers (event loop blocked) are aborted;
   * boots too slow get SIGTERM once, SIGKILL after BOOT_KILL_GRACE_MS; overdue stops SIGKILL.
   * A timed-out request alone never kills its worker: the others it serves live on.
   */
  murder(now: number, stuck: Iterable<number> = []): PoolAction[] {
    const actions: PoolAction[] = [];
    const { timeoutMs, bootTimeoutMs } = this.options;
    for (const id of stuck) {
      const w = this.live.get(id);
      if (!w || w.retiring || w.state !== 'serving') continue;
      w.retiring = true;
      actions.push(
        { type: 'retire', id, bound: this.options.workerConnections },
        note('warn', 'a request timed out and is still running after it was cancelled (a WSGI thread cannot be stopped); replacing its worker gracefully', {
          worker: id,
          pid: w.pid,
          timeout: timeoutMs / 1000,
        }),
      );
    }
    const silence = timeoutMs > 0 ? Math.max(timeoutMs, 2000) : 30_000;
    for (const w of this.live.values()) {
      if (w.killAt > 0 && now >= w.killAt) {
        actions.push(
          note('warn', 'worker did not stop in time: SIGKILL', { worker: w.id, pid: w.pid, state: w.state }),
          { type: 'kill', id: w.id, signal: 'SIGKILL' },
        );
        w.killAt = now + KILL_RETRY_MS;
        continue;
      }
      if (w.state === 'serving' && now - w.lastBeat > silence) {
        actions.push(...this.abort(w, `no heartbeat for ${Math.round((now - w.lastBeat) / 1000)} s (event loop blocked?)`, now));
      } else if (w.state === 'booting' && !w.bootTimedOut && now - w.spawnedAt > bootTimeoutMs) {
        // Once: the SIGKILL at killAt above follows (re-arming killAt every tick never escalated).
        const seconds = bootTimeoutMs / 1000;
        actions.push(
          note('error', 'worker did not become ready in time: SIGTERM, then SIGKILL', { worker: w.id, pid: w.pid, bootTimeout: seconds }),
          { type: 'kill', id: w.id, signal: 'SIGTERM' },
        );
        w.bootTimedOut = true;
        w.fatal ??= `not ready within the boot timeout (${seconds} s)`;
        w.killAt = now + BOOT_KILL_GRACE_MS;
      }
    }
    return actions;
  }

  /**
   * No worker serves and none is about to as far as we know (past the first boot: a crash loop,
   * boot failures, every worker gone): what waits in the master should get a 503 soon rather than
   * wait through the backoff (table.refuseWaiting). At the first boot requests wait for it.
   */
  get refusesWaiting(): boolean {
    if (this.phaseNow === 'stopping' || this.halted !== undefined) return false;
    for (const w of this.live.values()) if (w.state === 'serving') return false;
    return this.phaseNow === 'running' || this.crash !== undefined || this.count.bootFailures > 0;
  }

  /** Keep `wanted` workers serving: spawn what's missing, drain what's extra or replaced. */
  manage(now: number): PoolAction[] {
    if (this.phaseNow === 'stopping' || this.halted !== undefined) return [];
    const actions: PoolAction[] = [];
    const all = [...this.live.values()];
    // Active: will keep serving (booting or serving, not retiring).
    const active = all.filter((w) => (w.state === 'booting' || w.state === 'serving') && !w.retiring);
    const failing = this.count.bootFailures > 0;
    actions.push(...this.crashCheck(now));
    // One at a time too while workers crash-loop: no point starting several that will die.
    const oneAtATime = failing || this.crash?.looping === true;
    if (active.length < this.wantedCount && now >= this.nextSpawnAt) {
      // After a boot failure, one at a time until one comes up.
      const missing = oneAtATime ? 1 : this.wantedCount - active.length;
      const booting = active.some((w) => w.state === 'booting');
      for (let i = 0; i < missing && !(oneAtATime && booting); i++) actions.push(this.spawn(now));
    } else if (active.length > this.wantedCount) {
      // TTOU: drain the oldest extra ones (booting ones first).
      const extra = active.sort((a, b) => (a.state === b.state ? a.id - b.id : a.state === 'booting' ? -1 : 1));
      for (const w of extra.slice(0, active.length - this.wantedCount)) actions.push(...this.drain(w, 'fewer workers wanted', now));
    }
    // Rolling replacement: drain retiring workers only while enough others serve.
    let serving = all.filter((w) => w.state === 'serving').length;
    const retiring = all.filter((w) => w.retiring && (w.state === 'serving' || w.state === 'booting')).sort((a, b) => a.id - b.id);
    for (const w of retiring) {
      if (w.state === 'booting') {
        actions.push(...this.drain(w, 'replaced before it was ready', now));
        continue;
      }
      // Not while replacements fail to boot: then the old worker is all the capacity there is.
      if (w.overshot && !failing) {
        actions.push(...this.drain(w, 'max requests reached; overshoot bound used up', now));
        serving--;
        continue;
      }
      if (serving - 1 < this.wantedCount) continue;
      actions.push(...this.drain(w, 'replaced by a newer worker', now));
      serving--;
    }
    actions.push(...this.reloadProgress(now));
    if (this.phaseNow === 'starting') {
      const ready = all.filter((w) => w.state === 'serving' && !w.retiring).length;
      if (ready >= this.wantedCount) {
        this.phaseNow = 'running';
        actions.push(note('info', 'all workers ready', { workers: ready }));
        if (!this.readySignalled) {
          this.readySignalled = true;
          actions.push({ type: 'allReady' });
        }
      }
    }
    return actions;
  }

  // ------------------------------------------------------------------ transitions

  private spawn(now: number): PoolAction {
    const { maxRequests, maxRequestsJitter } = this.options;
    const jitter = maxRequests > 0 && maxRequestsJitter > 0 ? Math.floor(this.random() * (maxRequestsJitter + 1)) : 0;
    const worker: PoolWorker = {
      id: this.nextId++,
      pid: -1,
      spawnedAt: now,
      maxRequests: maxRequests > 0 ? maxRequests + jitter : 0,
      state: 'booting',
      announced: false,
      retiring: false,
      lastBeat: now,
      served: 0,
      killAt: 0,
      stopReason: undefined,
      fatal: undefined,
      stopRequested: false,
      bootTimedOut: false,
      overshot: false,
      readyAt: 0,
      rss: 0,
      overMemory: 0,
    };
    this.live.set(worker.id, worker);
    return { type: 'spawn', worker };
  }

  private checkReady(w: PoolWorker, connected: boolean, now: number): PoolAction[] {
    if (w.state !== 'booting' || !w.announced || !connected) return [];
    w.state = 'serving';
    w.lastBeat = now;
    w.readyAt = now;
    this.count.bootFailures = 0;
    return [note('info', 'worker ready', { worker: w.id, pid: w.pid, bootMs: now - w.spawnedAt })];
  }

  /** The one place a worker leaves booting/serving: it is asked to stop, SIGKILL due at `killAt`. */
  private toStopping(w: PoolWorker, state: 'draining' | 'aborted', reason: string, killAt: number): void {
    w.state = state;
    w.stopReason = reason;
    w.stopRequested = true;
    w.killAt = killAt;
  }

  /** Stop sending it work; let it finish in-flight; SIGKILL after the graceful timeout. */
  private drain(w: PoolWorker, reason: string, now: number): PoolAction[] {
    if (w.state === 'draining' || w.state === 'aborted') return [];
    const booting = w.state === 'booting';
    // A booting worker has nothing in flight: no reason to wait the graceful timeout (the app may
    // hang in its import).
    this.toStopping(w, 'draining', reason, now + (booting ? BOOT_KILL_GRACE_MS : this.options.gracefulTimeoutMs));
    return [
      note('info', 'draining worker', { worker: w.id, pid: w.pid, reason }),
      { type: 'undispatch', id: w.id },
      booting ? { type: 'kill', id: w.id, signal: 'SIGTERM' } : { type: 'tell', id: w.id, message: { type: 'drain' } },
    ];
  }

  /** Stuck (no heartbeat): no new work, SIGTERM now, SIGKILL soon. */
  private abort(w: PoolWorker, reason: string, now: number): PoolAction[] {
    if (w.state === 'aborted') return [];
    this.toStopping(w, 'aborted', reason, now + Math.min(this.options.gracefulTimeoutMs, ABORT_GRACE_MAX_MS));
    return [
      note('error', 'worker timed out; replacing it', { worker: w.id, pid: w.pid, reason }),
      { type: 'undispatch', id: w.id },
      { type: 'kill', id: w.id, signal: 'SIGTERM' },
    ];
  }

  private bootFailed(w: PoolWorker, code: number | null, how: string, now: number): PoolAction[] {
    if (this.phaseNow === 'stopping' || w.stopRequested) {
      return [note('info', 'worker exited before it was ready', { worker: w.id, pid: w.pid, exit: how })];
    }
    const failures = ++this.count.bootFailures;
    const reason = w.fatal ?? `exited with ${how} before it was ready`;
    const serving = [...this.live.values()].some((x) => x.state === 'serving');
    const fatalCode = code === EXIT_APP_LOAD_ERROR || code === EXIT_BOOT_ERROR ? code : undefined;
    const hopeless = fatalCode !== undefined || failures >= MAX_BOOT_FAILURES;
    const actions: PoolAction[] = [
      note('error', 'worker failed to boot', { worker: w.id, pid: w.pid, exit: how, reason, failures }),
    ];
    if (hopeless) this.finishReload('failed', now, reason, fatalCode ?? EXIT_BOOT_ERROR, w.fatalDetail);
    if (hopeless && !serving) {
      const what = fatalCode === EXIT_APP_LOAD_ERROR ? 'the app could not be loaded' : 'workers could not boot';
      this.halted = fatalCode ?? EXIT_BOOT_ERROR;
      actions.push(
        note('error', `giving up: ${what}; the master halts`, { reason, failures }),
        { type: 'halt', code: this.halted },
      );
      return actions;
    }
    if (hopeless) {
      // A reload or recycling whose new workers cannot start: keep the old ones serving.
      let kept = 0;
      for (const x of this.live.values()) {
        if (x.retiring && x.state === 'serving' && !x.overshot) {
          x.retiring = false;
          actions.push({ type: 'unretire', id: x.id });
          kept++;
        }
      }
      if (kept > 0) actions.push(note('error', 'new workers cannot start; keeping the old ones', { kept, reason }));
    }
    const delay = backoffDelay(failures);
    this.nextSpawnAt = now + delay;
    actions.push({ type: 'backoff', delayMs: delay });
    return actions;
  }

  /**
   * HUP: every worker is to be replaced; manage() spawns the new ones and drains the old. With
   * `change`, the re-read configuration applies first (new workers get it). Its outcome is
   * `reload`: done once the new workers serve, failed when they cannot boot (old ones kept).
   */
  reloadWith(now: number, change: ReloadChange = {}): PoolAction[] {
    if (this.phaseNow === 'stopping') return [];
    this.count.reloads++;
    if (change.options) {
      if (change.options.workers !== this.options.workers) this.wantedCount = Math.max(1, Math.min(change.options.maxWorkers, change.options.workers));
      this.options = change.options;
    }
    this.reloadFirstId = this.nextId;
    this.lastReload = {
      generation: this.count.reloads,
      requestedAt: now,
      outcome: 'pending',
      wanted: this.wantedCount,
      ready: 0,
      changed: change.changed ?? [],
      needsRestart: change.needsRestart ?? [],
      ...(change.overridden?.length ? { overridden: change.overridden } : {}),
    };
    // New code may well have fixed what crashed.
    this.crash = undefined;
    const actions: PoolAction[] = [];
    let replacing = 0;
    for (const w of this.live.values()) {
      if (w.state === 'serving' || w.state === 'booting') {
        w.retiring = true;
        actions.push({ type: 'retire', id: w.id, bound: Infinity });
        replacing++;
      }
    }
    this.count.bootFailures = 0;
    this.nextSpawnAt = 0;
    actions.push(note('info', 'HUP: rolling reload', { replacing, workers: this.wantedCount, generation: this.count.reloads }));
    return actions;
  }

  /** HUP with a configuration that cannot be used: nothing changes; the reload is failed at once. */
  reloadRefused(now: number, reason: string, exitCode: number): PoolAction[] {
    if (this.phaseNow === 'stopping') return [];
    this.count.reloads++;
    this.lastReload = {
      generation: this.count.reloads,
      requestedAt: now,
      outcome: 'failed',
      finishedAt: now,
      reason,
      exitCode,
      wanted: this.wantedCount,
      ready: 0,
      changed: [],
      needsRestart: [],
    };
    // 2 (usage): the file or the command line is wrong; else reading it failed (e.g. EMFILE), not the config.
    const what = exitCode === 2 ? 'the configuration is invalid' : 'the configuration could not be re-read';
    return [note('error', `HUP: ${what}; keeping the running one and its workers`, { reason })];
  }

  private finishReload(outcome: 'done' | 'failed', now: number, reason?: string, exitCode?: number, shown?: { detail?: string; hint?: string }): void {
    const r = this.lastReload;
    if (!r || r.outcome !== 'pending') return;
    r.outcome = outcome;
    r.finishedAt = now;
    r.reason = reason;
    r.exitCode = exitCode;
    if (shown?.detail !== undefined) r.detail = shown.detail;
    if (shown?.hint !== undefined) r.hint = shown.hint;
  }

  /** A pending reload is done once as many new workers serve as are wanted. */
  private reloadProgress(now: number): PoolAction[] {
    const r = this.lastReload;
    if (!r || r.outcome !== 'pending') return [];
    let ready = 0;
    for (const w of this.live.values()) if (w.id >= this.reloadFirstId && w.state === 'serving' && !w.retiring) ready++;
    r.ready = ready;
    r.wanted = this.wantedCount;
    if (ready < this.wantedCount) return [];
    this.finishReload('done', now);
    return [note('info', 'reload complete: the new workers serve', { workers: ready, generation: r.generation })];
  }

  /**
   * A serving worker died unexpectedly: soon after it became ready, it is a quick death; those
   * in a row delay the next spawn exponentially, and make a crash loop after crashLoopAfter.
   */
  private quickDeath(w: PoolWorker, how: string, now: number): PoolAction[] {
    const { crashWindowMs, crashLoopAfter, crashBackoffMaxMs } = this.options;
    if (crashWindowMs <= 0 || now - w.readyAt >= crashWindowMs) return [];
    const deaths = (this.crash?.deaths ?? 0) + 1;
    const delayMs = Math.min(crashBackoffMaxMs, CRASH_BACKOFF_BASE_MS * 2 ** (deaths - 1));
    const wasLooping = this.crash?.looping === true;
    this.crash = {
      deaths,
      since: this.crash?.since ?? now,
      lastDeathAt: now,
      lastExit: how,
      nextSpawnAt: now + delayMs,
      looping: deaths >= crashLoopAfter,
    };
    this.nextSpawnAt = Math.max(this.nextSpawnAt, now + delayMs);
    const actions: PoolAction[] = [];
    if (this.crash.looping && !wasLooping) {
      actions.push(
        note('error', 'workers are crash-looping: they die soon after becoming ready; respawning with backoff', {
          deaths,
          crashWindow: crashWindowMs / 1000,
          exit: how,
        }),
      );
    }
    actions.push({ type: 'backoff', delayMs });
    return actions;
  }

  /** A run of quick deaths ends when a worker ready since the last one has served crashWindowMs. */
  private crashCheck(now: number): PoolAction[] {
    const c = this.crash;
    if (!c) return [];
    for (const w of this.live.values()) {
      if (w.state === 'serving' && w.readyAt > c.lastDeathAt && now - w.readyAt >= this.options.crashWindowMs) {
        this.crash = undefined;
        return c.looping ? [note('info', 'crash loop over: a new worker has been serving stably', { deaths: c.deaths, worker: w.id })] : [];
      }
    }
    return [];
  }

  private stopGracefully(): PoolAction[] {
    if (this.phaseNow === 'stopping') return [];
    this.phaseNow = 'stopping';
    // Let mongrel2 keep new requests (it holds them until a handler connects); serve what we
    // already received, then drain every worker (drainAll).
    return [
      note('info', 'TERM: graceful stop', { gracefulTimeout: this.options.gracefulTimeoutMs / 1000 }),
      { type: 'stopReceiving', graceful: true },
    ];
  }

  private stopFast(now: number): PoolAction[] {
    const first = this.phaseNow !== 'stopping';
    this.phaseNow = 'stopping';
    const actions: PoolAction[] = [
      note('info', first ? 'fast stop' : 'fast stop (second signal)'),
      { type: 'stopReceiving', graceful: false },
    ];
    for (const w of this.live.values()) {
      this.toStopping(w, 'aborted', 'fast stop', now + FAST_STOP_GRACE_MS);
      actions.push({ type: 'kill', id: w.id, signal: 'SIGINT' });
    }
    return actions;
  }
}
