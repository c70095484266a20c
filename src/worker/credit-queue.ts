/**
 * Download credits for one client connection (mongrel2 `download.flow_control=1`, docs/MONGREL2.md §3–§4).
 *
 * mongrel2 announces the initial credit on the connection's first request (`DOWNLOAD_CREDITS`,
 * 102400) and, after every write to the client, sends an `@*` credits message saying how many bytes
 * it wrote. It drops a client that has more than that many bytes pending, so we never send more
 * unacknowledged bytes than the credit allows.
 *
 * The state lives as long as the connection (across keep-alive requests), and it owns the
 * connection's outgoing queue: a response that ended with bytes still waiting for credit must not
 * be overtaken by the next pipelined response, nor by its own close message.
 */
import { encodeClose, encodeReply } from '../protocol/index.js';
import type { ReplySocket } from '../transport/reply-socket.js';

/** Bytes queued beyond the credit before writers are asked to wait (write() → false). */
export const FLOW_HIGH_WATER = 512 * 1024;
/** Don't cut a message smaller than this while more is queued and credit is coming back. */
const MIN_MESSAGE = 16 * 1024;

type Entry = Buffer | typeof CLOSE;
const CLOSE: unique symbol = Symbol('close');

export class ConnectionFlow {
  /** Bytes we may still send unacknowledged. */
  credits: number;
  /** Bytes queued, waiting for credit. */
  queued = 0;
  /** The client is gone: everything is dropped. */
  closed = false;
  private queue: Entry[] = [];
  private waiters: Array<() => void> = [];
  /** Called once the queue is empty (sent) or dropped (see whenSent). */
  private sentWaiters: Array<() => void> = [];
  private readonly initial: number;

  constructor(
    private readonly socket: ReplySocket,
    readonly sender: string,
    readonly connId: number,
    initialCredits: number,
  ) {
    this.credits = initialCredits;
    this.initial = initialCredits;
  }

  /** Response bytes for the client, in order; sent as far as the credit allows. */
  send(payload: Buffer): void {
    if (this.closed || payload.length === 0) return;
    this.queue.push(payload);
    this.queued += payload.length;
    this.pump();
  }

  /** mongrel2's close message, sent once every byte queued before it has gone out. */
  close(): void {
    if (this.closed) return;
    this.queue.push(CLOSE);
    this.pump();
  }

  /** A credits message: mongrel2 wrote `bytes` to the client. */
  grant(bytes: number): void {
    if (this.closed || !(bytes > 0)) return;
    this.credits += bytes;
    this.pump();
  }

  /** True when writers should wait (too much queued beyond the credit). */
  get full(): boolean {
    return this.queued >= FLOW_HIGH_WATER;
  }

  /** Resolves when the queue is below the high-water mark again (or the client is gone). */
  drained(): Promise<void> {
    if (!this.full || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Call `fn` once everything queued so far has been sent (or dropped: the client is gone). A
   * response whose app has finished may still wait here for credit; the worker reports it done
   * (and may exit) only then, or its tail would be lost.
   */
  whenSent(fn: () => void): void {
    if (this.closed || this.queue.length === 0) fn();
    else this.sentWaiters.push(fn);
  }

  /** The client disconnected: drop the queue, wake writers. */
  gone(): void {
    this.closed = true;
    this.queue = [];
    this.queued = 0;
    this.wake();
    this.sent();
  }

  private sent(): void {
    if (this.sentWaiters.length === 0) return;
    const waiters = this.sentWaiters;
    this.sentWaiters = [];
    for (const fn of waiters) fn();
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      const head = this.queue[0]!;
      if (head === CLOSE) {
        this.queue.shift();
        this.socket.send(encodeClose(this.sender, this.connId));
        continue;
      }
      if (this.credits <= 0) break;
      // Wait for a little more credit rather than sending a sliver, unless the sliver is all there is.
      if (this.credits < Math.min(MIN_MESSAGE, this.queued, this.initial >> 1) && this.credits < head.length) break;
      const parts: Buffer[] = [];
      let size = 0;
      while (this.queue.length > 0 && this.credits - size > 0) {
        const next = this.queue[0]!;
        if (next === CLOSE) break;
        const room = this.credits - size;
        if (next.length <= room) {
          parts.push(next);
          size += next.length;
          this.queue.shift();
        } else {
          parts.push(next.subarray(0, room));
          this.queue[0] = next.subarray(room);
          size += room;
        }
      }
      this.credits -= size;
      this.queued -= size;
      this.socket.send(encodeReply(this.sender, this.connId, parts.length === 1 ? parts[0]! : Buffer.concat(parts, size)));
    }
    if (!this.full) this.wake();
    if (this.queue.length === 0) this.sent();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
