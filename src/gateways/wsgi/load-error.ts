/** Kept apart from ./index.ts so that describing a load failure does not load the WSGI gateway. */
import type { ErrorCode } from '../../errors.js';

/**
 * The Python app could not be imported (or, for ASGI, its lifespan startup failed): `traceback` is what `python -c 'import app'` would print
 * (bridge.py app_traceback), shown verbatim on the terminal of a failed start.
 */
export class WsgiLoadError extends Error {
  override readonly name = 'WsgiLoadError';
  readonly code: ErrorCode = 'WSGID_ERR_APP_LOAD';
  constructor(
    readonly python: string,
    readonly traceback: string,
    /** Which bridge reported it: the ASGI bridge loads apps the same way (asgi/index.ts). */
    readonly kind: 'WSGI' | 'ASGI' = 'WSGI',
  ) {
    super(`the ${kind} app failed to load (${python}): ${traceback.trim().split('\n').at(-1) ?? ''}`);
  }
}

