/**
 * What the WSGI loader (loaders/wsgi.ts) hands the WSGI gateway as `LoadedApp.app`, and the parsing
 * of `--wsgi-app` names. Pure: no I/O.
 */
import path from 'node:path';

/** Where the WSGI callable lives. */
export interface WsgiEntry {
  /** Importable module name (`pkg.mod`), or undefined with `file`. */
  readonly module?: string;
  /** Absolute path of a .py file to load as a module. */
  readonly file?: string;
  /** Attribute path in the module (`app`, `factory.app`); undefined → try `candidates`. */
  readonly attr?: string;
  /** `module:factory()`: call the attribute (no arguments) to get the app. */
  readonly call: boolean;
  /**
   * For a dotted name without a colon (`pkg.mod.app`): if `pkg.mod` has no `app`, the whole name is
   * tried as a module exposing one of `candidates`.
   */
  readonly fallbackModule?: string;
}

export interface PythonSpec {
  /** Interpreter to run the bridge with. */
  readonly python: string;
  /** The app folder's app/ (absolute). */
  readonly appDir: string;
  /** Folders put first on sys.path, in order. */
  readonly sysPath: readonly string[];
  /** Working directory of the Python process. */
  readonly cwd: string;
  /** The WSGI callable; undefined for a Django project (get_wsgi_application()). */
  readonly entry?: WsgiEntry;
  /** Attribute names tried when `entry.attr` is not given. */
  readonly candidates: readonly string[];
  /** Django: DJANGO_SETTINGS_MODULE to set when the environment does not set it. */
  readonly django?: { readonly settingsModule?: string };
  /** Environment variables for the app (settings.envs), set before Python starts. */
  readonly envs: Readonly<Record<string, string>>;
  /** SERVER_NAME for requests without a Host header. */
  readonly serverName?: string;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function isDotted(name: string): boolean {
  return name.split('.').every((part) => IDENT.test(part));
}

/**
 * Parse a WSGI entry name, or return undefined when `text` is not one:
 * - `pkg.mod:attr`, `pkg.mod:obj.attr`, `pkg.mod:factory()` (gunicorn's form);
 * - `pkg.mod.attr` (the original wsgid's form: the last component is the attribute);
 * - `module` alone (attribute `application`, then `app`);
 * - `path/to/file.py` or `path/to/file.py:attr` (relative to `baseDir`).
 */
export function parseWsgiEntry(text: string, baseDir: string): WsgiEntry | undefined {
  const value = text.trim();
  if (value === '') return undefined;
  const fileMatch = /^(.+\.py)(?::([A-Za-z_][A-Za-z0-9_.]*?)(\(\))?)?$/.exec(value);
  if (fileMatch) {
    const attr = fileMatch[2];
    if (attr !== undefined && !isDotted(attr)) return undefined;
    return { file: path.resolve(baseDir, fileMatch[1]!), attr, call: fileMatch[3] !== undefined };
  }
  const colon = value.indexOf(':');
  if (colon >= 0) {
    const module = value.slice(0, colon);
    let attr = value.slice(colon + 1);
    const call = attr.endsWith('()');
    if (call) attr = attr.slice(0, -2);
    if (!isDotted(module) || !isDotted(attr)) return undefined;
    return { module, attr, call };
  }
  if (!isDotted(value)) return undefined;
  const dot = value.lastIndexOf('.');
  if (dot < 0) return { module: value, call: false };
  return { module: value.slice(0, dot), attr: value.slice(dot + 1), call: false, fallbackModule: value };
}

/** Text form of an entry, for descriptions. */
export function describeEntry(entry: WsgiEntry, appDir: string): string {
  const where = entry.file !== undefined ? path.relative(path.dirname(appDir), entry.file) : entry.module ?? '?';
  return entry.attr !== undefined ? `${where}:${entry.attr}${entry.call ? '()' : ''}` : where;
}

/** Narrow an unknown LoadedApp.app to a PythonSpec (the gateway checks what it is given). */
export function isPythonSpec(value: unknown): value is PythonSpec {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<Record<keyof PythonSpec, unknown>>;
  return (
    typeof v.python === 'string' &&
    typeof v.appDir === 'string' &&
    typeof v.cwd === 'string' &&
    Array.isArray(v.sysPath) &&
    Array.isArray(v.candidates) &&
    typeof v.envs === 'object' &&
    v.envs !== null &&
    (v.entry !== undefined || v.django !== undefined)
  );
}
