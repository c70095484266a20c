/**
 * The PULL side of the mongrel2 transport: one connection to a mongrel2 server's send_spec, where
 * its PUSH socket deals out requests (and every other message about a connection: upload starts
 * and ends, disconnects, credits, WebSocket frames). The PUB side is ./reply-socket.ts. Used by the
 * master's dispatcher (dispatch/dispatcher.ts) and by the single-process source
 * (worker/direct-source.ts), so both receive with the same options and the same loop.
 *
 * Options, chosen here once:
 * - `linger: 0`: a PULL socket never sends, so there is nothing to wait for at close.
 * - The receive high-water mark depends on what a message waiting in the pipe risks. mongrel2's
 *   PUSH round-robins blindly and whatever sits in a closed socket's pipe is lost
 *   (docs/MONGREL2.md §1). The master (`queue: 'drain'`) never closes its PULL with messages
 *   in it unread (it disconnects, then drains until quiet: Dispatcher.stopReceiving) and bounds
 *   what waits for a worker itself (--max-queued, then 503): it takes everything at once (0 = no
 *   limit), so mongrel2's pipe to it never fills and a slow worker never blocks the PUSH. A
 *   single-process server (`queue: 'bounded'`) loses what is queued to it when it stops, so it
 *   keeps libzmq's default bound (1000) and lets the PUSH hold the rest.
 */
import { Pull } from 'zeromq';
import type { EndpointMonitor } from './endpoint-monitor.js';

export type RequestQueue = 'drain' | 'bounded';

/** One delivered frame, with the index of the server it came from. */
export type ReceiveFn = (frame: Buffer, server: number) => void;

export class RequestSocket {
  readonly endpoint: string;
  /** Index of this server in Settings.recv. */
  readonly server: number;
  private readonly socket: Pull;
  private stopped = false;

  constructor(endpoint: string, server: number, queue: RequestQueue, monitor?: EndpointMonitor) {
    this.endpoint = endpoint;
    this.server = server;
    this.socket = new Pull(queue === 'drain' ? { receiveHighWaterMark: 0, linger: 0 } : { linger: 0 });
    monitor?.watch(this.socket, 'recv', server);
    this.socket.connect(endpoint);
  }

  get closed(): boolean {
    return this.socket.closed;
  }

  /**
   * Deliver every frame to `fn` until the socket closes (or stop() is called); resolves then.
   * `onError` hears a failure other than the close.
   */
  async run(fn: ReceiveFn, onError?: (error: unknown) => void): Promise<void> {
    const socket = this.socket;
    const server = this.server;
    try {
      // receive() directly: the async iterator wraps every message in one more promise. It
      // resolves at once while messages are waiting, so a burst is delivered within one turn.
      while (!this.stopped) {
        const [frame] = await socket.receive();
        if (frame !== undefined) fn(frame, server);
      }
    } catch (error) {
      if (!this.stopped && !socket.closed) onError?.(error);
    }
  }

  /** Tell mongrel2 to stop pushing to us; what already reached this side is still delivered. */
  disconnect(): void {
    try {
      this.socket.disconnect(this.endpoint);
    } catch {
      /* already disconnected */
    }
  }

  /** Stop delivering and close: whatever is still in the pipe is lost. */
  close(): void {
    this.stopped = true;
    if (!this.socket.closed) this.socket.close();
  }
}

/** Request sockets for every configured mongrel2 server, indexed like Settings.recv. */
export function openRequestSockets(endpoints: readonly string[], queue: RequestQueue, monitor?: EndpointMonitor): RequestSocket[] {
  return endpoints.map((endpoint, server) => new RequestSocket(endpoint, server, queue, monitor));
}
