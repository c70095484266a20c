/**
 * Find the app under `<app-path>/app/`, import it, and tell the worker which gateway serves it.
 * Full rules in docs/LOADERS.md. Order:
 *
 *   1. `--wsgi-app=MODULE[:EXPORT]`: MODULE is a file under app/ (extension optional, or a folder)
 *      or an installed package resolved from app/; `.py` files and modules that resolve to no
 *      JavaScript file go to the WSGI loader (src/loaders/wsgi.ts). `--django` → WSGI loader.
 *      A package's bin is refused (imported with the worker's argv, `next` is `next dev`).
 *   1b. `--command="next start"`: run as a start script is (./command.ts).
 *   2. Loader plugins (`<app-path>/plugins/`, then each `--loader-dir`; discovered by plugins/ and
 *      passed in by the caller): the first whose `canLoad(appDir, settings)` is true loads the app.
 *   3. `app/package.json`: the `wsgid` field (string "entry[:export]" or {entry, export, kind}),
 *      `main`, `exports` (".": wsgid/node/import/require/default), `module`, then the file the
 *      `start` (then `start:prod`) script runs (`node dist/server.js`) — the first whose file exists
 *      (a start script runs as npm would run it: ./command.ts) — then the start script's bin command
 *      (`next start`; development servers are skipped). `main` named by the start script's bin
 *      command (`fastify start app.js`) runs that command.
 *   4. Conventional entries: server, app, index, main × .js .mjs .cjs .ts .mts .cts .tsx .jsx, in
 *      app/ then in app/src/.
 *   5. A Python WSGI app (the WSGI loader decides: a Django project, or app/wsgi.py, app/app.py,
 *      app/application.py exposing `application` or `app`), or an ASGI app (FastAPI main.py,
 *      Starlette app.py, asgi.py: ./asgi.ts). `--asgi` goes there first.
 *   Otherwise an AppLoadError listing everything tried and suggesting --wsgi-app.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Settings } from '../config/settings.js';
import type { LoadedApp } from '../gateways/types.js';
import type { Logger } from '../log/logger.js';
import { AppLoadError } from './errors.js';
import { binNameOf, developmentServer, resolveBin, runCommand, type CommandContext } from './command.js';
import { loadModuleApp } from './module.js';
import { ENTRY_EXTENSIONS, START_SCRIPTS, isFile, packageEntries, packageWsgidOptions, parseAppSpec, readPackageJson, resolveAppModule, resolveFile } from './resolve.js';
import { startCommand, type StartCommand } from './start-script.js';

export { AppLoadError } from './errors.js';
export { classify, type Classified, type JsKind } from './classify.js';
export { loadModuleApp, importFile } from './module.js';
export { startListenCapture, type ListenCapture, type CapturedServer } from './capture.js';

/** Conventional entry names, in order, each with every extension before the next name. */
export const CONVENTIONAL_ENTRIES = ['server', 'app', 'index', 'main'] as const;
export const CONVENTIONAL_EXTENSIONS = ENTRY_EXTENSIONS;
/**
 * Where conventional names are looked for, in order: app/ itself, then app/src/ (create-hono's
 * src/index.ts, NestJS's src/main.ts, Vite-style src/server.tsx).
 */
export const CONVENTIONAL_FOLDERS = ['', 'src'] as const;

/**
 * What loadApp needs of a loader plugin (plugins/types.ts AppLoaderPlugin, as plugins/discover.ts
 * found it, is one). Declared here so that loaders/ does not import plugins/, which builds on it.
 */
export interface LoaderPlugin {
  readonly name: string;
  /** The plugin's file, for the list of what was tried. */
  readonly file: string;
  canLoad(appDir: string, settings: Readonly<Settings>): boolean | Promise<boolean>;
  load(appDir: string, settings: Readonly<Settings>, context: { readonly settings: Readonly<Settings>; readonly logger: Logger }): Promise<LoadedApp> | LoadedApp;
}

async function tryWsgi(settings: Settings, logger: Logger, tried: string[]): Promise<LoadedApp | undefined> {
  // Imported on demand: a JavaScript app never loads the WSGI loader.
  const { loadWsgi } = await import('./wsgi.js');
  const app = await loadWsgi(settings, logger);
  if (!app) tried.push('Python WSGI/ASGI app (a Django project, or wsgi.py, app.py, application.py with application/app; Starlette app.py, asgi.py, FastAPI main.py): none found');
  return app;
}

