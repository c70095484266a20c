/**
 * The server side of a WebSocket for fetch apps, shaped like the browser's `WebSocket` (as Deno's
 * `Deno.upgradeWebSocket()` and Bun hand it out): an EventTarget with `open`, `message`, `close`
 * and `error` events, `on*` handler properties, `send()`, `close()`, `readyState`.
 *
 * It speaks RFC 6455 over a WebSocketSession (src/worker/websocket.ts): mongrel2 has already
 * parsed and unmasked the client's frames; we frame what we send (unmasked), answer pings with
 * pongs, and run the close handshake (echo a client's close frame then close the connection; or
 * send ours, wait for the client's answer up to CLOSE_TIMEOUT_MS, then close).
 *
 * Listener exceptions are logged, never thrown into the worker (Node's EventTarget would turn them
 * into an uncaught exception and end the process).
 */
import type { Logger } from '../../log/logger.js';
import type { WebSocketListener, WebSocketSession } from '../types.js';
import {
  CLOSE_ABNORMAL,
  CLOSE_GOING_AWAY,
  CLOSE_INVALID_DATA,
  CLOSE_NO_STATUS,
  CLOSE_PROTOCOL_ERROR,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  closePayload,
  encodeFrame,
  parseClosePayload,
} from '../../http/websocket.js';

/** How long we wait for the client's close frame after sending ours. */
const CLOSE_TIMEOUT_MS = 5000;

/** `message` event: `data` is a string (text) or, for binary, an ArrayBuffer or Blob (binaryType). */
export class WebSocketMessageEvent extends Event {
  readonly data: string | ArrayBuffer | Blob;
  constructor(data: string | ArrayBuffer | Blob) {
    super('message');
    this.data = data;
  }
}

/** `close` event, as the browser's CloseEvent. */
export class WebSocketCloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  constructor(init: { code: number; reason: string; wasClean: boolean }) {
    super('close');
    this.code = init.code;
    this.reason = init.reason;
    this.wasClean = init.wasClean;
  }
}

/** `error` event (protocol errors from the client, failed upgrades). */
export class WebSocketErrorEvent extends Event {
  readonly message: string;
  constructor(message: string) {
    super('error');
    this.message = message;
  }
}

type Handler = ((event: Event) => unknown) | null;
type Listener = EventListenerOrEventListenerObject;

const decoder = new TextDecoder('utf-8', { fatal: true });

export class ServerWebSocket extends EventTarget implements WebSocketListener {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly CONNECTING = 0;
  readonly OPEN = 1;
  readonly CLOSING = 2;
  readonly CLOSED = 3;

  /** The request URL. */
  readonly url: string;
  /** The subprotocol selected in upgradeWebSocket({protocol}), or ''. */
  readonly protocol: string;
  /** No extensions are negotiated. */
  readonly extensions = '';
  /** How binary messages are delivered: ArrayBuffer (default, as Deno) or Blob. */
  binaryType: 'arraybuffer' | 'blob' = 'arraybuffer';

  private state = 0;
  private session: WebSocketSession | undefined;
  private closeSent = false;
  private closeTimer: NodeJS.Timeout | undefined;
  private readonly handlers = new Map<string, Handler>();
  private readonly wrapped = new WeakMap<object, EventListener>();

  constructor(
    url: string,
    protocol: string,
    private readonly logger: Logger | undefined,
  ) {
    super();
    this.url = url;
    this.protocol = protocol;
  }

  get readyState(): number {
    return this.state;
  }

  /** Bytes queued by send() not yet handed on: always 0 here (writes are queued in the worker). */
  get bufferedAmount(): number {
    return 0;
  }

  get onopen(): Handler {
    return this.handlers.get('open') ?? null;
  }
  set onopen(handler: Handler) {
    this.setHandler('open', handler);
  }
  get onmessage(): Handler {
    return this.handlers.get('message') ?? null;
  }
  set onmessage(handler: Handler) {
    this.setHandler('message', handler);
  }
  get onclose(): Handler {
    return this.handlers.get('close') ?? null;
  }
  set onclose(handler: Handler) {
    this.setHandler('close', handler);
  }
  get onerror(): Handler {
    return this.handlers.get('error') ?? null;
  }
  set onerror(handler: Handler) {
    this.setHandler('error', handler);
  }

  override addEventListener(type: string, listener: Listener | null, options?: AddEventListenerOptions | boolean): void {
    if (listener === null) return;
    super.addEventListener(type, this.safe(listener), options);
  }

  override removeEventListener(type: string, listener: Listener | null, options?: EventListenerOptions | boolean): void {
    if (listener === null) return;
    const wrapper = this.wrapped.get(listener);
    if (wrapper !== undefined) super.removeEventListener(type, wrapper, options);
  }

