/**
 * `npm run example -- NAME` — try an example without writing a mongrel2 config: runs
 * `wsgid dev examples/NAME` (a private mongrel2 wsgid configures, the app reloaded on edits),
 * prints the URL, and stops both on Ctrl-C. NAME defaults to hono; extra arguments go to
 * `wsgid dev` (e.g. `--port=8081 --workers=2`).
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const examplesDir = path.join(REPO_ROOT, 'examples');
const names = readdirSync(examplesDir).filter((name) => {
  try {
    return statSync(path.join(examplesDir, name, 'app')).isDirectory();
  } catch {
    return false;
  }
});
const [name = 'hono', ...extra] = process.argv.slice(2);
if (!names.includes(name)) {
  process.stderr.write(`unknown example "${name}"; one of: ${names.join(', ')}\n`);
  process.exit(2);
}

const dev = spawn(process.execPath, [CLI, 'dev', path.join(examplesDir, name), ...extra], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
let announced = false;
let seen = '';
const relay = (chunk: Buffer, to: NodeJS.WriteStream): void => {
  to.write(chunk);
  if (announced) return;
  seen += chunk.toString();
  // Once the workers are ready, say where to look (wsgid dev printed the URL before starting them).
  const url = /wsgid dev: serving \S+ at (http:\/\/\S+?)\/ /.exec(seen)?.[1];
  if (url && /\] ready workers=/.test(seen)) {
    announced = true;
    process.stdout.write(`\nexample "${name}" is served by wsgid behind mongrel2 at ${url}/  (try ${url}/hello/you; edit examples/${name}/app to see it reload; Ctrl-C stops)\n\n`);
  }
};
dev.stdout.on('data', (chunk: Buffer) => relay(chunk, process.stdout));
dev.stderr.on('data', (chunk: Buffer) => relay(chunk, process.stderr));

// A Ctrl-C on the terminal reaches wsgid dev too; a signal sent to this process alone is passed on
// as a graceful stop (wsgid dev then stops mongrel2).
const stop = (): void => void dev.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
dev.on('close', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
