/**
 * Writes a fetch Response as HTTP/1.1 bytes into a ReplyChannel.
 * Fast path: a LightResponse with a string/bytes/null body → head and body in one write, no streams.
 * Standard path: read the body stream; if it finishes at once, send it with a Content-Length,
 * otherwise stream it chunked (HTTP/1.1) or close-delimited (HTTP/1.0), honouring back-pressure.
 */
import { CHUNK_SUFFIX, chunkPrefix, frameHead, LAST_CHUNK, type FramedHead } from '../../http/head.js';
import type { ReplyChannel } from '../../http/reply-channel.js';
import { cached, standardResponse, type CachedResponse } from './response.js';

const TEXT_PLAIN = 'text/plain;charset=UTF-8';
const PENDING: unique symbol = Symbol('pending');

type HeaderPair = readonly [string, string];

/** Header pairs from a HeadersInit, adding the Content-Type `new Response(string)` implies. */
function initPairs(init: HeadersInit | undefined, defaultType: string | undefined): HeaderPair[] {
  let pairs: HeaderPair[];
  if (init === undefined) pairs = [];
  else if (init instanceof Headers) pairs = headerPairs(init);
  else if (Array.isArray(init)) pairs = init.map(([name, value]) => [name!, String(value)] as const);
  else pairs = Object.entries(init as Record<string, string>).map(([name, value]) => [name, String(value)] as const);
  if (defaultType !== undefined && !pairs.some(([name]) => name.length === 12 && name.toLowerCase() === 'content-type')) {
    pairs.push(['content-type', defaultType]);
  }
  return pairs;
}

/** Headers as pairs with each Set-Cookie kept apart (iteration would keep them apart too, but say so). */
function headerPairs(headers: Headers): HeaderPair[] {
  const pairs: HeaderPair[] = [];
  for (const [name, value] of headers) if (name !== 'set-cookie') pairs.push([name, value]);
  for (const cookie of headers.getSetCookie()) pairs.push(['set-cookie', cookie]);
  return pairs;
}

/**
 * `signalOf`: the request's signal; when it aborts (the client is gone) a streamed body is
 * cancelled, so its source's cancel() runs even while it is idle (an event stream waiting for its
 * next event). A function, because the signal is created on first use and the fast path needs none.
 */
export function writeResponse(
  reply: ReplyChannel,
  response: Response,
  version: string,
  signalOf?: () => AbortSignal,
): void | Promise<void> {
  const fast = (response as unknown as { [cached]?: CachedResponse })[cached];
  if (fast !== undefined) return writeCached(reply, fast, version);
  return writeStandard(reply, standardResponse(response), version, signalOf?.());
}

function writeCached(reply: ReplyChannel, [status, body, init, reason]: CachedResponse, version: string): void {
  if (typeof body === 'string') {
    const length = Buffer.byteLength(body);
    const framed = frameHead(reply, status, initPairs(init, TEXT_PLAIN), length, version, reason || undefined);
    if (framed.framing === 'none') return reply.end(framed.head, framed.close);
    const headLength = framed.head.length;
    const out = Buffer.allocUnsafe(headLength + length);
    out.write(framed.head, 0, headLength, 'latin1');
    out.write(body, headLength, length, 'utf8');
    return reply.end(out, framed.close);
  }
  const length = body === null ? 0 : body.byteLength;
  const framed = frameHead(reply, status, initPairs(init, undefined), length, version, reason || undefined);
  if (framed.framing === 'none' || length === 0) return reply.end(framed.head, framed.close);
  reply.write(framed.head);
  reply.end(body!, framed.close);
}

async function writeStandard(reply: ReplyChannel, response: Response, version: string, signal?: AbortSignal): Promise<void> {
  const status = response.status;
  const reason = response.statusText || undefined;
  const headers = headerPairs(response.headers);
  const body = response.body;
  if (body === null) {
    const framed = frameHead(reply, status, headers, 0, version, reason);
    return reply.end(framed.head, framed.close);
  }
  const reader = body.getReader();
  const onAbort = (): void => {
    reader.cancel(signal?.reason).catch(() => {});
  };
  if (signal !== undefined) {
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  try {
    const first = await reader.read();
    if (first.done) {
      const framed = frameHead(reply, status, headers, 0, version, reason);
      return reply.end(framed.head, framed.close);
    }
    // A body that is already complete (the usual case for non-stream bodies) gets a Content-Length.
    // The second read is kept: when it is still pending after a microtask, it will deliver the next
    // chunk, and a new read() would skip that chunk (the data loss fixed in 0.1.1).
    const secondRead = reader.read();
    const second: ReadableStreamReadResult<Uint8Array> | typeof PENDING = await Promise.race([
      secondRead,
      Promise.resolve().then((): typeof PENDING => PENDING),
    ]);
    if (second !== PENDING && second.done) {
      const framed = frameHead(reply, status, headers, first.value.byteLength, version, reason);
      if (framed.framing === 'none') return reply.end(framed.head, framed.close);
      reply.write(framed.head);
      return reply.end(first.value, framed.close);
    }
    const framed = frameHead(reply, status, headers, undefined, version, reason);
    if (framed.framing === 'none') {
      await reader.cancel();
      return reply.end(framed.head, framed.close);
    }
    reply.write(framed.head);
    await writeBodyChunk(reply, framed, first.value);
    let next = second === PENDING ? await secondRead : second;
    while (!next.done) {
      if (reply.closed) {
        await reader.cancel();
        return reply.end();
      }
      await writeBodyChunk(reply, framed, next.value);
      next = await reader.read();
    }
    if (framed.framing === 'chunked') reply.end(LAST_CHUNK, framed.close);
    else reply.end(undefined, framed.close);
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

async function writeBodyChunk(reply: ReplyChannel, framed: FramedHead, chunk: Uint8Array): Promise<void> {
  if (chunk.byteLength === 0) return;
  let wantsMore: boolean;
  if (framed.framing === 'chunked') {
    reply.write(chunkPrefix(chunk.byteLength));
    reply.write(chunk);
    wantsMore = reply.write(CHUNK_SUFFIX);
  } else {
    wantsMore = reply.write(chunk);
  }
  if (!wantsMore) await reply.drained();
}
