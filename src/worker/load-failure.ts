/**
 * Why the app could not be loaded, told the way the user's own tools tell it:
 * - a Python app: the traceback as `python -c 'import app'` prints it (wsgid_bridge_common.py app_traceback),
 *   with a hint to use --python or the app's virtualenv when a module is missing;
 * - a JavaScript app: the location, the offending line and a caret, as `node app.js` prints them,
 *   then the error and its stack without Node's internal frames. An ES module's SyntaxError carries
 *   no location when imported (Node keeps it private), so `node --check` finds it: on the entry
 *   file, then on the files it imports relatively (parsing only, nothing runs).
 * The worker logs it and sends it to the master in its 'fatal' message; a failed start prints it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AppLoadError } from '../loaders/errors.js';
import { PythonLoadError } from '../gateways/python/errors.js';

export interface LoadFailure {
  /** One line. */
  summary: string;
  /** Shown verbatim under it (a traceback, a code frame). */
  detail?: string;
  hint?: string;
}

/** A missing module in a Python traceback's last line, e.g. `ModuleNotFoundError: No module named 'django'`. */
export function missingPythonModule(traceback: string): string | undefined {
  const last = traceback.trimEnd().split('\n').at(-1) ?? '';
  return /^ModuleNotFoundError: No module named '([^']+)'/.exec(last)?.[1];
}

export function pythonHint(python: string, module: string): string {
  const top = module.split('.')[0];
  return (
    `Python module '${top}' is not installed for ${python}, the interpreter wsgid ran. ` +
    `If the app has a virtualenv, start wsgid with --python=/path/to/venv/bin/python (app/.venv and app/venv are used ` +
    `without it); otherwise install it: ${python} -m pip install ${top}`
  );
}

/** wsgid's own code (dist/src/ or src/): its frames are not the app's. */
const WSGID_SOURCE = fileURLToPath(new URL('../', import.meta.url));

