/**
 * Request filters (IPreRequestFilter / IPostRequestFilter) for ANY gateway, by wrapping it.
 *
 * Every gateway (fetch, node, wsgi, a plugin's) ends up doing the same two things: it reads a
 * mongrel2 message and writes raw HTTP/1.1 bytes into a ReplyChannel. So filters need no help from
 * the gateways:
 *   - `before` works on a FilterRequest built from the message's headers (METHOD, URI, VERSION,
 *     client headers); if a filter changed it, the gateway gets a copy of the message with METHOD,
 *     URI, PATH, QUERY and the client headers rewritten. A filter may instead return a
 *     FilterResponse, which is written (through the same reply wrapper) without calling the app.
 *   - `after` sees the response head: the wrapper ReplyChannel holds the first bytes the gateway
 *     writes until the blank line ending the head, parses the status and headers, runs the `after`
 *     filters (last registered first), re-serializes the head and lets the rest through untouched.
 *     Changing framing headers (Content-Length, Transfer-Encoding) is the filter's own risk.
 *   - errors: gateways answer an app's exception with a 500 themselves and report it through the
 *     request's `reportError` (GatewayRequest), which the wrapper sets, so `after` sees
 *     `info.error` whichever thread or process the error came from (a Python traceback arrives
 *     over a pipe, outside the request's async context). A gateway that throws from `handle()`
 *     gets a 500 from the wrapper, with `error` set as well.
 *
 * Cost: nothing when there are no filters (the factory is returned unchanged). With filters, a
 * copy of the request and a head parse per request.
 *
 * Integration (the worker): `const create = await withRequestFilters(await gatewayFactory(kind), settings, logger)`.
 */
import type { Settings } from '../config/settings.js';
import type { Gateway, GatewayFactory, GatewayOptions, GatewayRequest, LoadedApp } from '../gateways/types.js';
import { frameHead, statusText } from '../http/head.js';
import type { ReplyChannel } from '../http/reply-channel.js';
import type { Logger } from '../log/logger.js';
import type { Mongrel2Headers, Mongrel2Message } from '../protocol/types.js';
import { loadPlugins } from './discover.js';
import type { FilterRequest, FilterResponse, FilterResponseInfo, PluginContext, RequestFilterPlugin } from './types.js';

interface RequestSlot {
  error?: unknown;
}

function single(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

/** The filter view of a mongrel2 request. Client header names are the lower-case ones. */
export function filterRequestOf(message: Mongrel2Message): FilterRequest {
  const h = message.headers;
  const headers: Record<string, string> = {};
  for (const name in h) if (name === name.toLowerCase()) headers[name] = single(h[name]);
  const query = single(h['QUERY']);
  const uri = single(h['URI']) || message.path + (query ? '?' + query : '');
  const forwarded = headers['x-forwarded-for']?.split(',')[0]?.trim();
  return {
    method: single(h['METHOD']) || 'GET',
    url: uri,
    version: single(h['VERSION']) || 'HTTP/1.1',
    headers,
    remoteAddr: forwarded || single(h['REMOTE_ADDR']),
    locals: new Map(),
  };
}

function sameHeaders(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => b[key] === a[key]);
}

/** A copy of `message` carrying the filtered method, URL and client headers. */
export function applyFilterRequest(message: Mongrel2Message, original: FilterRequest, request: FilterRequest): Mongrel2Message {
  if (request.method === original.method && request.url === original.url && sameHeaders(original.headers, request.headers)) return message;
  const headers: Mongrel2Headers = {};
  for (const name in message.headers) if (name !== name.toLowerCase()) headers[name] = message.headers[name]!;
  for (const name in request.headers) headers[name.toLowerCase()] = request.headers[name]!;
  const at = request.url.indexOf('?');
  const path = at < 0 ? request.url : request.url.slice(0, at);
  headers['METHOD'] = request.method;
  headers['URI'] = request.url;
  headers['PATH'] = path;
  if (at < 0) delete headers['QUERY'];
  else headers['QUERY'] = request.url.slice(at + 1);
  return { ...message, path, headers };
}

