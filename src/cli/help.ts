/**
 * `--help` text and the Markdown CLI reference, both generated from the option table
 * (config/options.ts) and the command table (cli/commands.ts). `npm run docs` prints the Markdown.
 */
import { EXIT } from '../errors.js';
import {
  COMMANDS,
  OPTION_LIST,
  SECTIONS,
  cliOptionsFor,
  isNegatable,
  jsonKey,
  rawValue,
  type CommandName,
  type NamedOption,
  type OptionSpec,
  type Section,
} from '../config/options.js';
import { BUILTIN_COMMANDS, pluginCommands } from './commands.js';

/** The widest line of --help and docs/CLI.md. */
export const WIDTH = 100;
const HELP_DESCRIPTION = 'wsgid help COMMAND: the usage and options of a command (as wsgid COMMAND --help).';

/** Words of `text` in lines of at most `width` columns (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (word === '') continue;
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? line + ' ' + word : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** `prefix` then `text` wrapped at WIDTH, the lines after the first indented as far as `prefix`. */
function hanging(prefix: string, text: string): string[] {
  const indent = ' '.repeat(prefix.length);
  return wrap(text, WIDTH - prefix.length).map((line, i) => (i === 0 ? prefix : indent) + line);
}

function flagName(spec: OptionSpec, flag: string): string {
  return isNegatable(spec) ? `--[no-]${flag}` : `--${flag}`;
}

function flagForm(spec: OptionSpec): string {
  const name = flagName(spec, spec.flag);
  return spec.type === 'bool' ? name : `${name}=${spec.metavar ?? 'VALUE'}`;
}

function defaultText(spec: OptionSpec): string | undefined {
  if (spec.defaultLabel) return spec.defaultLabel;
  const d = spec.default;
  if (d === undefined || typeof d === 'function') return undefined;
  const raw = rawValue(spec, d);
  if (Array.isArray(raw)) return raw.length ? raw.join(', ') : undefined;
  if (typeof raw === 'object') return Object.keys(raw).length ? JSON.stringify(raw) : undefined;
  if (raw === '' || raw === false) return undefined;
  return String(raw);
}

/** The old spellings of an option, for help and docs. */
function deprecatedText(spec: OptionSpec): string | undefined {
  const old = [
    ...(spec.deprecated ?? []).flatMap((d) => [flagName(spec, d.flag), ...(d.key !== undefined ? [`wsgid.json ${d.key}`] : [])]),
    ...(spec.envAliases ?? []),
  ];
  return old.length ? old.join(', ') : undefined;
}

function notes(spec: OptionSpec): string {
  const parts: string[] = [];
  const d = defaultText(spec);
  if (d !== undefined) parts.push(`default: ${d}`);
  if (spec.type === 'list' || spec.type === 'map') parts.push('repeatable');
  if ((spec.where ?? 'both') !== 'cli') parts.push(`wsgid.json: ${jsonKey(spec)}`);
  if (spec.env !== undefined) parts.push(`environment: ${spec.env}`);
  const old = deprecatedText(spec);
  if (old !== undefined) parts.push(`deprecated: ${old}`);
  return parts.length ? `[${parts.join('; ')}]` : '';
}

/** Options grouped by section, in the sections' order (declaration order within one). */
function bySection(options: readonly NamedOption[]): Array<[Section, NamedOption[]]> {
  return (Object.keys(SECTIONS) as Section[])
    .map((section): [Section, NamedOption[]] => [section, options.filter((o) => o.spec.section === section)])
    .filter(([, list]) => list.length > 0);
}