/** Node's frames (node:internal/…), wsgid's, and `node --check`'s version trailer say nothing about the app. */
function appStack(stack: string): string {
  return stack
    .split('\n')
    .filter((line) => !/^\s+at .*\(?node:/.test(line) && !(/^\s+at /.test(line) && line.includes(WSGID_SOURCE)) && !/^Node\.js v/.test(line))
    .join('\n')
    .replace(/\s+$/, '\n');
}

/** `file:///app/x.mjs:2:7` or `/app/x.cjs:2:7` in a stack frame → its parts (first frame that has one). */
export function firstFrameLocation(stack: string): { location: string; line: number; column: number } | undefined {
  for (const text of stack.split('\n')) {
    if (!/^\s+at /.test(text)) continue;
    const m = /(?:\(|at )((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?$/.exec(text);
    if (m) return { location: m[1]!, line: Number(m[2]), column: Number(m[3]) };
  }
  return undefined;
}

/** Node's header for an uncaught error: `location:line`, the source line, a caret under `column`. */
export function codeFrame(location: string, line: number, column: number, source: string): string {
  const text = source.split(/\r?\n/)[line - 1] ?? '';
  return `${location}:${line}\n${text}\n${' '.repeat(Math.max(0, column - 1))}^\n`;
}

/** A stack that already starts with Node's header (a CommonJS SyntaxError: `path:line\ncode\n   ^\n\n`). */
function hasHeader(stack: string): boolean {
  return /^(?:file:\/\/)?\/[^\n]*:\d+\n[^\n]*\n *\^+\s*\n/.test(stack);
}

/** Node's three header lines (location, source, caret), and the rest (a blank line, the error, its app frames). */
function splitHeader(stack: string): [string, string] {
  const lines = stack.split('\n');
  return [lines.slice(0, 3).join('\n') + '\n', appStack(lines.slice(3).join('\n'))];
}

/** The column of the caret in a header (1-based). */
function caretColumn(header: string): number {
  const caret = header.split('\n')[2] ?? '';
  return caret.indexOf('^') + 1;
}

/** Relative imports of a JavaScript file (static and dynamic with a literal), resolved to files that exist. */
export function relativeImports(file: string, source: string): string[] {
  const found: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    const target = path.resolve(path.dirname(file), m[1]!);
    for (const candidate of [target, `${target}.js`, `${target}.mjs`, `${target}.cjs`, path.join(target, 'index.js')]) {
      if (/\.[mc]?js$/.test(candidate) && existsSync(candidate)) {
        found.push(candidate);
        break;
      }
    }
  }
  return found;
}

/** `node --check` the entry and what it imports relatively: the first report with a location. */
function findSyntaxError(entry: string, root: string, limit = 40): string | undefined {
  const queue = [entry];
  const seen = new Set<string>();
  while (queue.length > 0 && seen.size < limit) {
    const file = queue.shift()!;
    if (seen.has(file) || !(root === path.sep || file.startsWith(root + path.sep))) continue;
    seen.add(file);
    const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
    if (check.error) return undefined; // no node to run (a chroot): no location then
    if (check.status !== 0 && hasHeader(check.stderr)) return check.stderr;
    try {
      queue.push(...relativeImports(file, readFileSync(file, 'utf8')));
    } catch {
      /* unreadable: skip */
    }
  }
  return undefined;
}

function jsFailure(error: AppLoadError, appRoot: string): LoadFailure {
  const cause = error.cause;
  const summary = error.message.split('\n')[0]!;
  if (!(cause instanceof Error)) return { summary, detail: error.message.includes('\n') ? error.message : undefined };
  const stack = cause.stack ?? `${cause.name}: ${cause.message}`;
  let header: string | undefined;
  let body = appStack(stack);
  if (hasHeader(stack)) {
    [header, body] = splitHeader(stack);
  } else if (cause.name === 'SyntaxError' && error.file) {
    const report = findSyntaxError(error.file, appRoot);
    if (report) {
      [header, body] = splitHeader(report);
      // `node --check` names the file by path; `node app.mjs` (an ES module, as here) by URL.
      const [first, ...others] = header.split('\n');
      const m = /^(\/.*):(\d+)$/.exec(first!);
      if (m) header = [`${pathToFileURL(m[1]!).href}:${m[2]}`, ...others].join('\n');
    }
  } else {
    const at = firstFrameLocation(stack);
    if (at) {
      try {
        const file = at.location.startsWith('file://') ? fileURLToPath(at.location) : at.location;
        header = codeFrame(at.location, at.line, at.column, readFileSync(file, 'utf8')) + '\n';
      } catch {
        /* no source at hand: the stack says where */
      }
    }
  }
  let where = '';
  if (header) {
    const first = header.split('\n')[0]!;
    let location = first;
    try {
      if (first.startsWith('file://')) location = fileURLToPath(first.replace(/:\d+$/, '')) + (/:\d+$/.exec(first)?.[0] ?? '');
    } catch {
      /* not a file URL after all: shown as it is */
    }
    where = ` (at ${location}:${caretColumn(header)})`;
  }
  const missing = /Cannot find (?:package|module) '([^']+)'/.exec(cause.message)?.[1];
  const hint =
    missing && !missing.startsWith('.') && !missing.startsWith('/')
      ? `the package '${missing}' is not installed where the app can import it: run \`npm install ${missing}\` in ${path.join(appRoot, 'app')}`
      : undefined;
  return { summary: summary + where, detail: (header ?? '') + body, hint };
}

/** Is this what a failed app load throws (a loader's AppLoadError, a Python app's import error)? */
export function isAppLoadFailure(error: unknown): error is AppLoadError | PythonLoadError {
  return error instanceof AppLoadError || error instanceof PythonLoadError;
}

/** Describe what loading the app threw (`appRoot`: the app folder, as this process reaches it). */
export function describeLoadFailure(error: unknown, appRoot: string): LoadFailure {
  if (error instanceof PythonLoadError) {
    const missing = missingPythonModule(error.traceback);
    return {
      summary: error.message,
      detail: error.traceback,
      hint: missing ? pythonHint(error.python, missing) : undefined,
    };
  }
  if (error instanceof AppLoadError) return jsFailure(error, appRoot);
  if (error instanceof Error) {
    const lines = (error.stack ?? error.message).split('\n');
    return { summary: error.message.split('\n')[0]!, detail: lines.length > 1 ? appStack(error.stack ?? '') : undefined };
  }
  return { summary: String(error) };
}
