/**
 * mongrel2's keep-alive pings: while a response is open and nothing was sent for `keepAliveMs`,
 * send mongrel2's keep-alive control message so its idle killer spares long polls and quiet event
 * streams (the period is --ping-ms). The rules (`pingPeriod`, `needsPing`) are pure, with the clock
 * passed in; `startKeepAlivePings` runs them on a timer.
 */

/** How often to look for quiet responses: half the keep-alive, between 10 ms and 5 s. */
export function pingPeriod(keepAliveMs: number): number {
  return Math.max(10, Math.min(keepAliveMs / 2, 5000));
}

/** What the pinger needs to know of a response (worker/reply.ts ConnectionReply). */
export interface PingableReply {
  readonly ended: boolean;
  readonly closed: boolean;
  /** performance.now() of the last message sent. */
  readonly lastActivity: number;
  ping(): void;
}

export function needsPing(reply: PingableReply, now: number, keepAliveMs: number): boolean {
  return !reply.ended && !reply.closed && now - reply.lastActivity >= keepAliveMs;
}

/** Pings the quiet ones of `openReplies()` every pingPeriod; returns the stop function (undefined: disabled). */
export function startKeepAlivePings(
  keepAliveMs: number,
  openReplies: () => Iterable<PingableReply>,
): (() => void) | undefined {
  if (!(keepAliveMs > 0)) return undefined;
  const timer = setInterval(() => {
    const now = performance.now();
    for (const reply of openReplies()) if (needsPing(reply, now, keepAliveMs)) reply.ping();
  }, pingPeriod(keepAliveMs));
  timer.unref();
  return () => clearInterval(timer);
}
