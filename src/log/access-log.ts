/**
 * The access log: one line per request in Apache's "combined" format, plus the response time in
 * microseconds (Apache's %D) as a last field, so standard tools (goaccess, awstats, GoAccess's
 * COMBINED with %D…) read it:
 *
 *   127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.1" 200 2326 "http://x/" "Mozilla/5.0" 1843
 *
 * Destination (from Settings): logs/access.log in the daemon; the log stream (stderr, or stdout
 * with --stdout) in the foreground (--no-daemon); nowhere with --no-access-log. Lines are buffered
 * for one event-loop turn and written together; `reopen()` (SIGUSR1, logrotate) reopens the file,
 * through a path valid inside a chroot (the caller passes the app folder's root as it sees it).
 */
import { closeSync, writeSync } from 'node:fs';
import { openAppendBelow } from '../fs/anchored.js';
import { jsonHead, jsonValue } from './logger.js';
import type { Settings } from '../config/settings.js';
import type { Mongrel2Message } from '../protocol/index.js';

export interface AccessLogEntry {
  /** Client address (x-forwarded-for or REMOTE_ADDR as mongrel2 gave it); '' → '-'. */
  remoteAddr: string;
  method: string;
  /** The request URI as received (path and query). */
  uri: string;
  /** e.g. 'HTTP/1.1' */
  httpVersion: string;
  status: number;
  /** Body bytes sent (0 → '-'). */
  bytes: number;
  referer?: string;
  userAgent?: string;
  durationMs: number;
  /** When the request arrived (default: now - durationMs). */
  time?: Date;
}

