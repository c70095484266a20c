/**
 * `wsgid status`'s report: the pid files (who is alive) joined with the master's `pid/status.json`
 * (its numbers). The JSON shape is documented in docs/STATUS.md and versioned by `schema`.
 */
import { appFolderPaths, readOnlyFolders } from '../app-folder/layout.js';
import { listPidFiles } from '../app-folder/pidfile.js';
import { provenNotMasterOf } from '../app-folder/identity.js';
import { readStatusFile } from '../app-folder/status-file.js';
import type { EndpointStatus } from '../transport/endpoint-monitor.js';

/** What the master publishes about itself in pid/status.json (master/status.ts MasterStatusFile), as read back. */
export interface MasterStatus {
  updatedAt?: string;
  master?: { pid?: number; startedAt?: string; uptime?: number; state?: string; mode?: string } & Usage;
  workersWanted?: number;
  workers?: Array<
    {
      id?: number;
      pid?: number;
      state?: string;
      retiring?: boolean;
      served?: number;
      inFlight?: number;
      uptime?: number;
      startedAt?: string;
      gateway?: string;
      children?: Array<{ pid: number } & Usage>;
    } & Usage
  >;
  requests?: Record<string, number>;
  restarts?: number;
  recycled?: number;
  reloads?: number;
  bootFailures?: number;
  memoryRecycled?: number;
  crashLoop?: { looping?: boolean; deaths?: number; since?: string; lastExit?: string; nextSpawnIn?: number };
  lastDeath?: { worker?: number; pid?: number; at?: string; exit?: string; booting?: boolean; reason?: string; lastStderr?: string };
  reload?: {
    generation?: number;
    outcome?: string;
    reason?: string;
    exitCode?: number;
    wanted?: number;
    ready?: number;
    changed?: string[];
    needsRestart?: string[];
    overridden?: string[];
    detail?: string;
    hint?: string;
  };
  endpoints?: EndpointReport[];
  metrics?: string;
  problems?: string[];
}

/** Memory (bytes) and CPU (percent of one core since the last tick; seconds in total). */
export interface Usage {
  rss?: number;
  cpu?: number;
  cpuSeconds?: number;
}

/** A mongrel2 endpoint as read back from status.json: transport's EndpointStatus, any role string. */
export type EndpointReport = Omit<EndpointStatus, 'role'> & { role: string };

/** The master's status file, if it has one and it parses. */
export function readMasterStatus(appPath: string): MasterStatus | undefined {
  try {
    const raw: unknown = JSON.parse(readStatusFile(appPath) ?? 'null');
    return raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as MasterStatus) : undefined;
  } catch {
    return undefined;
  }
}

export interface ProcessStatus extends Usage {
  pid: number;
  alive: boolean;
  state?: string;
  startedAt?: string;
  /** Seconds. */
  uptime?: number;
  served?: number;
  inFlight?: number;
  /** Workers: the id the master gave it (a spawn counter), the gateway, whether it is being replaced. */
  id?: number;
  gateway?: string;
  retiring?: boolean;
  /** Workers: child processes (a WSGI worker's Python). */
  children?: Array<{ pid: number } & Usage>;
  /** Master: `workers` or `single` (--workers=0). */
  mode?: string;
}

/** Version of the `wsgid status --json` shape (docs/STATUS.md): bumped only when a field changes meaning or goes. */
export const STATUS_SCHEMA = 1;

/** `wsgid status --json`. Numbers come from the master's status file (absent when it has none). */
export interface StatusReport {
  schema: typeof STATUS_SCHEMA;
  /** 'crash-looping': running, but workers die soon after becoming ready (see `crashLoop`). */
  status: 'running' | 'crash-looping' | 'stopped';
  appPath: string;
  /** Every master pid file (normally one); dead ones have alive=false. */
  master: ProcessStatus[];
  workers: ProcessStatus[];
  /** Master uptime in seconds. */
  uptime?: number;
  workersWanted?: number;
  requests?: { served: number; inFlight: number } & Record<string, number>;
  /** Workers respawned after dying, recycled (max-requests), rolling reloads, boot failures. */
  restarts?: number;
  recycled?: number;
  reloads?: number;
  bootFailures?: number;
  /** Workers recycled by --max-memory. */
  memoryRecycled?: number;
  /** Workers dying soon after becoming ready, in a row (master/status.ts). */
  crashLoop?: MasterStatus['crashLoop'];
  /** The latest worker that died unexpectedly: its exit and why (load error, last stderr line). */
  lastDeath?: MasterStatus['lastDeath'];
  /** The latest HUP and its outcome. */
  reload?: MasterStatus['reload'];
  /** The mongrel2 endpoints and their connection state. */
  endpoints?: EndpointReport[];
  /** The Prometheus endpoint's URL (--metrics). */
  metrics?: string;
  /** When the master last wrote its numbers. */
  updatedAt?: string;
  /** What keeps the master from working or reporting (a read-only folder, numbers not updated). */
  problems?: string[];
}