function isFilterResponse(value: unknown): value is FilterResponse {
  return typeof value === 'object' && value !== null && typeof (value as FilterResponse).status === 'number' &&
    !('url' in value && 'method' in value);
}

const HEAD_END = Buffer.from('\r\n\r\n');
/** A gateway whose head is not complete after this many bytes is passed through unfiltered. */
const MAX_HEAD = 64 * 1024;

/** Parse "HTTP/1.1 200 OK\r\nName: value\r\n..." (without the final blank line). */
export function parseHead(text: string): { version: string; status: number; reason: string; headers: [string, string][] } | undefined {
  const lines = text.split('\r\n');
  const match = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!match) return undefined;
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  return { version: match[1]!, status: Number(match[2]), reason: match[3] ?? '', headers };
}

/**
 * The ReplyChannel the wrapped gateway writes to: holds bytes until the head is complete, runs the
 * `after` filters on it, then forwards everything to the real channel.
 */
class FilteringReply implements ReplyChannel {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private headDone = false;
  /** Set while async `after` filters run: writes queue behind it. */
  private gate: Promise<void> | undefined;
  private endArgs: { close?: boolean } | undefined;
  private accepted = 0;

  constructor(
    private readonly inner: ReplyChannel,
    private readonly onHead: (status: number, headers: [string, string][]) => FilterHeadResult | Promise<FilterHeadResult>,
    private readonly logger: Logger,
  ) {}

  get method(): string {
    return this.inner.method;
  }
  get httpVersion(): string {
    return this.inner.httpVersion;
  }
  get keepAlive(): boolean {
    return this.inner.keepAlive;
  }
  get closed(): boolean {
    return this.inner.closed;
  }
  /** Bytes the gateway has written (held or forwarded). */
  get bytes(): number {
    return this.accepted;
  }
  /** True once the gateway wrote anything (the head cannot be replaced by a 500 any more). */
  get started(): boolean {
    return this.accepted > 0;
  }

  abort(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.endArgs = undefined;
    this.headDone = true;
    this.inner.abort();
  }

  write(chunk: Uint8Array | string): boolean {
    this.accepted += chunk.length;
    if (this.headDone && !this.gate) return this.inner.write(chunk);
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.pending.push(Buffer.from(buffer));
    this.pendingBytes += buffer.length;
    if (!this.headDone) this.tryHead();
    return true;
  }

  /** Resolves once nothing is held back by async `after` filters. */
  flushed(): Promise<void> {
    return this.gate ?? Promise.resolve();
  }

  drained(): Promise<void> {
    return this.gate ? this.gate.then(() => this.inner.drained()) : this.inner.drained();
  }

  end(chunk?: Uint8Array | string, close?: boolean): void {
    if (this.headDone && !this.gate) {
      this.inner.end(chunk, close);
      return;
    }
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    if (this.headDone && !this.gate) {
      this.inner.end(undefined, close);
      return;
    }
    this.endArgs = { close };
    if (!this.headDone) {
      // The gateway ended without a complete head (it should not): send what we have.
      this.headDone = true;
      this.flush();
    }
  }

