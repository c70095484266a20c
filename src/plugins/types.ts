/**
 * wsgid plugin interfaces: the TypeScript form of the original wsgid's plugnplay interfaces
 * (IAppLoader, IPreRequestFilter, IPostRequestFilter, ICommand). See docs/PLUGINS.md.
 *
 * A plugin is a JavaScript or TypeScript module in `<app-path>/plugins/` or in a `--loader-dir`
 * folder (relative to the app folder). Its default export (or module.exports), or each of its named
 * exports, may be one plugin object or an array of them. What a plugin is, is told by its shape:
 *   - `canLoad` + `load`            → AppLoaderPlugin
 *   - `before` and/or `after`       → RequestFilterPlugin
 *   - `command` + `run`             → CommandPlugin
 * (or explicitly with `type: 'loader' | 'filter' | 'command'`).
 */
import type { LoadedApp } from '../gateways/types.js';
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';

/** Context handed to every plugin hook. */
export interface PluginContext {
  readonly settings: Readonly<Settings>;
  readonly logger: Logger;
}

/** IAppLoader: recognizes an app folder and loads it. Consulted in order before built-in detection. */
export interface AppLoaderPlugin {
  readonly type?: 'loader';
  /** Unique, for logs and for `--wsgi-app`-less error listings. */
  readonly name: string;
  /** `appDir` is `<app-path>/app`. Cheap checks only (files present, package.json fields). */
  canLoad(appDir: string, settings: Readonly<Settings>): boolean | Promise<boolean>;
  /**
   * Produce the app. `kind` must be a gateway kind ('fetch', 'node', 'wsgi'); `app` is what that
   * gateway accepts (see gateways/types.ts LoadedApp). Helpers: `loadModuleApp` and `classify`
   * from src/loaders (re-exported by the package as `wsgid/loaders` once published).
   */
  load(appDir: string, settings: Readonly<Settings>, context: PluginContext): Promise<LoadedApp> | LoadedApp;
}

/**
 * What a `before` filter sees of a request, and may change. Headers are lower-case names.
 * Changes apply to the request the app receives (not to what mongrel2 sent).
 */
export interface FilterRequest {
  method: string;
  /** Path plus query string, e.g. "/users?id=1". */
  url: string;
  /** HTTP version, 'HTTP/1.0' or 'HTTP/1.1'. */
  readonly version: string;
  headers: Record<string, string>;
  /** The client's address (from x-forwarded-for, else mongrel2's REMOTE_ADDR). */
  readonly remoteAddr: string;
  /** Free-form per-request storage shared by the filters of one request. */
  readonly locals: Map<string, unknown>;
}

/** A short-circuit response: returned by `before`, it is sent instead of calling the app. */
export interface FilterResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

/** What an `after` filter sees of the response; it may change `status` and `headers` before the head is sent. */
export interface FilterResponseInfo {
  readonly request: Readonly<FilterRequest>;
  status: number;
  /** Lower-case names; multi-valued headers (set-cookie) are arrays. Mutable. */
  headers: Record<string, string | string[]>;
  /** The app's error when it threw (the response is then wsgid's 500). */
  readonly error?: unknown;
  /** Milliseconds from the request reaching wsgid to the head being sent. */
  readonly elapsedMs: number;
}

/**
 * IPreRequestFilter + IPostRequestFilter in one object (either hook is optional).
 *   - `before(request)` runs before the app, may change the request in place, or return a
 *     replacement FilterRequest, or a FilterResponse to answer without calling the app.
 *   - `after(info)` runs when the app's response head is known (or the app failed), and may
 *     change status and headers; it cannot see or change the body (streamed).
 * Filters run in order for `before` and in reverse order for `after` (like middleware).
 * An exception in a filter is logged and answered 500, never crashes the worker.
 */
export interface RequestFilterPlugin {
  readonly type?: 'filter';
  readonly name: string;
  before?(request: FilterRequest, context: PluginContext): FilterRequest | FilterResponse | void | Promise<FilterRequest | FilterResponse | void>;
  after?(info: FilterResponseInfo, context: PluginContext): void | Promise<void>;
}

/** ICommand: an extra `wsgid <command>` subcommand. */
export interface CommandPlugin {
  readonly type?: 'command';
  /** The subcommand name, e.g. "routes". */
  readonly command: string;
  readonly description: string;
  /** Exit code (0 when undefined). `args` are the arguments after the command name. */
  run(args: readonly string[], context: PluginContext): number | void | Promise<number | void>;
}

export type Plugin = AppLoaderPlugin | RequestFilterPlugin | CommandPlugin;

/** Plugins found in the plugin folders, by type, each with the file it came from. */
export interface PluginSet {
  readonly loaders: readonly (AppLoaderPlugin & { readonly file: string })[];
  readonly filters: readonly (RequestFilterPlugin & { readonly file: string })[];
  readonly commands: readonly (CommandPlugin & { readonly file: string })[];
  /** Folders that were searched (existing or not), in order. */
  readonly folders: readonly string[];
}
