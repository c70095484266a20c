/**
 * Load the app and wrap it in its gateway: what every serving process does once, before its
 * request loop starts (a forked worker, or the master itself with --workers=0).
 */
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import type { Gateway } from '../gateways/types.js';
import { gatewayFactory } from '../gateways/registry.js';
import { loadApp } from '../loaders/index.js';
import { loadPlugins } from '../plugins/discover.js';
import { withRequestFilters } from '../plugins/filters.js';
import { VERSION } from '../version.js';

/** The kind ('fetch', 'node', 'wsgi', …) of each gateway loadGateway made: a metrics label. */
const kinds = new WeakMap<Gateway, string>();

export function gatewayKind(gateway: Gateway): string | undefined {
  return kinds.get(gateway);
}

export async function loadGateway(settings: Settings, logger: Logger): Promise<Gateway> {
  const loaded = await loadApp(settings, logger, await loadPlugins(settings, logger));
  logger.info('app loaded', { app: loaded.description, gateway: loaded.kind });
  // Request-filter plugins wrap whichever gateway serves the app (unchanged when there are none).
  const create = await withRequestFilters(await gatewayFactory(loaded.kind), settings, logger);
  const gateway = await create(loaded, { logger, version: VERSION, settings });
  kinds.set(gateway, loaded.kind);
  return gateway;
}