function renderOptions(options: readonly NamedOption[]): string[] {
  const lines: string[] = [];
  const col = 30;
  for (const [section, list] of bySection(options)) {
    lines.push('', `${SECTIONS[section]}:`);
    for (const { spec } of list) {
      const left = '  ' + flagForm(spec);
      // The notes (default, key, variable) start a line of their own: easier to find.
      const body = [...wrap(spec.help, WIDTH - col), ...wrap(notes(spec), WIDTH - col)];
      if (left.length >= col - 1) {
        lines.push(left);
        for (const l of body) lines.push(' '.repeat(col) + l);
      } else {
        lines.push(left.padEnd(col) + body[0]);
        for (const l of body.slice(1)) lines.push(' '.repeat(col) + l);
      }
    }
  }
  lines.push('', 'General:');
  lines.push('  -h, --help'.padEnd(col) + 'Show this help.');
  lines.push('  -V, --version'.padEnd(col) + 'Print the wsgid version.');
  return lines;
}

function exitCodeLines(): string[] {
  return [
    `Exit codes: ${EXIT.OK} ok (status: running), ${EXIT.FAILURE} failed, ${EXIT.USAGE} bad usage or configuration,`,
    `  ${EXIT.NOT_RUNNING} not running (start: the workers could not boot), ${EXIT.APP_LOAD} the app failed to load.`,
    `  status: ${EXIT.FAILURE} when workers are crash-looping. restart: ${EXIT.FAILURE} or ${EXIT.APP_LOAD} when the new workers`,
    `  failed, ${EXIT.USAGE} when wsgid.json is invalid (the running workers keep serving).`,
  ];
}

/** `wsgid --help` (command undefined or 'start') or `wsgid <command> --help`. */
export function renderHelp(command?: string): string {
  const out: string[] = [];
  if (command === undefined || command === 'start') {
    out.push('Usage: wsgid [start] [options]', '       wsgid <command> [options]', '');
    out.push('Run web applications (fetch, Node, Python WSGI and ASGI) as true unix daemons behind mongrel2.', '');
    out.push('Commands:');
    const names = [...COMMANDS, ...pluginCommands().keys(), 'help'];
    const pad = Math.max(...names.map((n) => n.length)) + 2;
    const commandLine = (name: string, description: string): string[] => hanging(`  ${name.padEnd(pad)}`, description);
    for (const name of COMMANDS) out.push(...commandLine(name, BUILTIN_COMMANDS[name].description));
    for (const [name, def] of pluginCommands()) out.push(...commandLine(name, def.description));
    out.push(...commandLine('help', HELP_DESCRIPTION));
    out.push('', 'Options (start; `wsgid config` saves the same options to wsgid.json):');
    out.push(...renderOptions(cliOptionsFor('start')));
    out.push('', ...wrap('Precedence: command line over environment (where an option has a variable) over wsgid.json over defaults.', WIDTH), ...exitCodeLines());
    out.push('', 'Run `wsgid <command> --help` for the options of a command.');
    return out.join('\n') + '\n';
  }
  const builtin = (COMMANDS as readonly string[]).includes(command) ? BUILTIN_COMMANDS[command as CommandName] : undefined;
  const plugin = pluginCommands().get(command);
  const usage = builtin?.usage ?? plugin?.usage ?? `wsgid ${command} [options]`;
  out.push(...hanging('Usage: ', usage), '');
  out.push(...wrap(builtin?.description ?? plugin?.description ?? '', WIDTH));
  if (builtin?.details) out.push('', ...wrap(builtin.details, WIDTH));
  out.push('', 'Options:');
  out.push(...renderOptions(cliOptionsFor(builtin ? (command as CommandName) : 'start')));
  out.push('', ...exitCodeLines());
  return out.join('\n') + '\n';
}

/** A Markdown list item: `- ` then `text` wrapped at WIDTH, continued two columns in. */
function mdItem(text: string): string[] {
  return hanging('- ', text);
}

