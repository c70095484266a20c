/** wsgid's version, read once from package.json (sent as the X-Wsgid header on every response). */
import { readFileSync } from 'node:fs';

function readVersion(): string {
  // This file is src/version.ts, built to dist/src/version.js: package.json is two or three levels up.
  for (const relative of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'wsgid' && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return '0.0.0';
}

export const VERSION = readVersion();
