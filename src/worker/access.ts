/** A finished request as an access log entry (log/access-log.ts formats and writes it). */
import { accessEntryOf, type AccessLogEntry } from '../log/access-log.js';
import type { CompletedRequest } from './serve.js';

export function accessEntry(done: CompletedRequest): AccessLogEntry {
  return accessEntryOf(done.message, done.status, done.bytes, done.durationMs);
}