/** The CLI reference in Markdown (commands, options by section, exit codes), for docs/CLI.md. */
export function renderOptionsMarkdown(): string {
  const out: string[] = [];
  out.push('<!-- Generated by `npm run docs` (src/config/options.ts, src/cli/commands.ts). Do not edit. -->', '');
  out.push('### Commands', '');
  for (const name of COMMANDS) {
    const c = BUILTIN_COMMANDS[name];
    out.push(`#### \`${name}\``, '', ...wrap(`\`${c.usage}\``, WIDTH), '', ...wrap(c.details ? `${c.description} ${c.details}` : c.description, WIDTH), '');
  }
  out.push('#### `help`', '', '`wsgid help [COMMAND]`', '', ...wrap(`${HELP_DESCRIPTION} A mistyped command or option gets a "did you mean".`, WIDTH), '');
  out.push('### Options', '');
  out.push(
    ...wrap(
      'Precedence: command line over the environment (for the options that name a variable) over `wsgid.json` over defaults. ' +
        '`wsgid.json` keys are the flag names without `--`, with `-` replaced by `_` (`--app-path` ↔ `app_path`), except `--env` ↔ `envs`.',
      WIDTH,
    ),
    '',
  );
  const fixed = OPTION_LIST.filter((o) => o.spec.commands.includes('start') && !o.spec.reloadable).map((o) => `\`--${o.spec.flag}\``);
  out.push(
    ...wrap(
      '`wsgid restart` (HUP) reads `wsgid.json` and the command line again: a change to any `start` option takes effect through the ' +
        `rolling reload, except ${fixed.join(', ')}, which need a full restart (stop, then start; the reload names them).`,
      WIDTH,
    ),
    '',
  );
  out.push(
    ...wrap(
      'Each option below: its flag, then its kind, default, `wsgid.json` key, environment variable, the commands that take it ' +
        'and old spellings still accepted (with a warning).',
      WIDTH,
    ),
  );
  for (const [section, list] of bySection(OPTION_LIST)) {
    out.push('', `#### ${SECTIONS[section]}`, '');
    for (const { spec } of list) {
      const type = spec.type === 'list' ? 'list (repeatable)' : spec.type === 'map' ? 'map (repeatable KEY=VALUE)' : spec.type;
      const facts = [type];
      const d = defaultText(spec);
      if (d !== undefined) facts.push(`default: ${d}`);
      if ((spec.where ?? 'both') !== 'cli') facts.push(`wsgid.json: \`${jsonKey(spec)}\``);
      if (spec.env !== undefined) facts.push(`environment: \`${spec.env}\``);
      facts.push(`commands: ${spec.commands.join(', ')}`);
      const old = deprecatedText(spec);
      if (old !== undefined) facts.push(`deprecated: ${old}`);
      const flag = (spec.where ?? 'both') === 'file' ? `\`${jsonKey(spec)}\`` : `\`${flagForm(spec)}\``;
      out.push(...mdItem(`${flag} (${facts.join('; ')}): ${spec.help}`));
    }
  }
  out.push('', '### Exit codes', '');
  out.push(
    ...mdItem(`\`${EXIT.OK}\`: success; \`status\`: running; \`restart\`: the new workers serve`),
    ...mdItem(`\`${EXIT.FAILURE}\`: failed: the app could not start, stop timed out, a signal could not be sent, \`restart\`: the new workers could not boot (the old ones keep serving); \`status\`: running but crash-looping`),
    ...mdItem(`\`${EXIT.USAGE}\`: bad usage or configuration: unknown option, bad value, bad wsgid.json (also when \`restart\` re-reads it: the running configuration is kept), missing app folder, or (\`stop\`, \`restart\`, \`status\`, \`reopen-logs\`) a folder that is not an app folder (no pid/, logs/ or wsgid.json)`),
    ...mdItem(`\`${EXIT.NOT_RUNNING}\`: not running (\`status\`, \`restart\`, \`reload\`); for \`start\`: the workers could not boot`),
    ...mdItem(`\`${EXIT.APP_LOAD}\`: \`start\`: the app failed to load; \`restart\`: the new code fails to load (the old workers keep serving)`),
  );
  return out.join('\n') + '\n';
}
