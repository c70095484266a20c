/**
 * How many delivered messages are not fully handled yet, and waiting for that to reach zero (a
 * drain). Every delivered message counts, whatever its kind: each holds one of the master's credits.
 */
export class InFlightCount {
  private count = 0;
  private idle: { promise: Promise<void>; resolve: () => void } | undefined;

  get value(): number {
    return this.count;
  }

  delivered(): void {
    this.count++;
  }

  done(): void {
    this.count--;
    if (this.idle !== undefined && this.count === 0) this.idle.resolve();
  }

  /** Resolves once nothing is in flight (at once when nothing is). */
  whenIdle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    if (this.idle === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.idle = { promise, resolve };
    }
    return this.idle.promise;
  }
}
