/**
 * WebSockets (RFC 6455) through mongrel2, the worker's side (docs/MONGREL2.md §4).
 *
 * mongrel2 does the HTTP-level detection and the frame parsing: it sends one
 * `websocket-handshake` message (body = the Sec-WebSocket-Accept value it computed) and then one
 * `websocket-frame` message per client message (FLAGS = the first byte with FIN set, fragments
 * already reassembled, payload unmasked). It does not answer pings or closes and does not frame
 * what we send: everything we publish for the connection reaches the client byte for byte.
 *
 * This module holds the per-connection state of the worker:
 * - `WebSocketConnections` — the sessions this worker holds, keyed like serve.ts's connections;
 *   it routes frames to them, drops them on disconnect, pings idle ones (mongrel2's idle killer
 *   and the master's idle sweep both forget a connection that says nothing for long), and closes
 *   them all with 1001 when the worker stops (the master then routes their frames elsewhere).
 * - `Session` — one connection's writer: coalesces writes per event-loop turn and paces messages
 *   so that no more than a few are outstanding in mongrel2 (it drops a client with more than 16
 *   queued messages, docs/MONGREL2.md §3).
 * The frame codec itself (encodeFrame, close payloads, the 101 head) is in ../http/websocket.ts.
 *
 * The master keeps every message of a connection on the worker that holds it (dispatch/table.ts):
 * the handshake makes this worker the holder, and frames follow it until the disconnect.
 */
import { encodeClose, encodeReply, encodeReplyParts } from '../protocol/index.js';
import type { Mongrel2Message } from '../protocol/index.js';
import type { Gateway, GatewayRequest, WebSocketListener, WebSocketSession } from '../gateways/types.js';
import type { ReplyChannel } from '../http/reply-channel.js';
import type { Logger } from '../log/logger.js';
import type { ReplySocket } from '../transport/reply-socket.js';
import {
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  CLOSE_GOING_AWAY,
  encodeFrame,
  closePayload,
  closingReply,
} from '../http/websocket.js';

/** Payload of the worker's own keep-alive pings; the client's pongs carrying it are swallowed. */
const KEEPALIVE_PAYLOAD = Buffer.from('wsgid-keepalive', 'latin1');
/** Ping a connection that has been silent (both ways) this long. */
const DEFAULT_KEEPALIVE_MS = 30_000;

/** Write pacing: at most this many mongrel2 messages per connection within PACE_WINDOW_MS. */
const PACE_MESSAGES = 8;
const PACE_WINDOW_MS = 20;
/** Producers are asked to wait while this much is queued for ZeroMQ on the reply socket. */
const SOCKET_HIGH_WATER = 8 * 1024 * 1024;

/** Key of a connection: mongrel2 server index and connection id as one number (as serve.ts). */
const keyOf = (server: number, connId: number): number => server * 0x1_0000_0000 + connId;

class Session implements WebSocketSession {
  readonly accept: string;
  closed = false;
  listener: WebSocketListener | undefined;
  /** Last traffic either way (ms), for keep-alive pings. */
  lastActive = Date.now();
  private chunks: Buffer[] = [];
  private pending = 0;
  private flushScheduled = false;
  private windowStart = 0;
  private windowMessages = 0;

  constructor(
    private readonly owner: WebSocketConnections,
    private readonly socket: ReplySocket,
    readonly key: number,
    readonly sender: string,
    readonly connId: number,
    accept: string,
  ) {
    this.accept = accept;
  }

  open(listener: WebSocketListener): void {
    if (this.closed || this.listener !== undefined) return;
    this.listener = listener;
    this.lastActive = Date.now();
    this.owner.register(this);
  }

  write(bytes: Uint8Array): boolean {
    if (this.closed) return true;
    if (bytes.length === 0) return true;
    const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.chunks.push(buffer);
    this.pending += buffer.length;
    this.lastActive = Date.now();
    this.scheduleFlush();
    return this.socket.pendingBytes < SOCKET_HIGH_WATER;
  }

  drained(): Promise<void> {
    if (this.closed || this.socket.pendingBytes < SOCKET_HIGH_WATER) return Promise.resolve();
    return this.socket.flushed();
  }

  end(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.socket.send(encodeClose(this.sender, this.connId));
    this.owner.unregister(this);
  }

  /** The client is gone: drop what is pending, send nothing more. */
  drop(): void {
    this.closed = true;
    this.chunks = [];
    this.pending = 0;
    this.owner.unregister(this);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const now = Date.now();
    if (now - this.windowStart >= PACE_WINDOW_MS) {
      this.windowStart = now;
      this.windowMessages = 0;
    }
    if (this.windowMessages < PACE_MESSAGES) setImmediate(this.flushLater);
    else setTimeout(this.flushLater, PACE_WINDOW_MS - (now - this.windowStart));
  }

  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private flush(): void {
    if (this.pending === 0 || this.closed) return;
    const chunks = this.chunks;
    const length = this.pending;
    this.chunks = [];
    this.pending = 0;
    const now = Date.now();
    if (now - this.windowStart >= PACE_WINDOW_MS) {
      this.windowStart = now;
      this.windowMessages = 0;
    }
    this.windowMessages++;
    // Several frames are copied once, straight into the message (joining them first copied twice).
    this.socket.send(
      chunks.length === 1 ? encodeReply(this.sender, this.connId, chunks[0]!) : encodeReplyParts(this.sender, this.connId, chunks, length),
    );
  }
}

