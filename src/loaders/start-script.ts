/**
 * The file a package.json `start` script runs, as in `node dist/server.js`, `tsx src/index.ts`,
 * `NODE_ENV=production node --env-file=.env ./bin/www` or `npm run build && node dist/index.js`.
 * Pure text work: the caller checks that the file exists. Nothing here runs the script.
 *
 * Rules: the script is split at `&&`, `||`, `;` and `|`, and the last part that runs a known
 * JavaScript runner wins (earlier parts are usually a build). Leading `VAR=value` assignments,
 * `cross-env`/`env` and `exec` are skipped. After the runner, options are skipped (with the value
 * of the few that take a separate one, e.g. `-r dotenv/config`); the first other word is the file.
 * Anything with shell expansion in the file name (`$`, backquotes, globs) is not a file name.
 */

/** Runners whose first non-option argument is the script file. */
const RUNNERS = new Set(['node', 'nodejs', 'tsx', 'ts-node', 'ts-node-esm', 'nodemon', 'babel-node', 'bun']);
/** Words a runner may take before the file (`tsx watch src/index.ts`, `bun run x.ts`). */
const RUNNER_SUBCOMMANDS = new Set(['watch', 'run']);
/** Options of node (and the runners above) that take their value as the next word. */
const OPTIONS_WITH_VALUE = new Set([
  '-r', '--require', '--import', '--loader', '--experimental-loader', '--env-file', '--inspect-port',
  '--title', '--conditions', '-C', '--watch-path', '--tsconfig', '-P', '--project', '--exec', '-e', '--eval', '-p', '--print',
]);
/** Options after which there is no file to run (`node -e "…"`). */
const NO_FILE_OPTIONS = new Set(['-e', '--eval', '-p', '--print', '--exec']);