  private tryHead(): void {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [all];
    const at = all.indexOf(HEAD_END);
    if (at < 0) {
      if (this.pendingBytes > MAX_HEAD) {
        this.logger.warn('response head too large for the after filters; passed through unfiltered');
        this.headDone = true;
        this.flush();
      }
      return;
    }
    this.headDone = true;
    const headText = all.subarray(0, at).toString('latin1');
    const rest = all.subarray(at + HEAD_END.length);
    const parsed = parseHead(headText);
    if (!parsed) {
      this.flush();
      return;
    }
    const finish = (result: FilterHeadResult): void => {
      let head = headText;
      if (result.changed) {
        head = `${parsed.version} ${result.status} ${result.status === parsed.status ? parsed.reason : statusText(result.status)}`;
        for (const [name, value] of result.headers) head += `\r\n${name}: ${value}`;
      }
      // Writes that arrived while async filters ran are already in `pending`, after the head.
      this.pending = [Buffer.from(head + '\r\n\r\n', 'latin1'), ...(rest.length ? [rest] : []), ...this.pending];
      this.flush();
    };
    this.pending = [];
    let result: FilterHeadResult | Promise<FilterHeadResult>;
    try {
      result = this.onHead(parsed.status, parsed.headers);
    } catch (error) {
      this.logger.error('after filter failed; response sent unchanged', { error });
      result = { changed: false, status: parsed.status, headers: parsed.headers };
    }
    if (result instanceof Promise) {
      this.gate = result.then(finish, (error: unknown) => {
        this.logger.error('after filter failed; response sent unchanged', { error });
        finish({ changed: false, status: parsed.status, headers: parsed.headers });
      }).finally(() => {
        this.gate = undefined;
        this.flushTail();
      });
    } else {
      finish(result);
    }
  }

  /** Forward what is held; `end` if the gateway already ended. */
  private flush(): void {
    if (this.gate) return;
    this.flushTail();
  }

  private flushTail(): void {
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const chunk of chunks) this.inner.write(chunk);
    if (this.endArgs) {
      const { close } = this.endArgs;
      this.endArgs = undefined;
      this.inner.end(undefined, close);
    }
  }
}

interface FilterHeadResult {
  changed: boolean;
  status: number;
  headers: [string, string][];
}

