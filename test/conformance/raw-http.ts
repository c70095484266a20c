/**
 * A raw HTTP/1.x client for the conformance suite: writes exactly the bytes it is given (pipelined
 * requests in one write) and parses what comes back strictly, response by response, knowing each
 * request's method (a HEAD response has no body). It decodes the body (Content-Length, chunked,
 * close-delimited) and says how each response ended, so that a truncated body, a hang or a
 * connection closed early are results to compare, not exceptions.
 */
import net from 'node:net';

export interface RawResponse {
  status: number;
  reason: string;
  version: string;
  /** Names as received, in order. */
  headers: Array<[string, string]>;
  /** The decoded body. */
  body: Buffer;
  /** The body ended as its framing said it would. */
  complete: boolean;
  framing: 'none' | 'length' | 'chunked' | 'close';
}

export interface ExchangeResult {
  responses: RawResponse[];
  /** The server closed the connection (after the last parsed response or in the middle of it). */
  closed: boolean;
  /** Parse errors or a hang, described; undefined when every response was read. */
  problem: string | undefined;
}

class ByteReader {
  private chunks: Buffer[] = [];
  private length = 0;
  ended = false;
  private wake: (() => void) | undefined;

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', () => {});
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    await new Promise<void>((resolve) => (this.wake = resolve));
    return true;
  }

  private flat(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private take(n: number): Buffer {
    const all = this.flat();
    const out = all.subarray(0, n);
    this.chunks = n < all.length ? [all.subarray(n)] : [];
    this.length -= n;
    return out;
  }

  /** Bytes up to and including `delimiter`, or undefined when the connection ends first. */
  async until(delimiter: string): Promise<Buffer | undefined> {
    let from = 0;
    for (;;) {
      const all = this.flat();
      const at = all.indexOf(delimiter, Math.max(0, from - delimiter.length), 'latin1');
      if (at >= 0) return this.take(at + delimiter.length);
      from = all.length;
      if (!(await this.more())) return undefined;
    }
  }

  /** Exactly n bytes, or what there was when the connection ended (shorter). */
  async exactly(n: number): Promise<Buffer> {
    while (this.length < n) if (!(await this.more())) break;
    return this.take(Math.min(n, this.length));
  }

  /** Everything until the connection ends. */
  async rest(): Promise<Buffer> {
    while (await this.more());
    return this.take(this.length);
  }

  async closed(): Promise<void> {
    while (await this.more());
  }

  get buffered(): number {
    return this.length;
  }
}

/** Strip optional whitespace (SP, HTAB; RFC 9110 §5.5), not every Unicode space as trim() would. */
export function trimOws(value: string): string {
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

function bodyless(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

async function readResponse(reader: ByteReader, method: string): Promise<RawResponse | string> {
  const head = await reader.until('\r\n\r\n');
  if (head === undefined) return reader.buffered === 0 ? 'connection closed before the response' : 'connection closed inside the head';
  const lines = head.toString('latin1').slice(0, -4).split('\r\n');
  const statusLine = /^(HTTP\/1\.[01]) (\d{3})(?: (.*))?$/.exec(lines[0]!);
  if (!statusLine) return `bad status line ${JSON.stringify(lines[0])}`;
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return `bad header line ${JSON.stringify(line)}`;
    headers.push([line.slice(0, colon), trimOws(line.slice(colon + 1))]);
  }
  const status = Number(statusLine[2]);
  const get = (name: string): string[] => headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
  const response: RawResponse = {
    status,
    reason: statusLine[3] ?? '',
    version: statusLine[1]!,
    headers,
    body: Buffer.alloc(0),
    complete: true,
    framing: 'none',
  };
  if (bodyless(method, status)) return response;
  const transferEncoding = get('transfer-encoding').join(',').toLowerCase();
  const lengths = get('content-length');
  if (transferEncoding.includes('chunked')) {
    response.framing = 'chunked';
    const parts: Buffer[] = [];
    for (;;) {
      const sizeLine = await reader.until('\r\n');
      if (sizeLine === undefined) {
        response.complete = false;
        break;
      }
      const size = parseInt(sizeLine.toString('latin1'), 16);
      if (!Number.isInteger(size) || size < 0) return `bad chunk size line ${JSON.stringify(sizeLine.toString('latin1'))}`;
      if (size === 0) {
        // Trailers, then the blank line.
        for (;;) {
          const trailer = await reader.until('\r\n');
          if (trailer === undefined) {
            response.complete = false;
            break;
          }
          if (trailer.length === 2) break;
        }
        break;
      }
      const data = await reader.exactly(size);
      parts.push(data);
      const crlf = await reader.exactly(2);
      if (data.length < size || crlf.length < 2) {
        response.complete = false;
        break;
      }
      if (crlf.toString('latin1') !== '\r\n') return 'chunk not followed by CRLF';
    }
    response.body = Buffer.concat(parts);
  } else if (lengths.length > 0) {
    if (new Set(lengths).size !== 1) return `conflicting Content-Length headers ${JSON.stringify(lengths)}`;
    const length = Number(lengths[0]);
    if (!Number.isSafeInteger(length) || length < 0) return `bad Content-Length ${JSON.stringify(lengths[0])}`;
    response.framing = 'length';
    response.body = await reader.exactly(length);
    response.complete = response.body.length === length;
  } else {
    response.framing = 'close';
    response.body = await reader.rest();
  }
  return response;
}

/**
 * Send `bytes` on a new connection to 127.0.0.1:port and read one response per entry of `methods`.
 * `hangMs` bounds the whole exchange (a hang is a result, reported in `problem`); with `awaitClose`,
 * the exchange also waits for the server to close the connection after the last response.
 */
export async function exchange(
  port: number,
  bytes: Buffer,
  methods: string[],
  options: { hangMs: number; awaitClose?: boolean },
): Promise<ExchangeResult> {
  const { hangMs } = options;
  const socket = net.connect(port, '127.0.0.1');
  const reader = new ByteReader(socket);
  socket.write(bytes);
  const responses: RawResponse[] = [];
  let problem: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), hangMs)));
  try {
    for (const method of methods) {
      const next = await Promise.race([readResponse(reader, method), hang]);
      if (next === 'hang') {
        problem = `no complete response within ${hangMs} ms (got ${responses.length} of ${methods.length})`;
        break;
      }
      if (typeof next === 'string') {
        problem = next;
        break;
      }
      responses.push(next);
      if (!next.complete || next.framing === 'close') break;
    }
    // A connection that must close after the last response: wait for it (bounded by the hang limit).
    if (options.awaitClose && problem === undefined) await Promise.race([reader.closed(), hang]);
    return { responses, closed: reader.ended, problem };
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}
