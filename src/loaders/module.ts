/**
 * Import one JavaScript/TypeScript app module and pick the servable export (or the server it
 * started itself). ESM and CommonJS alike: the file is imported by absolute file URL, so Node
 * resolves the app's own imports (and its node_modules) from the file's folder; for CommonJS the
 * default export is `module.exports`.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LoadedApp } from '../gateways/types.js';
import type { Logger } from '../log/logger.js';
import { guardLateListen, startListenCapture } from './capture.js';
import { classify, FALLBACK_EXPORTS, FORCING_EXPORTS, isThenable, type Classified, type JsKind } from './classify.js';
import { AppLoadError } from './errors.js';
import { isFastifyPlugin, serveFastifyPlugin } from './fastify-plugin.js';
import { isEsm, loadCommonJsAsMain } from './main-module.js';
import { needsTransform } from './resolve.js';
import { enableTypeScript } from './typescript.js';

/** How long to wait for an app with no servable export to call listen() (ms); --listen-wait-ms. */
export const DEFAULT_LISTEN_WAIT_MS = 5000;

export interface ModuleLoadOptions {
  /** Dotted export path the user asked for (`--wsgi-app=MODULE:EXPORT`, package.json wsgid.export). */
  readonly exportName?: string;
  /** Forced kind (package.json `wsgid.kind`). */
  readonly kind?: JsKind;
  /** Folder the description is relative to (the app folder). */
  readonly relativeTo: string;
  /** Where the entry came from, for the description ("--wsgi-app", "package.json main", ...). */
  readonly origin: string;
  readonly logger: Logger;
  /** Override the listen wait (tests). */
  readonly listenWaitMs?: number;
  /** Run the file as the main module (`node file` of a start script): CommonJS gets require.main. */
  readonly asMain?: boolean;
}

/** Let tests and plugins import a file exactly like the loader does. */
export async function importFile(file: string, logger: Logger, appDir?: string): Promise<Record<string, unknown>> {
  if (needsTransform(file)) await enableTypeScript(logger, file, appDir);
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}

