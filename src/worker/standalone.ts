/**
 * Single-process mode (`--workers=0`): the process that runs the CLI loads the app and PULLs from
 * mongrel2 itself. The fastest path and the simplest to debug, but without the master's
 * supervision, graceful reload or 502/504 answers (see DESIGN.md).
 */
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import { loadGateway } from './app.js';
import { DirectSource } from './direct-source.js';
import { startWorker, type CompletedRequest } from './serve.js';

export async function serveStandalone(
  settings: Settings,
  logger: Logger,
  onComplete?: (request: CompletedRequest) => void,
): Promise<{ close(): Promise<void> }> {
  const gateway = await loadGateway(settings, logger);
  const worker = startWorker({ settings, logger, gateway, source: new DirectSource(settings.recv), onComplete });
  logger.info('serving', { recv: settings.recv, send: settings.send });
  return { close: () => worker.close() };
}
