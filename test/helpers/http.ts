/**
 * Test helper: a small, real HTTP client for integration tests.
 *
 * - `request(url, opts)`: one request on a fresh connection. HTTP/1.1 goes through node:http (its strict
 *   parser checks that what we serve is valid HTTP); HTTP/1.0 goes over a raw socket and is parsed
 *   here. Never hangs: every call has a timeout (default 10 s) and rejects when it fires.
 * - `RawConnection`: send arbitrary bytes (pipelining, HTTP/1.0, Connection: close, garbage) and read
 *   responses one by one, or everything until the server closes.
 * - `sendRaw(url, bytes)`: write bytes, read until the server closes (bounded).
 * - `closedAfterResponse(url, rawRequest)`: did the server close the connection after its response?
 */
import http from 'node:http';
import net from 'node:net';

export interface HttpRequestOptions {
  method?: string;
  /** Object form, or raw pairs (keeps duplicates and order). */
  headers?: Record<string, string | number | string[]> | Array<[string, string]>;
  body?: string | Buffer | Uint8Array;
  httpVersion?: '1.0' | '1.1';
  /** Default 10 000 ms. */
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  httpVersion: string;
  /** Header names lowercased; repeated headers joined as node:http does (set-cookie stays an array). */
  headers: Record<string, string | string[] | undefined>;
  /** Raw name/value pairs as received, in order. */
  rawHeaders: Array<[string, string]>;
  body: Buffer;
  /** body as utf8 (convenience). */
  text: string;
}

const DEFAULT_TIMEOUT = 10_000;

function headerPairs(h: HttpRequestOptions['headers']): Array<[string, string]> {
  if (!h) return [];
  if (Array.isArray(h)) return h.map(([k, v]) => [k, String(v)]);
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(h)) {
    if (Array.isArray(v)) for (const x of v) out.push([k, x]);
    else out.push([k, String(v)]);
  }
  return out;
}

function toBuffer(b: string | Buffer | Uint8Array | undefined): Buffer | undefined {
  if (b === undefined) return undefined;
  if (typeof b === 'string') return Buffer.from(b);
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function pairsToObject(pairs: Array<[string, string]>): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [k0, v] of pairs) {
    const k = k0.toLowerCase();
    const cur = out[k];
    if (k === 'set-cookie') out[k] = [...((cur as string[] | undefined) ?? []), v];
    else out[k] = cur === undefined ? v : `${cur as string}, ${v}`;
  }
  return out;
}

