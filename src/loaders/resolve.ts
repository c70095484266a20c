/**
 * Turn `--wsgi-app=MODULE[:EXPORT]` and package.json entries into absolute files under app/.
 * Nothing here imports app code.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { startScriptFile } from './start-script.js';

/** Extensions Node (with tsx for TypeScript) loads as modules; plugin files use these. */
export const JS_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'] as const;
/** Extensions tried, in order, for an app entry named without one (and by detection): JSX too. */
export const ENTRY_EXTENSIONS = [...JS_EXTENSIONS, '.tsx', '.jsx'] as const;
/** Files Node cannot run as they are: tsx transforms them (TypeScript, and JSX in .jsx files). */
export const TRANSFORMED_EXTENSIONS = ['.ts', '.mts', '.cts', '.tsx', '.jsx'] as const;

/** Does the file need tsx (TypeScript or JSX)? */
export function needsTransform(file: string): boolean {
  return (TRANSFORMED_EXTENSIONS as readonly string[]).includes(path.extname(file));
}

export interface AppSpec {
  readonly module: string;
  /** Dotted export path ("default", "app", "handlers.main"); undefined → default/auto. */
  readonly exportName?: string;
}

/** `MODULE[:EXPORT]`. The last colon splits (module names and paths have none on unix). */
export function parseAppSpec(spec: string): AppSpec {
  const at = spec.lastIndexOf(':');
  if (at <= 0) return { module: spec };
  const exportName = spec.slice(at + 1);
  return { module: spec.slice(0, at), exportName: exportName === '' ? undefined : exportName };
}

export function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

