/**
 * The status file's schema (`pid/status.json`, docs/INTERNALS.md "Status file") and its builder:
 * supervision numbers from the pool, request numbers from the dispatch table (which owns a
 * worker's credit and in-flight count). The file I/O is app-folder/status-file.ts.
 */
import type { DispatchTable } from '../dispatch/table.js';
import { VERSION } from '../version.js';
import type { PoolPhase, ReloadOutcome, WorkerPool, WorkerState } from './pool.js';

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
    /** Resident memory of the worker and its Python process (bytes) at its last heartbeat; 0 = not yet known. */
    rss: number;
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
  /** Workers recycled by --max-memory. */
  memoryRecycled: number;
  /** Workers dying soon after becoming ready, in a row (absent when none). */
  crashLoop?: {
    /** True once deaths reached --crash-loop-after: `wsgid status` says Crash-looping. */
    looping: boolean;
    deaths: number;
    since: string;
    lastExit: string;
    /** Seconds until the next spawn (the backoff); 0 when due. */
    nextSpawnIn: number;
  };
  /** The latest HUP (absent before the first): `wsgid restart` waits for its outcome. */
  reload?: {
    generation: number;
    outcome: ReloadOutcome;
    requestedAt: string;
    finishedAt?: string;
    reason?: string;
    exitCode?: number;
    wanted: number;
    ready: number;
    changed: string[];
    needsRestart: string[];
  };
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
      rss: w.rss,
    });
  }
  const crash = pool.crashLoop;
  const reload = pool.reload;
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
    memoryRecycled: pool.counters.memoryRecycled,
    ...(crash && {
      crashLoop: {
        looping: crash.looping,
        deaths: crash.deaths,
        since: new Date(crash.since).toISOString(),
        lastExit: crash.lastExit,
        nextSpawnIn: Math.max(0, Math.ceil((crash.nextSpawnAt - now) / 1000)),
      },
    }),
    ...(reload && {
      reload: {
        ...reload,
        requestedAt: new Date(reload.requestedAt).toISOString(),
        finishedAt: reload.finishedAt === undefined ? undefined : new Date(reload.finishedAt).toISOString(),
      },
    }),
  };
}
