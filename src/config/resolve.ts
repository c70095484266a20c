/**
 * Resolve the final Settings: command line over wsgid.json over defaults (the original wsgid let
 * wsgid.json override the command line; we don't: what you type wins). Lists given on the command
 * line replace the saved list; `envs` maps are merged key by key (command line wins per key).
 * Relative folders are resolved against the current directory (command line) or the app folder
 * (wsgid.json).
 */
import path from 'node:path';
import { UsageError } from '../errors.js';
import { readConfigFile } from './file.js';
import { OPTION_LIST, defaultOf, type CommandValues, type OptionValues, type OptionName } from './options.js';
import type { Settings } from './settings.js';

/** Option names that are not Settings (they only steer one command). */
const COMMAND_VALUE_NAMES: readonly (keyof CommandValues)[] = ['sendSignal', 'json'];

export interface Resolved {
  settings: Settings;
  commandValues: CommandValues;
  /** The wsgid.json that was read, if any. */
  configFile?: string;
}

export interface ResolveOptions {
  /** Read DIR/wsgid.json (start, config and plugin commands do; stop/status/init don't need it). */
  readFile?: boolean;
  /** Require at least one --recv/--send pair (start). */
  requireEndpoints?: boolean;
  /** Base for relative command-line paths (default: process.cwd()). */
  cwd?: string;
}

function resolveFolders(values: Partial<OptionValues>, base: string): Partial<OptionValues> {
  const out = { ...values };
  if (out.loaderDir) out.loaderDir = out.loaderDir.map((d) => path.resolve(base, d));
  if (out.mongrel2Chroot) out.mongrel2Chroot = path.resolve(base, out.mongrel2Chroot);
  return out;
}

/** Merge the layers into complete values: cli over file over defaults. */
export function mergeValues(cli: Partial<OptionValues>, file: Partial<OptionValues>): OptionValues {
  const out: Record<string, unknown> = {};
  for (const { name, spec } of OPTION_LIST) {
    const layers = [defaultOf(spec), file[name], cli[name]];
    if (spec.type === 'map') {
      out[name] = Object.assign({}, ...layers.filter((l) => l !== undefined));
    } else {
      out[name] = layers.reduce((acc, layer) => (layer === undefined ? acc : layer), undefined as unknown);
    }
  }
  return out as unknown as OptionValues;
}

/** Split complete values into Settings and command-only values. */
export function splitValues(values: OptionValues): { settings: Settings; commandValues: CommandValues } {
  const settings: Record<string, unknown> = {};
  for (const { name } of OPTION_LIST) {
    if (!(COMMAND_VALUE_NAMES as readonly OptionName[]).includes(name) && values[name] !== undefined) {
      settings[name] = values[name];
    }
  }
  return {
    settings: settings as unknown as Settings,
    commandValues: { sendSignal: values.sendSignal, json: values.json },
  };
}

/** Checks across options (the per-option checks ran when each layer was parsed). */
export function checkSettings(settings: Settings, requireEndpoints: boolean): void {
  const { recv, send } = settings;
  if (recv.length !== send.length) {
    throw new UsageError(
      `--recv and --send pair by position: got ${recv.length} --recv and ${send.length} --send ` +
        `(give one --send for each mongrel2 server's --recv)`,
    );
  }
  if (requireEndpoints && recv.length === 0) {
    throw new UsageError(
      'no mongrel2 endpoints: give --recv=ENDPOINT --send=ENDPOINT (e.g. --recv=tcp://127.0.0.1:9997 ' +
        '--send=tcp://127.0.0.1:9996), or save them once with `wsgid config`',
    );
  }
}

/** Resolve the command-line values of a command into Settings. */
export function resolveSettings(cli: Partial<OptionValues>, options: ResolveOptions = {}): Resolved {
  const cwd = options.cwd ?? process.cwd();
  const cliValues = resolveFolders(cli, cwd);
  const appPath = path.resolve(cwd, cliValues.appPath ?? '.');
  cliValues.appPath = appPath;
  const file = options.readFile ? readConfigFile(appPath) : undefined;
  const fileValues = file ? resolveFolders(file.values, appPath) : {};
  const { settings, commandValues } = splitValues(mergeValues(cliValues, fileValues));
  checkSettings(settings, options.requireEndpoints ?? false);
  return { settings, commandValues, configFile: file?.path };
}
