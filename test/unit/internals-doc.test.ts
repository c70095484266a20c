/**
 * docs/INTERNALS.md's "Every module, by layer" names every source file of src/, and nothing that
 * is not there: a module added, moved or deleted without its line fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = path.join(ROOT, 'src');

function sourceFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const rel = prefix + entry.name;
    if (entry.isDirectory()) return entry.name === '__pycache__' ? [] : sourceFiles(path.join(dir, entry.name), rel + '/');
    return /\.(ts|py)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** The files the section names: `x.ts` under a `**dir/**` heading is dir/x.ts; `a/b.ts` is dir/a/b.ts. */
function namedModules(doc: string): Set<string> {
  const start = doc.indexOf('## Every module, by layer');
  assert.ok(start >= 0, 'docs/INTERNALS.md has an "Every module, by layer" section');
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const named = new Set<string>();
  let dir = '';
  let sub = '';
  for (const line of section.split('\n')) {
    const heading = /^\*\*([a-z0-9-]+\/)\*\*/.exec(line);
    if (heading) dir = heading[1]!;
    else if (/^\*\*/.test(line)) dir = '';
    if (line.startsWith('- ')) sub = '';
    else if (!line.startsWith('  ')) continue;
    // `fetch/index.ts: …; request.ts: …`: the names after `fetch/…` in an item are in fetch/ too.
    for (const m of line.matchAll(/`([A-Za-z0-9_./-]+\.(?:ts|py))`/g)) {
      const name = m[1]!;
      if (name.includes('/')) sub = name.slice(0, name.lastIndexOf('/') + 1);
      named.add(dir + (name.includes('/') ? name : sub + name));
    }
  }
  return named;
}

test('docs/INTERNALS.md names every module of src/, and only those', () => {
  const files = sourceFiles(SRC);
  const named = namedModules(readFileSync(path.join(ROOT, 'docs/INTERNALS.md'), 'utf8'));
  const missing = files.filter((f) => !named.has(f));
  assert.deepEqual(missing, [], `modules without a line in docs/INTERNALS.md ("Every module, by layer")`);
  const stale = [...named].filter((f) => !files.includes(f));
  assert.deepEqual(stale, [], 'lines in docs/INTERNALS.md naming files that are not in src/');
});