/** One request on a fresh connection. */
export async function request(url: string, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  if (opts.httpVersion === '1.0') return request10(url, opts);
  const u = new URL(url);
  const body = toBuffer(opts.body);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT;
  const method = opts.method ?? 'GET';
  const pairs = headerPairs(opts.headers);
  const hasLength = pairs.some(([k]) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding');
  if (body !== undefined && !hasLength) pairs.push(['Content-Length', String(body.length)]);
  // An object (repeated names → arrays), not a raw array: with a raw array node:http cannot see our
  // Content-Length and adds Transfer-Encoding: chunked as well.
  const headerObj: Record<string, string | string[]> = {};
  const firstCase = new Map<string, string>();
  for (const [k, v] of pairs) {
    const key = firstCase.get(k.toLowerCase()) ?? k;
    firstCase.set(k.toLowerCase(), key);
    const cur = headerObj[key];
    headerObj[key] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
  }
  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(new Error(`request ${method} ${url} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    };
    const req = http.request(
      { host: u.hostname, port: u.port || 80, path: `${u.pathname}${u.search}`, method, headers: headerObj, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const rawHeaders: Array<[string, string]> = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) rawHeaders.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
          const b = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            httpVersion: res.httpVersion,
            headers: { ...res.headers },
            rawHeaders,
            body: b,
            text: b.toString('utf8'),
          });
          // The connection is ours alone (agent: false): let it go.
          res.socket?.destroy();
        });
      },
    );
    req.on('error', fail);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

async function request10(url: string, opts: HttpRequestOptions): Promise<HttpResponse> {
  const u = new URL(url);
  const body = toBuffer(opts.body);
  const method = opts.method ?? 'GET';
  const pairs = headerPairs(opts.headers);
  if (!pairs.some(([k]) => k.toLowerCase() === 'host')) pairs.unshift(['Host', u.host]);
  if (body !== undefined && !pairs.some(([k]) => k.toLowerCase() === 'content-length')) {
    pairs.push(['Content-Length', String(body.length)]);
  }
  const head = `${method} ${u.pathname}${u.search} HTTP/1.0\r\n${pairs.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  const conn = await RawConnection.connect(url, { timeoutMs: opts.timeoutMs });
  try {
    conn.write(body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : head);
    return await conn.readResponse({ method, timeoutMs: opts.timeoutMs });
  } finally {
    conn.destroy();
  }
}

// ------------------------------------------------------------------------------------------------
// Response parsing from raw bytes

export interface ParsedResponse extends HttpResponse {
  /** How the body was delimited. */
  framing: 'content-length' | 'chunked' | 'close' | 'none';
  /** Trailers of a chunked body, if any. */
  trailers: Array<[string, string]>;
}

/**
 * Parse one response at the start of `buf`. Returns null when more bytes are needed. `eof` says the
 * peer closed (so a close-delimited body is complete). Throws on malformed input.
 */
export function parseResponse(
  buf: Buffer,
  opts: { method?: string; eof?: boolean } = {},
): { response: ParsedResponse; rest: Buffer } | null {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) {
    if (opts.eof && buf.length > 0) throw new Error(`incomplete response head: ${JSON.stringify(buf.toString('latin1'))}`);
    return null;
  }
  const headText = buf.subarray(0, headEnd).toString('latin1');
  const [statusLine, ...headerLines] = headText.split('\r\n');
  const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(statusLine ?? '');
  if (!m) throw new Error(`bad status line: ${JSON.stringify(statusLine)}`);
  const rawHeaders: Array<[string, string]> = [];
  for (const line of headerLines) {
    const i = line.indexOf(':');
    if (i <= 0) throw new Error(`bad header line: ${JSON.stringify(line)}`);
    rawHeaders.push([line.slice(0, i), line.slice(i + 1).trim()]);
  }
  const headers = pairsToObject(rawHeaders);
  const status = Number(m[2]);
  const bodyStart = headEnd + 4;
  const base = { status, statusText: m[3] ?? '', httpVersion: m[1]!, headers, rawHeaders, trailers: [] as Array<[string, string]> };
  const noBody = opts.method?.toUpperCase() === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
  if (noBody) {
    return { response: { ...base, body: Buffer.alloc(0), text: '', framing: 'none' }, rest: buf.subarray(bodyStart) };
  }
  const te = String(headers['transfer-encoding'] ?? '').toLowerCase();
  if (te.includes('chunked')) {
    let pos = bodyStart;
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) return incomplete(opts.eof, 'chunk size');
      const sizeText = buf.subarray(pos, lineEnd).toString('latin1').split(';')[0]!.trim();
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size ${JSON.stringify(sizeText)}`);
      const size = parseInt(sizeText, 16);
      pos = lineEnd + 2;
      if (size === 0) {
        const trailers: Array<[string, string]> = [];
        for (;;) {
          const te2 = buf.indexOf('\r\n', pos);
          if (te2 < 0) return incomplete(opts.eof, 'trailers');
          const line = buf.subarray(pos, te2).toString('latin1');
          pos = te2 + 2;
          if (line === '') break;
          const i = line.indexOf(':');
          trailers.push([line.slice(0, i), line.slice(i + 1).trim()]);
        }
        const b = Buffer.concat(parts);
        return { response: { ...base, trailers, body: b, text: b.toString('utf8'), framing: 'chunked' }, rest: buf.subarray(pos) };
      }
      if (buf.length < pos + size + 2) return incomplete(opts.eof, 'chunk data');
      parts.push(Buffer.from(buf.subarray(pos, pos + size)));
      if (buf[pos + size] !== 13 || buf[pos + size + 1] !== 10) throw new Error('chunk not followed by CRLF');
      pos += size + 2;
    }
  }
  const cl = headers['content-length'];
  if (cl !== undefined) {
    const n = Number(String(cl).split(',')[0]!.trim());
    if (!Number.isInteger(n) || n < 0) throw new Error(`bad content-length ${String(cl)}`);
    if (buf.length < bodyStart + n) return incomplete(opts.eof, 'body');
    const b = Buffer.from(buf.subarray(bodyStart, bodyStart + n));
    return { response: { ...base, body: b, text: b.toString('utf8'), framing: 'content-length' }, rest: buf.subarray(bodyStart + n) };
  }
  // Close-delimited body.
  if (!opts.eof) return null;
  const b = Buffer.from(buf.subarray(bodyStart));
  return { response: { ...base, body: b, text: b.toString('utf8'), framing: 'close' }, rest: Buffer.alloc(0) };
}

function incomplete(eof: boolean | undefined, what: string): null {
  if (eof) throw new Error(`connection closed in the middle of the ${what}`);
  return null;
}

/** Parse every response in `buf` (which must end at the server's close). */
export function parseAllResponses(buf: Buffer, methods: string[] = []): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let rest = buf;
  while (rest.length > 0) {
    const r = parseResponse(rest, { method: methods[out.length], eof: true });
    if (!r) break;
    out.push(r.response);
    rest = r.rest;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Raw connections

export class RawConnection {
  readonly socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private closedFlag = false;
  private error: Error | undefined;
  private waiters: Array<() => void> = [];
  private readonly timeoutMs: number;

  private constructor(socket: net.Socket, timeoutMs: number) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    socket.on('data', (c: Buffer) => {
      this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.closedFlag = true;
      this.wake();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.wake();
    });
  }

  static connect(url: string, opts: { timeoutMs?: number } = {}): Promise<RawConnection> {
    const u = new URL(url);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT;
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: u.hostname, port: Number(u.port || 80) });
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect to ${url} timed out`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(t);
        sock.removeListener('error', onErr);
        resolve(new RawConnection(sock, timeoutMs));
      });
      const onErr = (err: Error) => {
        clearTimeout(t);
        reject(err);
      };
      sock.once('error', onErr);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait until `cond()` holds or the peer ended; rejects after timeoutMs. */
  private async waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.error) throw this.error;
      if (this.ended) return;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received so far: ${JSON.stringify(this.buf.toString('latin1').slice(0, 2000))}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Half-close our side (send FIN). */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Bytes received and not yet consumed by readResponse(). */
  get pending(): Buffer {
    return this.buf;
  }

  /** Has the server closed (EOF) its side? */
  get serverClosed(): boolean {
    return this.ended;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Read exactly one response (consumes it). Rejects on timeout or if the server closes first. */
  async readResponse(opts: { method?: string; timeoutMs?: number } = {}): Promise<ParsedResponse> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    let parsed: { response: ParsedResponse; rest: Buffer } | null = null;
    await this.waitFor(
      () => {
        parsed = parseResponse(this.buf, { method: opts.method, eof: false });
        return parsed !== null;
      },
      timeoutMs,
      'a response',
    );
    if (!parsed) {
      if (this.error) throw this.error;
      if (this.buf.length === 0) throw new Error('server closed the connection without a response');
      parsed = parseResponse(this.buf, { method: opts.method, eof: true });
      if (!parsed) throw new Error('server closed the connection without a complete response');
    }
    const p = parsed as { response: ParsedResponse; rest: Buffer };
    this.buf = p.rest;
    return p.response;
  }

  /** Read until the server closes; returns all remaining bytes. Rejects on timeout. */
  async readUntilClose(timeoutMs: number = this.timeoutMs): Promise<Buffer> {
    await this.waitFor(() => this.ended, timeoutMs, 'the server to close the connection');
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  /** Wait up to `ms` for the server to close; true if it did (does not reject on timeout). */
  async waitClosed(ms: number): Promise<boolean> {
    try {
      await this.waitFor(() => this.ended, ms, 'close');
    } catch (err) {
      if (this.error) return true; // reset by peer counts as closed
      if (err instanceof Error && err.message.startsWith('timed out')) return false;
      throw err;
    }
    return this.ended;
  }
}

/**
 * Write `data` on a fresh connection and read until the server closes. With `endAfterWrite`, half-close
 * our side after writing (some servers only close then). Rejects (fails the test) after `timeoutMs`
 * (default 10 s) instead of hanging, with what was received in the message.
 */
export async function sendRaw(
  url: string,
  data: string | Buffer,
  opts: { timeoutMs?: number; endAfterWrite?: boolean } = {},
): Promise<Buffer> {
  const conn = await RawConnection.connect(url, opts);
  try {
    conn.write(data);
    if (opts.endAfterWrite) conn.end();
    return await conn.readUntilClose(opts.timeoutMs ?? DEFAULT_TIMEOUT);
  } finally {
    conn.destroy();
  }
}

/**
 * Send one raw request, read its response, then wait `graceMs` (default 500) for the server to close.
 * Returns the response and whether the connection was closed.
 */
export async function closedAfterResponse(
  url: string,
  rawRequest: string | Buffer,
  opts: { method?: string; graceMs?: number; timeoutMs?: number } = {},
): Promise<{ response: ParsedResponse; closed: boolean }> {
  const conn = await RawConnection.connect(url, opts);
  try {
    conn.write(rawRequest);
    const response = await conn.readResponse({ method: opts.method, timeoutMs: opts.timeoutMs });
    const closed = await conn.waitClosed(opts.graceMs ?? 500);
    return { response, closed };
  } finally {
    conn.destroy();
  }
}

/** Build a raw request: `rawRequest('GET', '/x', {Host: 'h'}, body, '1.1')`. Adds Content-Length for a body. */
export function rawRequest(
  method: string,
  target: string,
  headers: Record<string, string | number> | Array<[string, string]> = {},
  body?: string | Buffer,
  httpVersion: '1.0' | '1.1' = '1.1',
): Buffer {
  const pairs = headerPairs(headers);
  const b = toBuffer(body);
  if (b !== undefined && !pairs.some(([k]) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding')) {
    pairs.push(['Content-Length', String(b.length)]);
  }
  if (!pairs.some(([k]) => k.toLowerCase() === 'host')) pairs.unshift(['Host', 'localhost']);
  const head = Buffer.from(`${method} ${target} HTTP/${httpVersion}\r\n${pairs.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`, 'latin1');
  return b ? Buffer.concat([head, b]) : head;
}

/**
 * Poll until `url` answers with any HTTP response (mongrel2 holds a request until a handler connects,
 * so an answer means the handler is up). Each attempt waits up to `attemptMs`. Rejects after
 * `timeoutMs`, or as soon as `abort()` returns a reason string.
 */
export async function waitForHttp(
  url: string,
  timeoutMs = 15_000,
  opts: { attemptMs?: number; abort?: () => string | undefined; method?: string } = {},
): Promise<HttpResponse> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    const reason = opts.abort?.();
    if (reason) throw new Error(`waitForHttp(${url}) aborted: ${reason}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`waitForHttp(${url}): no answer within ${timeoutMs} ms (last error: ${String(lastErr)})`);
    try {
      return await request(url, { method: opts.method ?? 'GET', timeoutMs: Math.min(opts.attemptMs ?? 1000, left) });
    } catch (err) {
      lastErr = err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
