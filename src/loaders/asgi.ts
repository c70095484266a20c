/**
 * ASGI detection for the Python loader (./wsgi.ts calls it): which Python apps are ASGI 3.0 apps
 * served by the ASGI gateway (gateways/asgi/). Nothing Python runs here; a module is recognised by
 * its source, under the names the frameworks' own docs use:
 *   - FastAPI: `main.py` with `app = FastAPI()`;
 *   - Starlette: `app.py` with `app = Starlette(...)`;
 *   - Django: `<project>/asgi.py` with `application` (only with `--asgi`: WSGI is the default);
 *   - any `asgi.py` exposing `application` or `app`.
 * `--asgi=MODULE:ATTR` forces an entry, `--asgi=auto` forces ASGI with this detection.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isFile } from './resolve.js';

/** `--asgi=auto`: detect the ASGI entry rather than naming it. */
export const ASGI_AUTO = 'auto';

/** Modules looked at, in order: the ones frameworks' docs name. */
export const ASGI_MODULES = ['asgi', 'main', 'app', 'application'] as const;

const ASGI_IMPORT = /^[ \t]*(?:from|import)[ \t]+(?:fastapi|starlette|quart|litestar|sanic|blacksheep|channels|django\.core\.asgi)\b/m;
const ASGI_MARKERS = [ASGI_IMPORT, /\bget_asgi_application\b/, /\basync[ \t]+def[ \t]+(?:app|application)[ \t]*\([ \t]*scope\b/];

/** Does this Python source look like it defines an ASGI app? */
export function looksLikeAsgi(source: string): boolean {
  return ASGI_MARKERS.some((marker) => marker.test(source));
}

function readSource(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The module in `appDir` that holds an ASGI app, by the frameworks' names (asgi.py, main.py,
 * app.py, application.py whose source has ASGI markers), or undefined.
 */
export function detectAsgiModule(appDir: string): string | undefined {
  for (const name of ASGI_MODULES) {
    const file = path.join(appDir, `${name}.py`);
    if (isFile(file) && looksLikeAsgi(readSource(file))) return name;
  }
  return undefined;
}

/** Is `app/<name>.py` an ASGI module (so that the WSGI default must not take it)? */
export function isAsgiModule(appDir: string, name: string): boolean {
  const file = path.join(appDir, `${name}.py`);
  return isFile(file) && looksLikeAsgi(readSource(file));
}
