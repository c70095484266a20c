/** One request being served: the GatewayRequest handed to the gateway. */
import type { Mongrel2Message } from '../protocol/index.js';
import type { BroadcastOptions, Broadcaster } from '../broadcast.js';
import type { GatewayRequest } from '../gateways/types.js';
import type { ConnectionReply } from './reply.js';

export class ActiveRequest implements GatewayRequest {
  readonly startedAt = performance.now();
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private abortListeners: Array<() => void> | undefined;

  constructor(
    readonly message: Mongrel2Message,
    readonly bodyFile: string | undefined,
    readonly reply: ConnectionReply,
    readonly server: number,
    private readonly broadcaster: Broadcaster,
  ) {}

  broadcast(connIds: readonly number[], data: Uint8Array | string, options?: BroadcastOptions): number {
    return this.broadcaster.broadcast(connIds, data, { server: this.server, ...options });
  }

  /** Created on first use: most apps never look at it (Hono's lazy AbortController). */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.abortReason !== undefined && !this.controller.signal.aborted) this.controller.abort(this.abortReason);
    return this.controller.signal;
  }

  onAbort(listener: () => void): boolean {
    if (this.abortReason !== undefined) return false;
    (this.abortListeners ??= []).push(listener);
    return true;
  }

  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.reply.clientGone();
    this.controller?.abort(reason);
    const listeners = this.abortListeners;
    this.abortListeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }
}
