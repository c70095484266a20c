/**
 * Single-process mode (`--workers=0`): the process that runs the CLI loads the app and PULLs from
 * mongrel2 itself. The fastest path and the simplest to debug, but without the master's
 * supervision, graceful reload or 502/504 answers (see DESIGN.md).
 */
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import { createAccessLogger } from '../log/access-log.js';
import { inAppFolder } from '../app-folder/privileges.js';
import { accessEntry } from './access.js';
import { loadGateway } from './app.js';
import { DirectSource } from './direct-source.js';
import { startWorker } from './serve.js';

export interface StandaloneServer {
  close(): Promise<void>;
  /** Reopen the access log (SIGUSR1, after logrotate). */
  reopenLogs(): void;
}

export async function serveStandalone(settings: Settings, logger: Logger): Promise<StandaloneServer> {
  const gateway = await loadGateway(settings, logger);
  const accessLog = createAccessLogger(settings, inAppFolder(settings.appPath));
  const worker = startWorker({
    settings,
    logger,
    gateway,
    source: new DirectSource(settings.recv),
    onComplete: accessLog.enabled ? (done) => accessLog.log(accessEntry(done)) : undefined,
  });
  logger.info('serving', { recv: settings.recv, send: settings.send });
  return {
    close: async () => {
      await worker.close(settings.gracefulTimeout * 1000);
      accessLog.close();
    },
    reopenLogs: () => accessLog.reopen(),
  };
}
