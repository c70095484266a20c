/**
 * Download credits per connection (mongrel2 `download.flow_control=1`): which ConnectionFlow
 * (worker/credit-queue.ts) a connection has, from its first request's `DOWNLOAD_CREDITS` until its
 * disconnect. `initialCredits` is the pure rule, unit-tested.
 */
import type { Mongrel2Message } from '../protocol/index.js';
import type { ReplySocket } from '../transport/reply-socket.js';
import { ConnectionFlow } from './credit-queue.js';

/** The initial credit a request announces, or undefined when it announces none (or nonsense). */
export function initialCredits(header: string | string[] | undefined): number | undefined {
  if (header === undefined || Array.isArray(header)) return undefined;
  const credits = Number(header);
  return Number.isSafeInteger(credits) && credits > 0 ? credits : undefined;
}

/** Bytes a credits message grants (NaN for nonsense: ConnectionFlow.grant ignores it). */
export function grantedCredits(header: string | string[] | undefined): number {
  return Number(Array.isArray(header) ? undefined : header);
}

export class DownloadCredits {
  private readonly flows = new Map<number, ConnectionFlow>();

  constructor(private readonly sockets: readonly ReplySocket[]) {}

  get(key: number): ConnectionFlow | undefined {
    return this.flows.get(key);
  }

  /** The first request on a connection carries the initial download credit when flow control is on. */
  noteRequest(key: number, message: Mongrel2Message, server: number): void {
    if (this.flows.has(key)) return;
    const credits = initialCredits(message.headers['DOWNLOAD_CREDITS']);
    if (credits === undefined) return;
    this.flows.set(key, new ConnectionFlow(this.sockets[server]!, message.sender, message.connId, credits));
  }

  /** A credits message: mongrel2 wrote that many bytes to the client. */
  grant(key: number, message: Mongrel2Message): void {
    this.flows.get(key)?.grant(grantedCredits(message.headers['DOWNLOAD_CREDITS']));
  }

  /** The client is gone: drop what waits for credit, wake writers, forget the connection. */
  disconnected(key: number): void {
    const flow = this.flows.get(key);
    if (flow === undefined) return;
    flow.gone();
    this.flows.delete(key);
  }
}
