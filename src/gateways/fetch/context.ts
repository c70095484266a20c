/**
 * The second argument of a fetch handler: what mongrel2 knows about the request that the
 * standard Request cannot say. Hono apps see it as `c.env`.
 */
import type { GatewayRequest } from '../types.js';

export class FetchContext {
  constructor(private readonly source: GatewayRequest) {}

  /** The client's IP address, as mongrel2 saw it. */
  get remoteAddress(): string {
    const value = this.source.message.headers['REMOTE_ADDR'] ?? this.source.message.headers['x-forwarded-for'];
    return (Array.isArray(value) ? value[0] : value) ?? '';
  }

  /** The mongrel2 route that matched (PATTERN), e.g. `/api/`. */
  get pattern(): string {
    const value = this.source.message.headers['PATTERN'];
    return typeof value === 'string' ? value : '';
  }

  /** The handler's send_ident, which replies are addressed with. */
  get sender(): string {
    return this.source.message.sender;
  }

  /** mongrel2's id for the client connection. */
  get connId(): number {
    return this.source.message.connId;
  }

  /** The raw mongrel2 headers, including its own UPPERCASE keys. */
  get mongrel2Headers(): Readonly<Record<string, string | string[]>> {
    return this.source.message.headers;
  }

  /** Aborted when the client disconnects (same as request.signal). */
  get signal(): AbortSignal {
    return this.source.signal;
  }
}
