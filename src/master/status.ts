/**
 * The status file's schema (`pid/status.json`, docs/INTERNALS.md "Status file") and its builder:
 * supervision numbers from the pool, request numbers from the dispatch table (which owns a
 * worker's credit and in-flight count). The file I/O is app-folder/status-file.ts.
 */
import type { DispatchTable } from '../dispatch/table.js';
import { VERSION } from '../version.js';
import type { PoolPhase, WorkerPool, WorkerState } from './pool.js';

export interface MasterStatusFile {
  version: 1;
  wsgid: string;
  updatedAt: string;
  master: { pid: number; startedAt: string; uptime: number; state: PoolPhase };
  workersWanted: number;
  workers: Array<{
    id: number;
    pid: number;
    state: WorkerState;
    retiring: boolean;
    startedAt: string;
    uptime: number;
    served: number;
    inFlight: number;
    credit: number;
    maxRequests: number;
  }>;
  requests: {
    served: number;
    inFlight: number;
    queued: number;
    received: number;
    answered502: number;
    answered503: number;
    answered504: number;
    closed: number;
    malformed: number;
  };
  restarts: number;
  recycled: number;
  reloads: number;
  bootFailures: number;
}

export interface StatusSources {
  pool: WorkerPool;
  table: DispatchTable;
  masterPid: number;
  /** When the master started (ms). */
  startedAt: number;
  now: number;
}

const seconds = (ms: number): number => Math.round(ms / 1000);

export function buildStatus({ pool, table, masterPid, startedAt, now }: StatusSources): MasterStatusFile {
  const c = table.counters;
  const workers: MasterStatusFile['workers'] = [];
  for (const w of pool.workers.values()) {
    const slot = table.workers.get(w.id);
    workers.push({
      id: w.id,
      pid: w.pid,
      state: w.state,
      retiring: w.retiring,
      startedAt: new Date(w.spawnedAt).toISOString(),
      uptime: seconds(now - w.spawnedAt),
      served: w.served,
      inFlight: slot?.inFlight ?? 0,
      credit: slot?.credit ?? 0,
      maxRequests: w.maxRequests,
    });
  }
  return {
    version: 1,
    wsgid: VERSION,
    updatedAt: new Date(now).toISOString(),
    master: { pid: masterPid, startedAt: new Date(startedAt).toISOString(), uptime: seconds(now - startedAt), state: pool.phase },
    workersWanted: pool.wanted,
    workers,
    requests: {
      served: pool.served,
      inFlight: table.inFlight,
      queued: table.queued,
      received: c.received,
      answered502: c.answered502,
      answered503: c.answered503,
      answered504: c.answered504,
      closed: c.closed,
      malformed: c.malformed,
    },
    restarts: pool.counters.restarts,
    recycled: pool.counters.recycled,
    reloads: pool.counters.reloads,
    bootFailures: pool.counters.bootFailures,
  };
}
