/**
 * A small line logger: cheap when a level is off (pino's trick: disabled levels are no-ops),
 * synchronous writes so the last line before a crash survives, and `reopen()` for logrotate
 * (SIGUSR1). One line per event, in one of two formats (--log-format, docs/LOGGING.md):
 * - text: `<ISO time> <LEVEL> [<role> <pid>] message key=value ...`; a multi-line `detail` or
 *   `traceback` field follows on lines indented by two spaces;
 * - json: one pino-compatible object: `{"level":30,"time":<ms>,"pid":…,"hostname":…,"role":…,
 *   "msg":…, …fields}` (a field named like a core key is written as `_<key>`).
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { openAppendBelow } from '../fs/anchored.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
export type LogFields = Record<string, unknown>;
type LogFn = (message: string, fields?: LogFields) => void;

export interface Logger {
  readonly level: LogLevel;
  readonly format?: LogFormat;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger that writes to the same destination with a different role label (e.g. "worker 2"). */
  child(role: string): Logger;
  /** Reopen the log file (after logrotate moved it). No-op for stdout/stderr. */
  reopen(): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** pino's level numbers (trace 10, debug 20, info 30, warn 40, error 50, fatal 60). */
export const PINO_LEVEL: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };
const noop: LogFn = () => {};

/**
 * Where lines go: a file path (appended, reopenable) or an already open fd (1 or 2). With `root`
 * (the app folder, trusted), the folders between it and the file are opened without following
 * symlinks, and so is the file: it lives where the app's user can plant them (docs/SECURITY.md).
 */
export type LogDestination = { path: string; root?: string } | { fd: number };

function openLog(destination: { path: string; root?: string }): number {
  if (destination.root === undefined) return openSync(destination.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640);
  return openAppendBelow(destination.root, path.relative(destination.root, destination.path), 0o640);
}

class Sink {
  private fd: number;
  constructor(private readonly destination: LogDestination) {
    this.fd = 'fd' in destination ? destination.fd : openLog(destination);
  }
  write(line: string): void {
    try {
      writeSync(this.fd, line);
    } catch {
      // A log line must never take the daemon down (EAGAIN on a full pipe, a vanished disk...).
    }
  }
  reopen(): void {
    if (!('path' in this.destination)) return;
    const next = openLog(this.destination);
    const previous = this.fd;
    this.fd = next;
    closeSync(previous);
  }
}

/** JSON quoting, plus the C1 controls and DEL JSON leaves raw: a log line never carries control bytes. */
function quote(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).replace(/[\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A field value: bare when it is one plain word, quoted (control bytes escaped) otherwise. */
export function formatValue(value: unknown): string {
  if (value instanceof Error) return quote(value.stack ?? value.message);
  if (typeof value === 'string') return /^[^\s"=\x00-\x1f\x7f-\x9f]+$/.test(value) ? value : quote(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  return quote(value);
}

/** Control bytes other than tab and newline, escaped: a detail block cannot forge terminal codes. */
function sanitizeBlock(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A multi-line text shown under its log line, each line indented (continuations never start with a time). */
export function indentBlock(text: string): string {
  return sanitizeBlock(text.replace(/\s+$/, '')).replace(/^(?=.)/gm, '  ') + '\n';
}

/** Fields shown as they are, under the line, when they hold several lines (a traceback). */
const BLOCK_FIELDS = new Set(['detail', 'traceback']);

/** One text line (with its newline, and the `detail`/`traceback` blocks under it). */
export function formatTextLine(time: Date, level: LogLevel, role: string, pid: number, message: string, fields?: LogFields): string {
  let line = time.toISOString() + ' ' + level.toUpperCase().padEnd(5) + ` [${role} ${pid}] ` + message;
  let block = '';
  if (fields) {
    for (const key in fields) {
      const value = fields[key];
      if (value === undefined) continue;
      if (BLOCK_FIELDS.has(key) && typeof value === 'string' && value.includes('\n')) block += indentBlock(value);
      else line += ' ' + key + '=' + formatValue(value);
    }
  }
  return line + '\n' + block;
}

/** An Error as pino's std serializer shows it: type, message, stack (and code). */
function serializeError(error: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: error.name, message: error.message, stack: error.stack };
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined) out.code = code;
  return out;
}

const JSON_UNSAFE = /[\x7f-\x9f\u2028\u2029]/;
const JSON_UNSAFE_ALL = /[\x7f-\x9f\u2028\u2029]/g;
const escapeUnsafe = (text: string): string =>
  JSON_UNSAFE.test(text) ? text.replace(JSON_UNSAFE_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : text;

/** A value as JSON (never throws: cycles and BigInts degrade to strings; C1 controls escaped). */
export function jsonValue(value: unknown): string {
  // The common kinds without JSON.stringify's replacer (a per-request cost in the access log).
  switch (typeof value) {
    case 'string':
      return escapeUnsafe(JSON.stringify(value));
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return `"${value}"`;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value instanceof Error ? serializeError(value) : value, (_key, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v instanceof Error ? serializeError(v) : v,
    );
  } catch {
    text = JSON.stringify(String(value));
  }
  return escapeUnsafe(text ?? 'null');
}

const CORE_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'role', 'msg']);
const HOST = hostname();

/** The start of a pino-compatible line, up to and including `"pid":N,"hostname":"…"`. */
export function jsonHead(level: number, time: number, pid: number): string {
  return `{"level":${level},"time":${time},"pid":${pid},"hostname":${JSON.stringify(HOST)}`;
}

/** One JSON line (with its newline). */
export function formatJsonLine(time: number, level: LogLevel, role: string, pid: number, message: string, fields?: LogFields): string {
  let line = jsonHead(PINO_LEVEL[level], time, pid) + ',"role":' + jsonValue(role) + ',"msg":' + jsonValue(message);
  if (fields) {
    for (const key in fields) {
      const value = fields[key];
      if (value === undefined) continue;
      line += ',' + JSON.stringify(CORE_KEYS.has(key) ? '_' + key : key) + ':' + jsonValue(value);
    }
  }
  return line + '}\n';
}

function makeLogger(sink: Sink, level: LogLevel, role: string, format: LogFormat): Logger {
  const pid = process.pid;
  const make = (name: LogLevel): LogFn => {
    if (ORDER[name] < ORDER[level]) return noop;
    if (format === 'json') return (message, fields) => sink.write(formatJsonLine(Date.now(), name, role, pid, message, fields));
    return (message, fields) => sink.write(formatTextLine(new Date(), name, role, pid, message, fields));
  };
  return {
    level,
    format,
    debug: make('debug'),
    info: make('info'),
    warn: make('warn'),
    error: make('error'),
    child: (childRole) => makeLogger(sink, level, childRole, format),
    reopen: () => sink.reopen(),
  };
}

export function createLogger(destination: LogDestination, level: LogLevel = 'info', role = 'wsgid', format: LogFormat = 'text'): Logger {
  return makeLogger(new Sink(destination), level, role, format);
}
