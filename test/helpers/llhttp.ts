/**
 * Parse response bytes with node:http's own parser (llhttp), the oracle for heads and framing
 * that wsgid writes by hand: a loopback server writes exactly `bytes` and half-closes, a
 * node:http client reads them as a response to `method`. Nothing here was written to agree with
 * src/http/head.ts.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface LlhttpResponse {
  status: number;
  statusMessage: string;
  /** Header lines in order, as sent (names not lowercased), values decoded as Latin-1. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** llhttp saw the whole message (Content-Length reached, last chunk, or close-delimited end). */
  complete: boolean;
}

/** A parse error from llhttp (e.g. HPE_INVALID_HEADER_TOKEN) rejects. */
export async function parseWithLlhttp(bytes: Buffer | string, method = 'GET'): Promise<LlhttpResponse> {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end(data)); // answer once the request is in, then half-close
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<LlhttpResponse>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: '/', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        const done = (): void => {
          const headers: Array<[string, string]> = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) headers.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
          resolve({ status: res.statusCode!, statusMessage: res.statusMessage!, headers, body: Buffer.concat(chunks), complete: res.complete });
        };
        res.on('end', done);
        res.on('aborted', done);
        res.on('error', (error) => (res.complete ? reject(error) : done()));
      });
      req.on('error', reject);
      req.end();
    });
  } finally {
    server.close();
  }
}
