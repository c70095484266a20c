/**
 * Captured app output (gunicorn's --capture-output, PM2's out/err logs): in daemon mode every
 * worker's fd 1 and fd 2 are pipes to the master, which cuts them into lines, tags each with the
 * worker (id, pid, stream) and appends them to logs/app.log (docs/LOGGING.md says why pipes).
 *
 * The master never blocks on the disk: lines are queued and written by one asynchronous write at a
 * time (libuv's thread pool); while the disk lags, the queue grows up to `maxPendingBytes`, then
 * lines are dropped and counted, and a notice with the count is written once the disk keeps up.
 * A worker never blocks on the disk either: it writes into its pipe, which the master empties.
 *
 * `reopen()` (SIGUSR1, logrotate) opens the file again; a write in flight finishes into the old
 * file (renamed: the rotated one), the next goes to the new one. The file is opened O_APPEND, so
 * a `copytruncate` rotation leaves no hole.
 */
import { closeSync, write, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { jsonHead, jsonValue, type LogFormat } from './logger.js';

export type OutputStream = 'stdout' | 'stderr';

export interface OutputTag {
  /** Worker id (the pool's spawn counter). */
  worker: number;
  pid: number;
  stream: OutputStream;
}

/** Lines longer than this are cut (a binary blob without newline must not grow a buffer forever). */
export const MAX_LINE_BYTES = 16 * 1024;
/** What may wait for the disk before lines are dropped. */
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;
/** The burst a worker's output rate allows, in seconds of that rate. */
export const OUTPUT_BURST_SECONDS = 4;

/**
 * A worker's output budget (a token bucket, pure: the clock is passed in): `rate` bytes per second,
 * up to `burst` saved. Lines over budget are counted, to be reported once lines pass again.
 */
export class OutputBudget {
  private tokens: number;
  private at: number;
  droppedLines = 0;
  droppedBytes = 0;
  private reportedAt = -Infinity;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  /** Whether a line of `bytes` may be written at `now` (if not, it is counted as dropped). */
  take(bytes: number, now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens >= bytes) {
      this.tokens -= bytes;
      return true;
    }
    this.droppedLines++;
    this.droppedBytes += bytes;
    return false;
  }

  /**
   * The drops since the last report (and reset), at most one report a second unless `final`;
   * undefined when there is nothing to report yet.
   */
  takeDropped(now: number, final = false): { lines: number; bytes: number } | undefined {
    if (this.droppedLines === 0 || (!final && now - this.reportedAt < 1000)) return undefined;
    this.reportedAt = now;
    const out = { lines: this.droppedLines, bytes: this.droppedBytes };
    this.droppedLines = 0;
    this.droppedBytes = 0;
    return out;
  }
}

/** One captured line as written to logs/app.log (with its newline). */
export function formatOutputLine(format: LogFormat, time: number, tag: OutputTag, line: string): string {
  if (format === 'json') {
    // pino's levels: stdout info (30), stderr warn (40).
    const level = tag.stream === 'stderr' ? 40 : 30;
    return jsonHead(level, time, tag.pid) + `,"worker":${tag.worker},"stream":"${tag.stream}","msg":${jsonValue(line)}}\n`;
  }
  return `${new Date(time).toISOString()} [worker ${tag.worker} ${tag.pid} ${tag.stream}] ${line}\n`;
}

/**
 * Cuts a byte stream into lines (LF, a CR before it dropped), decoding UTF-8 per whole line so a
 * character split between two reads stays whole.
 */
export class LineSplitter {
  private carry: Buffer | undefined;
  constructor(private readonly emit: (line: string) => void) {}

  push(chunk: Buffer): void {
    let data = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = undefined;
    let start = 0;
    for (let nl = data.indexOf(10, start); nl >= 0; nl = data.indexOf(10, start)) {
      const end = nl > start && data[nl - 1] === 13 ? nl - 1 : nl;
      this.emitCut(data.subarray(start, end));
      start = nl + 1;
    }
    data = data.subarray(start);
    if (data.length >= MAX_LINE_BYTES) {
      // A line without end: its whole MAX_LINE_BYTES pieces go now, the rest waits for more.
      const whole = data.length - (data.length % MAX_LINE_BYTES);
      this.emitCut(data.subarray(0, whole));
      data = data.subarray(whole);
    }
    if (data.length > 0) this.carry = Buffer.from(data);
  }