export interface WebSocketOptions {
  logger: Logger;
  /** Reply sockets, indexed by mongrel2 server. */
  sockets: readonly ReplySocket[];
  /** Ping connections silent for this long (ms); 0 disables. Default 30 s. */
  keepAliveMs?: number;
}

/** The WebSocket connections one worker holds. */
export class WebSocketConnections {
  private readonly sessions = new Map<number, Session>();
  private readonly logger: Logger;
  private readonly sockets: readonly ReplySocket[];
  private readonly keepAliveMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: WebSocketOptions) {
    this.logger = options.logger;
    this.sockets = options.sockets;
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEPALIVE_MS;
  }

  /** Open connections. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * Serve a `websocket-handshake` message with `gateway`: through its `upgrade()` when it has
   * one, else through `handle()` as the client's GET with the connection closed afterwards.
   */
  handshake(gateway: Gateway, request: GatewayRequest, reply: ReplyChannel, server: number): void | Promise<void> {
    const message = request.message;
    if (gateway.upgrade === undefined) return gateway.handle(request, closingReply(reply));
    const session = new Session(
      this,
      this.sockets[server]!,
      keyOf(server, message.connId),
      message.sender,
      message.connId,
      message.body.toString('latin1').trim(),
    );
    return gateway.upgrade(request, reply, session);
  }

  /** A `websocket-frame` message. */
  frame(message: Mongrel2Message, server: number): void {
    const session = this.sessions.get(keyOf(server, message.connId));
    const flags = parseFlags(message.headers['FLAGS']);
    if (session === undefined || session.listener === undefined) {
      // Not ours (the worker that held it stopped, or the master forgot an idle connection):
      // we cannot continue its conversation, so end it cleanly.
      this.logger.debug('websocket frame for a connection this worker does not hold: closing it', {
        conn: message.connId,
      });
      const socket = this.sockets[server];
      if (socket === undefined) return;
      if ((flags & 0x0f) !== OPCODE_CLOSE) {
        socket.send(encodeReply(message.sender, message.connId, encodeFrame(OPCODE_CLOSE, closePayload(CLOSE_GOING_AWAY))));
      }
      socket.send(encodeClose(message.sender, message.connId));
      return;
    }
    session.lastActive = Date.now();
    if ((flags & 0x0f) === OPCODE_PONG && message.body.equals(KEEPALIVE_PAYLOAD)) return;
    // The body is a view into the received frame: the listener may keep it.
    const payload = Buffer.from(message.body);
    try {
      session.listener.frame(flags, payload);
    } catch (error) {
      this.logger.error('websocket handler failed', { conn: message.connId, error });
    }
  }

  /** mongrel2 reported the client gone. */
  disconnect(server: number, connId: number): void {
    const session = this.sessions.get(keyOf(server, connId));
    if (session === undefined) return;
    session.drop();
    this.notifyGone(session, 'disconnect');
  }

  /**
   * The worker stops taking messages: frames for these connections will go to another worker
   * (or nowhere), so close each with 1001 "going away" and tell its listener.
   */
  shutdown(): void {
    for (const session of [...this.sessions.values()]) {
      session.write(encodeFrame(OPCODE_CLOSE, closePayload(CLOSE_GOING_AWAY, 'server restarting')));
      session.end();
      this.notifyGone(session, 'shutdown');
    }
    this.stopTimer();
  }

  /** @internal Session.open */
  register(session: Session): void {
    this.sessions.set(session.key, session);
    if (this.timer === undefined && this.keepAliveMs > 0) {
      this.timer = setInterval(this.keepAlive, Math.max(1000, this.keepAliveMs / 2));
      this.timer.unref();
    }
  }

  /** @internal Session.end / drop */
  unregister(session: Session): void {
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    if (this.sessions.size === 0) this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private readonly keepAlive = (): void => {
    const now = Date.now();
    for (const session of this.sessions.values()) {
      if (now - session.lastActive >= this.keepAliveMs) session.write(encodeFrame(OPCODE_PING, KEEPALIVE_PAYLOAD));
    }
  };

  private notifyGone(session: Session, reason: 'disconnect' | 'shutdown'): void {
    try {
      session.listener?.gone(reason);
    } catch (error) {
      this.logger.error('websocket handler failed', { conn: session.connId, error });
    }
  }
}

/** FLAGS header "0x81" → 0x81 (mongrel2 writes the first byte in hex). Unreadable → binary. */
function parseFlags(value: string | string[] | undefined): number {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return 0x82;
  const n = parseInt(text, 16);
  return Number.isInteger(n) && n >= 0 && n <= 255 ? n | 0x80 : 0x82;
}
