/**
 * WebSockets for Node listener apps: mongrel2's handshake becomes the server's `'upgrade'` event
 * `(req, socket, head)`, so libraries such as `ws` work unchanged (`new WebSocketServer({ server })`
 * or `{ noServer: true }` + `server.on('upgrade', (req, socket, head) => wss.handleUpgrade(...))`).
 *
 * The `socket` is an in-memory Duplex standing in for the client's TCP connection:
 * - what the library writes is passed through: first the HTTP head it writes itself (`101
 *   Switching Protocols`, or a refusal such as `400`), then raw server frames, which mongrel2
 *   forwards to the client untouched;
 * - what it reads is a client-side byte stream: mongrel2 delivers each client message unmasked and
 *   already reassembled, so we re-frame it as one client frame with the mask bit set and an all-zero
 *   mask key (valid RFC 6455, and XOR with zero leaves the payload as it is). Pings, pongs and
 *   close frames go through the same way, so the library's own ping/pong and close handshake run.
 * - `end()` from the library (after its close handshake) closes the mongrel2 connection; a
 *   disconnect from mongrel2 destroys the socket ('close' → the library reports 1006).
 *
 * `sec-websocket-extensions` is removed from the request: a negotiated permessage-deflate would set
 * RSV bits mongrel2 does not promise to carry.
 */
import type { ReplyChannel } from '../../http/reply-channel.js';
import type { WebSocketListener, WebSocketSession } from '../types.js';
import { encodeFrame } from '../../http/websocket.js';
import { InMemorySocket, type SocketPeerOptions } from './socket.js';

type WriteCallback = (error?: Error | null) => void;

const ZERO_MASK = new Uint8Array(4);
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
/** A head longer than this without its blank line is not a head: give up on it. */
const MAX_HEAD = 64 * 1024;


/** How the handshake ended: accepted (101 sent), refused (another response, connection closed). */
export type HandshakeOutcome = 'accepted' | 'refused';

export class UpgradeSocket extends InMemorySocket implements WebSocketListener {
  /** Settles once the library answered the handshake (or dropped the socket). */
  readonly outcome: Promise<HandshakeOutcome>;
  private settle!: (outcome: HandshakeOutcome) => void;
  private phase: 'head' | 'open' | 'refused' | 'done' = 'head';
  private head: Buffer[] = [];
  private headLength = 0;

  constructor(
    private readonly reply: ReplyChannel,
    private readonly session: WebSocketSession,
    peer: SocketPeerOptions,
  ) {
    super(peer, { allowHalfOpen: false });
    this.outcome = new Promise((resolve) => (this.settle = resolve));
  }

  // ---- WebSocketListener (frames from mongrel2) ----

  frame(flags: number, payload: Buffer): void {
    if (this.phase !== 'open' || this.destroyed) return;
    this.push(encodeFrame(flags, payload, ZERO_MASK));
  }

  gone(): void {
    if (!this.destroyed) this.destroy();
  }

  // ---- Duplex ----

  override _read(): void {
    // Frames are pushed as mongrel2 delivers them.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.accept(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: WriteCallback): void {
    this.accept(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }

  override _final(callback: WriteCallback): void {
    this.finishConnection();
    // Our side is done: end the readable side too, so the socket closes as a TCP socket would.
    this.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.finishConnection();
    callback(error);
  }

  private accept(chunk: Buffer, callback: WriteCallback): void {
    switch (this.phase) {
      case 'open':
        if (this.session.write(chunk)) return callback();
        this.session.drained().then(() => callback(), callback);
        return;
      case 'refused':
        if (this.reply.write(chunk)) return callback();
        this.reply.drained().then(() => callback(), callback);
        return;
      case 'done':
        return callback();
      case 'head':
        this.head.push(chunk);
        this.headLength += chunk.length;
        this.readHead();
        return callback();
    }
  }

  /** Wait for the whole HTTP head the library writes, then decide: 101 → open, else refused. */
  private readHead(): void {
    const all = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head, this.headLength);
    const end = all.indexOf(HEAD_END);
    if (end < 0) {
      this.head = [all];
      if (this.headLength > MAX_HEAD) this.refuse(all);
      return;
    }
    this.head = [];
    this.headLength = 0;
    const headBytes = all.subarray(0, end + 4);
    const rest = all.subarray(end + 4);
    if (!/^HTTP\/1\.1 101 /.test(headBytes.subarray(0, 13).toString('latin1'))) {
      this.refuse(all);
      return;
    }
    this.phase = 'open';
    this.reply.end(headBytes);
    this.session.open(this);
    if (rest.length > 0) this.session.write(rest);
    this.settle('accepted');
  }

  private refuse(bytes: Buffer): void {
    this.phase = 'refused';
    this.reply.write(bytes);
  }

  /** The library ended or dropped the socket: close the mongrel2 connection. */
  private finishConnection(): void {
    switch (this.phase) {
      case 'open':
        this.phase = 'done';
        this.session.end();
        return;
      case 'head':
        if (this.headLength > 0) this.reply.write(Buffer.concat(this.head, this.headLength));
        this.head = [];
        this.phase = 'done';
        this.reply.end(undefined, true);
        this.settle('refused');
        return;
      case 'refused':
        this.phase = 'done';
        this.reply.end(undefined, true);
        this.settle('refused');
        return;
      case 'done':
        return;
    }
  }
}
