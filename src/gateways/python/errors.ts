/**
 * The errors of the Python gateways (WSGI and ASGI), kept apart from their gateways so that
 * describing a load failure (worker/load-failure.ts, cli/start.ts) does not load one.
 */
import { WsgidError } from '../../errors.js';

/** Which bridge reported an error: names the app in messages. */
export type PythonKind = 'WSGI' | 'ASGI';

/**
 * The Python app could not be imported (or, for ASGI, its lifespan startup failed): `traceback` is
 * what `python -c 'import app'` would print (the bridge's app_traceback), shown verbatim on the
 * terminal of a failed start.
 */
export class PythonLoadError extends WsgidError {
  constructor(
    readonly python: string,
    readonly traceback: string,
    readonly kind: PythonKind = 'WSGI',
  ) {
    super(`the ${kind} app failed to load (${python}): ${traceback.trim().split('\n').at(-1) ?? ''}`, 'WSGID_ERR_APP_LOAD');
  }
}

/** An exception the app raised, with Python's traceback as the message (for filters' `after`). */
export class PythonAppError extends WsgidError {
  constructor(
    readonly traceback: string,
    readonly kind: PythonKind = 'WSGI',
  ) {
    super(
      traceback.trim().split('\n').at(-1) || `the ${kind} app failed`,
      kind === 'WSGI' ? 'WSGID_ERR_WSGI_APP' : 'WSGID_ERR_ASGI_APP',
    );
  }
}
