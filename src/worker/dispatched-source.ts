/**
 * RequestSource over a DEALER connected to the master's ROUTER (docs/INTERNALS.md "Master ↔
 * worker"). Frames arrive as `R server, raw [, R server, raw ...]` and `E` (end of stream); the
 * worker reports credit, started and done as 6-byte records, gathered over one event-loop turn and
 * sent as one frame.
 */
import { Dealer } from 'zeromq';
import type { Logger } from '../log/logger.js';
import type { DeliverFn, RequestSource } from './source.js';
import {
  REPORT_CREDIT,
  REPORT_DONE,
  REPORT_PAUSE,
  REPORT_STARTED,
  ReportBuffer,
  TAG_END,
  TAG_REQUEST,
  routingIdOf,
} from '../dispatch/wire.js';

export interface DispatchedSourceOptions {
  /** The master's ROUTER endpoint (relative ipc path: the cwd is the app folder). */
  endpoint: string;
  workerId: number;
  /** Messages this worker may hold at once (settings.workerConnections). */
  credits: number;
  logger: Logger;
  /** How long pause() waits for the master's end marker before giving up. Default 5000 ms. */
  pauseTimeoutMs?: number;
}

export class DispatchedSource implements RequestSource {
  private readonly dealer: Dealer;
  private readonly reports = new ReportBuffer();
  private readonly options: DispatchedSourceOptions;
  private deliver: DeliverFn | undefined;
  private connected = false;
  private flushScheduled = false;
  private sending = false;
  private ended = false;
  private paused = false;
  private closed = false;
  private endWaiters: Array<() => void> = [];
  private flushWaiters: Array<() => void> = [];
  private loop: Promise<void> | undefined;
  /** Messages received from the master (for tests and stats). */
  received = 0;

  constructor(options: DispatchedSourceOptions) {
    this.options = options;
    this.dealer = new Dealer({
      routingId: routingIdOf(options.workerId),
      linger: 2000,
      receiveHighWaterMark: 0,
      sendHighWaterMark: 0,
    });
  }

  /** Connect to the master (idempotent). Nothing is offered until start(). */
  connect(): void {
    if (this.connected) return;
    this.connected = true;
    this.dealer.connect(this.options.endpoint);
  }

  start(deliver: DeliverFn): void {
    if (this.deliver) throw new Error('DispatchedSource already started');
    this.deliver = deliver;
    this.connect();
    this.reports.push(REPORT_CREDIT, 0, this.options.credits);
    this.scheduleFlush();
    this.loop = this.receiveLoop();
  }

  started(server: number, connId: number): void {
    this.reports.push(REPORT_STARTED, server, connId);
    this.scheduleFlush();
  }

  finished(server: number, connId: number): void {
    this.reports.push(REPORT_DONE, server, connId);
    this.scheduleFlush();
  }

  /**
   * Stop taking work. Resolves once the master has confirmed (end marker) that nothing more is on
   * its way: every frame it forwarded before that has been delivered.
   */
  pause(): Promise<void> {
    if (this.ended || this.closed) return Promise.resolve();
    if (!this.paused) {
      this.paused = true;
      this.reports.push(REPORT_PAUSE, 0, 0);
      this.scheduleFlush();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.options.logger.warn('no end marker from the master; pausing anyway');
        this.ended = true;
        this.wakeEnd();
      }, this.options.pauseTimeoutMs ?? 5000);
      timer.unref();
      this.endWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flushed();
    this.closed = true;
    this.wakeEnd();
    this.dealer.close();
    await this.loop?.catch(() => {});
  }

  /** True once the master said nothing more will come. */
  get endOfStream(): boolean {
    return this.ended;
  }

  private async receiveLoop(): Promise<void> {
    const deliver = this.deliver!;
    try {
      for (;;) {
        const parts = await this.dealer.receive();
        const n = parts.length;
        for (let i = 0; i < n; i++) {
          const head = parts[i]!;
          if (head[0] === TAG_REQUEST && i + 1 < n) {
            this.received++;
            deliver(parts[++i]!, head[1]!);
          } else if (head[0] === TAG_END) {
            this.ended = true;
            this.wakeEnd();
          }
        }
      }
    } catch (err) {
      if (!this.closed) this.options.logger.error('dispatch receive loop failed', { error: err });
    }
  }

  private wakeEnd(): void {
    const waiters = this.endWaiters;
    this.endWaiters = [];
    for (const w of waiters) w();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.sending || this.closed) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    if (this.reports.length === 0) {
      this.wakeFlushed();
      return;
    }
    this.sending = true;
    this.dealer.send(this.reports.take()).then(
      () => {
        this.sending = false;
        if (this.reports.length > 0) this.flush();
        else this.wakeFlushed();
      },
      (err: unknown) => {
        this.sending = false;
        if (!this.closed) this.options.logger.error('could not report to the master', { error: String(err) });
        this.wakeFlushed();
      },
    );
  }

  private flushed(): Promise<void> {
    if (this.reports.length === 0 && !this.sending && !this.flushScheduled) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.flushWaiters.push(resolve);
      if (!this.sending && !this.flushScheduled) this.flush();
    });
  }

  private wakeFlushed(): void {
    if (this.sending || this.flushScheduled || this.reports.length > 0) return;
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }
}
