/** Public API of the pure mongrel2 codec. No I/O. See ../../docs/INTERNALS.md and the protocol notes. */
export * from './types.js';
export { parseMessage, peekConnection, isValidSender } from './parse.js';
export { encodeReply, encodeClose, encodeBroadcast, encodeControl, encodeXRequest } from './encode.js';
export type { ControlRequest } from './encode.js';
export { parseTnetstring, dumpTnetstring, MAX_TNET_DEPTH } from './tnetstring.js';
export type { TnetValue, TnetParseResult } from './tnetstring.js';
export { parseNetstring, dumpNetstring } from './netstring.js';
export type { Span } from './netstring.js';
export { parseJsonHeaders } from './json-headers.js';
