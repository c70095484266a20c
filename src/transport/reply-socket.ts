/**
 * One PUB connection to a mongrel2 server's recv_spec, with the two things the raw socket lacks:
 *
 * - **A send queue.** zeromq.js allows one send() in flight per socket; replies from many
 *   concurrent requests are queued here in order, so one connection's writes stay ordered.
 * - **No lost first replies.** A PUB socket silently drops what it sends before the subscriber's
 *   subscription has arrived (ZeroMQ's "slow joiner"). We use an XPUB, which reports subscriptions,
 *   and hold replies until mongrel2 has subscribed. `noDrop` makes a full pipe push back instead of
 *   dropping, so a slow mongrel2 slows us down rather than losing responses.
 * - **Fewer sends under load.** Replies that queue up while a send is in progress leave together as
 *   one multipart message: mongrel2 treats every part as a reply of its own (verified with
 *   mongrel2 1.12.2; test/integration/harness.test.ts keeps checking it), and one zeromq.js send
 *   costs about as much as the rest of a hello-world request.
 */
import { XPublisher } from 'zeromq';
import type { EndpointMonitor } from './endpoint-monitor.js';

const MAX_BATCH_PARTS = 64;
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
const MAX_FULL_PIPE_PAUSE_MS = 50;

export class ReplySocket {
  readonly endpoint: string;
  private readonly socket: XPublisher;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private sending = false;
  private subscribed = false;
  private closed = false;
  private waiters: Array<() => void> = [];
  /** Frames accepted in total, and of those handed to ZeroMQ: positions for whenHandedOver(). */
  private accepted = 0;
  private handed = 0;
  private handoverWaiters: Array<{ at: number; fn: () => void }> = [];

  /** With `monitor`, its connection state is tracked as `--send` endpoint `server` (status, warnings). */
  private readonly monitor: { monitor: EndpointMonitor; server: number } | undefined;

  constructor(endpoint: string, monitor?: { monitor: EndpointMonitor; server: number }) {
    this.endpoint = endpoint;
    this.monitor = monitor;
    this.socket = new XPublisher({ noDrop: true, sendHighWaterMark: 10_000, linger: 2000 });
    monitor?.monitor.watch(this.socket, 'send', monitor.server);
    this.socket.connect(endpoint);
    void this.watchSubscriptions();
  }

  /** Bytes accepted but not yet handed to ZeroMQ: the back-pressure signal for producers. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  /** True once mongrel2 has subscribed (replies can be delivered). */
  get ready(): boolean {
    return this.subscribed;
  }

  /** Queue one reply frame. Never throws; order is preserved. */
  send(frame: Buffer): void {
    if (this.closed) return;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    this.accepted++;
    if (!this.sending && this.subscribed) void this.pump();
  }

  /**
   * Run `fn` once every frame accepted so far has been handed to ZeroMQ (at once when it has).
   * The worker reports a request done only then: what its master counts as sent is no longer in
   * this process's own queue. Cheaper than flushed(): no promise, and later frames do not delay it.
   */
  whenHandedOver(fn: () => void): void {
    if (this.handed >= this.accepted || this.closed) fn();
    else this.handoverWaiters.push({ at: this.accepted, fn });
  }

  /** Resolves when everything queued so far has been handed to ZeroMQ. */
  flushed(): Promise<void> {
    if (this.queue.length === 0 && !this.sending) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Give queued replies a bounded chance to leave before the socket goes (linger covers the rest).
    if (this.subscribed) await Promise.race([this.flushed(), new Promise((r) => setTimeout(r, 2000))]);
    this.closed = true;
    this.socket.close();
    this.handedOver(this.accepted); // nothing more will leave: release every waiter
    this.wake();
  }

  private async pump(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const batch = this.takeBatch();
        await this.sendWhole(batch.length === 1 ? batch[0]! : batch);
        this.handedOver(batch.length);
      }
    } catch (error) {
      // Only a closed socket makes sendWhole() fail; nothing useful can be done with the rest.
      if (!this.closed) process.emitWarning(`wsgid: reply socket ${this.endpoint}: ${String(error)}`);
      this.handedOver(this.accepted); // nothing more will leave: release every waiter
      this.queue = [];
      this.queuedBytes = 0;
    } finally {
      this.sending = false;
      this.wake();
    }
  }

  /**
   * Send one message, waiting while the pipe to mongrel2 is full. With `noDrop` a full pipe makes
   * libzmq answer EAGAIN, and zeromq.js, which sees an XPUB as always writable, rejects the send
   * instead of waiting: retried here after a growing pause (1 ms up to 50 ms), so a slow mongrel2
   * slows us down and loses nothing.
   */
  private async sendWhole(message: Buffer | Buffer[]): Promise<void> {
    for (let pause = 1; ; pause = Math.min(pause * 2, MAX_FULL_PIPE_PAUSE_MS)) {
      try {
        await this.socket.send(message);
        return;
      } catch (error) {
        if (this.closed || (error as { code?: unknown }).code !== 'EAGAIN') throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  /** The next replies to send as one message: up to MAX_BATCH_PARTS of them and MAX_BATCH_BYTES. */
  private takeBatch(): Buffer[] {
    const queue = this.queue;
    let count = 0;
    let bytes = 0;
    while (count < queue.length && count < MAX_BATCH_PARTS && (count === 0 || bytes + queue[count]!.length <= MAX_BATCH_BYTES)) {
      bytes += queue[count]!.length;
      count++;
    }
    this.queuedBytes -= bytes;
    if (count === queue.length) {
      this.queue = [];
      return queue;
    }
    return queue.splice(0, count);
  }

  private handedOver(n: number): void {
    this.handed = Math.min(this.accepted, this.handed + n);
    if (this.handoverWaiters.length === 0) return;
    let i = 0;
    while (i < this.handoverWaiters.length && this.handoverWaiters[i]!.at <= this.handed) i++;
    if (i === 0) return;
    const due = this.handoverWaiters.splice(0, i);
    for (const w of due) w.fn();
  }

  private wake(): void {
    if (this.queue.length > 0 && !this.closed) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private async watchSubscriptions(): Promise<void> {
    try {
      for await (const [message] of this.socket) {
        // 0x01 = subscribe, 0x00 = unsubscribe; mongrel2 subscribes once per connection.
        if (message && message[0] === 1) this.monitor?.monitor.subscription(this.monitor.server);
        if (message && message[0] === 1 && !this.subscribed) {
          this.subscribed = true;
          if (this.queue.length > 0 && !this.sending) void this.pump();
        }
      }
    } catch {
      // The socket was closed.
    }
  }
}

/** Reply sockets for every configured mongrel2 server, indexed like Settings.send. */
export function openReplySockets(endpoints: readonly string[], monitor?: EndpointMonitor): ReplySocket[] {
  return endpoints.map((endpoint, server) => new ReplySocket(endpoint, monitor && { monitor, server }));
}
