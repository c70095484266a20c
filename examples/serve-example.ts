/**
 * `npm run example -- NAME` — try an example without writing a mongrel2 config: starts a private
 * mongrel2 (the test helper's, in a temp folder) and `wsgid --no-daemon` for examples/NAME, prints
 * the URL, and stops both on Ctrl-C. NAME defaults to hono.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { startMongrel2 } from '../test/helpers/mongrel2.js';
import { REPO_ROOT, startWsgid } from '../test/helpers/wsgid.js';

const examplesDir = path.join(REPO_ROOT, 'examples');
const names = readdirSync(examplesDir).filter((name) => {
  try {
    return statSync(path.join(examplesDir, name, 'app')).isDirectory();
  } catch {
    return false;
  }
});
const name = process.argv[2] ?? 'hono';
if (!names.includes(name)) {
  process.stderr.write(`unknown example "${name}"; one of: ${names.join(', ')}\n`);
  process.exit(2);
}

// Ctrl-C handlers first: the test helpers only turn signals into a bare exit when nobody else
// listens, and that exit would skip stopping wsgid and mongrel2 in order.
let stopping = false;
let stopAll: () => Promise<void> = async () => {};
function stop(): void {
  if (stopping) return;
  stopping = true;
  void stopAll().then(() => process.exit(0));
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const m2 = await startMongrel2();
stopAll = () => m2.stop();
const handler = m2.handler('app');
const wsgid = await startWsgid(
  ['--no-daemon', '--stdout', `--app-path=${path.join(examplesDir, name)}`, `--recv=${handler.recv}`, `--send=${handler.send}`],
  { readyUrl: `${m2.baseUrl}/`, readyTimeoutMs: 30_000, echo: true },
);
stopAll = async () => {
  await wsgid.stop();
  await m2.stop();
};
process.stdout.write(`\nexample "${name}" is served by wsgid behind mongrel2 at ${m2.baseUrl}/  (try ${m2.baseUrl}/hello/you; Ctrl-C stops)\n\n`);
