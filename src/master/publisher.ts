/**
 * What the master publishes besides supervising, for the arbiter and for --workers=0 alike: memory
 * and CPU from /proc (metrics/proc-stat.ts) once per tick, `pid/status.json` each tick
 * (app-folder/status-file.ts) and, with `--metrics`, the Prometheus endpoint (metrics/server.ts).
 * The numbers come from a `StatusSource`: the arbiter's pool and dispatch table, or the single
 * process's server. Who ticks is the caller's: the arbiter's loop calls tick(), --workers=0 every().
 *
 * Out of file descriptors (EMFILE), the status is still written: a few are held back on /dev/null
 * and freed for that write, and the status says so (`problems`) for a minute.
 */
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import type { HostPort } from '../config/address.js';
import type { Logger } from '../log/logger.js';
import { removeStatusFile, writeStatusFile } from '../app-folder/status-file.js';
import { isOutOfFds, outOfFdsMessage } from '../fs/fd-limit.js';
import { ProcSampler, type ProcSample } from '../metrics/proc-stat.js';
import type { RequestCounts } from '../metrics/request-metrics.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import { renderMetrics } from './metrics.js';
import type { WorkerUsage } from './reports.js';
import type { MasterStatusFile } from './status.js';

/** Descriptors held back for the status when the process runs out (withAnchoredDir opens a few). */
const RESERVE_FDS = 8;
/** How long a shortage of descriptors stays in the status's problems, and how often it is logged. */
const OUT_OF_FDS_SHOWN_MS = 60_000;
const OUT_OF_FDS_LOGGED_MS = 10_000;

export interface StatusSource {
  /** The status as of now (each write, each scrape), with the publisher's `usage` and `metricsUrl`. */
  status(): MasterStatusFile;
  /** Request totals per gateway kind, for the metrics. */
  requests(): ReadonlyMap<string, RequestCounts>;
  /** The worker processes to sample besides this one (none with --workers=0). */
  workers?(): Iterable<{ id: number; pid: number }>;
  /** A worker's sample, as soon as taken (the master records it and checks --max-memory). */
  sampled?(id: number, usage: WorkerUsage): void;
}

export class StatusPublisher {
  private readonly sampler = new ProcSampler();
  private metrics: MetricsServer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed: Promise<void> | undefined;
  private writeFailing = false;
  /** Descriptors held on /dev/null, freed to write the status when the process runs out (EMFILE). */
  private reserveFds: number[] = [];
  /** The latest "out of file descriptors" and where it struck, for the status's problems. */
  private outOfFds: { at: number; message: string } | undefined;
  /** This process's latest memory and CPU sample. */
  usage: ProcSample | undefined;

  constructor(
    private readonly appPath: string,
    private readonly source: StatusSource,
    private readonly log: Logger,
  ) {
    this.takeReserve();
  }

  /** Serve the metrics at `address`; rejects when it cannot be bound. */
  async serveMetrics(address: HostPort): Promise<void> {
    this.metrics = await startMetricsServer(
      address,
      () => renderMetrics(this.source.status(), this.source.requests()),
      (error) => this.log.warn('the metrics endpoint failed; it keeps listening', { error }),
    );
    this.log.info('metrics served', { url: this.metricsUrl });
  }

  /** The endpoint's URL once it listens. */
  get metricsUrl(): string | undefined {
    const a = this.metrics?.address;
    if (a === undefined) return undefined;
    return `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/metrics`;
  }

  /** One tick: sample, then write the status. */
  tick(): void {
    this.sample();
    this.write();
  }

  /** Tick every `ms` until close() (without holding the process up). */
  every(ms: number): void {
    this.timer = setInterval(() => this.tick(), ms);
    this.timer.unref();
  }

  /** Memory and CPU of this process, each worker and the worker's children. */
  sample(): void {
    const now = Date.now();
    const seen = new Set<number>([process.pid]);
    this.usage = this.sampler.sample(process.pid, now);
    for (const w of this.source.workers?.() ?? []) {
      if (w.pid <= 0) continue;
      seen.add(w.pid);
      const children: ProcSample[] = [];
      for (const pid of this.sampler.children(w.pid)) {
        seen.add(pid);
        const c = this.sampler.sample(pid, now);
        if (c !== undefined) children.push(c);
      }
      this.source.sampled?.(w.id, { self: this.sampler.sample(w.pid, now), children });
    }
    this.sampler.retain(seen);
  }

  /** The process ran out of file descriptors (`what` failed): logged (not too often) and shown in the status. */
  noteOutOfFds(what: string, err: unknown): void {
    const message = typeof err === 'string' ? err : outOfFdsMessage(what, err);
    if (this.outOfFds === undefined || Date.now() - this.outOfFds.at > OUT_OF_FDS_LOGGED_MS) this.log.error(message);
    this.outOfFds = { at: Date.now(), message };
  }

  /** Write status.json; a failure is logged once per run of failures (a read-only folder fails every tick). */
  write(): void {
    let failure: unknown;
    try {
      this.writeNow();
    } catch (err) {
      failure = err;
    }
    if (failure !== undefined && isOutOfFds(failure)) {
      this.noteOutOfFds('cannot write pid/status.json', failure);
      // What we held back lets the status say so; then we hold it again.
      this.releaseReserve();
      try {
        this.writeNow();
        failure = undefined;
      } catch (err) {
        failure = err;
      } finally {
        this.takeReserve();
      }
    }
    if (failure === undefined) {
      if (this.writeFailing) this.log.info('pid/status.json is written again');
      this.writeFailing = false;
      return;
    }
    // `wsgid status` shows stale numbers meanwhile.
    if (!this.writeFailing) {
      const e = failure as NodeJS.ErrnoException;
      this.log.error('cannot write pid/status.json: `wsgid status` and `wsgid restart` see old numbers until it can', {
        path: path.join(this.appPath, 'pid', 'status.json'),
        code: e.code,
        reason: e.message,
      });
    }
    this.writeFailing = true;
  }

  /** close() was called (--workers=0 says `stopping` meanwhile). */
  get closing(): boolean {
    return this.closed !== undefined;
  }

  /** Stop ticking and serving the metrics, give the held descriptors back, remove status.json. */
  close(): Promise<void> {
    return (this.closed ??= (async () => {
      clearInterval(this.timer);
      await this.metrics?.close();
      this.releaseReserve();
      removeStatusFile(this.appPath);
    })());
  }

  private writeNow(): void {
    const status = this.source.status();
    // Out of descriptors lately: say so (where it struck) in the status.
    if (this.outOfFds && Date.now() - this.outOfFds.at < OUT_OF_FDS_SHOWN_MS) status.problems = [this.outOfFds.message];
    writeStatusFile(this.appPath, JSON.stringify(status, null, 2) + '\n');
  }

  private takeReserve(): void {
    try {
      while (this.reserveFds.length < RESERVE_FDS) this.reserveFds.push(openSync('/dev/null', 'r'));
    } catch {
      /* out of them already: taken again after the next status write */
    }
  }

  private releaseReserve(): void {
    for (const fd of this.reserveFds.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        /* not ours any more */
      }
    }
  }
}