  /** The stream ended: a last line without newline still counts. */
  end(): void {
    if (this.carry) this.emitCut(this.carry);
    this.carry = undefined;
  }

  private emitCut(bytes: Buffer): void {
    if (bytes.length === 0) return this.emit('');
    for (let at = 0; at < bytes.length; at += MAX_LINE_BYTES) this.emit(bytes.subarray(at, at + MAX_LINE_BYTES).toString('utf8'));
  }
}

export interface AppOutputOptions {
  /** Opens logs/app.log (O_APPEND, no symlinks followed): called at start and on reopen. */
  open: () => number;
  format: LogFormat;
  maxPendingBytes?: number;
  /** Bytes per second each worker may write (0 or absent: no limit); bursts of OUTPUT_BURST_SECONDS. */
  ratePerWorker?: number;
  now?: () => number;
}

export class AppOutputLog {
  private fd: number;
  /** A replaced fd, closed once the write in flight on it is done. */
  private retired: number[] = [];
  private pending: string[] = [];
  private pendingBytes = 0;
  private writing = false;
  private closed = false;
  private droppedNow = 0;
  private droppedTotal = 0;
  private linesTotal = 0;
  private idle: Array<() => void> = [];
  /** Attached pipes not yet ended: close() reads them out first (a worker's last lines). */
  private open = new Set<Readable>();
  private allEnded: Array<() => void> = [];
  private readonly maxPending: number;
  private readonly now: () => number;
  /** Each recent worker's last stderr line (why it died, for `status`); the last few workers only. */
  private readonly lastErr = new Map<number, string>();
  /** Each attached worker's output budget (--app-output-rate), while its pipes are open. */
  private readonly budgets = new Map<number, { budget: OutputBudget; pid: number; pipes: number }>();
  private rateDroppedTotal = 0;

  constructor(private readonly options: AppOutputOptions) {
    this.fd = options.open();
    this.maxPending = options.maxPendingBytes ?? MAX_PENDING_BYTES;
    this.now = options.now ?? Date.now;
  }

  /** Lines dropped because the disk did not keep up, since start. */
  get dropped(): number {
    return this.droppedTotal;
  }

  /** Lines dropped because their worker was over --app-output-rate, since start. */
  get rateDropped(): number {
    return this.rateDroppedTotal;
  }

  /** Lines captured (written or queued), since start. */
  get lines(): number {
    return this.linesTotal;
  }

  /** Capture a worker's stdout or stderr pipe until it ends. */
  attach(stream: Readable, tag: OutputTag): void {
    const rate = this.options.ratePerWorker ?? 0;
    let entry = this.budgets.get(tag.worker);
    if (rate > 0 && entry === undefined) {
      entry = { budget: new OutputBudget(rate, rate * OUTPUT_BURST_SECONDS, this.now()), pid: tag.pid, pipes: 0 };
      this.budgets.set(tag.worker, entry);
    }
    if (entry) entry.pipes++;
    const budget = entry?.budget;
    const splitter = new LineSplitter((line) => {
      // Over budget: dropped before it costs a format and a write (the line's own bytes + newline).
      if (budget && !budget.take(Buffer.byteLength(line) + 1, this.now())) {
        this.rateDroppedTotal++;
        return;
      }
      if (budget) this.noteDropped(tag.worker, tag.pid, budget, false);
      this.line(tag, line);
    });
    this.open.add(stream);
    const ended = (): void => {
      if (!this.open.delete(stream)) return;
      splitter.end();
      if (entry && --entry.pipes === 0) {
        this.budgets.delete(tag.worker);
        this.noteDropped(tag.worker, tag.pid, entry.budget, true);
      }
      if (this.open.size === 0) for (const resolve of this.allEnded.splice(0)) resolve();
    };
    stream.on('data', (chunk: Buffer) => splitter.push(chunk));
    stream.on('end', ended);
    stream.on('close', ended);
    stream.on('error', () => {});
  }

  /** The last non-empty line worker `worker` wrote to stderr, if it is one of the last few. */
  lastStderr(worker: number): string | undefined {
    return this.lastErr.get(worker);
  }

