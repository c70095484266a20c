/**
 * What the master knows about its workers beyond supervision: their request totals (from
 * heartbeats) and their memory and CPU (sampled from /proc each tick). Kept apart from pool.ts
 * (which decides) and from the dispatch table (which routes): this is only observed.
 *
 * Totals never go down: when a worker is buried its last totals move into `retired`, so a
 * Prometheus counter summed over workers does not reset when one is replaced.
 */
import { addInto, checkCounts, emptyCounts, type RequestCounts } from '../metrics/request-metrics.js';
import type { ProcSample } from '../metrics/proc-stat.js';

export interface WorkerUsage {
  /** The worker process. */
  self?: ProcSample;
  /** Its children (a WSGI worker's Python process). */
  children: ProcSample[];
}

export class WorkerReports {
  /** Last totals per live worker id. */
  private readonly live = new Map<number, { counts: RequestCounts; gateway: string }>();
  /** Totals of buried workers, per gateway. */
  private readonly retired = new Map<string, RequestCounts>();
  readonly usage = new Map<number, WorkerUsage>();

  /** A heartbeat's optional fields (checked: they crossed a process boundary). */
  heartbeat(id: number, metrics: unknown, gateway: unknown): void {
    const counts = checkCounts(metrics);
    if (counts === undefined) return;
    const kind = typeof gateway === 'string' && /^[A-Za-z0-9_.-]{1,40}$/.test(gateway) ? gateway : 'unknown';
    this.live.set(id, { counts, gateway: kind });
  }

  gatewayOf(id: number): string | undefined {
    return this.live.get(id)?.gateway;
  }

  /** The worker is gone: keep its last totals. */
  buried(id: number): void {
    const last = this.live.get(id);
    this.live.delete(id);
    this.usage.delete(id);
    if (last === undefined) return;
    const into = this.retired.get(last.gateway) ?? emptyCounts();
    this.retired.set(last.gateway, addInto(into, last.counts));
  }

  /** Request totals per gateway kind, over live and buried workers. */
  totals(): Map<string, RequestCounts> {
    const out = new Map<string, RequestCounts>();
    const add = (gateway: string, counts: RequestCounts): void => {
      out.set(gateway, addInto(out.get(gateway) ?? emptyCounts(), counts));
    };
    for (const [gateway, counts] of this.retired) add(gateway, counts);
    for (const { gateway, counts } of this.live.values()) add(gateway, counts);
    return out;
  }
}
