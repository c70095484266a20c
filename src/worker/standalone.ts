/**
 * Single-process mode (`--workers=0`): the process that runs the CLI loads the app and PULLs from
 * mongrel2 itself. The fastest path and the simplest to debug, but without the master's
 * supervision, graceful reload or 502/504 answers (docs/INTERNALS.md, "Master ↔ worker").
 */
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import { createAccessLogger } from '../log/access-log.js';
import { inAppFolder } from '../app-folder/privileges.js';
import { accessEntry } from './access.js';
import { gatewayKind, loadGateway } from './app.js';
import { EndpointMonitor } from '../transport/endpoint-monitor.js';
import { RequestMetrics, type RequestCounts } from '../metrics/request-metrics.js';
import { DirectSource } from './direct-source.js';
import { startWorker } from './serve.js';
import { enterAppCwd } from './app-cwd.js';

export interface StandaloneServer {
  /** The mongrel2 endpoints' connection state. */
  readonly endpoints: EndpointMonitor;
  readonly served: number;
  readonly inFlight: number;
  /** The gateway kind serving the app (metrics label). */
  readonly gateway: string;
  /** Request totals since start (metrics). */
  requestCounts(): RequestCounts;
  close(): Promise<void>;
  /** Reopen the access log (SIGUSR1, after logrotate). */
  reopenLogs(): void;
}

export async function serveStandalone(given: Settings, logger: Logger): Promise<StandaloneServer> {
  // The app runs in app/ here too, as in a forked worker (worker/app-cwd.ts).
  const settings = enterAppCwd(given);
  const gateway = await loadGateway(settings, logger);
  const accessLog = createAccessLogger(settings, inAppFolder(settings.appPath));
  const endpoints = new EndpointMonitor(settings.recv, settings.send, logger);
  const requestMetrics = new RequestMetrics();
  const worker = startWorker({
    settings,
    logger,
    gateway,
    source: new DirectSource(settings.recv, endpoints),
    endpointMonitor: endpoints,
    onComplete: accessLog.enabled
      ? (done) => {
          requestMetrics.observe(done.status, done.durationMs);
          accessLog.log(accessEntry(done));
        }
      : (done) => requestMetrics.observe(done.status, done.durationMs),
  });
  logger.info('serving', { recv: settings.recv, send: settings.send });
  return {
    endpoints,
    get served() {
      return worker.served;
    },
    get inFlight() {
      return worker.inFlight;
    },
    gateway: gatewayKind(gateway) ?? 'unknown',
    requestCounts: () => requestMetrics.snapshot(),
    close: async () => {
      endpoints.silence();
      await worker.close(settings.gracefulTimeout * 1000);
      endpoints.close();
      accessLog.close();
    },
    reopenLogs: () => accessLog.reopen(),
  };
}
