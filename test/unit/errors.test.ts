/**
 * One error family: every error class in src/ extends WsgidError, carries a code
 * of the table in src/errors.ts and the exit code the table gives it; docs/ERRORS.md shows exactly
 * that table. The classes are found by reading the sources, so a new `class X extends Error` fails
 * here until it joins the family.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ERRORS, EXIT, NotMasterError, WsgidError, exitCodeOf, type ErrorCode } from '../../src/errors.js';
import { BootError } from '../../src/worker/boot-error.js';
import { EXIT_APP_LOAD_ERROR, EXIT_BOOT_ERROR } from '../../src/lifecycle/contract.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = path.join(REPO_ROOT, 'src');
/** The compiled sources beside this compiled test (dist/src). */
const DIST_SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [full] : [];
  });
}

/** `class X extends Y` in src/ where X or Y names an error (a WebSocket ErrorEvent is an Event, not an error). */
function errorClasses(): { file: string; name: string; base: string; exported: boolean }[] {
  const found: { file: string; name: string; base: string; exported: boolean }[] = [];
  for (const file of sourceFiles(SRC)) {
    for (const m of readFileSync(file, 'utf8').matchAll(/^(export )?class (\w+) extends (\w+)/gm)) {
      const [, exported, name, base] = m;
      if (/Error$/.test(name!) || /Error$/.test(base!)) found.push({ file: path.relative(SRC, file), name: name!, base: base!, exported: !!exported });
    }
  }
  return found;
}

function tableRows(page: string): Map<string, { exit: string; meaning: string }> {
  const rows = new Map<string, { exit: string; meaning: string }>();
  for (const m of page.matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]+) \| (.+) \|$/gm)) rows.set(m[1]!, { exit: m[2]!.trim(), meaning: m[3]! });
  return rows;
}

describe('the error family', () => {
  const classes = errorClasses();

  test('the sources have error classes to check (the scan works)', () => {
    for (const name of ['AppLoadError', 'BootError', 'ProtocolError', 'InvalidResponseHeadError', 'UsageError', 'NotMasterError', 'PythonLoadError', 'PythonAppError']) {
      assert.ok(classes.some((c) => c.name === name), `${name} not found in src/`);
    }
  });

  test('every error class in src/ is exported and extends WsgidError, with a code of the table and its exit code', async () => {
    const problems: string[] = [];
    for (const c of classes) {
      if (c.name === 'WsgidError') continue;
      if (!c.exported) {
        problems.push(`${c.file}: ${c.name} is not exported`);
        continue;
      }
      const module = (await import(pathToFileURL(path.join(DIST_SRC, c.file.replace(/\.ts$/, '.js'))).href)) as Record<string, unknown>;
      const cls = module[c.name];
      const inFamily = typeof cls === 'function' && cls.prototype instanceof WsgidError;
      if (!inFamily) problems.push(`${c.file}: ${c.name} does not extend WsgidError`);
    }
    assert.deepEqual(problems, []);
  });

  test("an error's exit code is its code's, from the table", () => {
    for (const code of Object.keys(ERRORS) as ErrorCode[]) {
      const error = new WsgidError('x', code);
      assert.equal(error.exitCode, exitCodeOf(code));
      assert.equal(error.exitCode, ERRORS[code].exit ?? EXIT.FAILURE);
    }
    assert.equal(new BootError('x', 'WSGID_ERR_BOOT').exitCode, 3);
    assert.equal(new BootError('x', 'WSGID_ERR_APP_LOAD').exitCode, 4);
    // gunicorn's WORKER_BOOT_ERROR and APP_LOAD_ERROR, which the master halts on.
    assert.deepEqual([EXIT_BOOT_ERROR, EXIT_APP_LOAD_ERROR], [3, 4]);
  });

  test('the refusal to signal a process that is not our master has a code, and exit code 1', () => {
    const error = new NotMasterError(123, '/srv/a/pid/master/123.pid', '/srv/a', "its command line is not wsgid's");
    assert.equal(error.code, 'WSGID_ERR_NOT_MASTER');
    assert.equal(error.exitCode, 1);
    assert.equal(error.message, "not signalling pid 123 (named by /srv/a/pid/master/123.pid): it is not a wsgid master of /srv/a: its command line is not wsgid's");
  });
});

describe('error codes', () => {
  test('docs/ERRORS.md lists every code of the table with its exit code and meaning, and no other', () => {
    const page = readFileSync(path.join(REPO_ROOT, 'docs', 'ERRORS.md'), 'utf8');
    const rows = tableRows(page);
    for (const [code, spec] of Object.entries(ERRORS)) {
      assert.deepEqual(rows.get(code), { exit: String(spec.exit ?? '—'), meaning: spec.meaning }, code);
    }
    assert.deepEqual([...rows.keys()].sort(), Object.keys(ERRORS).sort());
    // No code named in the prose that the table lacks.
    for (const m of page.matchAll(/`((?:WSGID|M2)_ERR_\w+)`/g)) assert.ok(m[1]! in ERRORS, `${m[1]} is on the page, not in ERRORS`);
  });

  test('every code used in src/ is in the table', () => {
    const used = new Set<string>();
    for (const file of sourceFiles(SRC)) for (const m of readFileSync(file, 'utf8').matchAll(/'((?:WSGID|M2)_ERR_\w+)'/g)) used.add(m[1]!);
    assert.ok(used.size > 10, 'the scan found the codes');
    for (const code of used) assert.ok(code in ERRORS, `${code} is not in ERRORS`);
  });
});
