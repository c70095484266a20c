/**
 * A Request that costs almost nothing until it is used (Hono node-server's technique).
 *
 * The object's prototype chain reaches Request.prototype, so `instanceof Request` holds. method,
 * url, headers, signal and the body readers are served straight from the mongrel2 message; any
 * other member builds a real Request once (getRealRequest) and delegates to it.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { GatewayRequest } from '../types.js';
import { delegateToStandard } from './delegate.js';

const GlobalRequest = globalThis.Request;
const realRequest = Symbol('wsgid.realRequest');
const utf8 = new TextDecoder();

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** True for names mongrel2 generates (PATH, METHOD, URI, ...): uppercase means "not from the client". */
function isMongrel2Key(name: string): boolean {
  const c = name.charCodeAt(0);
  return c >= 0x41 && c <= 0x5a;
}

export class LightRequest {
  private readonly source: GatewayRequest;
  private cachedUrl: string | undefined;
  private cachedHeaders: Headers | undefined;
  private real: Request | undefined;
  private used = false;

  constructor(source: GatewayRequest) {
    this.source = source;
  }

  get method(): string {
    const method = this.source.message.headers['METHOD'];
    // A WebSocket handshake (METHOD=WEBSOCKET_HANDSHAKE) is the client's GET with Upgrade headers.
    if (method === 'WEBSOCKET_HANDSHAKE') return 'GET';
    return typeof method === 'string' ? method : 'GET';
  }

  get url(): string {
    return (this.cachedUrl ??= buildUrl(this.source));
  }

  get headers(): Headers {
    if (this.real) return this.real.headers;
    if (this.cachedHeaders === undefined) {
      const headers = new Headers();
      const raw = this.source.message.headers;
      for (const name in raw) {
        if (isMongrel2Key(name)) continue;
        const value = raw[name]!;
        if (typeof value === 'string') headers.append(name, value);
        else for (const item of value) headers.append(name, item);
      }
      this.cachedHeaders = headers;
    }
    return this.cachedHeaders;
  }

  get signal(): AbortSignal {
    return this.source.signal;
  }

  get bodyUsed(): boolean {
    return this.real ? this.real.bodyUsed : this.used;
  }

  get body(): ReadableStream<Uint8Array> | null {
    return this[realRequest]().body;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytes();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  async bytes(): Promise<Uint8Array> {
    if (this.real) return new Uint8Array(await this.real.arrayBuffer());
    if (this.used) throw new TypeError('Body is unusable: Body has already been read');
    this.used = true;
    if (!hasBody(this.method)) return new Uint8Array(0);
    if (this.source.bodyFile !== undefined) return readFile(this.source.bodyFile);
    return this.source.message.body;
  }

  async text(): Promise<string> {
    return utf8.decode(await this.bytes());
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  async blob(): Promise<Blob> {
    const type = this.headers.get('content-type') ?? '';
    return new Blob([(await this.bytes()) as Uint8Array<ArrayBuffer>], { type });
  }

  formData(): Promise<FormData> {
    return this[realRequest]().formData();
  }

  clone(): Request {
    return this[realRequest]().clone();
  }

  /** Build the standard Request once, for the members the fast path does not cover. */
  [realRequest](): Request {
    if (this.real) return this.real;
    if (this.used) throw new TypeError('Body is unusable: Body has already been read');
    const method = this.method;
    const init: RequestInit & { duplex?: 'half' } = { method, headers: this.headers, signal: this.signal };
    if (hasBody(method)) {
      init.body = (
        this.source.bodyFile !== undefined
          ? Readable.toWeb(createReadStream(this.source.bodyFile))
          : this.source.message.body
      ) as BodyInit;
      init.duplex = 'half';
    }
    this.real = new GlobalRequest(this.url, init);
    return this.real;
  }
}

function hasBody(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD';
}

/** A Host value that can only be an authority: a name or IPv4 address, or an IPv6 literal, and a port. */
const SAFE_HOST = /^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
/** The authority when the client sent none or one that is not a plain host[:port]. */
const FALLBACK_HOST = 'localhost';

/**
 * scheme://host + the path and query mongrel2 routed. The client's Host may change the authority,
 * never the path: `Host: x/admin?` or an absolute-form request target must not make the app see
 * another path than the one mongrel2 matched its route against, and `[::1` or `%zz` must not make
 * the URL invalid, so a Host that is not a plain host[:port] is replaced by FALLBACK_HOST.
 */
function buildUrl(source: GatewayRequest): string {
  const headers = source.message.headers;
  const scheme = firstValue(headers['URL_SCHEME']) === 'https' ? 'https' : 'http';
  const host = firstValue(headers['host']);
  // canParse: a port past 65535 or a dotted number past 255 matches SAFE_HOST but is no valid URL.
  const authority = host !== undefined && SAFE_HOST.test(host) && URL.canParse('http://' + host) ? host : FALLBACK_HOST;
  const path = firstValue(headers['PATH']) ?? source.message.path;
  const query = firstValue(headers['QUERY']);
  return scheme + '://' + authority + (path.startsWith('/') ? path : '/' + path) + (query === undefined ? '' : '?' + query);
}

// Everything else Request has (cache, mode, redirect, referrer, ...) is delegated to the real one.
delegateToStandard(LightRequest, GlobalRequest, (self) => self[realRequest]());
