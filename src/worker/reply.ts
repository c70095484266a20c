/**
 * ReplyChannel for one request: turns a gateway's writes into mongrel2 reply messages.
 *
 * Why coalescing: without download credits, mongrel2 queues at most 16 messages per connection
 * and drops a client that has more outstanding (docs/MONGREL2.md §3). We cannot see how far the
 * client has read, so we bound the number of messages instead of their size: the first few
 * messages go out on the next tick (latency for small and streamed responses), after that each
 * message must hold at least twice as much as the previous one unless the producer pauses, and
 * at most one such message leaves per IDLE_FLUSH_MS. A 50 MB stream thus needs ~14 messages; an
 * SSE stream whose events are far apart sends each event on the next tick (what it merges is
 * only what was written in the meantime), a fast one at most every IDLE_FLUSH_MS.
 *
 * With download credits (`download.flow_control=1`, worker/credit-queue.ts) the limit is bytes, not
 * messages: flushed bytes go to the connection's ConnectionFlow, which sends only what the credit
 * allows; write() returns false while too much waits for credit, and drained() waits for it.
 */
import { encodeClose, encodeControl, encodeReply, encodeReplyParts } from '../protocol/index.js';
import type { ReplyChannel } from '../http/reply-channel.js';
import type { ReplySocket } from '../transport/reply-socket.js';
import { FLOW_HIGH_WATER, type ConnectionFlow } from './credit-queue.js';

const IMMEDIATE_MESSAGES = 4;
const FIRST_BATCH_BYTES = 64 * 1024;
const MAX_BATCH_BYTES = 256 * 1024 * 1024;
const IDLE_FLUSH_MS = 25;
/** Give up looking for the end of a head after this much (the access log then counts no body). */
const MAX_HEAD_PROBE = 64 * 1024;
/** With credits: flush once this much is pending (the flow cuts messages to the credit anyway). */
const FLOW_BATCH_BYTES = 64 * 1024;
/** Producers are asked to wait while this much is queued for ZeroMQ on the reply socket. */
const SOCKET_HIGH_WATER = 8 * 1024 * 1024;

export interface ReplyHooks {
  /** The first bytes of the response were handed to mongrel2. */
  onStart(reply: ConnectionReply): void;
  /**
   * The response passed UNPACED_WARN_BYTES without download credits: nothing tells us how much
   * its client has read, so mongrel2 (and, briefly, this process) hold the rest in memory.
   */
  onUnpaced?(reply: ConnectionReply): void;
  /**
   * The response would pass `uncreditedLimit` bytes without download credits: what was written
   * before was sent, the connection closed, nothing more goes out. The app should stop producing.
   */
  onCut?(reply: ConnectionReply): void;
  /** --uncredited-limit in bytes: cut a response without download credits beyond it. 0 = never. */
  readonly uncreditedLimit?: number;
}

/** See ReplyHooks.onUnpaced. */
export const UNPACED_WARN_BYTES = 64 * 1024 * 1024;

export class ConnectionReply implements ReplyChannel {
  /** Status code read from the first bytes written (for the access log), 0 if none. */
  status = 0;
  /** Response bytes written (head and body). */
  bytes = 0;
  /** Length of the head (status line to the blank line) once it has been written; -1 before. */
  private headLength = -1;
  /** The first writes, kept while the head's end has not been seen (heads are rarely split). */
  private headProbe: Buffer | undefined;
  closed = false;
  ended = false;
  /** performance.now() of the last message sent for this response (keep-alive pings count). */
  lastActivity = performance.now();
  private chunks: Buffer[] = [];
  private pending = 0;
  private messages = 0;
  private flushScheduled = false;
  /** performance.now() of the last message flushed. */
  private lastFlush = 0;

  constructor(
    private readonly socket: ReplySocket,
    /** Index of the mongrel2 server the request came from. */
    readonly server: number,
    readonly sender: string,
    readonly connId: number,
    readonly method: string,
    readonly httpVersion: string,
    readonly keepAlive: boolean,
    private readonly hooks: ReplyHooks,
    /** The connection's download-credit state, when mongrel2 does flow control on it. */
    private readonly flow?: ConnectionFlow,
  ) {}

  write(chunk: Uint8Array | string): boolean {
    if (this.closed || this.ended) return true;
    const buffer = toBuffer(chunk);
    if (buffer.length === 0) return true;
    if (this.bytes === 0 && this.status === 0) this.status = readStatus(buffer);
    if (this.headLength < 0) this.findHeadEnd(buffer);
    if (this.flow === undefined) {
      const limit = this.hooks.uncreditedLimit ?? 0;
      if (limit > 0 && this.bytes + buffer.length > limit) {
        this.cut();
        return true;
      }
      if (this.bytes < UNPACED_WARN_BYTES && this.bytes + buffer.length >= UNPACED_WARN_BYTES) this.hooks.onUnpaced?.(this);
    }
    this.bytes += buffer.length;
    this.chunks.push(buffer);
    this.pending += buffer.length;
    if (this.pending >= this.batchLimit()) this.flush();
    else this.scheduleFlush();
    if (this.flow !== undefined && this.flow.queued + this.pending >= FLOW_HIGH_WATER) return false;
    return this.socket.pendingBytes < SOCKET_HIGH_WATER;
  }

