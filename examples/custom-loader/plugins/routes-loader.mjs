// An app-loader plugin (the original wsgid's IAppLoader, like its PyRoutes loader): apps made of
// one file per route in app/routes/, each exporting a function per HTTP method.
//   app/routes/index.mjs  → /            app/routes/hello.mjs → /hello and /hello/<rest>
// It also adds a `wsgid routes --app-path=DIR` command that lists them.
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

function routeFiles(appDir) {
  const dir = path.join(appDir, 'routes');
  return readdirSync(dir)
    .filter((name) => /\.m?js$/.test(name))
    .sort()
    .map((name) => {
      const base = name.replace(/\.m?js$/, '');
      return { prefix: base === 'index' ? '/' : `/${base}`, file: path.join(dir, name) };
    });
}

export const loader = {
  name: 'routes-folder',
  canLoad(appDir) {
    return existsSync(path.join(appDir, 'routes'));
  },
  async load(appDir) {
    const routes = [];
    for (const { prefix, file } of routeFiles(appDir)) {
      routes.push({ prefix, handlers: await import(pathToFileURL(file).href) });
    }
    // Longest prefix first, so /hello wins over /.
    routes.sort((a, b) => b.prefix.length - a.prefix.length);
    const app = {
      async fetch(request) {
        const { pathname } = new URL(request.url);
        for (const { prefix, handlers } of routes) {
          const matches = prefix === '/' ? pathname === '/' : pathname === prefix || pathname.startsWith(prefix + '/');
          if (!matches) continue;
          const handler = handlers[request.method];
          if (!handler) return new Response('method not allowed\n', { status: 405 });
          const rest = prefix === '/' ? '' : decodeURIComponent(pathname.slice(prefix.length + 1));
          return handler(request, rest);
        }
        return new Response('not found\n', { status: 404 });
      },
    };
    return { kind: 'fetch', app, description: `app/routes/ (${routes.length} route files)` };
  },
};

export const routesCommand = {
  command: 'routes',
  description: 'List the routes of an app/routes/ app.',
  run(args, { settings }) {
    for (const { prefix, file } of routeFiles(path.join(settings.appPath, 'app'))) {
      process.stdout.write(`${prefix.padEnd(12)} ${path.relative(settings.appPath, file)}\n`);
    }
    return 0;
  },
};