/** Header pairs → the mutable record filters see (lower-case names; repeated names → arrays). */
function headerRecord(pairs: [string, string][]): Record<string, string | string[]> {
  const record: Record<string, string | string[]> = {};
  for (const [name, value] of pairs) {
    const key = name.toLowerCase();
    const existing = record[key];
    if (existing === undefined) record[key] = value;
    else record[key] = Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return record;
}

/** Back to pairs, keeping the original order and spelling of names that are still there. */
function headerPairs(original: [string, string][], record: Record<string, string | string[]>): [string, string][] {
  const spelling = new Map(original.map(([name]) => [name.toLowerCase(), name]));
  const order = [...new Set(original.map(([name]) => name.toLowerCase()))];
  for (const key of Object.keys(record)) if (!order.includes(key)) order.push(key);
  const pairs: [string, string][] = [];
  for (const key of order) {
    const value = record[key];
    if (value === undefined) continue;
    const name = spelling.get(key) ?? key;
    for (const one of Array.isArray(value) ? value : [value]) {
      const text = String(one);
      if (/[\r\n\0]/.test(text) || /[\r\n\0:]/.test(name)) throw new TypeError(`after filter set an invalid header ${JSON.stringify(name)}`);
      pairs.push([name, text]);
    }
  }
  return pairs;
}

function writeFilterResponse(reply: ReplyChannel, response: FilterResponse, version: string): void {
  const body = response.body === undefined ? Buffer.alloc(0) : typeof response.body === 'string' ? Buffer.from(response.body) : response.body;
  const framed = frameHead(reply, response.status, Object.entries(response.headers ?? {}), body.byteLength, version);
  reply.write(framed.head);
  reply.end(framed.framing === 'none' ? undefined : body, framed.close);
}

/** A gateway that runs `filters` around `inner`. */
export class FilteredGateway implements Gateway {
  constructor(
    private readonly inner: Gateway,
    private readonly filters: readonly RequestFilterPlugin[],
    private readonly context: PluginContext,
    private readonly version: string,
  ) {}

  /** The wrapped app's bound: filters run in the worker and add none. */
  get capacity(): Gateway['capacity'] {
    return this.inner.capacity;
  }

  handle(request: GatewayRequest, reply: ReplyChannel): Promise<void> {
    return this.run(request, reply, {});
  }

  private async run(request: GatewayRequest, reply: ReplyChannel, slot: RequestSlot): Promise<void> {
    const started = performance.now();
    const { logger } = this.context;
    const original = filterRequestOf(request.message);
    let current: FilterRequest = { ...original, headers: { ...original.headers } };
    let shortCircuit: FilterResponse | undefined;

    // Runs the `after` filters, last first; stays synchronous unless a filter returns a promise.
    const onHead = (status: number, pairs: [string, string][]): FilterHeadResult | Promise<FilterHeadResult> => {
      const info: FilterResponseInfo = {
        request: current,
        status,
        headers: headerRecord(pairs),
        error: slot.error,
        elapsedMs: performance.now() - started,
      };
      const before = JSON.stringify(info.headers);
      const result = (): FilterHeadResult => {
        const changed = info.status !== status || JSON.stringify(info.headers) !== before;
        return { changed, status: info.status, headers: changed ? headerPairs(pairs, info.headers) : pairs };
      };
      const afters = this.filters.filter((filter) => filter.after).reverse();
      const runFrom = (index: number): FilterHeadResult | Promise<FilterHeadResult> => {
        for (let i = index; i < afters.length; i++) {
          const filter = afters[i]!;
          let outcome: void | Promise<void>;
          try {
            outcome = filter.after!(info, this.context);
          } catch (error) {
            logger.error('after filter failed', { filter: filter.name, error });
            continue;
          }
          if (outcome instanceof Promise) {
            return outcome.then(
              () => runFrom(i + 1),
              (error: unknown) => {
                logger.error('after filter failed', { filter: filter.name, error });
                return runFrom(i + 1);
              },
            );
          }
        }
        return result();
      };
      return runFrom(0);
    };
    const wrapped = new FilteringReply(reply, onHead, logger);

    try {
      for (const filter of this.filters) {
        if (!filter.before) continue;
        const result = await filter.before(current, this.context);
        if (isFilterResponse(result)) {
          shortCircuit = result;
          break;
        }
        if (result) current = result;
      }
    } catch (error) {
      slot.error = error;
      logger.error('before filter failed', { error });
      shortCircuit = { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'Internal Server Error\n' };
    }

    if (shortCircuit) {
      writeFilterResponse(wrapped, shortCircuit, this.version);
      await wrapped.flushed();
      return;
    }
    const message = applyFilterRequest(request.message, original, current);
    // Not a spread: the worker's request serves `signal` from a getter (created on first use).
    const forwarded: GatewayRequest = {
      message,
      bodyFile: request.bodyFile,
      server: request.server,
      get signal() {
        return request.signal;
      },
      broadcast: request.broadcast && ((connIds, data, options) => request.broadcast!(connIds, data, options)),
      reportError: (error) => {
        slot.error ??= error;
        request.reportError?.(error);
      },
    };
    try {
      await this.inner.handle(forwarded, wrapped);
    } catch (error) {
      slot.error ??= error;
      logger.error('gateway failed', { error });
      if (!wrapped.started && !wrapped.closed) {
        writeFilterResponse(wrapped, { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'Internal Server Error\n' }, this.version);
      } else if (!wrapped.closed) {
        wrapped.end(undefined, true);
      }
    }
    await wrapped.flushed();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Wrap a gateway factory with the request filters found in the plugin folders. Returns the
 * factory unchanged when there are none (no cost for apps without filters).
 */
export async function withRequestFilters(factory: GatewayFactory, settings: Settings, logger: Logger): Promise<GatewayFactory> {
  const plugins = await loadPlugins(settings, logger);
  return wrapFactory(factory, plugins.filters, { settings, logger });
}

/** Same, with an explicit filter list (tests, embedding). */
export function wrapFactory(factory: GatewayFactory, filters: readonly RequestFilterPlugin[], context: PluginContext): GatewayFactory {
  if (!filters.length) return factory;
  context.logger.info('request filters', { filters: filters.map((filter) => filter.name).join(',') });
  return async (app: LoadedApp, options: GatewayOptions) => {
    const inner = await factory(app, options);
    return new FilteredGateway(inner, filters, { ...context, logger: options.logger }, options.version);
  };
}
