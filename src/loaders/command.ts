/**
 * Run an app the way its package.json start script (or `--command`) says — `next start`,
 * `fastify start -l info app.js`, `NODE_ENV=production node server.js`, `react-router-serve
 * ./build/server/index.js` — inside the worker, as PM2 runs it and Passenger serves it: the
 * command's environment assignments are set, `process.argv` is what the program would see
 * (`[node, file, ...args]`), a bin is resolved from node_modules/.bin to its JavaScript file, the
 * runner's `--env-file`/`-r`/`--import` are honoured, and the file runs as the main module while
 * `listen()` is captured (./capture.ts): the HTTP server the program starts is the app.
 *
 * Nothing is spawned: the worker is the process the command would have been.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LoadedApp } from '../gateways/types.js';
import type { Logger } from '../log/logger.js';
import { startListenCapture } from './capture.js';
import { AppLoadError } from './errors.js';
import { loadModuleApp, importFile, type ModuleLoadOptions } from './module.js';
import { isEsm, loadCommonJsAsMain } from './main-module.js';
import { isFile, needsTransform, readPackageJson, resolveFile } from './resolve.js';
import type { StartCommand } from './start-script.js';

/** A program's CLI loads its framework before it listens: it gets at least this long (ms). */
export const COMMAND_LISTEN_WAIT_MS = 30_000;

export interface CommandContext {
  readonly appDir: string;
  /** The app folder (descriptions are relative to it). */
  readonly appPath: string;
  readonly logger: Logger;
  readonly listenWaitMs: number;
  /** Where the command came from ("package.json scripts.start", "--command"). */
  readonly origin: string;
  readonly forced?: Pick<ModuleLoadOptions, 'kind' | 'exportName'>;
}

/**
 * A bin of app/node_modules/.bin or of the folders above it (workspaces hoist): the link (what
 * `process.argv[1]` is when npm runs it: node keeps the path it was given) and its JavaScript file
 * (`next` → node_modules/next/dist/bin/next), or undefined.
 */
