/**
 * At most one log line per interval for a message that hostile or broken input can repeat at will
 * (malformed messages, queue overflow): the line carries how many were suppressed since the last.
 * Pure: the clock is passed in.
 */
export class LogRateLimit {
  private last = -Infinity;
  private count = 0;

  constructor(private readonly intervalMs = 1000) {}

  /** One more occurrence at `now`: the number to report (this one included) when a line is due, else undefined. */
  hit(now: number): number | undefined {
    this.count++;
    if (now - this.last < this.intervalMs) return undefined;
    this.last = now;
    const n = this.count;
    this.count = 0;
    return n;
  }
}