function header(message: Mongrel2Message, name: string): string | undefined {
  const value = message.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The entry for a request mongrel2 sent in `message` (undefined when the master answered a
 * connection whose request it no longer holds: logged as "-").
 */
export function accessEntryOf(message: Mongrel2Message | undefined, status: number, bytes: number, durationMs: number): AccessLogEntry {
  if (message === undefined) {
    return { remoteAddr: '', method: '-', uri: '-', httpVersion: '-', status, bytes, durationMs };
  }
  return {
    remoteAddr: header(message, 'x-forwarded-for') ?? header(message, 'REMOTE_ADDR') ?? '',
    method: header(message, 'METHOD') ?? '-',
    uri: header(message, 'URI') ?? message.path,
    httpVersion: header(message, 'VERSION') ?? 'HTTP/1.1',
    status,
    bytes,
    referer: header(message, 'referer'),
    userAgent: header(message, 'user-agent'),
    durationMs,
  };
}

export interface AccessLogger {
  /** False with --no-access-log: callers may skip building entries. */
  readonly enabled: boolean;
  log(entry: AccessLogEntry): void;
  /** Reopen the file (after logrotate moved it). No-op for streams. */
  reopen(): void;
  /** Write what is buffered now (synchronously). */
  flush(): void;
  close(): void;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** Apache's %t: [10/Oct/2000:13:55:36 -0700] (local time). */
export function formatClfTime(date: Date): string {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const abs = Math.abs(offset);
  return (
    `[${pad(date.getDate())}/${MONTHS[date.getMonth()]}/${date.getFullYear()}:` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ` +
    `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}]`
  );
}

/** Escape a value for a quoted field as Apache does: `"` and `\` backslashed, controls as \xhh. */
export function escapeField(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/["\\\x00-\x1f\x7f]/.test(value)) return value;
  let out = '';
  for (const ch of value) {
    const code = ch.charCodeAt(0);
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (code < 0x20 || code === 0x7f) out += '\\x' + code.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out;
}

// %t has a one-second resolution and a line is written per request: format each second once.
let clfSecond = -1;
let clfText = '';
function clfTimeAt(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== clfSecond) {
    clfSecond = second;
    clfText = formatClfTime(new Date(ms));
  }
  return clfText;
}

/** One combined-format line (with the trailing newline). */
export function formatAccessLine(entry: AccessLogEntry): string {
  const time = entry.time !== undefined ? formatClfTime(entry.time) : clfTimeAt(Date.now() - entry.durationMs);
  const host = entry.remoteAddr ? escapeField(entry.remoteAddr.replace(/\s/g, '')) : '-';
  // Apache writes "-" when there is no request line to show (the master answered a connection).
  const request = entry.method === '-' && entry.uri === '-' ? '-' : escapeField(`${entry.method} ${entry.uri} ${entry.httpVersion}`);
  const bytes = entry.bytes > 0 ? String(entry.bytes) : '-';
  const referer = entry.referer ? escapeField(entry.referer) : '-';
  const agent = entry.userAgent ? escapeField(entry.userAgent) : '-';
  const micros = Math.max(0, Math.round(entry.durationMs * 1000));
  return `${host} - - ${time} "${request}" ${entry.status} ${bytes} "${referer}" "${agent}" ${micros}\n`;
}

/**
 * One JSON line (--log-format=json), with pino-http's names: `msg` "request completed", `req`
 * {method, url, httpVersion, remoteAddress, referer, userAgent}, `res` {statusCode, bytes},
 * `responseTime` (ms); `time` is when the line was written (the answer), as pino-http's.
 */
export function formatAccessJson(entry: AccessLogEntry, now: number = Date.now(), pid: number = process.pid): string {
  const time = entry.time !== undefined ? entry.time.getTime() + entry.durationMs : now;
  let req = '"method":' + jsonValue(entry.method) + ',"url":' + jsonValue(entry.uri) + ',"httpVersion":' + jsonValue(entry.httpVersion);
  if (entry.remoteAddr) req += ',"remoteAddress":' + jsonValue(entry.remoteAddr);
  if (entry.referer) req += ',"referer":' + jsonValue(entry.referer);
  if (entry.userAgent) req += ',"userAgent":' + jsonValue(entry.userAgent);
  const responseTime = Math.round(entry.durationMs * 1000) / 1000;
  return (
    jsonHead(30, Math.round(time), pid) +
    `,"msg":"request completed","req":{${req}},"res":{"statusCode":${entry.status},"bytes":${entry.bytes}},"responseTime":${responseTime}}\n`
  );
}

type Destination = { kind: 'file'; appPath: string } | { kind: 'fd'; fd: number } | { kind: 'none' };

/** Where the access log of these settings goes. */
export function accessLogDestination(settings: Settings): Destination {
  if (!settings.accessLog) return { kind: 'none' };
  if (settings.noDaemon) return { kind: 'fd', fd: settings.stdout ? 1 : 2 };
  return { kind: 'file', appPath: settings.appPath };
}

const disabled: AccessLogger = {
  enabled: false,
  log: () => {},
  reopen: () => {},
  flush: () => {},
  close: () => {},
};

/**
 * `appRoot`: the app folder as this process reaches it, which is `/` in a worker chrooted into it
 * (app-folder/privileges.ts `inAppFolder()`); the caller knows, the log does not.
 */
export function createAccessLogger(settings: Settings, appRoot: string = settings.appPath): AccessLogger {
  const destination = accessLogDestination(settings);
  if (destination.kind === 'none') return disabled;
  const open = (): number => (destination.kind === 'fd' ? destination.fd : openAppendBelow(appRoot, 'logs/access.log', 0o640));

  const format = settings.logFormat === 'json' ? (entry: AccessLogEntry) => formatAccessJson(entry) : formatAccessLine;
  let fd = open();
  let pending: string[] = [];
  let scheduled = false;
  let closed = false;

  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    try {
      writeSync(fd, text);
    } catch {
      // Never let the access log take a worker down (full disk, EAGAIN on a pipe…).
    }
  };
  const onExit = (): void => flush();
  process.on('exit', onExit);

  return {
    enabled: true,
    log(entry) {
      if (closed) return;
      pending.push(format(entry));
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    reopen() {
      if (destination.kind !== 'file' || closed) return;
      flush();
      const next = open();
      const previous = fd;
      fd = next;
      closeSync(previous);
    },
    flush,
    close() {
      if (closed) return;
      flush();
      closed = true;
      process.off('exit', onExit);
      if (destination.kind === 'file') closeSync(fd);
    },
  };
}
