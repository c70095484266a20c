/**
 * Reference server for the bench: serve an app module's default export (a Node request listener,
 * e.g. an Express app) on a plain node:http server, with no mongrel2 and no wsgid in between.
 *
 *   node dist/bench/serve-node.js <module path> <port>
 */
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const [modulePath, portText] = process.argv.slice(2);
if (!modulePath || !portText) {
  process.stderr.write('usage: serve-node <module> <port>\n');
  process.exit(2);
}
const mod = (await import(pathToFileURL(modulePath).href)) as { default?: http.RequestListener };
if (typeof mod.default !== 'function') {
  process.stderr.write(`${modulePath}: the default export is not a request listener\n`);
  process.exit(2);
}
const server = http.createServer(mod.default);
server.keepAliveTimeout = 60_000;
server.listen(Number(portText), '127.0.0.1', () => process.stdout.write('ready\n'));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
