/**
 * RequestSource over a unix domain stream socket connected to the master's dispatch socket
 * (docs/INTERNALS.md "Master ↔ worker", format in dispatch/worker-stream.ts). Frames arrive as
 * `length u32, server u8, raw` records, and `0, 'E'` (end of stream); the worker says hello with its
 * id, then reports credit, started and done as 6-byte records, gathered over one event-loop turn
 * and written at once.
 */
import { connect, type Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { DeliverFn, RequestSource } from './source.js';
import {
  CONTROL_END,
  FrameReader,
  REPORT_CAPACITY,
  REPORT_CREDIT,
  REPORT_DONE,
  REPORT_HANDLED,
  REPORT_DROPPED,
  REPORT_HELLO,
  REPORT_PAUSE,
  REPORT_STARTED,
  REPORT_WAITING,
  ReportBuffer,
} from '../dispatch/worker-stream.js';

export interface DispatchedSourceOptions {
  /** The master's dispatch socket (a path relative to the app folder, the cwd). */
  endpoint: string;
  workerId: number;
  /** Messages this worker may hold at once (settings.workerConnections). */
  credits: number;
  /** Requests the app can run at once and hold beyond that (the gateway's `capacity`); none: no bound. */
  capacity?: { readonly concurrent: number; readonly waiting: number };
  logger: Logger;
  /** How long pause() waits for the master's end marker before giving up. Default 5000 ms. */
  pauseTimeoutMs?: number;
}

export class DispatchedSource implements RequestSource {
  private socket: Socket | undefined;
  private readonly reports = new ReportBuffer();
  private readonly options: DispatchedSourceOptions;
  private deliver: DeliverFn | undefined;
  private flushScheduled = false;
  private ended = false;
  private paused = false;
  private closed = false;
  private endWaiters: Array<() => void> = [];
  /** Messages received from the master (for tests and stats). */
  received = 0;

  constructor(options: DispatchedSourceOptions) {
    this.options = options;
  }

  /**
   * Connect to the master (idempotent) and say hello; nothing is offered until start(). The
   * connect(2) happens here, synchronously: before a chroot or privilege drop.
   */
  connect(): void {
    if (this.socket !== undefined) return;
    const socket = connect({ path: this.options.endpoint });
    this.socket = socket;
    const reader = new FrameReader(
      (frame, server) => {
        if (this.deliver === undefined) return;
        this.received++;
        this.deliver(frame, server);
      },
      (kind) => {
        if (kind === CONTROL_END) {
          this.ended = true;
          this.wakeEnd();
        }
      },
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', (err) => {
      if (!this.closed) this.options.logger.error('dispatch connection failed', { error: String(err) });
    });
    socket.on('close', () => {
      // The master is gone (the IPC disconnect handler exits) or we closed: nothing more comes.
      this.ended = true;
      this.wakeEnd();
    });
    this.reports.push(REPORT_HELLO, 0, this.options.workerId);
    this.scheduleFlush();
  }

  /** The app's bound (Gateway.capacity), known once it is loaded: reported before the first credit. */
  bound(capacity: DispatchedSourceOptions['capacity']): void {
    this.options.capacity = capacity;
  }

  start(deliver: DeliverFn): void {
    if (this.deliver) throw new Error('DispatchedSource already started');
    this.deliver = deliver;
    this.connect();
    const capacity = this.options.capacity;
    if (capacity !== undefined) {
      // Before the credit: the master must know the bound before it routes anything here.
      this.reports.push(REPORT_CAPACITY, 0, capacity.concurrent);
      this.reports.push(REPORT_WAITING, 0, capacity.waiting);
    }
    this.reports.push(REPORT_CREDIT, 0, this.options.credits);
    this.scheduleFlush();
  }

  started(server: number, connId: number): void {
    this.reports.push(REPORT_STARTED, server, connId);
    this.scheduleFlush();
  }

  finished(server: number, connId: number): void {
    this.reports.push(REPORT_DONE, server, connId);
    this.scheduleFlush();
  }

  handled(server: number, connId: number): void {
    this.reports.push(REPORT_HANDLED, server, connId);
    this.scheduleFlush();
  }

  dropped(server: number, connId: number): void {
    this.reports.push(REPORT_DROPPED, server, connId);
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
    this.flushed();
    this.closed = true;
    this.wakeEnd();
    const socket = this.socket;
    if (socket === undefined || socket.destroyed) return;
    // Half-close after the last reports; the master reads them all before it reaps us.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      timer.unref();
      socket.end(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** True once the master said nothing more will come. */
  get endOfStream(): boolean {
    return this.ended;
  }

  private wakeEnd(): void {
    const waiters = this.endWaiters;
    this.endWaiters = [];
    for (const w of waiters) w();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const socket = this.socket;
    if (this.closed || socket === undefined || socket.destroyed || this.reports.length === 0) return;
    socket.write(this.reports.take());
  };

  /** Hand the pending reports to the socket now (close() then ends it, which waits for the writes). */
  private flushed(): void {
    if (this.reports.length > 0) this.flush();
  }
}