/** Split a shell command into words (quotes respected, no expansion). */
export function shellWords(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < command.length) word += command[++i];
      else word += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < command.length) {
      word += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** The file one simple command (no `&&` etc.) runs, if it runs a known runner. */
function fileOfCommand(words: readonly string[]): string | undefined {
  let i = 0;
  const skippable = (w: string): boolean => /^[A-Za-z_][A-Za-z0-9_]*=/.test(w) || w === 'cross-env' || w === 'env' || w === 'exec';
  while (i < words.length && skippable(words[i]!)) i++;
  const runner = words[i];
  if (runner === undefined || !RUNNERS.has(runner.split('/').pop()!)) return undefined;
  i++;
  if (words[i] !== undefined && RUNNER_SUBCOMMANDS.has(words[i]!)) i++;
  for (; i < words.length; i++) {
    const word = words[i]!;
    if (word === '--') {
      i++;
      break;
    }
    if (!word.startsWith('-')) break;
    const name = word.includes('=') ? word.slice(0, word.indexOf('=')) : word;
    if (NO_FILE_OPTIONS.has(name)) return undefined;
    if (OPTIONS_WITH_VALUE.has(name) && !word.includes('=')) i++;
  }
  const file = words[i];
  if (file === undefined || file === '' || /[$`*?[\]{}~<>]/.test(file)) return undefined;
  return file;
}

/** The file `scripts.start` runs, or undefined when it names none (`nest start`, `next start`). */
export function startScriptFile(script: string): string | undefined {
  for (const part of commandParts(script).reverse()) {
    const file = fileOfCommand(shellWords(part));
    if (file !== undefined) return file;
  }
  return undefined;
}

function commandParts(script: string): string[] {
  return script.split(/&&|\|\||[;|&]/).filter((part) => part.trim() !== '');
}

/**
 * One command of a start script, as the shell would run it: `NODE_ENV=production node -r x server.js -- a`
 * is `{env: {NODE_ENV: 'production'}, program: 'node', runner: true, nodeOptions: ['-r', 'x'], file: 'server.js', args: ['--', 'a']}`;
 * `next start -p 4000` is `{program: 'next', runner: false, args: ['start', '-p', '4000']}` (a bin of node_modules/.bin).
 */
export interface StartCommand {
  /** `VAR=value` assignments before the program (and those of `env`/`cross-env`). */
  readonly env: Readonly<Record<string, string>>;
  /** `node`, `tsx`, … or the name of a bin (`next`, `fastify`), or a path (`./bin/www`). */
  readonly program: string;
  /** A JavaScript runner whose first non-option word is the file (`node`, `tsx`, …). */
  readonly runner: boolean;
  /** The runner's options before the file (`--env-file .env`, `-r dotenv/config`). */
  readonly nodeOptions: readonly string[];
  /** The file a runner runs (undefined for a bin). */
  readonly file?: string;
  /** The words after the file (runner) or after the program (bin): the program's process.argv.slice(2). */
  readonly args: readonly string[];
  /** The command's text. */
  readonly text: string;
}

/** Words that stop a command from being one wsgid can run in-process. */
const UNSUPPORTED = /[$`*?[\]{}~<>()]/;
/** Package-manager runs of another script: `npm run serve`, `yarn serve`, `pnpm start`. */
const SCRIPT_RUNS = new Set(['npm', 'yarn', 'pnpm', 'bun']);
/** Programs that are a build or a check, never the server (`npm run build && next start`). */
const NOT_A_SERVER = new Set(['echo', 'true', 'rm', 'mkdir', 'cp', 'mv', 'cd', 'tsc', 'exit', 'test', '[']);

/** Parse one simple command (no `&&`). Undefined when it is no program wsgid could run. */
export function parseCommand(text: string): StartCommand | undefined {
  const words = shellWords(text);
  const env: Record<string, string> = {};
  let i = 0;
  for (; i < words.length; i++) {
    const word = words[i]!;
    const assignment = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(word);
    if (assignment) env[assignment[1]!] = assignment[2]!;
    else if (word !== 'cross-env' && word !== 'env' && word !== 'exec') break;
  }
  const program = words[i];
  if (program === undefined || UNSUPPORTED.test(program) || NOT_A_SERVER.has(program)) return undefined;
  const rest = words.slice(i + 1);
  if (rest.some((word) => UNSUPPORTED.test(word))) return undefined;
  if (!RUNNERS.has(program.split('/').pop()!)) return { env, program, runner: false, nodeOptions: [], args: rest, text: text.trim() };
  const file = fileOfCommand(words.slice(i));
  if (file === undefined) return undefined;
  // The words between the runner and the file are its options; those after the file are the app's.
  let at = 0;
  if (rest[0] !== undefined && RUNNER_SUBCOMMANDS.has(rest[0])) at = 1;
  const nodeOptions: string[] = [];
  for (; at < rest.length && rest[at] !== file; at++) if (rest[at] !== '--') nodeOptions.push(rest[at]!);
  return { env, program, runner: true, nodeOptions, file, args: rest.slice(at + 1), text: text.trim() };
}

/**
 * The command a script runs in the end: its last part that is a program (`npm run build && next
 * start` → `next start`), following `npm run NAME` / `yarn NAME` / `npm start` into `scripts`.
 */
export function startCommand(script: string, scripts: Readonly<Record<string, unknown>> = {}, depth = 0): StartCommand | undefined {
  for (const part of commandParts(script).reverse()) {
    const words = shellWords(part);
    if (words[0] !== undefined && SCRIPT_RUNS.has(words[0]) && words[1] !== 'exec' && words[1] !== 'x') {
      const name = words[1] === 'run' || words[1] === 'run-script' ? words[2] : words[1];
      const target = name !== undefined ? scripts[name] : undefined;
      if (depth >= 4 || typeof target !== 'string') return undefined;
      return startCommand(target, scripts, depth + 1);
    }
    const command = parseCommand(part);
    if (command) return command;
  }
  return undefined;
}
