/**
 * wsgid.json: the app folder's saved options, validated against the option table (options.ts).
 * Keys are the flags with `-` → `_` (`app_path` style, as the original); `envs` is a string map.
 * Unknown keys, wrong types and broken JSON are refused with the file name, the key and what was
 * expected. For compatibility with the original, a list option also accepts a single string.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { replaceFileAt, withAnchoredDir } from '../fs/anchored.js';
import { assign } from './args.js';
import { ConfigFileError, WsgidError } from '../errors.js';
import { outOfFdsMessage } from '../fs/fd-limit.js';
import { warnDeprecated } from './deprecations.js';
import { fileOptions, jsonKey, parseValue, rawValue, type NamedOption, type OptionSpec, type OptionType, type OptionValues, type ValueOf } from './options.js';

export const CONFIG_FILE_NAME = 'wsgid.json';

export function configFilePath(appPath: string): string {
  return path.join(appPath, CONFIG_FILE_NAME);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

const EXPECTED: Record<OptionType, string> = {
  string: 'a string',
  int: 'an integer',
  bool: 'true or false',
  list: 'an array of strings',
  map: 'an object of string values',
};

type Converted = { ok: true; value: ValueOf<OptionType> } | { ok: false; problem: string };

/** Convert one JSON value to the option's type, or say what was expected. */
function convertJsonValue(spec: OptionSpec, value: unknown): Converted {
  const ok = (v: ValueOf<OptionType>): Converted => ({ ok: true, value: v });
  const bad: Converted = { ok: false, problem: `expected ${EXPECTED[spec.type]}, got ${describe(value)}` };
  switch (spec.type) {
    case 'string':
      return typeof value === 'string' ? ok(value) : bad;
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) ? ok(value) : bad;
    case 'bool':
      return typeof value === 'boolean' ? ok(value) : bad;
    case 'list':
      if (typeof value === 'string') return ok([value]);
      return Array.isArray(value) && value.every((v) => typeof v === 'string') ? ok([...(value as string[])]) : bad;
    case 'map': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return bad;
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') return { ok: false, problem: `expected ${EXPECTED.map}, got ${describe(v)} for "${k}"` };
        out[k] = v;
      }
      return ok(out);
    }
  }
}

/** Levenshtein distance, for "did you mean" on misspelled keys. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

function byKey(): Map<string, NamedOption> {
  const map = new Map<string, NamedOption>();
  for (const option of fileOptions()) map.set(jsonKey(option.spec), option);
  return map;
}

/** The options' old keys (OptionSpec.deprecated), still read. */
function byOldKey(): Map<string, NamedOption> {
  const map = new Map<string, NamedOption>();
  for (const option of fileOptions()) for (const { key } of option.spec.deprecated ?? []) if (key !== undefined) map.set(key, option);
  return map;
}

/** Validate a parsed wsgid.json object. `file` is only used in messages. */
export function validateConfigObject(raw: unknown, file: string): Partial<OptionValues> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigFileError(file, undefined, `expected a JSON object, got ${describe(raw)}`);
  }
  const known = byKey();
  const old = byOldKey();
  const values: Partial<OptionValues> = {};
  for (const [key, value] of Object.entries(raw)) {
    const renamed = old.get(key);
    if (renamed !== undefined) {
      const current = jsonKey(renamed.spec);
      if (current in raw) throw new ConfigFileError(file, key, `the old name of "${current}", which is given too: keep "${current}"`);
      warnDeprecated(`${file}: key "${key}" is deprecated: use "${current}"`);
    }
    const option = known.get(key) ?? renamed;
    if (!option) {
      const wanted = key.replace(/-/g, '_').toLowerCase();
      const near = [...known.keys()].find((k) => k === wanted || editDistance(k, wanted) <= 2);
      const hint = near ? ` (did you mean "${near}"?)` : ` (known keys: ${[...known.keys()].join(', ')})`;
      throw new ConfigFileError(file, key, `unknown key${hint}`);
    }
    const converted = convertJsonValue(option.spec, value);
    if (!converted.ok) throw new ConfigFileError(file, key, converted.problem);
    const parsed = parseValue(option.spec, converted.value);
    if ('problem' in parsed) throw new ConfigFileError(file, key, parsed.problem);
    assign(values, option.name, parsed.value);
  }
  return values;
}

/** Read the raw JSON object of wsgid.json; undefined when the file does not exist. */
/**
 * The file's text, if it is a regular file: the app's user owns it and we may be root, so a
 * symlink (to a file whose start would then show in an error message) or a fifo (which would hang
 * every command) is refused.
 */
function readRegularFile(file: string): string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

function readRaw(file: string): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readRegularFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // Not the file's fault: the process is out of descriptors (a HUP then is no "invalid config").
    if (code === 'EMFILE' || code === 'ENFILE') throw new WsgidError(outOfFdsMessage(`cannot read ${file}`, error), 'WSGID_ERR_RESOURCES');
    throw new ConfigFileError(file, undefined, `cannot read: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigFileError(file, undefined, `not valid JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigFileError(file, undefined, `expected a JSON object, got ${describe(raw)}`);
  }
  return raw as Record<string, unknown>;
}

export interface ConfigFile {
  path: string;
  values: Partial<OptionValues>;
}

/** Read and validate DIR/wsgid.json; undefined when there is none. */
export function readConfigFile(appPath: string): ConfigFile | undefined {
  const file = configFilePath(appPath);
  const raw = readRaw(file);
  if (raw === undefined) return undefined;
  return { path: file, values: validateConfigObject(raw, file) };
}

/** The JSON form of option values, keyed and ordered as the table, only options allowed in files. */
export function toJsonObject(values: Partial<OptionValues>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { name, spec } of fileOptions()) {
    const value = values[name];
    if (value !== undefined) out[jsonKey(spec)] = rawValue(spec, value);
  }
  return out;
}

/**
 * Merge `values` into DIR/wsgid.json (given keys replace saved ones; `envs` is merged key by key),
 * validate the result and write it atomically. Returns the file path and what it now holds.
 */
export function writeConfigFile(appPath: string, values: Partial<OptionValues>): ConfigFile {
  const file = configFilePath(appPath);
  const existing = readConfigFile(appPath)?.values ?? {};
  const merged: Partial<OptionValues> = { ...existing, ...values };
  if (existing.envs && values.envs) merged.envs = { ...existing.envs, ...values.envs };
  const json = toJsonObject(merged);
  validateConfigObject(json, file);
  // `wsgid config` may run as root in a folder the app's user can write: random temp name, no symlink.
  withAnchoredDir(path.dirname(file), [], (dir) => replaceFileAt(dir, path.basename(file), JSON.stringify(json, null, 2) + '\n', 0o644));
  return { path: file, values: merged };
}