  /**
   * Send a message: a string as a text frame, bytes as a binary frame. Throws while CONNECTING
   * (the app must wait for `open`); ignored once closing or closed, as in the browser.
   */
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.state === 0) throw new DOMException('WebSocket is not open yet', 'InvalidStateError');
    if (this.state !== 1 || this.session === undefined) return;
    if (typeof data === 'string') {
      this.session.write(encodeFrame(OPCODE_TEXT, Buffer.from(data, 'utf8')));
    } else if (data instanceof ArrayBuffer) {
      this.session.write(encodeFrame(OPCODE_BINARY, new Uint8Array(data)));
    } else if (ArrayBuffer.isView(data)) {
      this.session.write(encodeFrame(OPCODE_BINARY, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
    } else {
      throw new TypeError('WebSocket.send() takes a string, an ArrayBuffer or a typed array / Buffer');
    }
  }

  /** Start the close handshake: `code` 1000 or 3000–4999 (default: no code), `reason` ≤ 123 bytes. */
  close(code?: number, reason = ''): void {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new DOMException(`invalid close code ${code}: use 1000 or 3000-4999`, 'InvalidAccessError');
    }
    if (Buffer.byteLength(reason) > 123) throw new DOMException('close reason longer than 123 bytes', 'SyntaxError');
    if (this.state >= 2) return;
    if (this.state === 0 || this.session === undefined) {
      // Not upgraded yet: it never will be.
      this.state = 3;
      return;
    }
    this.sendClose(code, reason);
  }

  // ---- gateway side ----

  /** @internal The 101 went out: frames flow from now on. */
  attach(session: WebSocketSession): void {
    this.session = session;
    this.state = 1;
    session.open(this);
    this.dispatchEvent(new Event('open'));
  }

  /** @internal The app did not return the upgrade response: this socket will never open. */
  abandon(reason: string): void {
    if (this.state !== 0) return;
    this.state = 3;
    this.dispatchEvent(new WebSocketErrorEvent(reason));
    this.dispatchEvent(new WebSocketCloseEvent({ code: CLOSE_ABNORMAL, reason: '', wasClean: false }));
  }

  /** @internal WebSocketListener: a client frame. */
  frame(flags: number, payload: Buffer): void {
    if (this.state === 3) return;
    switch (flags & 0x0f) {
      case OPCODE_TEXT: {
        if (this.state !== 1) return;
        let text: string;
        try {
          text = decoder.decode(payload);
        } catch {
          return this.fail(CLOSE_INVALID_DATA, 'invalid UTF-8 in a text message');
        }
        this.dispatchEvent(new WebSocketMessageEvent(text));
        return;
      }
      case OPCODE_BINARY: {
        if (this.state !== 1) return;
        const bytes = payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength) as ArrayBuffer;
        this.dispatchEvent(new WebSocketMessageEvent(this.binaryType === 'blob' ? new Blob([bytes]) : bytes));
        return;
      }
      case OPCODE_PING:
        if (!this.closeSent) this.session?.write(encodeFrame(OPCODE_PONG, payload));
        return;
      case OPCODE_PONG:
        return;
      case OPCODE_CLOSE: {
        const parsed = parseClosePayload(payload);
        if (parsed === undefined) return this.fail(CLOSE_PROTOCOL_ERROR, 'invalid close frame');
        // Echo the client's code (RFC 6455 §5.5.1) unless we already sent our close frame.
        if (!this.closeSent) {
          this.closeSent = true;
          this.session?.write(encodeFrame(OPCODE_CLOSE, closePayload(parsed.code === CLOSE_NO_STATUS ? undefined : parsed.code)));
        }
        this.finish(parsed.code, parsed.reason, true);
        return;
      }
      default:
        return this.fail(CLOSE_PROTOCOL_ERROR, `unknown opcode ${flags & 0x0f}`);
    }
  }

  /** @internal WebSocketListener: the connection ended without a close handshake. */
  gone(reason: 'disconnect' | 'shutdown'): void {
    if (this.state === 3) return;
    this.clearCloseTimer();
    this.state = 3;
    const code = reason === 'shutdown' ? CLOSE_GOING_AWAY : CLOSE_ABNORMAL;
    this.dispatchEvent(new WebSocketCloseEvent({ code, reason: '', wasClean: false }));
  }

  private sendClose(code: number | undefined, reason: string): void {
    this.state = 2;
    this.closeSent = true;
    this.session!.write(encodeFrame(OPCODE_CLOSE, closePayload(code, reason)));
    this.closeTimer = setTimeout(() => this.finish(code ?? CLOSE_NO_STATUS, reason, false), CLOSE_TIMEOUT_MS);
    this.closeTimer.unref();
  }

  /** A protocol error by the client: close with `code`, report it. */
  private fail(code: number, message: string): void {
    this.dispatchEvent(new WebSocketErrorEvent(message));
    if (this.state >= 2 || this.session === undefined) return;
    this.closeSent = true;
    this.session.write(encodeFrame(OPCODE_CLOSE, closePayload(code)));
    this.finish(code, message, false);
  }

  /** Close the connection (after our queued frames) and report `close` once. */
  private finish(code: number, reason: string, wasClean: boolean): void {
    if (this.state === 3) return;
    this.clearCloseTimer();
    this.state = 3;
    this.session?.end();
    this.dispatchEvent(new WebSocketCloseEvent({ code, reason, wasClean }));
  }

  private clearCloseTimer(): void {
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
  }

  private setHandler(type: string, handler: Handler): void {
    const old = this.handlers.get(type);
    if (old) this.removeEventListener(type, old);
    if (typeof handler === 'function') {
      this.handlers.set(type, handler);
      this.addEventListener(type, handler);
    } else {
      this.handlers.delete(type);
    }
  }

  /** The same wrapper for the same listener (so removeEventListener finds it), catching errors. */
  private safe(listener: Listener): EventListener {
    let wrapper = this.wrapped.get(listener);
    if (wrapper === undefined) {
      wrapper = (event: Event): void => {
        try {
          const result: unknown =
            typeof listener === 'function' ? listener.call(this, event) : listener.handleEvent(event);
          if (result instanceof Promise) result.catch((error: unknown) => this.report(event, error));
        } catch (error) {
          this.report(event, error);
        }
      };
      this.wrapped.set(listener, wrapper);
    }
    return wrapper;
  }

  private report(event: Event, error: unknown): void {
    if (this.logger) this.logger.error('websocket event listener failed', { event: event.type, url: this.url, error });
    else console.error(error);
  }
}
