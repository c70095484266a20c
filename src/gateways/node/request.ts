/**
 * Translation: a parsed mongrel2 request → a real `http.IncomingMessage`, without re-parsing.
 *
 * mongrel2 has already parsed the request line and headers; we hand Node the raw header pairs
 * (`_addHeaderLines`, the same call its own parser makes) so `req.headers` is built lazily by Node
 * with Node's own rules for duplicates (set-cookie array, `cookie` joined with "; ", first `host`
 * wins, ...), and push the body once, then end it.
 */
import { IncomingMessage } from 'node:http';
import { createReadStream } from 'node:fs';
import type { Mongrel2Headers, Mongrel2Message } from '../../protocol/types.js';

/** The parts of IncomingMessage that Node's own parser uses and @types/node does not declare. */
interface IncomingInternals {
  _addHeaderLines(headers: string[], n: number): void;
  _consuming: boolean;
  _dumped: boolean;
  /** Set by Node's parser; true only for a request handed to 'upgrade' listeners. */
  upgrade: boolean;
}
export type GatewayIncomingMessage = IncomingMessage & IncomingInternals;
type IncomingMessageClass = new (socket: import('node:net').Socket) => IncomingMessage;

/** Lowercase headers mongrel2 itself generates: not the client's, and they reveal server paths. */
const GENERATED_LOWERCASE = new Set(['x-mongrel2-upload-start', 'x-mongrel2-upload-done']);

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The client's headers as Node's `rawHeaders` (name, value, name, value...). mongrel2's generated
 * keys are UPPERCASE (and client names are lowercased by mongrel2), so the first character tells.
 * A repeated header arrives as an array and is repeated here, in order.
 */
export function clientRawHeaders(headers: Mongrel2Headers): string[] {
  const raw: string[] = [];
  for (const name in headers) {
    const c = name.charCodeAt(0);
    if (c >= 65 && c <= 90) continue; // A-Z: PATH, METHOD, URI, REMOTE_ADDR...
    if (GENERATED_LOWERCASE.has(name)) continue;
    const value = headers[name]!;
    if (typeof value === 'string') raw.push(name, value);
    else for (const v of value) raw.push(name, v);
  }
  return raw;
}

/** REMOTE_ADDR, or (old mongrel2) the first x-forwarded-for entry, which mongrel2 overwrites. */
export function remoteAddressOf(headers: Mongrel2Headers): string | undefined {
  const remote = first(headers.REMOTE_ADDR);
  if (remote) return remote;
  const xff = first(headers['x-forwarded-for']);
  if (!xff) return undefined;
  const comma = xff.indexOf(',');
  return (comma < 0 ? xff : xff.slice(0, comma)).trim() || undefined;
}

export function isHttps(headers: Mongrel2Headers): boolean {
  return first(headers.URL_SCHEME) === 'https';
}

function requestUrl(message: Mongrel2Message): string {
  const uri = first(message.headers.URI);
  if (uri) return uri;
  const query = first(message.headers.QUERY);
  return query ? `${message.path}?${query}` : message.path;
}

/**
 * Build the IncomingMessage for `message` on `socket`. The body is `message.body` (pushed at once),
 * or streamed from `bodyFile` (an async upload) as the app reads it.
 */
export function buildIncomingMessage(
  Incoming: IncomingMessageClass,
  socket: import('node:net').Socket,
  message: Mongrel2Message,
  bodyFile: string | undefined,
): GatewayIncomingMessage {
  const req = new Incoming(socket) as GatewayIncomingMessage;
  const headers = message.headers;
  // A WebSocket handshake (METHOD=WEBSOCKET_HANDSHAKE, body = the Sec-WebSocket-Accept value)
  // is the client's GET with Upgrade headers; it has no request body.
  const handshake = message.kind === 'websocket-handshake';
  req.method = handshake ? 'GET' : (first(headers.METHOD) ?? 'GET');
  req.url = requestUrl(message);
  const version = first(headers.VERSION);
  if (version === 'HTTP/1.0') {
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 0;
    req.httpVersion = '1.0';
  } else {
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 1;
    req.httpVersion = '1.1';
  }
  const raw = clientRawHeaders(headers);
  req._addHeaderLines(raw, raw.length);
  req.upgrade = false;

  if (bodyFile !== undefined) {
    streamBodyFile(req, bodyFile);
  } else {
    if (message.body.length > 0 && !handshake) req.push(message.body);
    req.complete = true;
    req.push(null);
  }
  return req;
}

/**
 * Feed an upload file into `req` at the pace the app reads it. IncomingMessage's `_read` only
 * resumes the socket (the parser pushes into the request from outside), so we wrap it as an own
 * property — own properties survive Express re-parenting the request's prototype.
 */
function streamBodyFile(req: GatewayIncomingMessage, path: string): void {
  const file = createReadStream(path);
  const baseRead = IncomingMessage.prototype._read;
  let done = false;
  const pump = (): void => {
    let chunk: Buffer | null;
    while (!done && (chunk = file.read() as Buffer | null) !== null) {
      if (!req.push(chunk)) return;
    }
  };
  file.on('readable', pump);
  file.once('end', () => {
    done = true;
    req.complete = true;
    req.push(null);
  });
  file.once('error', (error) => {
    done = true;
    req.destroy(error);
  });
  req._read = function read(this: IncomingMessage, size: number): void {
    baseRead.call(this, size);
    pump();
  };
  // If the response finishes before the body was read, don't read the rest of the file just to
  // throw it away (Node dumps the body because it must clear the wire; we have no wire).
  req.once('close', () => {
    if (!done) {
      done = true;
      file.destroy();
    }
  });
  (req as unknown as { [kBodyFile]: () => void })[kBodyFile] = () => {
    if (done) return;
    done = true;
    file.destroy();
    req.complete = true;
    req.push(null);
  };
}

/** Private slot (namespaced, as light-my-request does) for "stop streaming the upload". */
const kBodyFile = Symbol('wsgid.bodyFile');

/** Stop feeding an unread upload body: end the request stream where it is. */
export function abandonBody(req: IncomingMessage): void {
  const stop = (req as unknown as { [kBodyFile]?: () => void })[kBodyFile];
  if (stop) stop();
}
