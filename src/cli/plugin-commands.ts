/**
 * ICommand plugins → `wsgid <command>` subcommands, through the CLI's `registerCommand`.
 *
 * Plugin commands live in the app folder, so they can only be known once the app folder is:
 * the CLI calls `registerPluginCommands(argv)` before parsing its command line. It looks for
 * `--app-path` (and `--loader-dir`) in argv, reads `loader_dir` from `<app-path>/wsgid.json` too,
 * imports the plugins and registers each command. Without `--app-path` it does nothing (so
 * `wsgid --help` stays fast and never runs app code). A clash with a built-in command name is
 * logged and skipped. As root in a folder owned by another user, none are loaded (docs/SECURITY.md).
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { registerCommand, getPluginCommand } from './commands.js';
import { dropTarget } from '../app-folder/privileges.js';
import { readConfigFile } from '../config/file.js';
import type { Settings } from '../config/settings.js';
import { createLogger, type Logger } from '../log/logger.js';
import { loadPlugins } from '../plugins/discover.js';
import type { CommandPlugin } from '../plugins/types.js';

/** `--name=value` and `--name value` occurrences in argv. */
export function flagValues(argv: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') break;
    if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
    else if (arg === `--${name}` && i + 1 < argv.length) values.push(argv[++i]!);
  }
  return values;
}

/** Register the command plugins of the app folder named in argv. Returns the names registered. */
export async function registerPluginCommands(argv: readonly string[], logger: Logger = createLogger({ fd: 2 }, 'warn', 'wsgid')): Promise<string[]> {
  const appPathArg = flagValues(argv, 'app-path').pop();
  if (!appPathArg) return [];
  const appPath = path.resolve(appPathArg);
  // Plugin code runs in this process. As root, in a folder another user owns (who can put any file
  // in plugins/ or point wsgid.json's loader_dir anywhere), that would run that user's code as root.
  const owner = folderOwnerIfDropping(appPath);
  if (owner !== undefined) {
    if (hasEntries(path.join(appPath, 'plugins'))) {
      logger.warn(`not loading plugins as root from a folder owned by uid ${owner}: run plugin commands as that user`);
    }
    return [];
  }
  let loaderDir = flagValues(argv, 'loader-dir');
  if (!loaderDir.length) {
    try {
      loaderDir = readConfigFile(appPath)?.values.loaderDir ?? [];
    } catch {
      loaderDir = []; // the command itself will report a broken wsgid.json
    }
  }
  const plugins = await loadPlugins({ appPath, loaderDir }, logger);
  return registerCommandPlugins(plugins.commands, logger);
}

/** The app folder owner's uid when we are root and it is not (workers would drop to it). */
function folderOwnerIfDropping(appPath: string): number | undefined {
  try {
    return dropTarget(appPath)?.uid;
  } catch {
    return undefined; // no such folder: the command reports it
  }
}

function hasEntries(folder: string): boolean {
  try {
    return readdirSync(folder).length > 0;
  } catch {
    return false;
  }
}

/** Register already loaded command plugins (idempotent per plugin object). */
export function registerCommandPlugins(commands: readonly (CommandPlugin & { readonly file?: string })[], logger: Logger): string[] {
  const names: string[] = [];
  for (const plugin of commands) {
    if (getPluginCommand(plugin.command)) continue;
    try {
      registerCommand(plugin.command, {
        description: plugin.description,
        usage: `wsgid ${plugin.command} --app-path=DIR [options]`,
        run: (args: string[], settings: Settings) => plugin.run(args, { settings, logger }),
      });
      names.push(plugin.command);
    } catch (error) {
      logger.warn('plugin command not registered', { command: plugin.command, file: plugin.file, error: (error as Error).message });
    }
  }
  return names;
}
