/**
 * The Python WSGI loader: decides whether the app in app/ (or `--wsgi-app`) is a Python WSGI app
 * and describes how the bridge should load it (a PythonSpec, see gateways/python/spec.ts). Nothing
 * Python runs here: import errors surface when the gateway starts the interpreter.
 *
 * Detection, as the original wsgid:
 *   1. `--wsgi-app` that names a Python object (`pkg.mod:attr`, `pkg.mod.attr`, `file.py[:attr]`)
 *      → that object, with app/ on sys.path;
 *   2. `--django`, or a Django project in app/ (manage.py naming DJANGO_SETTINGS_MODULE, or a folder
 *      with settings.py next to urls.py; hidden folders ignored) → get_wsgi_application();
 *   3. app/wsgi.py, app/app.py or app/application.py exposing `application` or `app` (Flask);
 *      an app.py or application.py whose source is an ASGI app (FastAPI, Starlette: ./asgi.ts) is
 *      served by the ASGI gateway instead, and so are app/asgi.py and a FastAPI app/main.py when no
 *      WSGI module exists. `--asgi` forces ASGI (first, before everything above).
 * Anything else → undefined (not a Python app; the JS loaders decide).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Settings } from '../config/settings.js';
import type { LoadedApp } from '../gateways/types.js';
import { describeEntry, parseWsgiEntry, type WsgiEntry, type PythonSpec } from '../gateways/python/spec.js';
import type { Logger } from '../log/logger.js';
import { ASGI_AUTO, ASGI_MODULES, detectAsgiModule, isAsgiModule } from './asgi.js';
import { AppLoadError } from './errors.js';
import { isDirectory, isFile } from './resolve.js';

const DEFAULT_PYTHON = 'python3';
const CANDIDATES = ['application', 'app'] as const;
const PY_MODULES = ['wsgi', 'app', 'application'] as const;
const JS_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts', '.jsx', '.tsx', '.json'];

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !e.name.startsWith('__') && e.name !== 'node_modules')
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/** The interpreter: an explicit --python, else app/.venv or app/venv, else python3 on PATH. */
export function resolvePython(settings: Pick<Settings, 'python'>, appDir: string): string {
  if (settings.python && settings.python !== DEFAULT_PYTHON) return settings.python;
  for (const venv of ['.venv', 'venv']) {
    const candidate = path.join(appDir, venv, 'bin', 'python');
    if (existsSync(candidate)) return candidate;
  }
  return settings.python || DEFAULT_PYTHON;
}

/** DJANGO_SETTINGS_MODULE named in a manage.py (`os.environ.setdefault("DJANGO_SETTINGS_MODULE", "x.settings")`). */
export function settingsFromManagePy(source: string): string | undefined {
  const m = /DJANGO_SETTINGS_MODULE['"]\]?\s*[,:=]\s*['"]([A-Za-z_][A-Za-z0-9_.]*)['"]/.exec(source);
  return m?.[1];
}

export interface DjangoProject {
  /** Folder put first on sys.path (holds manage.py, or the settings package). */
  readonly root: string;
  readonly settingsModule: string;
  /** Where it was found, for logs. */
  readonly found: string;
}

/**
 * Find a Django project in app/, in this order: app/manage.py; app/X/manage.py (a project folder
 * copied into app/); app/X/ with settings.py and urls.py; app/X/Y/ with both. Hidden folders are
 * ignored; the first in name order wins.
 */
export function detectDjango(appDir: string): DjangoProject | undefined {
  const fromManage = (root: string): DjangoProject | undefined => {
    const manage = path.join(root, 'manage.py');
    if (!isFile(manage)) return undefined;
    const settingsModule = settingsFromManagePy(readFileSync(manage, 'utf8'));
    return settingsModule ? { root, settingsModule, found: manage } : undefined;
  };
  const isSettingsPackage = (dir: string): boolean =>
    isFile(path.join(dir, 'settings.py')) && isFile(path.join(dir, 'urls.py'));

  const top = fromManage(appDir);
  if (top) return top;
  const dirs = subdirs(appDir);
  for (const d of dirs) {
    const nested = fromManage(path.join(appDir, d));
    if (nested) return nested;
  }
  for (const d of dirs) {
    if (isSettingsPackage(path.join(appDir, d))) {
      return { root: appDir, settingsModule: `${d}.settings`, found: path.join(appDir, d, 'settings.py') };
    }
  }
  for (const d of dirs) {
    for (const e of subdirs(path.join(appDir, d))) {
      if (isSettingsPackage(path.join(appDir, d, e))) {
        return { root: path.join(appDir, d), settingsModule: `${e}.settings`, found: path.join(appDir, d, e, 'settings.py') };
      }
    }
  }
  return undefined;
}

