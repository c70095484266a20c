/**
 * Command-line parsing, generated from the option table (options.ts) with Node's util.parseArgs.
 * The command is the first positional (`wsgid stop --app-path=DIR`, also `wsgid --app-path=DIR stop`);
 * none means `start`.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';
import { closest } from './suggest.js';
import { warnDeprecated } from './deprecations.js';
import {
  COMMANDS,
  OPTION_LIST,
  POSITIONAL_COMMANDS,
  cliOptionsFor,
  isNegatable,
  parseValue,
  rawValue,
  type CommandName,
  type NamedOption,
  type OptionSpec,
  type OptionValues,
  type OptionType,
  type ValueOf,
} from './options.js';

type ParseOptions = NonNullable<ParseArgsConfig['options']>;

export interface ParsedArgs {
  /** A built-in command, or the name of a plugin command. */
  command: string;
  /** Values given on the command line only (no defaults, no wsgid.json). */
  values: Partial<OptionValues>;
  /** Positionals after the command name. */
  positionals: string[];
  help: boolean;
  version: boolean;
}

const GLOBAL_FLAGS: ParseOptions = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
};

/** The util.parseArgs `options` for a list of wsgid options (plus --help/--version). */
export function parseArgsOptions(options: readonly NamedOption[]): ParseOptions {
  const out: ParseOptions = { ...GLOBAL_FLAGS };
  for (const { spec } of options) {
    const multiple = spec.type === 'list' || spec.type === 'map';
    for (const flag of [spec.flag, ...(spec.deprecated ?? []).map((d) => d.flag)]) {
      out[flag] = { type: spec.type === 'bool' ? 'boolean' : 'string', multiple };
      if (isNegatable(spec)) out['no-' + flag] = { type: 'boolean' };
    }
  }
  return out;
}

export function isBuiltinCommand(name: string): name is CommandName {
  return (COMMANDS as readonly string[]).includes(name);
}

/** Find the command name: the first positional, found with a lenient pass over every known flag. */
function splitCommand(argv: readonly string[]): { command: string | undefined; rest: string[] } {
  const { tokens } = parseArgs({
    args: [...argv],
    options: parseArgsOptions(OPTION_LIST),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const first = tokens.find((t) => t.kind === 'positional');
  if (!first || first.kind !== 'positional') return { command: undefined, rest: [...argv] };
  const rest = [...argv];
  rest.splice(first.index, 1);
  return { command: first.value, rest };
}

/** Convert one raw command-line value to the option's type, or throw a UsageError naming the flag. */
export function convertCliValue(spec: OptionSpec, raw: string): ValueOf<OptionType> {
  const flag = '--' + spec.flag;
  switch (spec.type) {
    case 'int':
      if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`${flag}: expected an integer, got '${raw}'`);
      return Number(raw.trim());
    case 'map': {
      const eq = raw.indexOf('=');
      if (eq <= 0) throw new UsageError(`${flag}: expected KEY=VALUE, got '${raw}'`);
      return { [raw.slice(0, eq)]: raw.slice(eq + 1) };
    }
    case 'list':
      return [raw];
    case 'bool':
      throw new UsageError(`${flag} takes no value`);
    default:
      return raw;
  }
}

/** Attach a value to its option name (the table guarantees the kind matches the setting's type). */
export function assign(target: Partial<OptionValues>, name: NamedOption['name'], value: unknown): void {
  (target as Record<string, unknown>)[name] = value;
}

/** The setting's value of a command-line value (the option's check and parse); a UsageError "--flag: expected …" if refused. */
export function parseCliValue(spec: OptionSpec, raw: ValueOf<OptionType>): unknown {
  const parsed = parseValue(spec, raw);
  if ('problem' in parsed) throw new UsageError(`--${spec.flag}: ${parsed.problem}`);
  return parsed.value;
}

function commandForUsage(command: string): string {
  return command === 'start' ? 'wsgid' : `wsgid ${command}`;
}

function translateParseError(error: unknown, command: string, accepted: readonly NamedOption[]): never {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  const help = `(see ${commandForUsage(command)} --help)`;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /'([^']+)'/.exec(message)?.[1] ?? message;
    const bare = flag.replace(/^-+/, '').replace(/=.*$/, '');
    const known = OPTION_LIST.find((o) => [o.spec.flag, ...(o.spec.deprecated ?? []).map((d) => d.flag)].some((f) => f === bare || 'no-' + f === bare));
    if (known && !accepted.includes(known)) {
      const where = known.spec.commands.map((c) => commandForUsage(c)).join(', ');
      throw new UsageError(`--${bare} is not an option of \`${commandForUsage(command)}\` (it belongs to: ${where}) ${help}`);
    }
    if (known && known.spec.type === 'bool') throw new UsageError(`--${bare} takes no value ${help}`);
    const flags = ['help', 'version', ...accepted.flatMap(({ spec }) => (isNegatable(spec) ? [spec.flag, 'no-' + spec.flag] : [spec.flag]))];
    // A misspelled old flag (--keep-alve) gets the new one.
    const renamed = new Map<string, string>();
    for (const { spec } of accepted) {
      for (const { flag: old } of spec.deprecated ?? []) {
        renamed.set(old, spec.flag);
        if (isNegatable(spec)) renamed.set('no-' + old, 'no-' + spec.flag);
      }
    }
    const near = closest(bare, [...flags, ...renamed.keys()]);
    const suggestion = near === undefined ? undefined : (renamed.get(near) ?? near);
    throw new UsageError(`unknown option ${flag}${suggestion ? ` (did you mean --${suggestion}?)` : ''} ${help}`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const flag = /'(--[a-z0-9-]+)/.exec(message)?.[1];
    throw new UsageError(flag ? `${flag} needs a value ${help}` : `${message} ${help}`);
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    throw new UsageError(`unexpected argument ${/'([^']*)'/.exec(message)?.[0] ?? message} ${help}`);
  }
  throw error;
}

