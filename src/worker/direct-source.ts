/**
 * RequestSource that PULLs straight from mongrel2 (single-process mode, `--workers=0`): no
 * dispatch hop, but also none of the master's guarantees (docs/INTERNALS.md, "Master ↔ worker").
 */
import { Pull } from 'zeromq';
import type { EndpointMonitor } from '../transport/endpoint-monitor.js';
import type { DeliverFn, RequestSource } from './source.js';

export class DirectSource implements RequestSource {
  private readonly sockets: Pull[];
  private paused = false;

  constructor(endpoints: readonly string[], monitor?: EndpointMonitor) {
    this.sockets = endpoints.map((endpoint, server) => {
      const socket = new Pull({ linger: 0 });
      monitor?.watch(socket, 'recv', server);
      socket.connect(endpoint);
      return socket;
    });
  }

  start(deliver: DeliverFn): void {
    this.sockets.forEach((socket, server) => void this.receive(socket, server, deliver));
  }

  private async receive(socket: Pull, server: number, deliver: DeliverFn): Promise<void> {
    try {
      // receive() directly: the async iterator wraps every message in one more promise.
      while (!this.paused) {
        const [frame] = await socket.receive();
        if (frame) deliver(frame, server);
      }
    } catch {
      // Closed while waiting for a message.
    }
  }

  started(): void {}
  finished(): void {}
  handled(): void {}
  dropped(): void {}

  async pause(): Promise<void> {
    // Disconnecting tells mongrel2's PUSH to stop sending us messages. What it already queued to
    // this socket is lost when we close: the reason the master exists (docs/MONGREL2.md §1).
    this.paused = true;
    for (const socket of this.sockets) if (!socket.closed) socket.close();
  }

  async close(): Promise<void> {
    await this.pause();
  }
}