/** Does the module part of a `--wsgi-app` name point at a JavaScript file in app/? */
function namesJavaScript(text: string, appDir: string): boolean {
  const modulePart = text.split(':')[0] ?? text;
  if (JS_EXTENSIONS.some((ext) => modulePart.endsWith(ext))) return true;
  if (modulePart.includes('/') && !modulePart.endsWith('.py')) return true;
  const base = path.join(appDir, modulePart);
  if (JS_EXTENSIONS.some((ext) => isFile(base + ext))) return true;
  return isFile(path.join(base, 'package.json')) || isFile(path.join(base, 'index.js'));
}

/** Does the first component of a module name exist as Python code in app/? */
function pythonModuleInApp(entry: WsgiEntry, appDir: string): boolean {
  if (entry.file !== undefined) return true;
  const first = (entry.module ?? '').split('.')[0] ?? '';
  return isFile(path.join(appDir, `${first}.py`)) || isDirectory(path.join(appDir, first));
}

/**
 * Classify `--wsgi-app`: a WsgiEntry when it names a Python object, undefined when it names a
 * JavaScript module (or is no Python name at all).
 */
export function pythonEntryFor(text: string, appDir: string): WsgiEntry | undefined {
  const entry = parseWsgiEntry(text, appDir);
  if (!entry) return undefined;
  if (entry.file !== undefined) return entry;
  if (pythonModuleInApp(entry, appDir)) return entry;
  if (namesJavaScript(text, appDir)) return undefined;
  // Nothing in app/ either way: a dotted name (`pkg.wsgi:app`, `pkg.wsgi.application`) is a Python
  // module installed elsewhere (a venv, site-packages); a bare `name` is left to the JS loaders.
  return entry.module !== undefined && (entry.module.includes('.') || entry.attr !== undefined) ? entry : undefined;
}

function baseSpec(settings: Settings, appDir: string, python: string): Omit<PythonSpec, 'entry' | 'django' | 'sysPath' | 'cwd'> {
  return { python, appDir, candidates: [...CANDIDATES], envs: { ...settings.envs } };
}

function hasPythonFiles(appDir: string): boolean {
  try {
    return readdirSync(appDir).some((name) => name.endsWith('.py'));
  } catch {
    return false;
  }
}

