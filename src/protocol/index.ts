/**
 * Public API of the pure mongrel2 codec (no I/O). Wire format: docs/MONGREL2.md §2–§3.
 *
 * Strings: every string this layer decodes from the wire (sender, PATH, header names and values,
 * tnetstring strings) is a latin1 "byte string" — one char per byte, as Node's http presents raw
 * headers — whatever the header format (JSON or tnetstring). `Buffer.from(s, 'latin1')` restores
 * the bytes; decode those as UTF-8 when you need text. Reply payloads given as strings are UTF-8.
 */
export * from './types.js';
export { parseMessage, peekConnection, isValidSender } from './parse.js';
export { encodeReply, encodeReplyParts, encodeClose, encodeBroadcast, encodeControl, encodeXRequest } from './encode.js';
export type { ControlRequest } from './encode.js';
export { parseTnetstring, dumpTnetstring, MAX_TNET_DEPTH } from './tnetstring.js';
export type { TnetValue, TnetParseResult } from './tnetstring.js';
export { parseNetstring, dumpNetstring } from './netstring.js';
export type { Span } from './netstring.js';
export { parseJsonHeaders } from './json-headers.js';
