/**
 * The status file's schema (`pid/status.json`, docs/INTERNALS.md "Status file") and its builder:
 * supervision numbers from the pool, request numbers from the dispatch table (which owns a
 * worker's credit and in-flight count). The file I/O is app-folder/status-file.ts.
 */
import type { DispatchTable } from '../dispatch/table.js';
import type { ProcSample } from '../metrics/proc-stat.js';
import type { EndpointStatus } from '../transport/endpoint-monitor.js';
import { VERSION } from '../version.js';
import type { PoolPhase, ReloadRecord, WorkerPool, WorkerState } from './pool.js';
import type { WorkerReports } from './reports.js';

/** Memory and CPU of one process, as published (bytes, percent of one core, seconds). */
export interface ProcessUsage {
  pid: number;
  rss: number;
  /** Since the previous tick; absent on a process's first sample. */
  cpu?: number;
  cpuSeconds: number;
}

export interface MasterStatusFile {
  version: 1;
  wsgid: string;
  updatedAt: string;
  master: {
    pid: number;
    startedAt: string;
    uptime: number;
    state: PoolPhase;
    /** `single`: --workers=0, serving in this process; absent: a master and forked workers. */
    mode?: 'single';
    rss?: number;
    cpu?: number;
    cpuSeconds?: number;
  };
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
    /** The gateway serving its app (from its heartbeats). */
    gateway?: string;
    /** The worker's own memory and CPU, sampled by the master from /proc (its children apart). */
    rss?: number;
    cpu?: number;
    cpuSeconds?: number;
    /** Its child processes (a WSGI worker's Python). */
    children?: ProcessUsage[];
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
  /** Client connections the master keeps a route for (each sticks to its worker until it ends); absent in single-process mode. */
  connections?: number;
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
  /** What keeps the master from working (e.g. out of file descriptors), as sentences; absent when nothing. */
  problems?: string[];
  /** The latest worker that died unexpectedly (absent when none has): why a crash loop or boot failures happen. */
  lastDeath?: {
    worker: number;
    pid: number;
    at: string;
    exit: string;
    booting: boolean;
    reason?: string;
    /** The last line it wrote to stderr (app.log; absent without capture, e.g. --no-daemon). */
    lastStderr?: string;
  };
  /** The latest HUP (absent before the first): `wsgid restart` waits for its outcome. */
  reload?: Omit<ReloadRecord, 'requestedAt' | 'finishedAt'> & { requestedAt: string; finishedAt?: string };
  /** The mongrel2 endpoints and their connection state (transport/endpoints.ts). */
  endpoints?: EndpointStatus[];
  /** The Prometheus endpoint, when --metrics is on. */
  metrics?: string;
}

export interface StatusSources {
  pool: WorkerPool;
  table: DispatchTable;
  masterPid: number;
  /** When the master started (ms). */
  startedAt: number;
  now: number;
  /** Observed extras (all optional: the status is complete without them). */
  reports?: WorkerReports;
  masterUsage?: ProcSample;
  endpoints?: EndpointStatus[];
  metricsUrl?: string;
  /** The last stderr line a worker (by id) wrote, when its output is captured. */
  lastStderr?: (worker: number) => string | undefined;
}

function usageOf(sample: ProcSample): ProcessUsage {
  const u: ProcessUsage = { pid: sample.pid, rss: sample.rss, cpuSeconds: round2(sample.cpuSeconds) };
  if (sample.cpu !== undefined) u.cpu = sample.cpu;
  return u;
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

/** The usage fields of a status entry (master or worker). */
function usageFields(sample: ProcSample | undefined): { rss?: number; cpu?: number; cpuSeconds?: number } {
  if (sample === undefined) return {};
  const { rss, cpu, cpuSeconds } = usageOf(sample);
  return cpu === undefined ? { rss, cpuSeconds } : { rss, cpu, cpuSeconds };
}

const seconds = (ms: number): number => Math.round(ms / 1000);

export function buildStatus({ pool, table, masterPid, startedAt, now, reports, masterUsage, endpoints, metricsUrl, lastStderr }: StatusSources): MasterStatusFile {
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
    const entry = workers[workers.length - 1]!;
    const gateway = reports?.gatewayOf(w.id);
    if (gateway !== undefined) entry.gateway = gateway;
    const usage = reports?.usage.get(w.id);
    if (usage !== undefined) {
      Object.assign(entry, usageFields(usage.self));
      if (usage.children.length > 0) entry.children = usage.children.map(usageOf);
    }
  }
  const crash = pool.crashLoop;
  const reload = pool.reload;
  const death = pool.lastDeath;
  const deathStderr = death && lastStderr?.(death.worker);
  const status: MasterStatusFile = {
    version: 1,
    wsgid: VERSION,
    updatedAt: new Date(now).toISOString(),
    master: {
      pid: masterPid,
      startedAt: new Date(startedAt).toISOString(),
      uptime: seconds(now - startedAt),
      state: pool.phase,
      ...usageFields(masterUsage),
    },
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
    connections: table.conns.size,
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
    ...(death && {
      lastDeath: { ...death, at: new Date(death.at).toISOString(), ...(deathStderr ? { lastStderr: deathStderr } : {}) },
    }),
    ...(reload && {
      reload: {
        ...reload,
        requestedAt: new Date(reload.requestedAt).toISOString(),
        finishedAt: reload.finishedAt === undefined ? undefined : new Date(reload.finishedAt).toISOString(),
      },
    }),
  };
  if (endpoints !== undefined) status.endpoints = endpoints;
  if (metricsUrl !== undefined) status.metrics = metricsUrl;
  return status;
}

export interface StandaloneSources {
  pid: number;
  startedAt: number;
  now: number;
  state: PoolPhase;
  served: number;
  inFlight: number;
  usage?: ProcSample;
  endpoints?: EndpointStatus[];
  metricsUrl?: string;
}

/** The same file for --workers=0: one process that is master and worker; no supervision numbers. */
export function buildStandaloneStatus(s: StandaloneSources): MasterStatusFile {
  const status: MasterStatusFile = {
    version: 1,
    wsgid: VERSION,
    updatedAt: new Date(s.now).toISOString(),
    master: {
      pid: s.pid,
      startedAt: new Date(s.startedAt).toISOString(),
      uptime: seconds(s.now - s.startedAt),
      state: s.state,
      mode: 'single',
      ...usageFields(s.usage),
    },
    workersWanted: 0,
    workers: [],
    requests: {
      served: s.served,
      inFlight: s.inFlight,
      queued: 0,
      received: 0,
      answered502: 0,
      answered503: 0,
      answered504: 0,
      closed: 0,
      malformed: 0,
    },
    restarts: 0,
    recycled: 0,
    reloads: 0,
    bootFailures: 0,
    memoryRecycled: 0,
  };
  if (s.endpoints !== undefined) status.endpoints = s.endpoints;
  if (s.metricsUrl !== undefined) status.metrics = s.metricsUrl;
  return status;
}
