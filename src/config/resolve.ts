/**
 * Resolve the final Settings: command line over the environment (options that declare a variable)
 * over wsgid.json over defaults (the original wsgid let
 * wsgid.json override the command line; we don't: what you type wins). Lists given on the command
 * line replace the saved list; `envs` maps are merged key by key (command line wins per key).
 * Relative folders are resolved against the current directory (command line) or the app folder
 * (wsgid.json).
 */
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { formatHostPort, isLoopback } from './address.js';
import { UsageError } from '../errors.js';
import { readConfigFile } from './file.js';
import { COMMAND_VALUE_NAMES, OPTION_LIST, defaultOf, parseValue, rawValue, type CommandValues, type OptionSpec, type OptionType, type OptionValues, type OptionName, type ValueOf } from './options.js';
import type { Settings } from './settings.js';

export interface Resolved {
  settings: Settings;
  commandValues: CommandValues;
  /** The wsgid.json that was read, if any. */
  configFile?: string;
  /**
   * wsgid.json values that do not apply because the command line or the environment gives the
   * option too, e.g. `--workers=2 (wsgid.json: 1)`: a reload names them (the command line wins).
   */
  overridden: string[];
}

export interface ResolveOptions {
  /** Read DIR/wsgid.json (start, config and plugin commands do; stop/status/init don't need it). */
  readFile?: boolean;
  /** Require at least one --recv/--send pair (start). */
  requireEndpoints?: boolean;
  /** Base for relative command-line paths (default: process.cwd()). */
  cwd?: string;
}

/** Relative folders of command-line values made absolute against `base` (the current directory). */
export function resolveFolders(values: Partial<OptionValues>, base: string): Partial<OptionValues> {
  const out = { ...values };
  if (out.loaderDir) out.loaderDir = out.loaderDir.map((d) => path.resolve(base, d));
  if (out.mongrel2Chroot) out.mongrel2Chroot = path.resolve(base, out.mongrel2Chroot);
  return out;
}

/** The variable that gives an option in `env`: its own name, else an old one (OptionSpec.envAliases). */
function envVariableOf(spec: OptionSpec, env: NodeJS.ProcessEnv): string | undefined {
  for (const variable of spec.env === undefined ? [] : [spec.env, ...(spec.envAliases ?? [])]) {
    const raw = env[variable];
    if (raw !== undefined && raw !== '') return variable;
  }
  return undefined;
}

/** The options set through their environment variable (OptionSpec.env). */
export function envValues(env: NodeJS.ProcessEnv = process.env): Partial<OptionValues> {
  const out: Record<string, unknown> = {};
  for (const { name, spec } of OPTION_LIST) {
    const variable = envVariableOf(spec, env);
    if (variable === undefined) continue;
    const raw = env[variable]!;
    let value: unknown;
    if (spec.type === 'bool') {
      if (/^(1|true|yes)$/i.test(raw)) value = true;
      else if (/^(0|false|no)$/i.test(raw)) value = false;
      else throw new UsageError(`${variable}: expected 1/0, true/false or yes/no, got '${raw}'`);
    } else if (spec.type === 'int') {
      if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`${variable}: expected an integer, got '${raw}'`);
      value = Number(raw.trim());
    } else if (spec.type === 'string') {
      value = raw;
    } else {
      continue; // lists and maps have no environment form
    }
    const parsed = parseValue(spec, value as ValueOf<OptionType>);
    if ('problem' in parsed) throw new UsageError(`${variable}: ${parsed.problem}`);
    out[name] = parsed.value;
  }
  return out as Partial<OptionValues>;
}

/** The option variables set in `env` (name and raw text), e.g. to write them into a service unit. */
export function givenEnvVariables(env: NodeJS.ProcessEnv = process.env): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const { spec } of OPTION_LIST) {
    const variable = envVariableOf(spec, env);
    if (variable !== undefined) out.push([variable, env[variable]!]);
  }
  return out;
}

/** Merge the layers into complete values: cli over environment over file over defaults. */
export function mergeValues(cli: Partial<OptionValues>, file: Partial<OptionValues>, env: Partial<OptionValues> = {}): OptionValues {
  const out: Record<string, unknown> = {};
  for (const { name, spec } of OPTION_LIST) {
    const layers = [defaultOf(spec), file[name], env[name], cli[name]];
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
    commandValues: { sendSignal: values.sendSignal, json: values.json, noWait: values.noWait, watch: values.watch, count: values.count, after: values.after, mongrel2: values.mongrel2, port: values.port, host: values.host, mongrel2Db: values.mongrel2Db },
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
  if (settings.metrics !== undefined) {
    if (!isLoopback(settings.metrics.host) && !settings.metricsExpose) {
      throw new UsageError(
        `--metrics=${formatHostPort(settings.metrics)} is not a loopback address: the metrics have no authentication; ` +
          'use 127.0.0.1:PORT (and a proxy or SSH tunnel), or add --metrics-expose if the network is private',
      );
    }
  }
  if (requireEndpoints && recv.length === 0) {
    throw new UsageError(
      'no mongrel2 endpoints: give --recv=ENDPOINT --send=ENDPOINT (e.g. --recv=tcp://127.0.0.1:9997 ' +
        '--send=tcp://127.0.0.1:9996), or save them once with `wsgid config`',
    );
  }
}

function shown(spec: OptionSpec, value: unknown): string {
  const raw = rawValue(spec, value);
  return typeof raw === 'string' ? raw : JSON.stringify(raw);
}

/** The wsgid.json values a higher layer (command line, environment) overrides with another value. */
export function overriddenFileValues(cli: Partial<OptionValues>, file: Partial<OptionValues>, env: Partial<OptionValues>): string[] {
  const out: string[] = [];
  for (const { name, spec } of OPTION_LIST) {
    const saved = file[name];
    if (saved === undefined || spec.type === 'map') continue; // maps merge key by key: nothing is lost
    for (const [layer, where] of [[cli[name], `--${spec.flag}`], [env[name], envVariableOf(spec, process.env) ?? spec.env]] as const) {
      if (layer === undefined || where === undefined) continue;
      if (!isDeepStrictEqual(layer, saved)) out.push(`${where}=${shown(spec, layer)} (wsgid.json: ${shown(spec, saved)})`);
      break; // the command line hides the environment
    }
  }
  return out;
}

/** Resolve the command-line values of a command into Settings. */
export function resolveSettings(cli: Partial<OptionValues>, options: ResolveOptions = {}): Resolved {
  const cwd = options.cwd ?? process.cwd();
  const cliValues = resolveFolders(cli, cwd);
  const appPath = path.resolve(cwd, cliValues.appPath ?? '.');
  cliValues.appPath = appPath;
  const file = options.readFile ? readConfigFile(appPath) : undefined;
  const fileValues = file ? resolveFolders(file.values, appPath) : {};
  const env = envValues();
  const { settings, commandValues } = splitValues(mergeValues(cliValues, fileValues, env));
  checkSettings(settings, options.requireEndpoints ?? false);
  // appPath is always on the command line (resolved above); the file cannot set it anyway.
  const overridden = overriddenFileValues({ ...cliValues, appPath: undefined }, fileValues, env);
  return { settings, commandValues, configFile: file?.path, overridden };
}
