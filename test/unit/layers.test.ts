/**
 * The layer order of src/ (docs/INTERNALS.md, .dependency-cruiser.cjs): a module imports only its
 * own layer and the layers below it, and no import cycle exists. dependency-cruiser reads the
 * TypeScript sources, type-only imports included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/wsgid.js';

const DEPCRUISE = path.join(REPO_ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
const CONFIG = path.join(REPO_ROOT, '.dependency-cruiser.cjs');

function cruise(cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DEPCRUISE, 'src', '--config', CONFIG, '--output-type', 'err'], { cwd, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

test('src/ follows the layer order and has no import cycle', { timeout: 180_000 }, async () => {
  const { code, output } = await cruise(REPO_ROOT);
  assert.equal(code, 0, output);
  assert.match(output, /no dependency violations found/);
});

test('the rules catch an import from a lower layer into a higher one', { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-layers-'));
  try {
    await mkdir(path.join(dir, 'src', 'protocol'), { recursive: true });
    await mkdir(path.join(dir, 'src', 'cli'), { recursive: true });
    await mkdir(path.join(dir, 'src', 'worker'), { recursive: true });
    await mkdir(path.join(dir, 'src', 'lifecycle'), { recursive: true });
    await copyFile(path.join(REPO_ROOT, 'tsconfig.json'), path.join(dir, 'tsconfig.json'));
    await writeFile(path.join(dir, 'src', 'cli', 'main.ts'), 'export const command = 1;\n');
    await writeFile(path.join(dir, 'src', 'protocol', 'parse.ts'), "import { command } from '../cli/main.js';\nexport const x = command;\n");
    // The master ↔ worker contract is below both sides: it may not reach up into either.
    await writeFile(path.join(dir, 'src', 'worker', 'main.ts'), 'export const worker = 1;\n');
    await writeFile(path.join(dir, 'src', 'lifecycle', 'contract.ts'), "import { worker } from '../worker/main.js';\nexport const y = worker;\n");
    const { code, output } = await cruise(dir);
    assert.notEqual(code, 0, output);
    assert.match(output, /layer-protocol: src\/protocol\/parse\.ts → src\/cli\/main\.ts/);
    assert.match(output, /layer-lifecycle: src\/lifecycle\/contract\.ts → src\/worker\/main\.ts/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
