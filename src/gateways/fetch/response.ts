/**
 * A Response that keeps its constructor arguments (Hono node-server's technique), so the common
 * `new Response('text' | bytes | null, {status, headers})` is written as one mongrel2 message
 * without ever building a stream. Anything else (streams, FormData, touching `headers` or `body`)
 * builds the standard Response once and from then on behaves exactly like it.
 *
 * It replaces globalThis.Response in workers that serve fetch apps (installLightResponse). That is
 * a visible choice: --standard-response (or WSGID_STANDARD_RESPONSE=1) keeps Node's own Response.
 */
import { delegateToStandard } from './delegate.js';

const GlobalResponse = globalThis.Response;

/** [status, body, headers init, statusText] while the fast path still applies. */
export type CachedResponse = [number, string | Uint8Array | null, HeadersInit | undefined, string | undefined];
export const cached = Symbol('wsgid.cachedResponse');
const realResponse = Symbol('wsgid.realResponse');

function isFastBody(body: unknown): body is string | Uint8Array | null | undefined {
  return body == null || typeof body === 'string' || body instanceof Uint8Array;
}

export class LightResponse {
  [cached]: CachedResponse | undefined;
  private real: Response | undefined;

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    const status = init?.status ?? 200;
    // Statuses the standard constructor would reject, and unusual inits, take the standard path.
    if (isFastBody(body) && status >= 200 && status <= 599 && (init === undefined || init.constructor === Object)) {
      this[cached] = [status, body ?? null, init?.headers, init?.statusText];
    } else {
      this.real = new GlobalResponse(body, init);
    }
  }

  static json(data: unknown, init?: ResponseInit): Response {
    const headers = new Headers(init?.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new LightResponse(JSON.stringify(data), { ...init, headers }) as unknown as Response;
  }

  static redirect(url: string | URL, status?: number): Response {
    return GlobalResponse.redirect(url, status);
  }

  static error(): Response {
    return GlobalResponse.error();
  }

  /** Any standard Response is an instance, as with the class this one stands in for. */
  static [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof GlobalResponse;
  }

  get status(): number {
    return this[cached]?.[0] ?? this[realResponse]().status;
  }

  get ok(): boolean {
    const status = this.status;
    return status >= 200 && status <= 299;
  }

  /** Build the standard Response; the fast path is off from then on (the app may mutate it). */
  [realResponse](): Response {
    if (this.real) return this.real;
    const [status, body, headers, statusText] = this[cached]!;
    this.real = new GlobalResponse(body as BodyInit | null, { status, headers, statusText });
    this[cached] = undefined;
    return this.real;
  }
}

delegateToStandard(LightResponse, GlobalResponse, (self) => self[realResponse]());

/** The standard Response behind a value, or the value itself. */
export function standardResponse(response: Response): Response {
  // Not `instanceof LightResponse`: that is true for every standard Response (Symbol.hasInstance).
  return realResponse in response ? (response as unknown as LightResponse)[realResponse]() : response;
}

let installed = false;
/** Make `new Response(...)` in app code produce LightResponse (the gateway skips it with --standard-response). */
export function installLightResponse(): void {
  if (installed) return;
  installed = true;
  Object.defineProperty(globalThis, 'Response', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: LightResponse,
  });
}
