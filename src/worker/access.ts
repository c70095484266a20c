/** A finished request as an access log entry (log/access-log.ts formats and writes it). */
import type { AccessLogEntry } from '../log/access-log.js';
import type { CompletedRequest } from './serve.js';

function header(message: CompletedRequest['message'], name: string): string | undefined {
  const value = message.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function accessEntry(done: CompletedRequest): AccessLogEntry {
  const m = done.message;
  return {
    remoteAddr: header(m, 'x-forwarded-for') ?? header(m, 'REMOTE_ADDR') ?? '',
    method: header(m, 'METHOD') ?? '-',
    uri: header(m, 'URI') ?? m.path,
    httpVersion: header(m, 'VERSION') ?? 'HTTP/1.1',
    status: done.status,
    bytes: done.bytes,
    referer: header(m, 'referer'),
    userAgent: header(m, 'user-agent'),
    durationMs: done.durationMs,
  };
}
