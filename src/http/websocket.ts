/**
 * The WebSocket (RFC 6455) pieces that are plain bytes: frame encoding, close payloads, the
 * `101 Switching Protocols` head. Shared by the worker (worker/websocket.ts) and the gateways that
 * speak WebSocket to apps (fetch's upgradeWebSocket, the Node 'upgrade' event). No I/O.
 */
import type { ReplyChannel } from './reply-channel.js';
import { assertSafeHeader } from './head.js';

export const OPCODE_CONTINUATION = 0x0;
export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;
export const OPCODE_PING = 0x9;
export const OPCODE_PONG = 0xa;

/** Close codes used here (RFC 6455 §7.4.1). */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_NO_STATUS = 1005;
export const CLOSE_ABNORMAL = 1006;
export const CLOSE_INVALID_DATA = 1007;
export const CLOSE_INTERNAL_ERROR = 1011;

/**
 * One frame, FIN set. Without `mask` it is a server frame (unmasked, RFC 6455 §5.1). With a
 * 4-byte `mask` it is a client frame: mask bit set and the payload XORed (an all-zero key leaves
 * the payload as it is, so no copy of the bytes is needed beyond the header's concatenation).
 * `first` may carry RSV bits: pass a whole first byte (e.g. 0x81) instead of an opcode.
 */
export function encodeFrame(opcodeOrFirst: number, payload: Uint8Array, mask?: Uint8Array): Buffer {
  const first = opcodeOrFirst & 0x80 ? opcodeOrFirst : 0x80 | (opcodeOrFirst & 0x0f);
  const length = payload.length;
  const maskBit = mask ? 0x80 : 0;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const headerLength = 2 + extra + (mask ? 4 : 0);
  const out = Buffer.allocUnsafe(headerLength + length);
  out[0] = first;
  if (extra === 0) out[1] = maskBit | length;
  else if (extra === 2) {
    out[1] = maskBit | 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = maskBit | 127;
    out.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2);
    out.writeUInt32BE(length >>> 0, 6);
  }
  if (mask) {
    out[2 + extra] = mask[0]!;
    out[3 + extra] = mask[1]!;
    out[4 + extra] = mask[2]!;
    out[5 + extra] = mask[3]!;
    out.set(payload, headerLength);
    if (mask[0] !== 0 || mask[1] !== 0 || mask[2] !== 0 || mask[3] !== 0) {
      for (let i = 0; i < length; i++) out[headerLength + i]! ^= mask[i & 3]!;
    }
  } else {
    out.set(payload, headerLength);
  }
  return out;
}

/** The body of a close frame: 2-byte code and UTF-8 reason (at most 123 bytes), or empty. */
export function closePayload(code?: number, reason = ''): Buffer {
  if (code === undefined || code === CLOSE_NO_STATUS) return Buffer.alloc(0);
  const text = Buffer.from(reason, 'utf8');
  const out = Buffer.allocUnsafe(2 + text.length);
  out.writeUInt16BE(code, 0);
  text.copy(out, 2);
  return out;
}

/** Read a close frame's body: code 1005 when it has none. Invalid → undefined. */
export function parseClosePayload(payload: Buffer): { code: number; reason: string } | undefined {
  if (payload.length === 0) return { code: CLOSE_NO_STATUS, reason: '' };
  if (payload.length === 1) return undefined;
  const code = payload.readUInt16BE(0);
  if (!isValidReceivedCloseCode(code)) return undefined;
  try {
    return { code, reason: new TextDecoder('utf-8', { fatal: true }).decode(payload.subarray(2)) };
  } catch {
    return undefined;
  }
}

/** RFC 6455 §7.4: codes a peer may put in a close frame. */
export function isValidReceivedCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}

/**
 * The `101 Switching Protocols` head for an accepted handshake. `headers` are extra lines
 * (e.g. Sec-WebSocket-Protocol, which apps often copy from the client's offer): each is checked
 * here, where the head is framed (InvalidResponseHeadError), as every response head is.
 */
export function switchingProtocolsHead(accept: string, version: string, headers: Iterable<[string, string]> = []): string {
  let head =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\nX-Wsgid: ${version}\r\n`;
  for (const [name, value] of headers) {
    assertSafeHeader(name, value);
    head += `${name}: ${value}\r\n`;
  }
  return head + '\r\n';
}

/** `reply`, but closing the connection after the response (for refused handshakes). */
export function closingReply(reply: ReplyChannel): ReplyChannel {
  return reply instanceof ClosingReply ? reply : new ClosingReply(reply);
}

/** A ReplyChannel that always closes the connection after the response (refused handshakes). */
class ClosingReply implements ReplyChannel {
  constructor(private readonly inner: ReplyChannel) {}
  get method(): string {
    return 'GET';
  }
  get httpVersion(): string {
    return this.inner.httpVersion;
  }
  get keepAlive(): boolean {
    return false;
  }
  get bytes(): number {
    return this.inner.bytes;
  }
  get closed(): boolean {
    return this.inner.closed;
  }
  write(chunk: Uint8Array | string): boolean {
    return this.inner.write(chunk);
  }
  drained(): Promise<void> {
    return this.inner.drained();
  }
  end(chunk?: Uint8Array | string): void {
    this.inner.end(chunk, true);
  }
  abort(): void {
    this.inner.abort();
  }
}
