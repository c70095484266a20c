/**
 * Run a file as the main module, as `node file` does: a CommonJS file is loaded with
 * `require.main` set to it (apps and CLIs guard their start with `require.main === module`); an
 * ES module (or TypeScript, through ./typescript.ts) is imported.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { readPackageJson } from './resolve.js';

interface ModuleInternals {
  /** Node's own loader entry: `isMain` makes the module `require.main` / `process.mainModule`. */
  _load(request: string, parent: null, isMain: boolean): unknown;
}

/** Is this file an ES module, as Node decides (extension, then the nearest package.json `type`)? */
export function isEsm(file: string): boolean {
  if (/\.m[jt]s$/.test(file)) return true;
  if (/\.c[jt]s$/.test(file)) return false;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    let pkg: Record<string, unknown> | undefined;
    try {
      pkg = readPackageJson(dir);
    } catch {
      return false;
    }
    if (pkg) return pkg['type'] === 'module';
    if (path.dirname(dir) === dir) return false;
  }
}

/**
 * Load a CommonJS file as the main module; returns a namespace like `import()` gives for it
 * (`default` = module.exports, and its own properties as named exports).
 */
export function loadCommonJsAsMain(file: string): Record<string, unknown> {
  const Module = createRequire(import.meta.url)('node:module') as ModuleInternals;
  const exported = Module._load(file, null, true);
  const ns: Record<string, unknown> = {};
  if ((typeof exported === 'object' && exported !== null) || typeof exported === 'function') {
    for (const key of Object.keys(exported)) if (key !== 'default') ns[key] = (exported as Record<string, unknown>)[key];
  }
  ns['default'] = exported;
  return ns;
}