/** The master rewrites status.json every second: numbers older than this are reported as old. */
export const STALE_STATUS_SECONDS = 5;

/** What is wrong with the folder or the master's reporting (empty: nothing known). */
export function statusProblems(appPath: string, running: boolean, updatedAt: string | undefined, now = Date.now()): string[] {
  const problems: string[] = [];
  const readOnly = readOnlyFolders(appFolderPaths(appPath));
  if (readOnly.length > 0) {
    problems.push(`${readOnly.join(', ')}: read-only file system (EROFS): the master cannot write pid files, status.json or new workers' logs there`);
  }
  const age = updatedAt === undefined ? undefined : (now - Date.parse(updatedAt)) / 1000;
  if (running && age !== undefined && age > STALE_STATUS_SECONDS) {
    problems.push(`pid/status.json was last written ${Math.round(age)} s ago: the numbers shown are old (see logs/wsgid.log)`);
  }
  return problems;
}

function usage(u: Usage | undefined): Usage {
  if (u === undefined) return {};
  const out: Usage = {};
  if (typeof u.rss === 'number') out.rss = u.rss;
  if (typeof u.cpu === 'number') out.cpu = u.cpu;
  if (typeof u.cpuSeconds === 'number') out.cpuSeconds = u.cpuSeconds;
  return out;
}

export function collectStatus(appPath: string): StatusReport {
  const stats = readMasterStatus(appPath);
  const workerStats = new Map((stats?.workers ?? []).map((w) => [w.pid, w]));
  const forged: string[] = [];
  const master: ProcessStatus[] = listPidFiles(appPath, 'master').map(({ pid, alive: live, file }) => {
    // A pid file is the app user's to write: a live pid it names counts only if /proc shows a
    // wsgid master of this folder there (app-folder/identity.ts).
    const notOurs = live ? provenNotMasterOf(pid, appPath) : undefined;
    if (notOurs !== undefined) forged.push(`${file} names pid ${pid}, which is not a wsgid master of this folder: ${notOurs}`);
    const alive = live && notOurs === undefined;
    const own = stats?.master?.pid === pid ? stats.master : undefined;
    const entry: ProcessStatus = { pid, alive, state: own?.state, startedAt: own?.startedAt, uptime: own?.uptime };
    if (own && alive) Object.assign(entry, { mode: own.mode }, usage(own));
    return entry;
  });
  const workers: ProcessStatus[] = listPidFiles(appPath, 'worker').map(({ pid, alive }) => {
    const w = workerStats.get(pid);
    const entry: ProcessStatus = { pid, alive, state: w?.state, startedAt: w?.startedAt, uptime: w?.uptime, served: w?.served, inFlight: w?.inFlight };
    if (w && alive) {
      Object.assign(entry, { id: w.id, gateway: w.gateway, retiring: w.retiring }, usage(w));
      if (Array.isArray(w.children) && w.children.length > 0) entry.children = w.children.map((c) => ({ pid: c.pid, ...usage(c) }));
    }
    return entry;
  });
  const running = master.some((m) => m.alive);
  const report: StatusReport = { schema: STATUS_SCHEMA, status: running ? 'running' : 'stopped', appPath, master, workers };
  if (running && stats && master.some((m) => m.alive && m.pid === stats.master?.pid)) {
    report.uptime = stats.master?.uptime;
    report.workersWanted = stats.workersWanted;
    if (stats.requests) {
      report.requests = { ...stats.requests, served: stats.requests.served ?? 0, inFlight: stats.requests.inFlight ?? 0 };
    }
    report.restarts = stats.restarts;
    report.recycled = stats.recycled;
    report.reloads = stats.reloads;
    report.bootFailures = stats.bootFailures;
    report.memoryRecycled = stats.memoryRecycled;
    report.crashLoop = stats.crashLoop;
    report.lastDeath = stats.lastDeath;
    report.reload = stats.reload;
    if (stats.crashLoop?.looping) report.status = 'crash-looping';
    if (Array.isArray(stats.endpoints)) report.endpoints = stats.endpoints;
    if (typeof stats.metrics === 'string') report.metrics = stats.metrics;
    report.updatedAt = stats.updatedAt;
  }
  const problems = [...forged, ...(running && Array.isArray(stats?.problems) ? stats.problems : []), ...statusProblems(appPath, running, report.updatedAt)];
  if (problems.length > 0) report.problems = problems;
  return report;
}