/** `wsgid help [COMMAND]`: the same as `wsgid COMMAND --help`. */
export const HELP_COMMAND = 'help';

function unknownCommand(command: string, extraCommands: readonly string[]): UsageError {
  const known = [...COMMANDS, ...extraCommands, HELP_COMMAND];
  const suggestion = closest(command, known);
  return new UsageError(
    `unknown command '${command}'${suggestion ? ` (did you mean '${suggestion}'?)` : ''} (commands: ${known.join(', ')}; see wsgid --help)`,
  );
}

function parseHelpCommand(rest: readonly string[], extraCommands: readonly string[]): ParsedArgs {
  const words = rest.filter((w) => !w.startsWith('-'));
  if (words.length > 1) throw new UsageError(`wsgid help takes one command name, got: ${words.join(' ')}`);
  const command = words[0] ?? 'start';
  if (!isBuiltinCommand(command) && !extraCommands.includes(command)) throw unknownCommand(command, extraCommands);
  return { command, values: {}, positionals: [], help: true, version: false };
}

/**
 * Parse a command line (without `node` and the script). Plugin commands (names in `extraCommands`)
 * accept the `start` options and any positionals.
 */
export function parseCommandLine(argv: readonly string[], extraCommands: readonly string[] = []): ParsedArgs {
  const { command: named, rest } = splitCommand(argv);
  if (named === HELP_COMMAND) return parseHelpCommand(rest, extraCommands);
  const command = named ?? 'start';
  const builtin = isBuiltinCommand(command);
  if (!builtin && !extraCommands.includes(command)) throw unknownCommand(command, extraCommands);
  const accepted = cliOptionsFor(builtin ? command : 'start');
  let tokens;
  try {
    tokens = parseArgs({
      args: rest,
      options: parseArgsOptions(accepted),
      strict: true,
      allowPositionals: !builtin || POSITIONAL_COMMANDS.includes(command),
      tokens: true,
    }).tokens;
  } catch (error) {
    translateParseError(error, command, accepted);
  }

  const byFlag = new Map<string, NamedOption>();
  for (const option of accepted) byFlag.set(option.spec.flag, option);
  // Old spellings: the same option, said once to be deprecated.
  const oldFlags = new Map<string, NamedOption>();
  for (const option of accepted) for (const { flag } of option.spec.deprecated ?? []) oldFlags.set(flag, option);

  const values: Partial<OptionValues> = {};
  const positionals: string[] = [];
  let help = false;
  let version = false;
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    let flagName = token.name;
    const bare = flagName.startsWith('no-') ? flagName.slice(3) : flagName;
    const renamed = oldFlags.get(bare);
    if (renamed !== undefined) {
      const prefix = bare === flagName ? '' : 'no-';
      warnDeprecated(`--${prefix}${bare} is deprecated: use --${prefix}${renamed.spec.flag}`);
      flagName = prefix + renamed.spec.flag;
    }
    if (flagName === 'help') help = true;
    else if (flagName === 'version') version = true;
    else if (byFlag.has(flagName)) {
      const { name, spec } = byFlag.get(flagName)!;
      if (spec.type === 'bool') {
        if (token.value !== undefined) throw new UsageError(`--${spec.flag} takes no value`);
        assign(values, name, true);
        continue;
      }
      const raw = token.value ?? '';
      const value = convertCliValue(spec, raw);
      const previous = values[name];
      if (spec.type === 'list') assign(values, name, [...((previous as string[] | undefined) ?? []), ...(value as string[])]);
      else if (spec.type === 'map') assign(values, name, { ...((previous as Record<string, string> | undefined) ?? {}), ...(value as Record<string, string>) });
      else assign(values, name, value);
    } else if (flagName.startsWith('no-') && byFlag.has(flagName.slice(3))) {
      const { name } = byFlag.get(flagName.slice(3))!;
      assign(values, name, false);
    }
  }
  for (const { name, spec } of accepted) {
    const value = values[name];
    if (value !== undefined) assign(values, name, parseCliValue(spec, value as ValueOf<OptionType>));
  }
  return { command, values, positionals, help, version };
}

/**
 * The command-line flags that give `values` (the inverse of parseCommandLine, in the option
 * table's order): `--flag=value`, repeated `--flag=item` for lists, `--env=KEY=VALUE` for maps,
 * `--flag` / `--no-flag` for booleans (a false non-negatable boolean is the default: nothing).
 */
export function cliArgsOf(values: Partial<OptionValues>): string[] {
  const args: string[] = [];
  for (const { name, spec } of OPTION_LIST) {
    const given = values[name];
    if (given === undefined) continue;
    const value = rawValue(spec, given);
    switch (spec.type) {
      case 'bool':
        if (value === true) args.push(`--${spec.flag}`);
        else if (isNegatable(spec)) args.push(`--no-${spec.flag}`);
        break;
      case 'list':
        for (const item of value as string[]) args.push(`--${spec.flag}=${item}`);
        break;
      case 'map':
        for (const [key, item] of Object.entries(value as Record<string, string>)) args.push(`--${spec.flag}=${key}=${item}`);
        break;
      default:
        args.push(`--${spec.flag}=${String(value)}`);
    }
  }
  return args;
}
