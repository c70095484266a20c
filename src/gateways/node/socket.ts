/**
 * The in-memory "connection" a Node request listener sees: a Duplex standing in for the
 * net.Socket of one request. Node's ServerResponse writes its framed bytes (status line, headers,
 * chunked framing) into it, and they go straight to the ReplyChannel.
 *
 * Wiring only: no HTTP knowledge lives here.
 */
import { Duplex, type DuplexOptions } from 'node:stream';
import type { Server } from 'node:http';
import type { ReplyChannel } from '../../http/reply-channel.js';

type WriteCallback = (error?: Error | null) => void;

export interface SocketPeerOptions {
  /** REMOTE_ADDR (or the first x-forwarded-for entry). */
  readonly remoteAddress: string | undefined;
  /** URL_SCHEME was https: frameworks read `req.socket.encrypted` to tell. */
  readonly encrypted: boolean;
  /** The http.Server the listener belongs to (`req.socket.server`, as on a real socket). */
  readonly server: Server;
}

/**
 * What every in-memory socket of this gateway shares: the fields and methods frameworks use on a
 * net.Socket (remoteAddress, encrypted, setTimeout, ...), most of them meaningless in memory.
 */
export abstract class InMemorySocket extends Duplex {
  // Set in the constructor so the shape is stable.
  readonly remoteAddress: string | undefined;
  readonly remoteFamily: string | undefined;
  readonly remotePort: number | undefined = undefined;
  readonly localAddress: string | undefined = undefined;
  readonly localPort: number | undefined = undefined;
  /** tls.TLSSocket has `encrypted = true`; net.Socket has no such property. */
  readonly encrypted: true | undefined;
  readonly server: Server;
  /** Node's http internals look at these on a server socket. */
  _httpMessage: unknown = null;
  parser: null = null;

  constructor(peer: SocketPeerOptions, options: DuplexOptions) {
    super(options);
    this.remoteAddress = peer.remoteAddress;
    this.remoteFamily = peer.remoteAddress === undefined ? undefined : peer.remoteAddress.includes(':') ? 'IPv6' : 'IPv4';
    this.encrypted = peer.encrypted ? true : undefined;
    this.server = peer.server;
  }

  setTimeout(_ms: number, listener?: () => void): this {
    if (listener) this.once('timeout', listener);
    return this;
  }
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }
  setKeepAlive(_enable?: boolean, _delay?: number): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
  address(): { address?: string; family?: string; port?: number } {
    return {};
  }
}

/**
 * One socket per request. Writes are forwarded to the reply channel; when the channel asks us to
 * wait (`write()` returned false), the write callback is held until `reply.drained()` resolves, so
 * the Writable's buffer fills, `res.write()` returns false and Node stops pulling from the app
 * exactly as it would on a slow TCP peer.
 *
 * `_writev` matters: ServerResponse corks the socket around `end()`, so a head and a small body
 * reach us as one batch and leave as ONE mongrel2 message.
 */
export class ResponseSocket extends InMemorySocket {
  /** Node's http internals look at this on a server socket. */
  _paused = false;

  private readonly reply: ReplyChannel;

  constructor(reply: ReplyChannel, peer: SocketPeerOptions) {
    super(peer, { allowHalfOpen: true });
    this.reply = reply;
  }

  override _read(): void {
    // The request body is pushed into the IncomingMessage directly; nothing arrives here.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.forward(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: WriteCallback): void {
    if (chunks.length === 1) return this.forward(chunks[0]!.chunk, callback);
    let length = 0;
    for (const entry of chunks) length += entry.chunk.length;
    const joined = Buffer.allocUnsafe(length);
    let offset = 0;
    for (const entry of chunks) offset += entry.chunk.copy(joined, offset);
    this.forward(joined, callback);
  }

  private forward(chunk: Buffer, callback: WriteCallback): void {
    // A gone client: drop the bytes, as the kernel would after a reset.
    if (this.reply.closed || chunk.length === 0) return callback();
    if (this.reply.write(chunk)) return callback();
    this.reply.drained().then(
      () => callback(),
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
    );
  }

  override _final(callback: WriteCallback): void {
    callback();
  }

  /** http's server calls this when a response says the connection must close. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }
}
