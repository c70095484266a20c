/**
 * The `--metrics` HTTP endpoint: `GET /metrics` answers the Prometheus text of `render()`, anything
 * else 404/405. No authentication and no TLS: meant for a scraper on the same host (loopback by
 * default, docs/METRICS.md); a non-loopback address needs `--metrics-expose`.
 */
import { createServer, type Server } from 'node:http';
import type { HostPort } from '../config/address.js';
import { CONTENT_TYPE } from './exposition.js';

export type MetricsAddress = HostPort;

export interface MetricsServer {
  /** The bound address (the port is the real one when 0 was asked for). */
  readonly address: MetricsAddress;
  close(): Promise<void>;
}

/** Listen on `address` and serve `render()` at /metrics. Rejects when the address cannot be bound. */
/**
 * `onError`: a failure after the server listens (e.g. EMFILE accepting a scrape): reported, never
 * thrown (an 'error' event without a listener would take the master down).
 */
export async function startMetricsServer(
  address: MetricsAddress,
  render: () => string,
  onError: (error: Error) => void = () => {},
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    let body: string;
    try {
      body = render();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`could not render the metrics: ${(err as Error).message}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  // Scrapes are short: do not let an idle keep-alive connection hold a stopping master.
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.removeListener('error', reject);
      server.on('error', onError);
      resolve();
    });
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
  return {
    address: { host: address.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
