/**
 * Requests counted where they are answered (a worker, or the single process with --workers=0):
 * by status class and in a duration histogram. Plain arrays, no labels, no allocation per request:
 * `observe` is a few increments on the hot path. A worker sends its `snapshot()` (totals since it
 * started) in every heartbeat; the master adds up the workers' last snapshots plus those of the
 * workers that are gone (`addInto`), so the totals it publishes never go down.
 */

/** Upper bounds (seconds) of the duration histogram: Prometheus client defaults, plus 30 and 60 s. */
export const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Status classes, in `byClass` order; `other` is anything outside 100–599 (0: no status written). */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** Totals since a process started (what a heartbeat carries; JSON-safe). */
export interface RequestCounts {
  /** Requests per status class, in STATUS_CLASSES order. */
  byClass: number[];
  /** Per histogram bucket (not cumulative), in DURATION_BUCKETS order, then one for +Inf. */
  buckets: number[];
  /** Sum of the durations, in seconds. */
  sum: number;
  /** Requests observed (= the sum of byClass). */
  count: number;
}

export function emptyCounts(): RequestCounts {
  return { byClass: new Array<number>(STATUS_CLASSES.length).fill(0), buckets: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
}

export function classIndex(status: number): number {
  return status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : STATUS_CLASSES.length - 1;
}

export function bucketIndex(seconds: number): number {
  let i = 0;
  while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
  return i;
}

export class RequestMetrics {
  private readonly counts = emptyCounts();

  observe(status: number, durationMs: number): void {
    const c = this.counts;
    const seconds = durationMs / 1000;
    c.byClass[classIndex(status)]!++;
    c.buckets[bucketIndex(seconds)]!++;
    c.sum += seconds;
    c.count++;
  }

  /** A copy of the totals. */
  snapshot(): RequestCounts {
    const c = this.counts;
    return { byClass: c.byClass.slice(), buckets: c.buckets.slice(), sum: c.sum, count: c.count };
  }
}

/** A heartbeat's counts, checked (it crossed a process boundary): undefined when malformed. */
export function checkCounts(value: unknown): RequestCounts | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<RequestCounts>;
  const numbers = (a: unknown, n: number): a is number[] =>
    Array.isArray(a) && a.length === n && a.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0);
  if (!numbers(v.byClass, STATUS_CLASSES.length) || !numbers(v.buckets, DURATION_BUCKETS.length + 1)) return undefined;
  if (typeof v.sum !== 'number' || !Number.isFinite(v.sum) || typeof v.count !== 'number' || !Number.isFinite(v.count)) return undefined;
  return { byClass: v.byClass, buckets: v.buckets, sum: v.sum, count: v.count };
}

/** `into += from`, element by element. */
export function addInto(into: RequestCounts, from: RequestCounts): RequestCounts {
  for (let i = 0; i < into.byClass.length; i++) into.byClass[i]! += from.byClass[i] ?? 0;
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i]! += from.buckets[i] ?? 0;
  into.sum += from.sum;
  into.count += from.count;
  return into;
}
