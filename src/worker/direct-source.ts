/**
 * RequestSource that PULLs straight from mongrel2 (single-process mode, `--workers=0`): no
 * dispatch hop, but also none of the master's guarantees (docs/INTERNALS.md, "Master ↔ worker").
 */
import type { EndpointMonitor } from '../transport/endpoint-monitor.js';
import { openRequestSockets, type RequestSocket } from '../transport/request-socket.js';
import type { DeliverFn, RequestSource } from './source.js';

export class DirectSource implements RequestSource {
  private readonly sockets: RequestSocket[];

  constructor(endpoints: readonly string[], monitor?: EndpointMonitor) {
    this.sockets = openRequestSockets(endpoints, 'bounded', monitor);
  }

  start(deliver: DeliverFn): void {
    for (const socket of this.sockets) void socket.run(deliver);
  }

  started(): void {}
  finished(): void {}
  handled(): void {}
  dropped(): void {}

  async pause(): Promise<void> {
    // Closing disconnects, which tells mongrel2's PUSH to stop sending us messages. What it already
    // queued to this socket is lost: the reason the master exists (docs/MONGREL2.md §1).
    for (const socket of this.sockets) if (!socket.closed) socket.close();
  }

  async close(): Promise<void> {
    await this.pause();
  }
}