  /** Body bytes sent, after the head (the access log's %b; chunked framing included, as on the wire). */
  get bodyBytes(): number {
    return this.headLength < 0 ? 0 : this.bytes - this.headLength;
  }

  private findHeadEnd(buffer: Buffer): void {
    const probe = this.headProbe === undefined ? buffer : Buffer.concat([this.headProbe, buffer]);
    const end = probe.indexOf('\r\n\r\n');
    if (end >= 0) {
      this.headLength = end + 4;
      this.headProbe = undefined;
    } else {
      this.headProbe = probe.length <= MAX_HEAD_PROBE ? probe : undefined;
      if (this.headProbe === undefined) this.headLength = this.bytes + buffer.length; // not HTTP: count nothing as body
    }
  }

  async drained(): Promise<void> {
    if (this.closed) return;
    if (this.flow !== undefined && this.flow.queued + this.pending >= FLOW_HIGH_WATER) {
      this.flush();
      await this.flow.drained();
      if (this.closed) return;
    }
    if (this.socket.pendingBytes >= SOCKET_HIGH_WATER) await this.socket.flushed();
  }

  /** Send mongrel2's keep-alive control message (refreshes the connection's idle timer). */
  ping(): void {
    if (this.closed || this.ended) return;
    this.lastActivity = performance.now();
    this.socket.send(encodeControl(this.sender, this.connId, { keepAlive: true }));
  }

  end(chunk?: Uint8Array | string, close = false): void {
    if (this.ended) return;
    if (chunk !== undefined) this.write(chunk);
    this.ended = true;
    if (!this.closed) {
      this.flush();
      if (close || !this.keepAlive) {
        this.closed = true; // nothing else goes out on this connection (worker/serve.ts drops what follows)
        if (this.flow !== undefined) this.flow.close();
        else this.socket.send(encodeClose(this.sender, this.connId));
      }
    }
  }

  abort(): void {
    if (this.ended) return;
    this.chunks = [];
    this.pending = 0;
    this.ended = true;
    if (!this.closed) {
      this.closed = true;
      if (this.flow !== undefined) this.flow.close();
      else this.socket.send(encodeClose(this.sender, this.connId));
    }
  }

  /**
   * --uncredited-limit reached: send what was written before (the client sees a response cut short,
   * as after a lost connection: a Content-Length not reached or no last chunk), then close.
   */
  private cut(): void {
    this.flush();
    this.ended = true;
    this.closed = true;
    this.socket.send(encodeClose(this.sender, this.connId));
    this.hooks.onCut?.(this);
  }

  /** mongrel2 said the client is gone: drop what is pending and send nothing more. */
  clientGone(): void {
    this.closed = true;
    this.chunks = [];
    this.pending = 0;
  }

  private batchLimit(): number {
    if (this.flow !== undefined) return FLOW_BATCH_BYTES;
    if (this.messages < IMMEDIATE_MESSAGES) return Infinity; // flushed on the next tick instead
    return Math.min(FIRST_BATCH_BYTES * 2 ** (this.messages - IMMEDIATE_MESSAGES), MAX_BATCH_BYTES);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const delay = flushDelay(this.messages, this.flow !== undefined, performance.now() - this.lastFlush);
    if (delay <= 0) setImmediate(this.flushLater);
    else setTimeout(this.flushLater, delay);
  }

  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    if (!this.ended) this.flush();
  };

  private flush(): void {
    if (this.pending === 0 || this.closed) return;
    const chunks = this.chunks;
    const length = this.pending;
    this.chunks = [];
    this.pending = 0;
    if (this.messages++ === 0) this.hooks.onStart(this);
    this.lastActivity = this.lastFlush = performance.now();
    if (this.flow !== undefined) this.flow.send(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    // Many writes are copied once, straight into the frame (joining them first doubled the garbage).
    else if (chunks.length === 1) this.socket.send(encodeReply(this.sender, this.connId, chunks[0]!));
    else this.socket.send(encodeReplyParts(this.sender, this.connId, chunks, length));
  }
}

/**
 * How long pending bytes wait before they are flushed (0: on the next tick), given the messages
 * sent so far, whether mongrel2 paces the connection with credits, and the time since the last
 * message. The first messages, and every one on a credited connection, leave on the next tick;
 * later ones too once IDLE_FLUSH_MS passed since the previous message (a stream that paused), else
 * when it will have (without credits, mongrel2 drops a client with more than 16 messages queued).
 */
export function flushDelay(messages: number, credited: boolean, sinceLastFlushMs: number): number {
  if (messages < IMMEDIATE_MESSAGES || credited) return 0;
  return Math.max(0, IDLE_FLUSH_MS - sinceLastFlushMs);
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'latin1');
  if (Buffer.isBuffer(chunk)) return chunk;
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** "HTTP/1.1 200 ..." → 200, without decoding the buffer. */
function readStatus(buffer: Buffer): number {
  if (buffer.length < 12 || buffer[0] !== 0x48 /* H */) return 0;
  const a = buffer[9]! - 48, b = buffer[10]! - 48, c = buffer[11]! - 48;
  if (a < 0 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return 0;
  return a * 100 + b * 10 + c;
}