export async function loadWsgi(settings: Settings, logger: Logger): Promise<LoadedApp | undefined> {
  const appDir = path.join(settings.appPath, 'app');
  const python = resolvePython(settings, appDir);
  const base = baseSpec(settings, appDir, python);
  const envSettings = settings.envs.DJANGO_SETTINGS_MODULE ?? process.env.DJANGO_SETTINGS_MODULE;

  if (settings.asgi !== undefined && settings.asgi !== '') return loadForcedAsgi(settings, appDir, base, envSettings, logger);

  if (settings.wsgiApp !== undefined && settings.wsgiApp !== '') {
    const entry = pythonEntryFor(settings.wsgiApp, appDir);
    if (!entry) {
      if (settings.django) {
        throw new AppLoadError(`--wsgi-app=${settings.wsgiApp} is not a Python name (expected package.module:attr or package.module.attr)`);
      }
      return undefined;
    }
    const django = settings.django ? detectDjango(appDir) : undefined;
    const root = django?.root ?? appDir;
    const spec: PythonSpec = {
      ...base,
      entry,
      sysPath: root === appDir ? [appDir] : [root, appDir],
      cwd: appDir,
      django: settings.django ? { settingsModule: django?.settingsModule } : undefined,
    };
    logger.debug('WSGI app from --wsgi-app', { entry: settings.wsgiApp, python });
    const moduleName = entry.module?.split('.')[0];
    if (moduleName !== undefined && !entry.module!.includes('.') && isAsgiModule(appDir, moduleName)) {
      logger.warn(`app/${moduleName}.py looks like an ASGI app (FastAPI, Starlette...): --wsgi-app serves it as WSGI; use --asgi=${settings.wsgiApp}`);
    }
    return { kind: 'wsgi', app: spec, description: `${describeEntry(entry, appDir)} (Python WSGI, ${python})` };
  }

  const django = detectDjango(appDir);
  if (django || settings.django) {
    const settingsModule = envSettings ?? django?.settingsModule;
    if (!settingsModule) {
      throw new AppLoadError('--django: no Django project found in app/ and DJANGO_SETTINGS_MODULE is not set', [
        `${path.join(appDir, 'manage.py')} (naming DJANGO_SETTINGS_MODULE)`,
        `${appDir}/*/manage.py`,
        `${appDir}/*/settings.py next to urls.py`,
        `${appDir}/*/*/settings.py next to urls.py`,
      ]);
    }
    const root = django?.root ?? appDir;
    const spec: PythonSpec = {
      ...base,
      sysPath: root === appDir ? [appDir] : [root, appDir],
      cwd: appDir,
      django: { settingsModule },
    };
    const where = django ? path.relative(settings.appPath, django.found) : 'DJANGO_SETTINGS_MODULE';
    return { kind: 'wsgi', app: spec, description: `Django project ${settingsModule} (${where}; Python WSGI, ${python})` };
  }

  for (const name of PY_MODULES) {
    if (isFile(path.join(appDir, `${name}.py`))) {
      if (name !== 'wsgi' && isAsgiModule(appDir, name)) return asgiModuleApp(base, appDir, name);
      const spec: PythonSpec = { ...base, entry: { module: name, call: false }, sysPath: [appDir], cwd: appDir };
      return {
        kind: 'wsgi',
        app: spec,
        description: `app/${name}.py (${CANDIDATES.join(' or ')}; Python WSGI, ${python})`,
      };
    }
  }
  const asgiModule = detectAsgiModule(appDir);
  if (asgiModule !== undefined) return asgiModuleApp(base, appDir, asgiModule);
  if (hasPythonFiles(appDir) && !isFile(path.join(appDir, 'package.json'))) {
    logger.debug('app/ has Python files but no wsgi.py/app.py/application.py, ASGI module or Django project; use --wsgi-app or --asgi');
  }
  return undefined;
}

type BaseSpec = ReturnType<typeof baseSpec>;

/** An ASGI app in app/NAME.py (attribute `application`, then `app`). */
function asgiModuleApp(base: BaseSpec, appDir: string, name: string): LoadedApp {
  const spec: PythonSpec = { ...base, entry: { module: name, call: false }, sysPath: [appDir], cwd: appDir };
  return { kind: 'asgi', app: spec, description: `app/${name}.py (${CANDIDATES.join(' or ')}; Python ASGI, ${base.python})` };
}

/** `--asgi=MODULE:ATTR` or `--asgi=auto` (Django's get_asgi_application, else the ASGI module names). */
function loadForcedAsgi(settings: Settings, appDir: string, base: BaseSpec, envSettings: string | undefined, logger: Logger): LoadedApp {
  const value = settings.asgi!.trim();
  const django = detectDjango(appDir);
  const root = django?.root ?? appDir;
  const sysPath = root === appDir ? [appDir] : [root, appDir];
  const settingsModule = envSettings ?? django?.settingsModule;
  if (value === ASGI_AUTO) {
    if (django || settings.django) {
      if (!settingsModule) throw new AppLoadError('--asgi=auto --django: no Django project found in app/ and DJANGO_SETTINGS_MODULE is not set');
      const spec: PythonSpec = { ...base, sysPath, cwd: appDir, django: { settingsModule } };
      return { kind: 'asgi', app: spec, description: `Django project ${settingsModule} (get_asgi_application; Python ASGI, ${base.python})` };
    }
    const name = detectAsgiModule(appDir) ?? ASGI_MODULES.find((n) => isFile(path.join(appDir, `${n}.py`)));
    if (name === undefined) {
      throw new AppLoadError(
        '--asgi=auto: no ASGI module found in app/',
        ASGI_MODULES.map((n) => `${path.join(appDir, n)}.py`),
      );
    }
    return asgiModuleApp(base, appDir, name);
  }
  const entry = parseWsgiEntry(value, appDir);
  if (!entry) throw new AppLoadError(`--asgi=${value} is not a Python name (expected package.module:attr, or auto)`);
  const spec: PythonSpec = {
    ...base,
    entry,
    sysPath,
    cwd: appDir,
    django: django || settings.django ? { settingsModule } : undefined,
  };
  logger.debug('ASGI app from --asgi', { entry: value, python: base.python });
  return { kind: 'asgi', app: spec, description: `${describeEntry(entry, appDir)} (Python ASGI, ${base.python})` };
}