function getPath(root: unknown, dotted: string): unknown {
  let value: unknown = root;
  for (const part of dotted.split('.')) {
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

interface Candidate {
  readonly name: string;
  readonly value: unknown;
  readonly forced?: JsKind;
}

/** Default export first, then the conventional named exports (also inside a CJS module.exports). */
function candidates(ns: Record<string, unknown>): Candidate[] {
  const list: Candidate[] = [];
  const def = ns['default'];
  // CommonJS compiled from ESM (tsc, Babel): module.exports = { __esModule: true, default: app }.
  if (def !== null && typeof def === 'object' && (def as Record<string, unknown>)['__esModule'] === true && 'default' in def) {
    list.push({ name: 'exports.default', value: (def as Record<string, unknown>)['default'] });
  } else if (def !== undefined) {
    list.push({ name: 'default export', value: def });
  }
  for (const name of FALLBACK_EXPORTS) {
    const forced = FORCING_EXPORTS[name];
    if (ns[name] !== undefined) list.push({ name: `export "${name}"`, value: ns[name], forced });
    else if (def !== null && typeof def === 'object' && (def as Record<string, unknown>)[name] !== undefined) {
      list.push({ name: `module.exports.${name}`, value: (def as Record<string, unknown>)[name], forced });
    }
  }
  return list;
}

/**
 * Import `file` and produce the LoadedApp. Order:
 *   1. an explicit export (`MODULE:EXPORT`) — an error if missing or not servable;
 *   2. the default export / module.exports, then named `app`, `handler`, `fetch`, `listener`,
 *      `requestListener`, `server`: the first servable one;
 *   3. an HTTP server the module started itself (listen() captured during the import) wins over
 *      a node-kind export (it carries the app's 'upgrade' listeners too) but not over a fetch one;
 *   4. nothing servable yet: wait up to --listen-wait-ms (5 s) for a listen() call
 *      (e.g. `app.listen()` after connecting to a database or after `fastify.ready()`).
 */
export async function loadModuleApp(file: string, options: ModuleLoadOptions): Promise<LoadedApp> {
  const rel = path.relative(options.relativeTo, file) || file;
  const capture = startListenCapture();
  let guard: readonly unknown[] | undefined;
  try {
    let ns: Record<string, unknown>;
    try {
      ns = options.asMain && !needsTransform(file) && !isEsm(file)
        ? loadCommonJsAsMain(file)
        : await importFile(file, options.logger, options.relativeTo);
    } catch (error) {
      throw new AppLoadError(`failed to import ${rel} (${options.origin}): ${(error as Error)?.message ?? String(error)}`, [], { cause: error, file });
    }
    const describe = (what: string, shape: string): string => `${rel} (${what}, ${shape}; from ${options.origin})`;
    const tried: string[] = [];

    if (options.exportName) {
      let value = getPath(ns, options.exportName);
      const def = ns['default'];
      if (value === undefined && def !== null && typeof def === 'object') value = getPath(def, options.exportName);
      const lastName = options.exportName.split('.').pop() ?? '';
      const forced = options.kind ?? FORCING_EXPORTS[lastName];
      const classified = value === undefined ? undefined : !forced && isFastifyPlugin(value) ? await serveFastifyPlugin(value, file, rel) : await classify(value, forced);
      if (!classified) {
        const exported = Object.keys(ns).join(', ') || '(none)';
        throw new AppLoadError(
          value === undefined
            ? `${rel} has no export "${options.exportName}" (exports: ${exported})`
            : `${rel} export "${options.exportName}" is not an app (got ${describeValue(value)})`,
        );
      }
      if (classified.kind === 'node') guard = classified.listeners;
      return { kind: classified.kind, app: classified.app, description: describe(`export "${options.exportName}"`, classified.shape) };
    }

    let found: { name: string; classified: Classified } | undefined;
    for (const candidate of candidates(ns)) {
      const forced = options.kind ?? candidate.forced;
      const classified = !forced && isFastifyPlugin(candidate.value)
        ? await serveFastifyPlugin(candidate.value, file, rel)
        : await classify(candidate.value, forced);
      tried.push(`${candidate.name}: ${classified ? classified.shape : describeValue(candidate.value)}`);
      if (classified) {
        found = { name: candidate.name, classified };
        break;
      }
    }
    if (found?.classified.kind === 'fetch') {
      return { kind: 'fetch', app: found.classified.app, description: describe(found.name, found.classified.shape) };
    }
    const server = capture.captured[0];
    if (server) return capturedApp(server.server, describe(`server it started (listen ${server.requested})`, 'http.Server'));
    if (found) {
      // Served from the export: a later listen() of this same app must not bind (N workers, one port).
      guard = found.classified.listeners;
      return { kind: found.classified.kind, app: found.classified.app, description: describe(found.name, found.classified.shape) };
    }

    const wait = options.listenWaitMs ?? DEFAULT_LISTEN_WAIT_MS;
    options.logger.debug('no servable export; waiting for the app to call listen()', { file: rel, ms: wait });
    const late = await capture.waitForServer(wait);
    if (late) return capturedApp(late.server, describe(`server it started (listen ${late.requested})`, 'http.Server'));
    tried.push(`a listen() call on an HTTP server within ${wait} ms`);
    throw new AppLoadError(
      `${rel} (${options.origin}) exports nothing wsgid can serve and started no HTTP server. ` +
        'Export a fetch handler or object with fetch(), a Node (req, res) listener, an Express/Koa/Fastify app or an http.Server, ' +
        'or name it with --wsgi-app=MODULE:EXPORT',
      tried,
    );
  } finally {
    capture.stop();
    if (guard?.length) guardLateListen(guard);
  }
}

function capturedApp(server: unknown, description: string): LoadedApp {
  return { kind: 'node', app: server, description };
}

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (isThenable(value)) return 'a promise';
  if (typeof value === 'function') return `a function of arity ${value.length}`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).slice(0, 6);
    return keys.length ? `an object with keys ${keys.join(', ')}` : 'an empty object';
  }
  return typeof value;
}
