/**
 * Addresses of the `--metrics` endpoint: parsed once here (the option's check and the server use
 * the same rules) and judged loopback or not (a non-loopback address needs `--metrics-expose`).
 */
import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

/** `PORT`, `HOST:PORT` or `[IPv6]:PORT` → address (HOST defaults to 127.0.0.1); or a problem text. */
export function parseHostPort(value: string): HostPort | string {
  const bad = `expected PORT, HOST:PORT or [IPv6]:PORT like 127.0.0.1:9150, got '${value}'`;
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):)?(\d{1,5})$/.exec(value);
  if (!m) return bad;
  const port = Number(m[2]);
  if (port > 65535) return `${bad} (port must be 0-65535)`;
  const host = m[1] === undefined ? '127.0.0.1' : m[1].replace(/^\[|\]$/g, '');
  if (m[1]?.startsWith('[') && isIP(host) !== 6) return bad;
  return { host, port };
}

/** 127.0.0.0/8, ::1, ::ffff:127.x and `localhost`. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** The HOST:PORT text of an address (IPv6 in brackets), as parseHostPort reads it back. */
export function formatHostPort(address: HostPort): string {
  return `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
}
