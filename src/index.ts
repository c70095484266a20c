/**
 * What apps and plugins may import from 'wsgid' (package.json "exports"). Keep it small: each
 * export here is a public API.
 */
export { broadcast, type BroadcastOptions } from './broadcast.js';
/** The second argument of a fetch handler (`c.env` in Hono). */
export type { FetchContext, UpgradeWebSocketOptions, WebSocketUpgrade } from './gateways/fetch/context.js';
export type { ServerWebSocket } from './gateways/fetch/websocket.js';
/** Plugin interfaces (docs/PLUGINS.md). */
export type {
  AppLoaderPlugin,
  CommandPlugin,
  FilterRequest,
  FilterResponse,
  FilterResponseInfo,
  Plugin,
  PluginContext,
  RequestFilterPlugin,
} from './plugins/types.js';
export type { LoadedApp } from './gateways/types.js';