function appDirOf(settings: Settings): string {
  return path.join(settings.appPath, 'app');
}

function hasPythonFiles(appDir: string): boolean {
  try {
    return readdirSync(appDir).some((name) => name.endsWith('.py') || existsSync(path.join(appDir, name, 'wsgi.py')));
  } catch {
    return false;
  }
}

/** Load the app of `settings.appPath` (see the module comment for the order). */
/** Loader plugins and the folders they were looked for in (plugins/discover.ts PluginSet fits). */
export interface LoaderPlugins {
  readonly loaders: readonly LoaderPlugin[];
  readonly folders: readonly string[];
}

function scriptsOf(pkg: Record<string, unknown> | undefined): Record<string, unknown> {
  const scripts = pkg?.['scripts'];
  return typeof scripts === 'object' && scripts !== null ? (scripts as Record<string, unknown>) : {};
}

/** The command a start script runs (`next start`, `node server.js`), following `npm run X`. */
function scriptCommand(pkg: Record<string, unknown> | undefined, name: string): StartCommand | undefined {
  const scripts = scriptsOf(pkg);
  const script = scripts[name];
  return typeof script === 'string' ? startCommand(script, scripts) : undefined;
}

/** Does a bin command name `file` among its arguments (`fastify start -l info app.js` for main app.js)? */
function commandRuns(command: StartCommand | undefined, appDir: string, file: string): boolean {
  if (!command || command.runner || command.program.includes('/') || !resolveBin(appDir, command.program)) return false;
  return command.args.some((arg) => !arg.startsWith('-') && resolveFile(appDir, arg, []) === file);
}

