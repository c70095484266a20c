/**
 * docs/TESTING.md's module → test table is what a newcomer reads to find a module's tests: it must
 * list every module under src/ with exactly the unit tests that import it (statically or with
 * import()), and "integration only" for the others. A new module or unit test fails this until the
 * table says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/wsgid.js';

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

test('docs/TESTING.md lists every src module with the unit tests that import it', () => {
  const modules = tsFiles(path.join(REPO_ROOT, 'src'));
  const expected = new Map<string, Set<string>>(modules.map((m) => [m, new Set()]));
  const unit = path.join(REPO_ROOT, 'test', 'unit');
  for (const file of readdirSync(unit).filter((f) => f.endsWith('.test.ts'))) {
    const text = readFileSync(path.join(unit, file), 'utf8');
    for (const [, imported] of text.matchAll(/['"]\.\.\/\.\.\/src\/([^'"]+)\.js['"]/g)) {
      expected.get(`${imported}.ts`)?.add(file.slice(0, -'.test.ts'.length));
    }
  }
  const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'TESTING.md'), 'utf8');
  const table = new Map<string, Set<string>>();
  for (const [, module, tests] of doc.matchAll(/^\| `([^`]+\.ts)` \| ([^|]+) \|$/gm)) {
    const names = tests!.trim() === '— (integration only)' ? [] : tests!.split(',').map((t) => t.trim());
    table.set(module!, new Set(names));
  }
  const wrong: string[] = [];
  for (const [module, tests] of expected) {
    const listed = table.get(module);
    const want = [...tests].sort().join(', ') || '— (integration only)';
    if (listed === undefined) wrong.push(`missing row: | \`${module}\` | ${want} |`);
    else if ([...listed].sort().join(', ') !== [...tests].sort().join(', ')) wrong.push(`row should be: | \`${module}\` | ${want} |`);
  }
  for (const module of table.keys()) if (!expected.has(module)) wrong.push(`row for a module that does not exist: ${module}`);
  assert.deepEqual(wrong, [], 'docs/TESTING.md module → test table');
});
