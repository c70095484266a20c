/**
 * With --workers=0 the single process publishes what a master does: `pid/status.json` every second
 * (for `wsgid status`) and, with `--metrics`, the Prometheus endpoint. The same builders as the
 * master's (master/status.ts, master/metrics.ts), fed from the standalone server.
 */
import { formatHostPort } from '../config/address.js';
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import { removeStatusFile, writeStatusFile } from '../app-folder/status-file.js';
import { ProcSampler, type ProcSample } from '../metrics/proc-stat.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import { renderMetrics } from '../master/metrics.js';
import { buildStandaloneStatus, type MasterStatusFile } from '../master/status.js';
import type { StandaloneServer } from '../worker/standalone.js';

const TICK_MS = 1000;

export async function publishStandalone(settings: Settings, server: StandaloneServer, logger: Logger): Promise<{ close(): Promise<void> }> {
  const startedAt = Date.now();
  const sampler = new ProcSampler();
  let usage: ProcSample | undefined = sampler.sample(process.pid);
  let metrics: MetricsServer | undefined;
  let stopping = false;
  const url = (): string | undefined => {
    const a = metrics?.address;
    return a && `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/metrics`;
  };
  const status = (): MasterStatusFile =>
    buildStandaloneStatus({
      pid: process.pid,
      startedAt,
      now: Date.now(),
      state: stopping ? 'stopping' : 'running',
      served: server.served,
      inFlight: server.inFlight,
      usage,
      endpoints: server.endpoints.snapshot(),
      metricsUrl: url(),
    });
  if (settings.metrics !== undefined) {
    try {
      metrics = await startMetricsServer(
        settings.metrics,
        () => renderMetrics(status(), new Map([[server.gateway, server.requestCounts()]])),
        (error) => logger.warn('the metrics endpoint failed; it keeps listening', { error }),
      );
    } catch (error) {
      throw new Error(`could not serve the metrics on ${formatHostPort(settings.metrics)}: ${(error as Error).message}`);
    }
    logger.info('metrics served', { url: url() });
  }
  const write = (): void => {
    usage = sampler.sample(process.pid);
    try {
      writeStatusFile(settings.appPath, JSON.stringify(status(), null, 2) + '\n');
    } catch (err) {
      logger.debug('could not write the status file', { error: err });
    }
  };
  write();
  const timer = setInterval(write, TICK_MS);
  timer.unref();
  let closed: Promise<void> | undefined;
  return {
    close: () =>
      (closed ??= (async () => {
        stopping = true;
        clearInterval(timer);
        await metrics?.close();
        removeStatusFile(settings.appPath);
      })()),
  };
}
