#!/usr/bin/env node
// Install and build the apps of test/fixtures/starters/ (made once by their starters —
// create-next-app, create-fastify, sv create, express-generator — and committed without node_modules or build output), as their
// READMEs say: `npm ci`, then `npm run build` when there is a build script. Cached: a folder whose
// package-lock.json (install) and sources (build) have not changed since the last run is skipped.
// Run by .ci/run before `npm test`, and by test/integration/starters.test.ts and recipes.test.ts (a
// no-op then). Arguments name the starters to set up (e.g. `express-app`); none: all of them.
// Network: the npm registry only. `next build` wants Google Fonts for the default template's Geist
// fonts; they are answered locally through Next's own test hook NEXT_FONT_GOOGLE_MOCKED_RESPONSES,
// with the Geist files Next itself ships.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STARTERS = path.join(ROOT, 'test', 'fixtures', 'starters');
const SKIP = new Set(['node_modules', '.next', '.svelte-kit', 'build', 'dist', '.output']);

function sourceFiles(dir, files = []) {
  for (const name of readdirSync(dir).sort()) {
    if (SKIP.has(name)) continue;
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) sourceFiles(file, files);
    else files.push(file);
  }
  return files;
}

function digest(files) {
  const h = createHash('sha256');
  for (const file of files) h.update(path.basename(file)).update(readFileSync(file));
  return h.digest('hex');
}

/** Asynchronous: the font server below answers while the build runs. */
async function run(cmd, args, cwd, env = {}) {
  console.log(`== ${path.relative(ROOT, cwd)}: ${cmd} ${args.join(' ')}`);
  const child = spawn(cmd, args, { cwd, stdio: 'inherit', env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', ...env } });
  const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd} (${code ?? signal})`);
}

/** A loopback server for the font files and a mock file naming them (only while building). */
async function googleFontsMock(appDir) {
  const fonts = path.join(appDir, 'node_modules', 'next', 'dist', 'next-devtools', 'server', 'font');
  if (!existsSync(fonts)) return { env: {}, close: async () => {} };
  const server = http.createServer((req, res) => {
    const file = path.join(fonts, path.basename(req.url ?? ''));
    if (!existsSync(file)) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'font/woff2' }).end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const face = (family, file) =>
    `@font-face {\n  font-family: '${family}';\n  font-style: normal;\n  font-weight: 100 900;\n  font-display: swap;\n  src: url(${base}/${file}) format('woff2');\n}\n`;
  const mock = path.join(appDir, 'node_modules', '.wsgid-google-fonts.cjs');
  writeFileSync(mock, `module.exports = ${JSON.stringify({
    'https://fonts.googleapis.com/css2?family=Geist:wght@100..900&display=swap': face('Geist', 'geist-latin.woff2'),
    'https://fonts.googleapis.com/css2?family=Geist+Mono:wght@100..900&display=swap': face('Geist Mono', 'geist-mono-latin.woff2'),
  }, null, 2)};\n`);
  return { env: { NEXT_FONT_GOOGLE_MOCKED_RESPONSES: mock }, close: () => new Promise((resolve) => server.close(resolve)) };
}

const only = new Set(process.argv.slice(2));
for (const name of readdirSync(STARTERS).sort()) {
  if (only.size > 0 && !only.has(name)) continue;
  const appDir = path.join(STARTERS, name, 'app');
  if (!existsSync(path.join(appDir, 'package.json'))) continue;
  const installStamp = path.join(appDir, 'node_modules', '.wsgid-install');
  const lock = digest([path.join(appDir, 'package-lock.json')]);
  if (!existsSync(installStamp) || readFileSync(installStamp, 'utf8') !== lock) {
    await run('npm', ['ci', '--no-audit', '--no-fund'], appDir);
    writeFileSync(installStamp, lock);
  }
  const pkg = JSON.parse(readFileSync(path.join(appDir, 'package.json'), 'utf8'));
  if (!pkg.scripts?.build) continue;
  const buildStamp = path.join(appDir, 'node_modules', '.wsgid-build');
  const sources = digest(sourceFiles(appDir));
  if (existsSync(buildStamp) && readFileSync(buildStamp, 'utf8') === sources) continue;
  const fonts = await googleFontsMock(appDir);
  try {
    await run('npm', ['run', 'build'], appDir, fonts.env);
  } finally {
    await fonts.close();
  }
  writeFileSync(buildStamp, sources);
}
