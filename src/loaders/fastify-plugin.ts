/**
 * fastify-cli plugins: the `app.js` create-fastify generates is no request listener but a plugin,
 * `module.exports = async function (fastify, opts) {…}` (with `module.exports.options`), that
 * `fastify start app.js` registers on a fastify instance it creates. Its arity is 2 like a Node
 * `(req, res)` listener's, so it must be recognized before classify() (./classify.ts) sees it.
 * Served here as `fastify start` serves it: the app's own fastify (from its node_modules), the
 * plugin registered unencapsulated (fastify-plugin's skip-override), `ready()`, then `routing`.
 */
import { createRequire } from 'node:module';
import type { Classified } from './classify.js';
import { AppLoadError } from './errors.js';

/** Names a plugin's first and second parameters go by; a listener's are `req, res` / `request, response`. */
const HOST_NAMES = new Set(['fastify', 'instance', 'app', 'server', 'f', 'fastifyInstance']);
const OPTIONS_NAMES = new Set(['opts', 'options', '_opts', '_options', 'pluginOptions', 'opt', '_']);
/** Markers fastify itself reads on a plugin function. */
const MARKERS = [Symbol.for('skip-override'), Symbol.for('fastify.display-name'), Symbol.for('plugin-meta')];

/** The declared parameter names of a function (best effort: `function (a, b)`, `async (a, b) =>`). */
export function parameterNames(fn: Function): string[] {
  const source = Function.prototype.toString.call(fn);
  const m = /^[^(]*\(([^)]*)\)/.exec(source) ?? /^(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(source);
  if (!m) return [];
  return m[1]!.split(',').map((p) => p.replace(/\/\*.*?\*\/|\/\/.*$/gm, '').trim().split(/[\s=]/)[0]!).filter(Boolean);
}

/** Does `value` look like a fastify plugin `(fastify, opts[, done])`, not a `(req, res)` listener? */
export function isFastifyPlugin(value: unknown): value is Function & { options?: unknown } {
  if (typeof value !== 'function' || value.length < 2 || value.length > 3) return false;
  const names = parameterNames(value);
  const named = HOST_NAMES.has(names[0] ?? '') && OPTIONS_NAMES.has(names[1] ?? '');
  const marked = MARKERS.some((marker) => marker in value) || ('autoConfig' in value && named);
  return named || marked;
}

type FastifyFactory = (options?: Record<string, unknown>) => {
  register(plugin: unknown, options?: unknown): unknown;
  ready(): PromiseLike<unknown>;
  routing(req: unknown, res: unknown): void;
};

/** Serve a fastify plugin of `file` through the app's own fastify. */
export async function serveFastifyPlugin(plugin: Function, file: string, rel: string): Promise<Classified> {
  const require = createRequire(file);
  let factory: FastifyFactory;
  try {
    const loaded = require('fastify') as FastifyFactory | { default: FastifyFactory };
    factory = typeof loaded === 'function' ? loaded : loaded.default;
  } catch (error) {
    throw new AppLoadError(
      `${rel} exports a fastify plugin \`(fastify, opts)\` (the app of \`fastify start ${rel}\`), not a request listener, ` +
        `and fastify cannot be loaded from its folder (${(error as Error).message.split('\n')[0]}): run \`npm install fastify\` in app/`,
      [],
      { file },
    );
  }
  // fastify-plugin's marker, as `fastify start` wraps the file with fp(): decorators reach the root.
  (plugin as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
  const app = factory();
  app.register(plugin);
  await app.ready();
  const routing = app.routing;
  return { kind: 'node', app: (req: unknown, res: unknown) => routing(req, res), shape: 'fastify-cli plugin (fastify, opts), served by its fastify', listeners: [routing] };
}
