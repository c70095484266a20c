/**
 * The ASGI bridge's frames: the WSGI pipe protocol (../python/pipe.ts: the same 9-byte frame
 * header and letters, I/R/F/L/B/b/A/Q/H/D/Z as there) with these differences and additions. Pure.
 *
 * Node → Python
 *   S  scope            UTF-8 JSON (./scope.ts ScopeJson); the request runs at once, as a task
 *   C  cancel           optional u16 close code: the client is gone → http.disconnect /
 *                       websocket.disconnect (1006 without a code, 1001 when the worker stops);
 *                       or the one byte 'T' (http): the request timed out (the master answered
 *                       504, --timeout): http.disconnect, and its task is cancelled
 *   M  websocket frame  u8 opcode (1 text, 2 binary, 8 close) + payload (a close: u16 code + reason)
 *   Q  quit             finish what runs, run the lifespan shutdown, exit
 *
 * Python → Node
 *   R  ready            sent after the lifespan startup completed (or the app has no lifespan)
 *   F  load failed      the traceback, or the app's lifespan.startup.failed message
 *   H/D                 an http response (or a refused handshake: 403 before websocket.accept)
 *   Z  done             the http response is complete (the app may still run: background tasks),
 *                       or the websocket task returned
 *   K  accept           UTF-8 JSON {subprotocol, headers: [[name, value]...]}: send the 101
 *   M  websocket frame  u8 opcode + payload, counted in the send window like D payloads
 *   X  close            u16 code + UTF-8 reason: send a close frame, end after the client's answer
 *
 * Frames of different requests interleave freely (every request runs at once).
 */
/** Payload of a cancel frame for an http request that timed out: its task is cancelled. */
export const CANCEL_TIMED_OUT = Buffer.from('T', 'latin1');

export { T } from '../python/pipe.js';

export interface AcceptMessage {
  readonly subprotocol: string | null;
  readonly headers: Array<[string, string]>;
}

/** Decode a K payload. Throws on malformed JSON. */
export function decodeAccept(payload: Buffer): AcceptMessage {
  const value = JSON.parse(payload.toString('utf8')) as { subprotocol?: unknown; headers?: unknown };
  const subprotocol = typeof value.subprotocol === 'string' ? value.subprotocol : null;
  const headers: Array<[string, string]> = [];
  if (Array.isArray(value.headers)) {
    for (const pair of value.headers as unknown[]) {
      if (Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string') headers.push([pair[0], pair[1]]);
    }
  }
  return { subprotocol, headers };
}

/** A C payload with a close code for websocket.disconnect. */
export function encodeCancel(code: number): Buffer {
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16BE(code, 0);
  return out;
}

/** An M payload: opcode byte + payload. */
export function encodeWsFrame(opcode: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + payload.length);
  out[0] = opcode;
  payload.copy(out, 1);
  return out;
}

/** An X payload → close code and reason. */
export function decodeClose(payload: Buffer): { readonly code: number; readonly reason: string } {
  if (payload.length < 2) return { code: 1000, reason: '' };
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
}
