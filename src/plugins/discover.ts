/**
 * Find plugins: every .js/.mjs/.cjs/.ts/.mts/.cts file (or folder with an index/package.json)
 * directly in `<app-path>/plugins/`, then in each `--loader-dir` (relative to the app folder), in
 * name order. A file whose import fails is logged and skipped (a broken plugin must not hide the
 * others), except that loadPlugins({strict: true}) rethrows.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Settings } from '../config/settings.js';
import type { Logger } from '../log/logger.js';
import { importFile } from '../loaders/module.js';
import { JS_EXTENSIONS, resolveFile } from '../loaders/resolve.js';
import type { AppLoaderPlugin, CommandPlugin, Plugin, PluginSet, RequestFilterPlugin } from './types.js';

export function pluginFolders(settings: Pick<Settings, 'appPath' | 'loaderDir'>): string[] {
  const folders = [path.join(settings.appPath, 'plugins'), ...settings.loaderDir.map((dir) => path.resolve(settings.appPath, dir))];
  return [...new Set(folders)];
}

function pluginFiles(folder: string): string[] {
  let names: string[];
  try {
    names = readdirSync(folder).sort();
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const name of names) {
    if (name.startsWith('.') || name === 'node_modules' || name.endsWith('.d.ts')) continue;
    const full = path.join(folder, name);
    let isDir = false;
    try {
      isDir = statSync(full).isDirectory();
    } catch {
      continue;
    }
    if (isDir) {
      const entry = resolveFile(folder, name, []);
      if (entry && entry !== full) files.push(entry);
    } else if ((JS_EXTENSIONS as readonly string[]).includes(path.extname(name))) {
      files.push(full);
    }
  }
  return files;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export function pluginType(value: unknown): 'loader' | 'filter' | 'command' | undefined {
  if (!isRecord(value)) return undefined;
  const declared = value['type'];
  if (declared === 'loader' || declared === 'filter' || declared === 'command') return declared;
  if (typeof value['canLoad'] === 'function' && typeof value['load'] === 'function') return 'loader';
  if (typeof value['command'] === 'string' && typeof value['run'] === 'function') return 'command';
  if (typeof value['before'] === 'function' || typeof value['after'] === 'function') return 'filter';
  return undefined;
}

/** The plugin objects a module exports: default (object or array), then named exports. */
export function pluginsOf(ns: Record<string, unknown>): Plugin[] {
  const seen = new Set<unknown>();
  const out: Plugin[] = [];
  const add = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(add);
      return;
    }
    if (seen.has(value) || !pluginType(value)) return;
    seen.add(value);
    out.push(value as Plugin);
  };
  add(ns['default']);
  // CommonJS: module.exports = { loader, filter } arrives as the default export's properties.
  const def = ns['default'];
  if (isRecord(def) && !pluginType(def) && !Array.isArray(def)) for (const key of Object.keys(def)) add(def[key]);
  for (const key of Object.keys(ns)) if (key !== 'default') add(ns[key]);
  return out;
}

export interface LoadPluginsOptions {
  readonly strict?: boolean;
}

const cache = new Map<string, Promise<PluginSet>>();

/** Import and sort the plugins of an app folder (cached per folder list). */
export function loadPlugins(settings: Pick<Settings, 'appPath' | 'loaderDir'>, logger: Logger, options: LoadPluginsOptions = {}): Promise<PluginSet> {
  const folders = pluginFolders(settings);
  const key = folders.join('\0') + (options.strict ? '\0strict' : '');
  let set = cache.get(key);
  if (!set) {
    set = discover(folders, logger, options);
    cache.set(key, set);
    set.catch(() => cache.delete(key));
  }
  return set;
}

async function discover(folders: string[], logger: Logger, options: LoadPluginsOptions): Promise<PluginSet> {
  const loaders: (AppLoaderPlugin & { file: string })[] = [];
  const filters: (RequestFilterPlugin & { file: string })[] = [];
  const commands: (CommandPlugin & { file: string })[] = [];
  for (const folder of folders) {
    for (const file of pluginFiles(folder)) {
      let ns: Record<string, unknown>;
      try {
        ns = await importFile(file, logger);
      } catch (error) {
        if (options.strict) throw error;
        logger.error('plugin failed to load; skipped', { file, error });
        continue;
      }
      const plugins = pluginsOf(ns);
      if (!plugins.length) logger.warn('plugin file exports no plugin (loader, filter or command)', { file });
      for (const plugin of plugins) {
        // Keep the plugin object itself (its methods may use `this`); record the file beside it.
        const tagged = Object.assign(Object.create(plugin) as object, { file }) as Plugin & { file: string };
        const type = pluginType(plugin);
        if (type === 'loader') loaders.push(tagged as AppLoaderPlugin & { file: string });
        else if (type === 'filter') filters.push(tagged as RequestFilterPlugin & { file: string });
        else if (type === 'command') commands.push(tagged as CommandPlugin & { file: string });
        logger.debug('plugin found', { type, name: 'name' in plugin ? plugin.name : (plugin as CommandPlugin).command, file });
      }
    }
  }
  return { loaders, filters, commands, folders };
}

/** Tests: forget cached plugin sets. */
export function clearPluginCache(): void {
  cache.clear();
}