export async function loadApp(settings: Settings, logger: Logger, plugins: LoaderPlugins = { loaders: [], folders: [] }): Promise<LoadedApp> {
  const appDir = appDirOf(settings);
  if (!existsSync(appDir)) {
    throw new AppLoadError(`app folder ${appDir} does not exist (run \`wsgid init --app-path=${settings.appPath}\` and put the app in app/)`);
  }
  const tried: string[] = [];
  const pkg = readPackageJson(appDir);
  const forced = packageWsgidOptions(pkg);
  const commandContext = (origin: string): CommandContext => ({
    appDir,
    appPath: settings.appPath,
    logger,
    listenWaitMs: settings.listenWaitMs,
    origin,
    forced,
  });

  if (settings.asgi) {
    const app = await tryWsgi(settings, logger, tried);
    if (app) return app;
  }

  if (settings.django) {
    const app = await tryWsgi(settings, logger, tried);
    if (app) return app;
    throw new AppLoadError('--django was given but no Django project was loaded', tried);
  }

  if (settings.wsgiApp) {
    const spec = parseAppSpec(settings.wsgiApp);
    const file = spec.module.endsWith('.py') ? undefined : resolveAppModule(appDir, spec.module, tried);
    const bin = file ? binNameOf(file) : undefined;
    if (bin) {
      // Imported, a CLI runs with the worker's argv (`next` alone is `next dev`): it needs its command.
      throw new AppLoadError(`--wsgi-app=${settings.wsgiApp} is the \`${bin}\` command of a package, not an app module: give the command to run, e.g. --command="${bin} start"`);
    }
    if (file) {
      return loadModuleApp(file, {
        exportName: spec.exportName ?? forced.exportName,
        kind: forced.kind,
        relativeTo: settings.appPath,
        listenWaitMs: settings.listenWaitMs,
        origin: `--wsgi-app=${settings.wsgiApp}`,
        logger,
      });
    }
    const app = await tryWsgi(settings, logger, tried);
    if (app) return app;
    throw new AppLoadError(`--wsgi-app=${settings.wsgiApp}: no such JavaScript module or WSGI application under ${appDir}`, tried);
  }

  if (settings.command) {
    const command = startCommand(settings.command, scriptsOf(pkg));
    if (!command) {
      throw new AppLoadError(
        `--command=${settings.command}: not a command wsgid can run (expected a program and its arguments, e.g. "next start" or ` +
          '"NODE_ENV=production node server.js"; no shell expansion, redirection or subshells)',
      );
    }
    return runCommand(command, commandContext('--command'));
  }

  for (const plugin of plugins.loaders) {
    let can = false;
    try {
      can = await plugin.canLoad(appDir, settings);
    } catch (error) {
      logger.error('loader plugin canLoad() failed; skipped', { plugin: plugin.name, file: plugin.file, error });
    }
    tried.push(`loader plugin "${plugin.name}" (${path.relative(settings.appPath, plugin.file)}): ${can ? 'yes' : 'cannot load'}`);
    if (can) {
      const app = await plugin.load(appDir, settings, { settings, logger });
      return { ...app, description: `${app.description} (loader plugin "${plugin.name}")` };
    }
  }
  if (!plugins.loaders.length && plugins.folders.length) tried.push(`loader plugins in ${plugins.folders.map((f) => path.relative(settings.appPath, f) || '.').join(', ')}: none`);

  if (pkg) {
    const entries = packageEntries(pkg);
    for (const entry of entries) {
      const file = resolveFile(appDir, entry.module, []);
      tried.push(`app/package.json "${entry.field}": ${entry.module}${file ? '' : ' (not found)'}`);
      if (file) {
        const script = entry.field.startsWith('scripts.') ? entry.field.slice('scripts.'.length) : undefined;
        const command = script ? scriptCommand(pkg, script) : undefined;
        // `node server.js` as the script says: with its environment assignments and arguments.
        if (command?.runner && resolveFile(appDir, command.file!, []) === file) return runCommand(command, commandContext(`package.json ${entry.field}`));
        // `"main": "app.js"` with `"start": "fastify start -l info app.js"`: the script says how to run main.
        const start = scriptCommand(pkg, 'start');
        if (!script && entry.field !== 'wsgid' && entry.field !== 'wsgid.entry' && commandRuns(start, appDir, file)) {
          return runCommand(start!, commandContext('package.json scripts.start'));
        }
        return loadModuleApp(file, {
          exportName: entry.exportName ?? forced.exportName,
          kind: forced.kind,
          relativeTo: settings.appPath,
          listenWaitMs: settings.listenWaitMs,
          origin: `package.json ${entry.field}`,
          logger,
        });
      }
    }
    // A framework's own command (`next start`, `react-router-serve build/server/index.js`).
    for (const name of START_SCRIPTS) {
      const command = scriptCommand(pkg, name);
      if (!command || command.runner) continue;
      const dev = developmentServer(command);
      if (!dev) return runCommand(command, commandContext(`package.json scripts.${name}`));
      // `"start": "next dev"`: not served; other entries may still be (a server.js next to a `vite` script).
      tried.push(`app/package.json "scripts.${name}": \`${command.text}\` is a development server (${dev}); give the production command with --command`);
    }
    if (entries.length === 0) tried.push('app/package.json: no "wsgid", "main", "exports" or "module" field, no "start" or "start:prod" script naming a file or a command');
  } else {
    tried.push('app/package.json: absent');
  }

  for (const folder of CONVENTIONAL_FOLDERS) {
    for (const name of CONVENTIONAL_ENTRIES) {
      for (const ext of CONVENTIONAL_EXTENSIONS) {
        const file = path.join(appDir, folder, name + ext);
        if (isFile(file)) {
          return loadModuleApp(file, {
            exportName: forced.exportName,
            kind: forced.kind,
            relativeTo: settings.appPath,
            listenWaitMs: settings.listenWaitMs,
            origin: 'conventional entry name',
            logger,
          });
        }
      }
    }
    tried.push(`app/${folder ? folder + '/' : ''}{${CONVENTIONAL_ENTRIES.join(',')}}{${CONVENTIONAL_EXTENSIONS.join(',')}}: none exists`);
  }

  if (hasPythonFiles(appDir)) {
    const app = await tryWsgi(settings, logger, tried);
    if (app) return app;
  } else {
    tried.push('Python WSGI app: no .py files in app/');
  }

  throw new AppLoadError(
    `could not detect an app in ${appDir}; name it with --wsgi-app=MODULE[:EXPORT] (e.g. --wsgi-app=server.js:app), ` +
      'add a "wsgid" or "main" field to app/package.json, or add a loader plugin',
    tried,
  );
}
