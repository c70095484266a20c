/**
 * Test helper, run as its own process: `node load-app-child.js APP_PATH [URL_PATH]` loads the app
 * of APP_PATH exactly as a worker does (loader plugins, then loadApp), answers one GET URL_PATH
 * through it (a fetch app directly, a node app on a real ephemeral server), prints
 * `{kind, description, status, body}` as JSON on stdout and exits.
 *
 * A process of its own because a worker loads one app: the TypeScript hooks (tsx) and the app's
 * tsconfig.json (jsx, jsxImportSource) are installed once per process, so two TSX apps with
 * different JSX settings cannot share one test process.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../src/log/logger.js';
import { loadApp } from '../../src/loaders/index.js';
import { loadPlugins } from '../../src/plugins/discover.js';
import { testSettings } from './settings.js';

async function get(kind: string, app: unknown, urlPath: string): Promise<{ status: number; body: string }> {
  if (kind === 'fetch') {
    const response = await (app as { fetch(r: Request): Promise<Response> | Response }).fetch(new Request(`http://localhost${urlPath}`));
    return { status: response.status, body: await response.text() };
  }
  const listener = app as http.RequestListener;
  const server = http.createServer((req, res) => (app instanceof http.Server ? app.emit('request', req, res) : listener(req, res)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}${urlPath}`);
    return { status: response.status, body: await response.text() };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

const [appPath, urlPath = '/'] = process.argv.slice(2);
if (!appPath) throw new Error('usage: load-app-child.js APP_PATH [URL_PATH]');
const logger = createLogger({ fd: 2 }, 'error', 'test');
const settings = testSettings(appPath, { listenWaitMs: 1000 });
const loaded = await loadApp(settings, logger, await loadPlugins(settings, logger));
const answer = await get(loaded.kind, loaded.app, urlPath);
process.stdout.write(JSON.stringify({ kind: loaded.kind, description: loaded.description, ...answer }) + '\n');
process.exit(0);