export function isDirectory(file: string): boolean {
  try {
    return statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/** The JSON of a package.json, or undefined when absent; throws with the path when malformed. */
export function readPackageJson(dir: string): Record<string, unknown> | undefined {
  const file = path.join(dir, 'package.json');
  if (!existsSync(file)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: invalid JSON (${(error as Error).message})`);
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
}

const CONDITIONS = ['wsgid', 'node', 'import', 'module', 'require', 'default'];

/** Resolve a package.json `exports` value for subpath "." (conditions: wsgid, node, import, require, default). */
export function resolveExportsTarget(exportsField: unknown): string | undefined {
  if (typeof exportsField === 'string') return exportsField;
  if (Array.isArray(exportsField)) {
    for (const item of exportsField) {
      const target = resolveExportsTarget(item);
      if (target) return target;
    }
    return undefined;
  }
  if (typeof exportsField !== 'object' || exportsField === null) return undefined;
  const map = exportsField as Record<string, unknown>;
  const keys = Object.keys(map);
  if (keys.some((key) => key.startsWith('.'))) return '.' in map ? resolveExportsTarget(map['.']) : undefined;
  for (const condition of CONDITIONS) {
    if (condition in map) {
      const target = resolveExportsTarget(map[condition]);
      if (target) return target;
    }
  }
  return undefined;
}

/**
 * A file path (relative to `baseDir`, or absolute) as Node would: exact file, then with each
 * extension, then a folder's package.json (wsgid/main/exports) or index.*. Records every
 * candidate in `tried`.
 */
export function resolveFile(baseDir: string, request: string, tried: string[]): string | undefined {
  const base = path.resolve(baseDir, request);
  const candidates = [base, ...ENTRY_EXTENSIONS.map((ext) => base + ext)];
  for (const candidate of candidates) {
    tried.push(candidate);
    if (isFile(candidate)) return candidate;
  }
  if (isDirectory(base)) {
    const pkg = readPackageJson(base);
    const entry = pkg ? packageEntry(pkg) : undefined;
    if (entry) {
      const found = resolveFile(base, entry.module, tried);
      if (found) return found;
    }
    for (const ext of ENTRY_EXTENSIONS) {
      const candidate = path.join(base, 'index' + ext);
      tried.push(candidate);
      if (isFile(candidate)) return candidate;
    }
  }
  return undefined;
}

/** The package.json scripts that say how the app starts, in order. */
export const START_SCRIPTS = ['start', 'start:prod'] as const;

/** One entry a package.json names, with the field it came from (for messages). */
export type PackageEntry = AppSpec & { field: string };

/**
 * The entries a package.json names, strongest first: `wsgid` (string or {entry}), `main`,
 * `exports` (subpath "."), `module` (the ESM entry bundlers read; Node itself ignores it), and the
 * file the `start` (then `start:prod`) script runs (`node dist/server.js`, `tsx src/index.ts`:
 * loaders/start-script.ts).
 */
export function packageEntries(pkg: Record<string, unknown>): PackageEntry[] {
  const entries: PackageEntry[] = [];
  const wsgid = pkg['wsgid'];
  if (typeof wsgid === 'string' && wsgid) entries.push({ ...parseAppSpec(wsgid), field: 'wsgid' });
  if (typeof wsgid === 'object' && wsgid !== null) {
    const entry = (wsgid as Record<string, unknown>)['entry'];
    const exportName = (wsgid as Record<string, unknown>)['export'];
    if (typeof entry === 'string' && entry) {
      const spec = parseAppSpec(entry);
      entries.push({ module: spec.module, exportName: typeof exportName === 'string' ? exportName : spec.exportName, field: 'wsgid.entry' });
    }
  }
  const main = pkg['main'];
  if (typeof main === 'string' && main) entries.push({ module: main, field: 'main' });
  const target = resolveExportsTarget(pkg['exports']);
  if (target) entries.push({ module: target, field: 'exports' });
  const esm = pkg['module'];
  if (typeof esm === 'string' && esm) entries.push({ module: esm, field: 'module' });
  const scripts = typeof pkg['scripts'] === 'object' && pkg['scripts'] !== null ? (pkg['scripts'] as Record<string, unknown>) : {};
  // `start:prod` too: NestJS's `start` is `nest start`, its production entry `node dist/main`.
  for (const name of START_SCRIPTS) {
    const script = scripts[name];
    const file = typeof script === 'string' ? startScriptFile(script) : undefined;
    if (file !== undefined) entries.push({ module: file, field: `scripts.${name}` });
  }
  return entries;
}

/** The first entry of a package.json's `wsgid`, `main`, `exports`, `module` fields (a folder's entry). */
export function packageEntry(pkg: Record<string, unknown>): PackageEntry | undefined {
  return packageEntries(pkg).find((e) => !e.field.startsWith('scripts.'));
}

/** `wsgid.kind` / `wsgid.export` from a package.json, for forcing. */
export function packageWsgidOptions(pkg: Record<string, unknown> | undefined): { kind?: 'fetch' | 'node'; exportName?: string } {
  const wsgid = pkg?.['wsgid'];
  if (typeof wsgid !== 'object' || wsgid === null) return {};
  const record = wsgid as Record<string, unknown>;
  const kind = record['kind'];
  const exportName = record['export'];
  return {
    kind: kind === 'fetch' || kind === 'node' ? kind : undefined,
    exportName: typeof exportName === 'string' && exportName ? exportName : undefined,
  };
}

function splitPackageName(request: string): { name: string; subpath: string } {
  const parts = request.split('/');
  const count = request.startsWith('@') ? 2 : 1;
  return { name: parts.slice(0, count).join('/'), subpath: parts.slice(count).join('/') };
}

/**
 * An installed package, resolved from `fromDir` the way the app's own code would see it:
 * first `require.resolve` (CommonJS conditions), then, for ESM-only packages whose `exports`
 * has no require condition, a walk up node_modules reading `exports` with import conditions.
 */
export function resolvePackage(fromDir: string, request: string, tried: string[]): string | undefined {
  const require = createRequire(path.join(fromDir, '__wsgid_loader__.js'));
  tried.push(`package "${request}" from ${fromDir}`);
  try {
    const resolved = require.resolve(request);
    if (path.isAbsolute(resolved)) return resolved;
  } catch {
    // fall through to the ESM walk
  }
  const { name, subpath } = splitPackageName(request);
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const pkgDir = path.join(dir, 'node_modules', name);
    if (isDirectory(pkgDir)) {
      if (subpath) return resolveFile(pkgDir, subpath, tried);
      const pkg = readPackageJson(pkgDir);
      const target = pkg ? resolveExportsTarget(pkg['exports']) ?? (typeof pkg['main'] === 'string' ? pkg['main'] : undefined) : undefined;
      return resolveFile(pkgDir, target ?? 'index', tried);
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** Does `request` look like a bare package name rather than a path? */
export function isBareSpecifier(request: string): boolean {
  return !request.startsWith('.') && !request.startsWith('/') && !/^[a-zA-Z]:[\\/]/.test(request) &&
    /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/.*)?$/i.test(request);
}

/**
 * MODULE of `--wsgi-app`: a file under app/ (with or without extension, or a folder), else an
 * installed package resolved from app/.
 */
export function resolveAppModule(appDir: string, request: string, tried: string[]): string | undefined {
  const file = resolveFile(appDir, request, tried);
  if (file) return file;
  if (isBareSpecifier(request)) return resolvePackage(appDir, request, tried);
  return undefined;
}
