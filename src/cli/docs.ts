/**
 * `npm run docs`: the Markdown CLI reference, generated from the option and command tables.
 *   node dist/src/cli/docs.js                 print it
 *   node dist/src/cli/docs.js --write FILE…   replace the block between the markers in each FILE
 *                                             (docs/CLI.md)
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderOptionsMarkdown } from './help.js';

export const BEGIN_MARKER = '<!-- cli-reference:begin -->';
export const END_MARKER = '<!-- cli-reference:end -->';

/** Replace the generated block of `text`; undefined when the markers are missing. */
export function replaceReference(text: string, reference = renderOptionsMarkdown()): string | undefined {
  const begin = text.indexOf(BEGIN_MARKER);
  const end = text.indexOf(END_MARKER);
  if (begin < 0 || end < begin) return undefined;
  return text.slice(0, begin + BEGIN_MARKER.length) + '\n' + reference + text.slice(end);
}

function run(): number {
  const { values, positionals } = parseArgs({ options: { write: { type: 'boolean' } }, allowPositionals: true });
  if (!values.write) {
    process.stdout.write(renderOptionsMarkdown());
    return 0;
  }
  for (const file of positionals) {
    const updated = replaceReference(readFileSync(file, 'utf8'));
    if (updated === undefined) {
      process.stderr.write(`${file}: no ${BEGIN_MARKER} … ${END_MARKER} block\n`);
      return 1;
    }
    writeFileSync(file, updated);
    process.stdout.write(`updated ${file}\n`);
  }
  return 0;
}

const script = process.argv[1];
if (script !== undefined && realpathSync(script) === fileURLToPath(import.meta.url)) process.exitCode = run();
