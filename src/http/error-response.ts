/**
 * The responses wsgid writes itself (the app failed, a worker died or hung, a feature is missing):
 * one builder, so every one of them carries Date, X-Wsgid, a Content-Length that matches its body,
 * and closes the connection (after an error, nothing else on it can be trusted).
 */
import { STATUS_CODES } from 'node:http';
import { httpDate } from './head.js';

const EXPLANATIONS: Record<number, string> = {
  500: 'Internal Server Error\n',
  501: 'Not Implemented\n',
  502: 'Bad Gateway: the worker serving this request stopped before answering.\n',
  503: 'Service Unavailable: too many requests are waiting for a worker.\n',
  504: 'Gateway Timeout: the request was not answered in time.\n',
};

export interface ErrorResponseOptions {
  /** Plain-text body; a standard sentence for the status by default. */
  body?: string;
  /** The request's method: a HEAD answer has no body (its Content-Length still says how long). */
  method?: string;
  /** The clock, for tests. */
  date?: string;
}

/** A complete HTTP/1.1 error response as a Latin-1 byte string (the body is encoded as UTF-8). */
export function errorResponse(status: number, version: string, options: ErrorResponseOptions = {}): Buffer {
  const body = Buffer.from(options.body ?? EXPLANATIONS[status] ?? `${STATUS_CODES[status] ?? 'Error'}\n`, 'utf8');
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    `Date: ${options.date ?? httpDate()}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${body.length}\r\n` +
    'Connection: close\r\n' +
    `X-Wsgid: ${version}\r\n` +
    '\r\n';
  const headBytes = Buffer.from(head, 'latin1');
  return options.method === 'HEAD' ? headBytes : Buffer.concat([headBytes, body]);
}
