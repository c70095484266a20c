/**
 * `--help` text and the Markdown CLI reference, both generated from the option table
 * (config/options.ts) and the command table (cli/commands.ts). `npm run docs` prints the Markdown.
 */
import { EXIT } from '../errors.js';
import { COMMANDS, OPTION_LIST, cliOptionsFor, isNegatable, jsonKey, type CommandName, type NamedOption, type OptionSpec } from '../config/options.js';
import { BUILTIN_COMMANDS, pluginCommands } from './commands.js';

const WIDTH = 80;
const HELP_DESCRIPTION = 'wsgid help COMMAND: the usage and options of a command (as wsgid COMMAND --help).';

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? line + ' ' + word : word;
  }
  if (line) lines.push(line);
  return lines;
}

function flagForm(spec: OptionSpec): string {
  const name = isNegatable(spec) ? `--[no-]${spec.flag}` : `--${spec.flag}`;
  return spec.type === 'bool' ? name : `${name}=${spec.metavar ?? 'VALUE'}`;
}

function defaultText(spec: OptionSpec): string | undefined {
  if (spec.defaultLabel) return spec.defaultLabel;
  const d = spec.default;
  if (d === undefined || typeof d === 'function') return undefined;
  if (Array.isArray(d)) return d.length ? d.join(', ') : undefined;
  if (typeof d === 'object') return Object.keys(d).length ? JSON.stringify(d) : undefined;
  if (d === '' || d === false) return undefined;
  return String(d);
}

function notes(spec: OptionSpec): string {
  const parts: string[] = [];
  const d = defaultText(spec);
  if (d !== undefined) parts.push(`default: ${d}`);
  if (spec.type === 'list' || spec.type === 'map') parts.push('repeatable');
  if ((spec.where ?? 'both') !== 'cli') parts.push(`wsgid.json: ${jsonKey(spec)}`);
  if (spec.env !== undefined) parts.push(`environment: ${spec.env}`);
  return parts.length ? ` [${parts.join('; ')}]` : '';
}

function renderOptions(options: readonly NamedOption[]): string[] {
  const lines: string[] = [];
  const col = 30;
  for (const { spec } of options) {
    const left = '  ' + flagForm(spec);
    const body = wrap(spec.help + notes(spec), WIDTH - col);
    if (left.length >= col - 1) {
      lines.push(left);
      for (const l of body) lines.push(' '.repeat(col) + l);
    } else {
      lines.push(left.padEnd(col) + body[0]);
      for (const l of body.slice(1)) lines.push(' '.repeat(col) + l);
    }
  }
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
    for (const name of COMMANDS) out.push(`  ${name.padEnd(14)}${BUILTIN_COMMANDS[name].description}`);
    for (const [name, def] of pluginCommands()) out.push(`  ${name.padEnd(14)}${def.description}`);
    out.push(`  ${'help'.padEnd(14)}${HELP_DESCRIPTION}`);
    out.push('', 'Options (start; `wsgid config` saves the same options to wsgid.json):');
    out.push(...renderOptions(cliOptionsFor('start')));
    out.push('', 'Precedence: command line over environment (where an option has a variable) over wsgid.json over defaults.', ...exitCodeLines());
    out.push('', 'Run `wsgid <command> --help` for the options of a command.');
    return out.join('\n') + '\n';
  }
  const builtin = (COMMANDS as readonly string[]).includes(command) ? BUILTIN_COMMANDS[command as CommandName] : undefined;
  const plugin = pluginCommands().get(command);
  const usage = builtin?.usage ?? plugin?.usage ?? `wsgid ${command} [options]`;
  out.push(`Usage: ${usage}`, '');
  out.push(...wrap(builtin?.description ?? plugin?.description ?? '', WIDTH));
  if (builtin?.details) out.push('', ...wrap(builtin.details, WIDTH));
  out.push('', 'Options:');
  out.push(...renderOptions(cliOptionsFor(builtin ? (command as CommandName) : 'start')));
  out.push('', ...exitCodeLines());
  return out.join('\n') + '\n';
}

function mdEscape(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** The CLI reference in Markdown (commands, options, exit codes), for docs/CLI.md. */
export function renderOptionsMarkdown(): string {
  const out: string[] = [];
  out.push('<!-- Generated by `npm run docs` from src/config/options.ts and src/cli/commands.ts. Do not edit. -->', '');
  out.push('### Commands', '', '| Command | Usage | Description |', '|---|---|---|');
  for (const name of COMMANDS) {
    const c = BUILTIN_COMMANDS[name];
    const text = c.details ? `${c.description} ${c.details}` : c.description;
    out.push(`| \`${name}\` | \`${c.usage}\` | ${mdEscape(text)} |`);
  }
  out.push(`| \`help\` | \`wsgid help [COMMAND]\` | ${mdEscape(HELP_DESCRIPTION)} A mistyped command or option gets a "did you mean". |`);
  out.push('', '### Options', '');
  out.push('Precedence: command line over the environment (for the options that name a variable) over `wsgid.json` over defaults. `wsgid.json` keys are the flag names');
  out.push('without `--`, with `-` replaced by `_` (`--app-path` ↔ `app_path`), except `--env` ↔ `envs`.', '');
  const fixed = OPTION_LIST.filter((o) => o.spec.commands.includes('start') && !o.spec.reloadable).map((o) => `\`--${o.spec.flag}\``);
  out.push(
    '`wsgid restart` (HUP) reads `wsgid.json` and the command line again: a change to any `start` option takes effect through the',
    `rolling reload, except ${fixed.join(', ')}, which need a full restart (stop, then start; the reload names them).`,
    '',
  );
  out.push('| Flag | wsgid.json | Type | Default | Commands | Description |', '|---|---|---|---|---|---|');
  for (const { spec } of OPTION_LIST) {
    const key = (spec.where ?? 'both') === 'cli' ? '—' : `\`${jsonKey(spec)}\``;
    const type = spec.type === 'list' ? 'list (repeatable)' : spec.type === 'map' ? 'map (repeatable KEY=VALUE)' : spec.type;
    const d = defaultText(spec);
    const flag = (spec.where ?? 'both') === 'file' ? '—' : `\`${flagForm(spec)}\``;
    out.push(
      `| ${mdEscape(flag)} | ${key} | ${type} | ${d === undefined ? '' : mdEscape(d)} | ${spec.commands.join(', ')} | ${mdEscape(spec.help + (spec.env !== undefined ? ` Environment: \`${spec.env}\`.` : ''))} |`,
    );
  }
  out.push('', '### Exit codes', '', '| Code | Meaning |', '|---|---|');
  out.push(
    `| ${EXIT.OK} | success; \`status\`: running; \`restart\`: the new workers serve |`,
    `| ${EXIT.FAILURE} | failed: the app could not start, stop timed out, a signal could not be sent, \`restart\`: the new workers could not boot (the old ones keep serving); \`status\`: running but crash-looping |`,
    `| ${EXIT.USAGE} | bad usage or configuration: unknown option, bad value, bad wsgid.json (also when \`restart\` re-reads it: the running configuration is kept), missing app folder, or (\`stop\`, \`restart\`, \`status\`, \`reopen-logs\`) a folder that is not an app folder (no pid/, logs/ or wsgid.json) |`,
    `| ${EXIT.NOT_RUNNING} | not running (\`status\`, \`restart\`, \`reload\`); for \`start\`: the workers could not boot |`,
    `| ${EXIT.APP_LOAD} | \`start\`: the app failed to load; \`restart\`: the new code fails to load (the old workers keep serving) |`,
  );
  return out.join('\n') + '\n';
}
