/**
 * Byte checks on raw mongrel2 frames that the master needs beyond protocol.peekConnection.
 * Hand-written scans: they run for every message, so no parsing, no allocation.
 */

// `{"type":"disconnect"},` is how every disconnect message ends (JSON and tnetstring handlers alike:
// the body netstring is `21:{"type":"disconnect"},`).
const DISCONNECT_TAIL = Buffer.from('{"type":"disconnect"},', 'latin1');
const TAIL_LEN = DISCONNECT_TAIL.length;

/**
 * Is this a mongrel2 disconnect message? True when the frame's path is `@*` and its body is
 * `{"type":"disconnect"}`. (An HTTP request's path always starts with `/`, so it can never match.)
 */
export function isDisconnectFrame(frame: Buffer): boolean {
  const n = frame.length;
  if (n < TAIL_LEN + 8) return false;
  // Cheap reject first: the last byte before the closing `,` of a disconnect body is `}`.
  if (frame[n - 2] !== 0x7d || frame[n - 3] !== 0x22) return false;
  for (let i = 0; i < TAIL_LEN; i++) if (frame[n - TAIL_LEN + i] !== DISCONNECT_TAIL[i]) return false;
  // Path: after the second space.
  let spaces = 0;
  let i = 0;
  for (; i < n && spaces < 2; i++) if (frame[i] === 0x20) spaces++;
  return spaces === 2 && frame[i] === 0x40 /* @ */ && frame[i + 1] === 0x2a /* * */ && frame[i + 2] === 0x20;
}

/**
 * Is this a message about a connection rather than a request on it? True when the path starts with
 * `@`: mongrel2's control messages (`@*`: disconnects, download credits) and JSON/XML socket
 * messages (`@route`). An HTTP request's path always starts with `/`. (WebSocket frames and upload
 * starts are not requests either, but only their headers say so: the worker reports them as
 * handled, 'N', and the table learns it then.)
 */
export function isControlFrame(frame: Buffer): boolean {
  const n = frame.length;
  let spaces = 0;
  let i = 0;
  for (; i < n && spaces < 2; i++) if (frame[i] === 0x20) spaces++;
  return spaces === 2 && frame[i] === 0x40 /* @ */;
}

const TIMEOUT_BODY = Buffer.from('{"type":"disconnect","wsgid":"timeout"}', 'latin1');

/**
 * The disconnect message the master sends a worker to cancel a request it answered 504 itself
 * (--timeout): JSON headers as mongrel2 writes them (the worker's parser reads both formats), and a
 * body that says why. The worker stops the request as when the client leaves, with a TimeoutError
 * as the reason (an ASGI task is cancelled).
 */
export function timeoutCancelFrame(sender: string, connId: number): Buffer {
  return Buffer.concat([
    Buffer.from(`${sender} ${connId} @* 17:{"METHOD":"JSON"},${TIMEOUT_BODY.length}:`, 'latin1'),
    TIMEOUT_BODY,
    Buffer.from(',', 'latin1'),
  ]);
}

/** Is this disconnect message's body the master's timeout cancel (timeoutCancelFrame)? */
export function isTimeoutCancel(body: Buffer): boolean {
  return body.equals(TIMEOUT_BODY);
}
