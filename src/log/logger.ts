/**
 * A small line logger: cheap when a level is off (pino's trick: disabled levels are no-ops),
 * synchronous writes so the last line before a crash survives, and `reopen()` for logrotate
 * (SIGUSR1). One line per event: `<ISO time> <LEVEL> [<role> <pid>] message key=value ...`.
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { openAppendBelow } from '../fs/anchored.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;
type LogFn = (message: string, fields?: LogFields) => void;

export interface Logger {
  readonly level: LogLevel;
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

function makeLogger(sink: Sink, level: LogLevel, role: string): Logger {
  const prefix = ` [${role} ${process.pid}] `;
  const make = (name: LogLevel): LogFn => {
    if (ORDER[name] < ORDER[level]) return noop;
    const label = name.toUpperCase().padEnd(5);
    return (message, fields) => {
      let line = new Date().toISOString() + ' ' + label + prefix + message;
      if (fields) for (const key in fields) line += ' ' + key + '=' + formatValue(fields[key]);
      sink.write(line + '\n');
    };
  };
  return {
    level,
    debug: make('debug'),
    info: make('info'),
    warn: make('warn'),
    error: make('error'),
    child: (childRole) => makeLogger(sink, level, childRole),
    reopen: () => sink.reopen(),
  };
}

export function createLogger(destination: LogDestination, level: LogLevel = 'info', role = 'wsgid'): Logger {
  return makeLogger(new Sink(destination), level, role);
}
