/**
 * Where a worker's mongrel2 messages come from. Two implementations:
 * - direct-source.ts: PULL sockets connected to mongrel2 itself (single-process mode, --workers=0);
 * - dispatched-source.ts: a unix stream socket connected to the master (see docs/INTERNALS.md).
 * The request loop (worker/serve.ts) sees only this interface.
 */
export type DeliverFn = (frame: Buffer, server: number) => void;

export interface RequestSource {
  /** Begin delivering frames; `server` is the index of the mongrel2 server the frame came from. */
  start(deliver: DeliverFn): void;
  /** The response for one delivered request on this connection has begun (its head is out). */
  started(server: number, connId: number): void;
  /** One delivered request on this connection is fully handled (its response ended, or it was dropped). */
  finished(server: number, connId: number): void;
  /**
   * One delivered message that is not a request (credits, a disconnect, a WebSocket frame, an
   * upload start...) is handled: it neither started nor ended a response.
   */
  handled(server: number, connId: number): void;
  /** A delivered message was dropped as malformed (called before its `finished`). */
  dropped(server: number, connId: number): void;
  /** Stop taking new messages; already delivered ones still finish. */
  pause(): Promise<void>;
  /** Release sockets. */
  close(): Promise<void>;
}