export function resolveBin(appDir: string, name: string): { link: string; file: string } | undefined {
  for (let dir = appDir; ; dir = path.dirname(dir)) {
    const link = path.join(dir, 'node_modules', '.bin', name);
    if (isFile(link)) {
      const file = realpathSync(link);
      return isJavaScript(file) ? { link, file } : undefined;
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** A file Node runs: a JavaScript extension, or a `#!… node` script. */
function isJavaScript(file: string): boolean {
  if (/\.[mc]?[jt]s$/.test(file)) return true;
  try {
    const head = readFileSync(file, { encoding: 'utf8', flag: 'r' }).slice(0, 200);
    return /^#!.*\bnode\b/.test(head);
  } catch {
    return false;
  }
}

/** What `node --env-file F -r M --import M` does before the file runs. */
async function applyNodeOptions(options: readonly string[], ctx: CommandContext): Promise<void> {
  const require = createRequire(path.join(ctx.appDir, '__wsgid_command__.js'));
  for (let i = 0; i < options.length; i++) {
    const word = options[i]!;
    const eq = word.indexOf('=');
    const name = word.startsWith('--') && eq > 0 ? word.slice(0, eq) : word;
    const value = (): string => (word.startsWith('--') && eq > 0 ? word.slice(eq + 1) : options[++i] ?? '');
    if (name === '--env-file') {
      const file = path.resolve(ctx.appDir, value());
      try {
        process.loadEnvFile(file);
      } catch (error) {
        throw new AppLoadError(`${ctx.origin}: --env-file ${path.relative(ctx.appDir, file)}: ${(error as Error).message}`);
      }
    } else if (name === '-r' || name === '--require' || name === '--import') {
      const spec = value();
      let resolved: string;
      try {
        resolved = require.resolve(spec);
      } catch (error) {
        // wsgid runs TypeScript itself (./typescript.ts): a missing tsx/ts-node hook is not needed.
        if (/^(tsx|ts-node)(\/|$)/.test(spec)) continue;
        throw new AppLoadError(`${ctx.origin}: ${name} ${spec}: not installed where the app can load it (${(error as Error).message.split('\n')[0]})`);
      }
      if (name === '--import' || isEsm(resolved)) await import(pathToFileURL(resolved).href);
      else require(resolved);
    } else if (name === '--enable-source-maps') {
      process.setSourceMapsEnabled(true);
    } else {
      ctx.logger.debug('runner option not applied in-process', { option: word });
    }
  }
}

/** Run `file` as the main module, as `node file` would. */
async function runAsMain(file: string, logger: Logger, appPath: string): Promise<void> {
  if (needsTransform(file) || isEsm(file)) await importFile(file, logger, appPath);
  else loadCommonJsAsMain(file);
}

/** Apply the command's environment and argv, then load what it runs. */
export async function runCommand(command: StartCommand, ctx: CommandContext): Promise<LoadedApp> {
  const rel = (file: string): string => path.relative(ctx.appPath, file) || file;
  const dev = developmentServer(command);
  if (dev) {
    throw new AppLoadError(
      `${ctx.origin} \`${command.text}\` is a development server (${dev}); wsgid serves an app as in production: ` +
        'build it, then give the production command (e.g. `next build`, then `next start`) in the start script or with --command',
    );
  }

  let file: string | undefined;
  let argv1: string | undefined;
  if (command.runner) {
    file = resolveFile(ctx.appDir, command.file!, []);
    if (!file) throw new AppLoadError(`${ctx.origin} \`${command.text}\`: ${command.file} does not exist in ${ctx.appDir} (not built yet?)`);
  } else if (command.program.includes('/')) {
    file = resolveFile(ctx.appDir, command.program, []);
    if (!file || !isJavaScript(file)) throw new AppLoadError(`${ctx.origin} \`${command.text}\`: ${command.program} is not a JavaScript file in ${ctx.appDir}`);
  } else {
    const bin = resolveBin(ctx.appDir, command.program);
    file = bin?.file;
    argv1 = bin?.link;
    if (!file) {
      throw new AppLoadError(
        `${ctx.origin} \`${command.text}\`: "${command.program}" is not a JavaScript bin of app/node_modules/.bin ` +
          '(run `npm install` in app/, or give the command with --command)',
      );
    }
  }

  // The shell's `VAR=value cmd`: the assignment wins over the inherited environment.
  Object.assign(process.env, command.env);
  await applyNodeOptions(command.nodeOptions, ctx);
  process.argv = [process.execPath, argv1 ?? file, ...command.args];
  const origin = `${ctx.origin} \`${command.text}\``;

  if (argv1 === undefined && !isBin(file)) {
    // `node server.js`: the module's exports count as they do for any entry (./module.ts).
    return loadModuleApp(file, {
      exportName: ctx.forced?.exportName,
      kind: ctx.forced?.kind,
      relativeTo: ctx.appPath,
      listenWaitMs: ctx.listenWaitMs,
      origin: ctx.origin,
      logger: ctx.logger,
      asMain: true,
    });
  }

  // A framework's CLI: its exports are no app; the server it listens with is.
  const capture = startListenCapture();
  try {
    try {
      await runAsMain(file, ctx.logger, ctx.appPath);
    } catch (error) {
      throw new AppLoadError(`failed to run ${rel(file)} (${origin}): ${(error as Error)?.message ?? String(error)}`, [], { cause: error, file });
    }
    const wait = Math.max(ctx.listenWaitMs, COMMAND_LISTEN_WAIT_MS);
    const server = await capture.waitForServer(wait);
    if (!server) {
      throw new AppLoadError(
        `${origin} (${rel(file)}) started no HTTP server within ${wait} ms. wsgid serves the server a command listens with; ` +
          'a command that forks its server (e.g. `next dev`) or serves nothing cannot be served: give the production command with --command',
      );
    }
    return { kind: 'node', app: server.server, description: `${rel(file)} (server it started (listen ${server.requested}), http.Server; from ${origin})` };
  } finally {
    capture.stop();
  }
}

/**
 * Framework commands that run a development server: they watch the sources, write into the app
 * folder (`next dev` writes tsconfig.json and .next/) or fork the server they run (`nest start`),
 * so capturing their listen() serves nothing sensible.
 */
const DEV_SERVERS: Readonly<Record<string, { readonly subcommands: readonly string[]; readonly why: string }>> = {
  next: { subcommands: ['', 'dev'], why: 'it compiles on request and writes tsconfig.json and .next/ into app/' },
  nuxt: { subcommands: ['dev'], why: 'it compiles on request' },
  nuxi: { subcommands: ['dev'], why: 'it compiles on request' },
  vite: { subcommands: ['', 'dev', 'serve'], why: 'it compiles on request' },
  'react-router': { subcommands: ['dev'], why: 'it compiles on request' },
  astro: { subcommands: ['dev'], why: 'it compiles on request' },
  nest: { subcommands: ['start'], why: 'it compiles, then forks the server it runs' },
  'react-scripts': { subcommands: ['start'], why: 'it runs webpack-dev-server' },
};

/** Why the command is a development server, or undefined. */
export function developmentServer(command: Pick<StartCommand, 'program' | 'runner' | 'args'>): string | undefined {
  if (command.runner) return undefined;
  const known = DEV_SERVERS[command.program];
  const sub = command.args.find((arg) => !arg.startsWith('-')) ?? '';
  return known && known.subcommands.includes(sub) ? known.why : undefined;
}

/** The bin name a package gives `file` (`node_modules/next/dist/bin/next` → `next`), or undefined. */
export function binNameOf(file: string): string | undefined {
  if (!isBin(file)) return undefined;
  for (let dir = path.dirname(file); path.basename(dir) !== 'node_modules' && path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    let pkg: Record<string, unknown> | undefined;
    try {
      pkg = readPackageJson(dir);
    } catch {
      return undefined;
    }
    // The package's own package.json has a name (dist/esm/package.json files with only a type do not).
    if (typeof pkg?.['name'] !== 'string') continue;
    const bin = pkg['bin'];
    const name = (pkg['name'] as string).split('/').pop()!;
    const entries: Array<[string, unknown]> = typeof bin === 'string' ? [[name, bin]] : typeof bin === 'object' && bin !== null ? Object.entries(bin) : [];
    return entries.find(([, target]) => typeof target === 'string' && path.resolve(dir, target) === file)?.[0];
  }
  return undefined;
}

/** A file under node_modules (a package's bin, `node node_modules/next/dist/bin/next start`). */
function isBin(file: string): boolean {
  return file.split(path.sep).includes('node_modules');
}
