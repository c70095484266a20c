/**
 * The worker's side of one response: raw HTTP bytes for one mongrel2 connection.
 * Gateways write complete HTTP/1.1 responses through this; it takes care of mongrel2's
 * message framing, write coalescing (at most 16 outstanding messages per connection),
 * flow-control credits, and the close message.
 */
export interface ReplyChannel {
  /** The request's HTTP method (HEAD responses carry no body). */
  readonly method: string;
  /** 'HTTP/1.0' or 'HTTP/1.1'. */
  readonly httpVersion: string;
  /**
   * Whether the connection stays open after this response, decided from the request
   * (HTTP/1.0 needs `Connection: keep-alive`; HTTP/1.1 unless `Connection: close`).
   * Gateways that build their own head add `Connection: close` when this is false.
   * The channel sends mongrel2's close message after `end()` when this is false.
   */
  readonly keepAlive: boolean;
  /** Bytes accepted so far (head included): 0 means nothing was sent and an error page is still possible. */
  readonly bytes: number;
  /** True once the client is gone (disconnect) or the reply was aborted; writes are dropped. */
  readonly closed: boolean;
  /**
   * Queue raw response bytes. Strings are byte strings (latin1), like HTTP heads: encode body
   * text to a Buffer yourself. Returns false when the caller should wait for `drained()`
   * before writing more (back-pressure); the bytes are accepted either way.
   */
  write(chunk: Uint8Array | string): boolean;
  /** Resolves when the channel wants more data (or is closed). */
  drained(): Promise<void>;
  /**
   * The response is complete. `close` forces mongrel2's close message even on keep-alive
   * (e.g. a body of unknown length that could not be chunked, or an error mid-stream).
   */
  end(chunk?: Uint8Array | string, close?: boolean): void;
  /** Close the connection without (more of) a response, e.g. after an error mid-stream. */
  abort(): void;
}