  line(tag: OutputTag, text: string): void {
    if (this.closed) return;
    if (tag.stream === 'stderr' && text.trim() !== '') this.rememberStderr(tag.worker, text);
    const formatted = formatOutputLine(this.options.format, this.now(), tag, text);
    if (this.pendingBytes + formatted.length > this.maxPending) {
      this.droppedNow++;
      this.droppedTotal++;
      return;
    }
    this.linesTotal++;
    this.pending.push(formatted);
    this.pendingBytes += formatted.length;
    if (!this.writing) this.writeNext();
  }

  /** The line saying how much of a worker's output its rate limit dropped since the last such line. */
  private noteDropped(worker: number, pid: number, budget: OutputBudget, final: boolean): void {
    const dropped = budget.takeDropped(this.now(), final);
    if (!dropped || this.closed) return;
    const rate = this.options.ratePerWorker ?? 0;
    const msg =
      `worker ${worker} (pid ${pid}): dropped ${dropped.lines} line(s), ${dropped.bytes} byte(s) of app output ` +
      `over --app-output-rate (${rate} bytes/s)`;
    const text =
      this.options.format === 'json'
        ? jsonHead(40, this.now(), process.pid) +
          `,"role":"master","worker":${worker},"droppedLines":${dropped.lines},"droppedBytes":${dropped.bytes},"msg":${jsonValue(msg)}}\n`
        : `${new Date(this.now()).toISOString()} [master ${process.pid}] ${msg}\n`;
    this.pending.push(text);
    this.pendingBytes += text.length;
    if (!this.writing) this.writeNext();
  }

  private rememberStderr(worker: number, text: string): void {
    this.lastErr.delete(worker);
    this.lastErr.set(worker, text.length > 300 ? text.slice(0, 300) + '…' : text);
    // A Map keeps insertion order: the least recently heard-from worker goes first.
    if (this.lastErr.size > 16) this.lastErr.delete(this.lastErr.keys().next().value as number);
  }

  reopen(): void {
    if (this.closed) return;
    const next = this.options.open();
    const previous = this.fd;
    this.fd = next;
    if (this.writing) this.retired.push(previous);
    else closeSync(previous);
  }

  /** Resolves once everything queued is written (or immediately when nothing is). */
  drained(): Promise<void> {
    if (!this.writing && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /**
   * Read the pipes out (the workers are gone: their last lines), write what is queued, then close;
   * at most `waitMs` in all.
   */
  async close(waitMs = 2000): Promise<void> {
    if (this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    const ends = this.open.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.allEnded.push(resolve));
    await Promise.race([ends.then(() => this.drained()), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
    this.closed = true;
    const rest = this.takeBatch();
    if (rest) {
      try {
        writeSync(this.fd, rest);
      } catch {
        /* nothing left to tell */
      }
    }
    for (const fd of this.retired) closeQuietly(fd);
    this.retired = [];
    closeQuietly(this.fd);
  }

  private takeBatch(): string {
    let text = '';
    if (this.droppedNow > 0) {
      const msg = `${this.droppedNow} line(s) of app output dropped: the disk did not keep up`;
      text +=
        this.options.format === 'json'
          ? jsonHead(40, this.now(), process.pid) + `,"role":"master","dropped":${this.droppedNow},"msg":${jsonValue(msg)}}\n`
          : `${new Date(this.now()).toISOString()} [master ${process.pid}] ${msg}\n`;
      this.droppedNow = 0;
    }
    text += this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    return text;
  }

  private writeNext(): void {
    const text = this.takeBatch();
    if (text === '') {
      this.writing = false;
      for (const fd of this.retired) closeQuietly(fd);
      this.retired = [];
      const waiting = this.idle;
      this.idle = [];
      for (const resolve of waiting) resolve();
      return;
    }
    this.writing = true;
    this.writeBuffer(Buffer.from(text, 'utf8'));
  }

  private writeBuffer(buffer: Buffer): void {
    const fd = this.fd;
    write(fd, buffer, 0, buffer.length, null, (error, written) => {
      if (this.closed) return;
      // A short write (a full disk): the rest is tried once more, then given up.
      if (!error && written < buffer.length && written > 0) return this.writeBuffer(buffer.subarray(written));
      this.writeNext();
    });
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}
