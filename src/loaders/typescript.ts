/**
 * Run TypeScript apps from source, without a build step by the user.
 *
 * Installed only when the app's entry is a .ts/.mts/.cts/.tsx file (a JavaScript app never loads
 * any of this). Uses tsx (esbuild): its ESM hooks (`module.register`, so `import()` of .ts works,
 * including `./x.js` specifiers that name `./x.ts`, the usual TypeScript ESM convention) and its
 * CommonJS hook (so `require()` of .ts from CommonJS works: Node 20's module hooks do not reach
 * `require`). A .ts file is ESM or CommonJS by the app's package.json `type`, like a .js file;
 * .mts/.cts are always ESM/CommonJS. The app's tsconfig.json (found from the entry's folder up to
 * the app folder) supplies `paths`, `jsx` and decorator settings; TSX_TSCONFIG_PATH overrides it.
 * There is no type checking at load time: that is the app's build/CI business.
 *
 * Why tsx rather than `typescript.transpileModule` in a loader hook: measured on this machine,
 * registering tsx's hooks costs ~150–300 ms once per worker and a few ms per file (esbuild, whose
 * platform binary ships inside the registry package @esbuild/<platform>), against ~300–550 ms
 * just to load the TypeScript compiler plus ~5–20 ms per file; tsx also gets ESM/CJS interop,
 * `.js` → `.ts` resolution, tsconfig `paths` and source maps right, which a hand-written hook
 * would have to redo. See docs/LOADERS.md for the numbers.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';

let installed: Promise<void> | undefined;

function findTsconfig(fromDir: string, stopDir: string): string | undefined {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'tsconfig.json');
    if (existsSync(candidate)) return candidate;
    if (dir === stopDir || path.dirname(dir) === dir) return undefined;
  }
}

/**
 * Make `import()` and `require()` of .ts/.mts/.cts/.tsx files work in this process. Idempotent
 * (the first call's tsconfig wins). `entry` and `appDir` locate the app's tsconfig.json.
 */
export function enableTypeScript(logger: Logger, entry?: string, appDir?: string): Promise<void> {
  installed ??= install(logger, entry, appDir);
  return installed;
}

export function typeScriptEnabled(): boolean {
  return installed !== undefined;
}

async function install(logger: Logger, entry?: string, appDir?: string): Promise<void> {
  const started = performance.now();
  if (entry && !process.env['TSX_TSCONFIG_PATH']) {
    const tsconfig = findTsconfig(path.dirname(entry), appDir ?? path.parse(entry).root);
    if (tsconfig) process.env['TSX_TSCONFIG_PATH'] = tsconfig;
  }
  let esm: typeof import('tsx/esm/api');
  let cjs: typeof import('tsx/cjs/api');
  try {
    [esm, cjs] = await Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]);
  } catch (error) {
    installed = undefined;
    throw new Error(`cannot run a TypeScript app: the tsx package is missing (${(error as Error).message}); reinstall wsgid`, { cause: error });
  }
  esm.register({ tsconfig: process.env['TSX_TSCONFIG_PATH'] });
  cjs.register();
  logger.debug('TypeScript support enabled (tsx)', {
    ms: Math.round(performance.now() - started),
    tsconfig: process.env['TSX_TSCONFIG_PATH'] ?? 'none',
  });
}
