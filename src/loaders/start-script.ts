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
  const parts = script.split(/&&|\|\||[;|&]/);
  for (let p = parts.length - 1; p >= 0; p--) {
    const file = fileOfCommand(shellWords(parts[p]!));
    if (file !== undefined) return file;
  }
  return undefined;
}
