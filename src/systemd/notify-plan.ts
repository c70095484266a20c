/**
 * What to tell systemd, and when (sd_notify(3), the `Type=notify` protocol): decisions only. The
 * caller (./notify.ts) feeds the master's state and the clock in and sends the datagrams returned.
 *
 *   - `READY=1` once the first full set of workers serves (the start job completes);
 *   - `RELOADING=1` + `MONOTONIC_USEC=` (CLOCK_MONOTONIC, which systemd ≥ 253 requires with
 *     RELOADING=1 and older versions ignore) on HUP, then `READY=1` once no worker is left to be
 *     replaced — the new ones serve, or the reload failed and the old ones were kept;
 *   - `STOPPING=1` when a stop begins;
 *   - `STATUS=` whenever the one-line summary changes ("2 workers serving");
 *   - `WATCHDOG=1` every WATCHDOG_USEC/2 while the master's loop ticks (`WatchdogSec=`).
 * Each message is one datagram of newline-separated `KEY=VALUE` lines.
 */

/** What the master's state looks like from outside: counts only. */
export interface ServiceSnapshot {
  /** Workers serving that are to stay (not being replaced). */
  readonly serving: number;
  /** Workers starting (not ready yet). */
  readonly booting: number;
  /** Workers still serving that a reload or recycling will replace. */
  readonly replacing: number;
  /** Workers finishing their last requests before they exit. */
  readonly draining: number;
  /** The worker count the master keeps. */
  readonly wanted: number;
}

type Phase = 'starting' | 'running' | 'reloading' | 'stopping';

export interface NotifyPlanOptions {
  /** The watchdog timeout (WATCHDOG_USEC, in ms) when systemd asked for one. */
  readonly watchdogMs?: number;
  /** How often tick() is called at most (the master's loop): keep-alives are sent that early. */
  readonly tickMs: number;
  /**
   * 'parent': a daemonizing `wsgid start` sent READY=1 and MAINPID= for this process (the master
   * is not systemd's main process before that), so ready() sends nothing of its own.
   */
  readonly readyBy?: 'self' | 'parent';
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/** The STATUS= summary of a phase and snapshot. */
export function statusLine(phase: Phase, s: ServiceSnapshot): string {
  switch (phase) {
    case 'starting':
      return `starting: ${s.serving} of ${plural(s.wanted, 'worker')} ready`;
    case 'reloading':
      return `reloading: ${s.serving} of ${s.wanted} new ${s.wanted === 1 ? 'worker' : 'workers'} ready, ${s.replacing} old serving`;
    case 'stopping':
      return s.draining > 0 ? `stopping: ${plural(s.draining, 'worker')} finishing requests` : 'stopping';
    case 'running':
      return `${plural(s.serving + s.replacing, 'worker')} serving` + (s.booting > 0 ? `, ${s.booting} starting` : '');
  }
}

/**
 * The watchdog interval systemd asks for, in ms; undefined when none is for this process.
 * `ownPids`: this process, and for a daemon child the `wsgid start` it takes over from (systemd
 * set WATCHDOG_PID to that main process before the MAINPID= handover).
 */
export function watchdogMsFrom(usec: string | undefined, pid: string | undefined, ownPids: readonly number[]): number | undefined {
  if (usec === undefined || !/^\d+$/.test(usec)) return undefined;
  if (pid !== undefined && pid !== '' && !ownPids.some((own) => pid === String(own))) return undefined;
  const ms = Math.floor(Number(usec) / 1000);
  return ms > 0 ? ms : undefined;
}

/** A NOTIFY_SOCKET value wsgid can send to: an absolute path or `@abstract` name (108 bytes max). */
export function checkNotifySocket(value: string): string | undefined {
  if (!(value.startsWith('/') || value.startsWith('@')) || value.length < 2) {
    return `NOTIFY_SOCKET must be an absolute path or @abstract name, got '${value}'`;
  }
  if (Buffer.byteLength(value) >= 108) return `NOTIFY_SOCKET is too long (${Buffer.byteLength(value)} bytes, at most 107)`;
  return undefined;
}

function message(fields: ReadonlyArray<readonly [string, string | number | bigint]>): string {
  // A value may not contain a newline (it would start another field).
  return fields.map(([key, value]) => `${key}=${String(value).replace(/\n/g, ' ')}`).join('\n');
}

export class NotifyPlan {
  private phase: Phase = 'starting';
  private lastStatus: string | undefined;
  private lastWatchdog = -Infinity;
  private readonly options: NotifyPlanOptions;

  constructor(options: NotifyPlanOptions) {
    this.options = options;
  }

  get current(): Phase {
    return this.phase;
  }

  /** The first full set of workers serves. */
  ready(s: ServiceSnapshot): string[] {
    if (this.phase !== 'starting') return [];
    this.phase = 'running';
    const status = this.statusOf(s);
    if (this.options.readyBy === 'parent') return [];
    return [message([['READY', 1], ['STATUS', status]])];
  }

  /** A reload (HUP) begins. `monotonicUsec`: CLOCK_MONOTONIC now, in µs. */
  reloading(s: ServiceSnapshot, monotonicUsec: bigint): string[] {
    // Before the first READY the start job still runs (a reload then is part of starting).
    if (this.phase !== 'running' && this.phase !== 'reloading') return [];
    this.phase = 'reloading';
    return [message([['RELOADING', 1], ['MONOTONIC_USEC', monotonicUsec], ['STATUS', this.statusOf(s)]])];
  }

  /** A stop begins. */
  stopping(s: ServiceSnapshot): string[] {
    if (this.phase === 'stopping') return [];
    this.phase = 'stopping';
    return [message([['STOPPING', 1], ['STATUS', this.statusOf(s)]])];
  }

  /** Once per loop turn: the end of a reload, a changed STATUS, the watchdog keep-alive. */
  tick(s: ServiceSnapshot, now: number): string[] {
    const out: string[] = [];
    if (this.phase === 'reloading' && s.replacing === 0 && s.booting === 0) {
      this.phase = 'running';
      out.push(message([['READY', 1], ['STATUS', this.statusOf(s)]]));
    } else {
      const status = statusLine(this.phase, s);
      if (status !== this.lastStatus) out.push(message([['STATUS', this.statusOf(s)]]));
    }
    const { watchdogMs, tickMs } = this.options;
    if (watchdogMs !== undefined && now - this.lastWatchdog >= Math.max(0, watchdogMs / 2 - tickMs)) {
      this.lastWatchdog = now;
      out.push(message([['WATCHDOG', 1]]));
    }
    return out;
  }

  private statusOf(s: ServiceSnapshot): string {
    this.lastStatus = statusLine(this.phase, s);
    return this.lastStatus;
  }
}
