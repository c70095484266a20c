/**
 * Per-connection order: requests on one connection are served one at a time in arrival order, so
 * pipelined requests get their responses in order (mongrel2 dispatches a pipelining client's
 * requests before we answer). This is the bookkeeping only, no I/O: which request is active on a
 * connection, which wait behind it, what a disconnect or a shutdown drops. Unit-tested.
 */
import type { Mongrel2Message } from '../protocol/index.js';

/** A connection is keyed by mongrel2 server index and connection id, as one number. */
export const connectionKey = (server: number, connId: number): number => server * 0x1_0000_0000 + connId;

/** A message waiting its turn on a connection; `bodyError` = an upload the worker cannot read (→ 500). */
export interface QueuedMessage {
  readonly message: Mongrel2Message;
  readonly bodyFile: string | undefined;
  readonly bodyError?: string | undefined;
}

interface Connection<Active> {
  active: Active | undefined;
  queue: QueuedMessage[];
}

/** `Active` is whatever the worker keeps for the request being served (worker/active-request.ts). */
export class ConnectionQueues<Active> {
  private readonly connections = new Map<number, Connection<Active>>();

  /**
   * A message arrived for this connection. true: nothing is being served on it, serve it now (call
   * `begin` before running it); false: it waits behind the active request.
   */
  admit(key: number, queued: QueuedMessage): boolean {
    const connection = this.connections.get(key);
    if (connection === undefined) {
      this.connections.set(key, { active: undefined, queue: [] });
      return true;
    }
    if (connection.active === undefined) return true;
    connection.queue.push(queued);
    return false;
  }

  /** The request now being served on this connection (admitted, or returned by `next`). */
  begin(key: number, active: Active): void {
    const connection = this.connections.get(key);
    if (connection === undefined) this.connections.set(key, { active, queue: [] });
    else connection.active = active;
  }

  /** The active request finished: the message to serve next, or undefined (the connection is idle and forgotten). */
  next(key: number): QueuedMessage | undefined {
    const connection = this.connections.get(key);
    if (connection === undefined) return undefined;
    const next = connection.queue.shift();
    if (next === undefined) {
      connection.active = undefined;
      this.connections.delete(key);
    }
    return next;
  }

  active(key: number): Active | undefined {
    return this.connections.get(key)?.active;
  }

  /** Every request being served, one per connection. */
  *actives(): IterableIterator<Active> {
    for (const connection of this.connections.values()) {
      if (connection.active !== undefined) yield connection.active;
    }
  }

  /** The client is gone: the messages waiting on its connection will never be served (returned). */
  dropQueued(key: number): QueuedMessage[] {
    const connection = this.connections.get(key);
    if (connection === undefined) return [];
    const dropped = connection.queue;
    connection.queue = [];
    return dropped;
  }

  /** The worker is stopping: every waiting message, on every connection, is dropped (returned). */
  dropAllQueued(): QueuedMessage[] {
    const dropped: QueuedMessage[] = [];
    for (const connection of this.connections.values()) {
      dropped.push(...connection.queue);
      connection.queue = [];
    }
    return dropped;
  }
}
