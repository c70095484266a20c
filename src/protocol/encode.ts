/**
 * handler → mongrel2 replies (docs/MONGREL2.md §3): `SENDER SP LEN:ID ID ID, SP PAYLOAD`, one zmq frame.
 * encodeReply runs for every response: the small header is built as a string, then one
 * allocUnsafe and one copy of the payload.
 *
 * A string payload is encoded as UTF-8 (what a caller writing text means). Everything that is a
 * "byte string" elsewhere in this layer (header values, tnetstring strings) is latin1: to send such a
 * string back byte-for-byte, pass `Buffer.from(s, 'latin1')`.
 */
import { MAX_REPLY_TARGETS, ProtocolError } from './types.js';
import { isValidSender } from './parse.js';
import { dumpTnetstring, type TnetValue } from './tnetstring.js';

const MAX_UINT32 = 0xffffffff;

/** Control flags for `X ctl` (mongrel2 looks only at the presence of keep-alive and cancel). */
export interface ControlRequest {
  /** Refresh the connection's idle timer (long polls). */
  readonly keepAlive?: true;
  /** Grant this many bytes of upload credit (upload.stream=1). */
  readonly credits?: number;
  /** Close the connection. */
  readonly cancel?: true;
}

let lastValidSender = '';

function checkSender(sender: string): void {
  if (sender === lastValidSender) return;
  if (!isValidSender(sender)) {
    throw new ProtocolError('M2_ERR_SENDER', `reply sender ${JSON.stringify(sender)} is not [A-Za-z0-9-]+`);
  }
  lastValidSender = sender;
}

function checkId(id: number, index: number): void {
  if (!Number.isInteger(id) || id < 0 || id > MAX_UINT32) {
    throw new ProtocolError('M2_ERR_CONN_ID', `connection id ${String(id)} at index ${index} is not a uint32`);
  }
}

/** The space-separated id list, validated (1..128 uint32s). */
function idList(connIds: number | readonly number[]): string {
  if (typeof connIds === 'number') {
    checkId(connIds, 0);
    return String(connIds);
  }
  const n = connIds.length;
  if (n === 0 || n > MAX_REPLY_TARGETS) {
    throw new ProtocolError('M2_ERR_TARGETS', `a reply needs 1 to ${MAX_REPLY_TARGETS} connection ids, got ${n}`);
  }
  checkId(connIds[0]!, 0);
  let s = String(connIds[0]);
  for (let i = 1; i < n; i++) {
    checkId(connIds[i]!, i);
    s += ' ' + String(connIds[i]);
  }
  return s;
}

function assemble(sender: string, ids: string, payload: Uint8Array | string): Buffer {
  // ids and sender are ASCII, so string length == byte length.
  const head = `${sender} ${ids.length}:${ids}, `;
  const hl = head.length;
  if (typeof payload === 'string') {
    const out = Buffer.allocUnsafe(hl + Buffer.byteLength(payload, 'utf8'));
    out.write(head, 0, hl, 'latin1');
    out.write(payload, hl, 'utf8');
    return out;
  }
  const out = Buffer.allocUnsafe(hl + payload.length);
  out.write(head, 0, hl, 'latin1');
  out.set(payload, hl);
  return out;
}

/** `SENDER SP LEN:ID ID ID, SP PAYLOAD` for 1..128 connection ids, as one Buffer. */
export function encodeReply(sender: string, connIds: number | readonly number[], payload: Uint8Array | string): Buffer {
  checkSender(sender);
  return assemble(sender, idList(connIds), payload);
}

/**
 * encodeReply for a payload given as parts (a response's coalesced writes): the parts are copied
 * once, straight into the frame, instead of joined first and copied again.
 */
export function encodeReplyParts(sender: string, connId: number, parts: readonly Uint8Array[], length: number): Buffer {
  checkSender(sender);
  const ids = idList(connId);
  const head = `${sender} ${ids.length}:${ids}, `;
  const out = Buffer.allocUnsafe(head.length + length);
  let at = out.write(head, 0, head.length, 'latin1');
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/** An empty reply: mongrel2 closes each target after its queued writes (and cancels an upload). */
export function encodeClose(sender: string, connIds: number | readonly number[]): Buffer {
  return encodeReply(sender, connIds, EMPTY);
}

/** The same payload to any number of connections, in batches of at most 128 ids. No ids → []. */
export function encodeBroadcast(sender: string, ids: readonly number[], payload: Uint8Array | string): Buffer[] {
  checkSender(sender);
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const out: Buffer[] = [];
  for (let i = 0; i < ids.length; i += MAX_REPLY_TARGETS) {
    out.push(assemble(sender, idList(ids.slice(i, i + MAX_REPLY_TARGETS)), bytes));
  }
  return out;
}

/**
 * An extended reply: id list `X id id`, body the tnetstring list `[key, args]`. Keys other than
 * `ctl` go to an xrequest plugin, e.g. `encodeXRequest(s, id, 'sendfile', '/path/in/chroot')`.
 * `key` is a latin1 byte string, like every tnetstring string.
 */
export function encodeXRequest(
  sender: string,
  connIds: number | readonly number[],
  key: string,
  args: TnetValue,
): Buffer {
  checkSender(sender);
  return assemble(sender, 'X ' + idList(connIds), dumpTnetstring([key, args]));
}

/**
 * `X ctl {keep-alive, credits, cancel}`. keep-alive and cancel act by their presence (sent as
 * `true`); credits is a tnetstring integer.
 */
export function encodeControl(sender: string, connIds: number | readonly number[], ctl: ControlRequest): Buffer {
  const args: Record<string, TnetValue> = {};
  if (ctl.keepAlive) args['keep-alive'] = true;
  if (ctl.credits !== undefined) {
    if (!Number.isSafeInteger(ctl.credits) || ctl.credits < 0) {
      throw new ProtocolError('M2_ERR_TNETSTRING', `ctl credits must be a non-negative integer, got ${ctl.credits}`);
    }
    args['credits'] = ctl.credits;
  }
  if (ctl.cancel) args['cancel'] = true;
  return encodeXRequest(sender, connIds, 'ctl', args);
}
