/**
 * One Python gateway's bridge process over time, the same for WSGI and ASGI: the current process,
 * restarts with exponential backoff while it keeps dying young, the crash count, what a failed
 * restart answers (the gateway's `restartFailed`), and stop. What the frames and the requests mean
 * stays with the gateway.
 */
import type { Logger } from '../../log/logger.js';
import type { PythonProcess } from './bridge-process.js';
import type { PythonKind } from './errors.js';

export const MAX_RESTART_DELAY = 10_000;
/** A Python process that dies sooner than this after starting counts as a crash loop. */
export const QUICK_CRASH_MS = 2_000;

/** Delay before starting a new Python process after `crashes` quick deaths in a row. */
export function restartDelay(crashes: number): number {
  return crashes === 0 ? 0 : Math.min(100 * 2 ** (crashes - 1), MAX_RESTART_DELAY);
}

/** The count of quick deaths in a row after a process that lived `livedMs` died. */
export function crashesAfterExit(crashes: number, livedMs: number): number {
  return livedMs < QUICK_CRASH_MS ? crashes + 1 : 0;
}

/** What the supervisor asks of its gateway. */
export interface SupervisedGateway {
  /** Start a bridge and load the app (launchBridge with the gateway's frame handlers). */
  start(): Promise<PythonProcess>;
  /** A restart failed to load the app: answer what waited for it (502). */
  restartFailed(): void;
  /** A restart ended (`proc` is the new process, or undefined when it failed) and the gateway is not closing. */
  restarted(proc: PythonProcess | undefined): void;
}

export class BridgeSupervisor {
  /** The running bridge, if any. */
  proc: PythonProcess | undefined;
  /** The gateway is closing: no more restarts. */
  closing = false;
  private restarting = false;
  private crashes = 0;

  constructor(
    private readonly kind: PythonKind,
    private readonly logger: Logger,
    private readonly gateway: SupervisedGateway,
  ) {}

  /** Start a new bridge (after the backoff delay) unless one is starting or the gateway closes. */
  restart(): void {
    if (this.restarting || this.closing) return;
    this.restarting = true;
    const delay = restartDelay(this.crashes);
    this.logger.info(`starting a new Python process for the ${this.kind} app`, { delayMs: delay });
    setTimeout(() => {
      this.gateway
        .start()
        .then(
          (proc) => {
            this.proc = proc;
          },
          (err: Error) => {
            this.crashes++;
            this.logger.error(`the ${this.kind} app could not be restarted`, { error: err.message });
            this.gateway.restartFailed();
          },
        )
        .finally(() => {
          this.restarting = false;
          if (this.closing) {
            if (this.proc) void this.proc.stop(1000);
            return;
          }
          this.gateway.restarted(this.proc);
        });
    }, delay);
  }

  /**
   * The bridge `proc` exited. True when it was the current one: it is counted (a quick death is a
   * crash) and logged, and the gateway answers what it held.
   */
  exited(proc: PythonProcess, description: string): boolean {
    if (proc !== this.proc) return false;
    this.proc = undefined;
    this.crashes = crashesAfterExit(this.crashes, Date.now() - proc.startedAt);
    if (!this.closing) this.logger.error(`the Python process of the ${this.kind} app ${description}`, { pid: proc.child.pid });
    return true;
  }

  /** No more restarts; ask the bridge to quit (`graceMs`, then TERM, then KILL). */
  async stop(graceMs: number): Promise<void> {
    this.closing = true;
    const proc = this.proc;
    if (proc) await proc.stop(graceMs);
    this.proc = undefined;
  }
}
