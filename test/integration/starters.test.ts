/**
 * Apps made by their frameworks' starters, served unchanged: test/fixtures/starters/
 * holds what `npx create-next-app@16.4.3 --yes`, `npx create-fastify@5.0.0` and `npx sv@0.17.1 create
 * --template minimal --types ts --add sveltekit-adapter=adapter:node` generated (sources,
 * package.json, package-lock.json; no node_modules, no build). scripts/setup-starters.mjs runs
 * `npm ci` and `npm run build` for them (cached; .ci/run calls it first). Each app is then served
 * twice: by its own `npm start` on a port (the oracle) and by wsgid behind mongrel2 with no option
 * naming the app — wsgid reads the same start script — and the answers are compared; Next and
 * SvelteKit also under `wsgid dev` on their project folder.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { request, type HttpResponse } from '../helpers/http.js';
import { startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { appDirOf, npmStart, setUpStarters, wsgidFolder } from '../helpers/starters.js';
import { startDev } from '../helpers/dev.js';

function contentType(r: HttpResponse): string {
  return String(r.headers['content-type']);
}

/** The /_next/static/… assets a page names (scripts, styles, fonts). */
function nextAssets(html: string): string[] {
  return [...new Set(html.match(/\/_next\/static\/[^"'\s)\\]+/g) ?? [])].sort();
}

describe('apps made by their starters, served as their npm start serves them', () => {
  let m2: Mongrel2Handle;
  const dirs: string[] = [];
  before(async () => {
    await setUpStarters();
    m2 = await startMongrel2();
  }, { timeout: 900_000 });
  after(async () => {
    await m2?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test('create-next-app (default template, next build, `"start": "next start"`)', { timeout: 300_000 }, async () => {
    const appDir = appDirOf('next-app');
    assert.ok(existsSync(path.join(appDir, '.next', 'BUILD_ID')), 'next build ran');
    const oracle = await npmStart(appDir);
    let w: WsgidProcess | undefined;
    try {
      const dir = await wsgidFolder('next-app', dirs);
      w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2']), { cwd: dir, readyUrl: `${m2.baseUrl}/`, readyTimeoutMs: 120_000 });
      await w.waitForOutput(/from package\.json scripts\.start `next start`/);
      const want = await request(`${oracle.base}/`);
      assert.equal(want.status, 200);
      for (let i = 0; i < 3; i++) {
        const got = await request(`${m2.baseUrl}/`);
        assert.equal(got.status, want.status, w.output());
        assert.equal(contentType(got), contentType(want));
        assert.match(got.text, /To get started, edit the/);
        assert.match(got.text, /<title>Create Next App<\/title>/);
        // Same build: the same build id and the same assets, which must resolve with the same bytes.
        assert.deepEqual(nextAssets(got.text), nextAssets(want.text));
      }
      const assets = nextAssets(want.text);
      assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), assets.join(' '));
      for (const asset of assets) {
        const [got, ref] = await Promise.all([request(`${m2.baseUrl}${asset}`), request(`${oracle.base}${asset}`)]);
        assert.equal(ref.status, 200, asset);
        assert.equal(got.status, 200, asset);
        assert.equal(contentType(got), contentType(ref), asset);
        assert.ok(got.body.equals(ref.body), `${asset}: same bytes`);
      }
      for (const file of ['/next.svg', '/favicon.ico']) {
        const [got, ref] = await Promise.all([request(`${m2.baseUrl}${file}`), request(`${oracle.base}${file}`)]);
        assert.equal(got.status, ref.status, file);
        assert.ok(got.body.equals(ref.body), file);
      }
      const [got404, ref404] = await Promise.all([request(`${m2.baseUrl}/no-such-page`), request(`${oracle.base}/no-such-page`)]);
      assert.equal(ref404.status, 404);
      assert.equal(got404.status, 404);
      assert.match(got404.text, /This page could not be found/);
      // next start ran in app/ as in production, and wrote nothing there (no `next dev`).
      assert.doesNotMatch(w.output(), /next dev|development/i);
    } finally {
      await oracle.stop();
      if (w) assert.equal(await w.stop(), 0, w.output());
    }
  });

  test("Next's documented custom server (`\"start\": \"NODE_ENV=production node server.js\"`) on the same build", { timeout: 300_000 }, async () => {
    // The create-next-app folder plus Next's custom-server example (nextjs.org/docs/app/guides/custom-server),
    // its package.json start script changed as that guide says; everything else is the fixture's, linked.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wsgid-starter-next-custom-'));
    dirs.push(dir);
    const appDir = path.join(dir, 'app');
    await mkdir(appDir);
    for (const name of await readdir(appDirOf('next-app'))) {
      if (name !== 'package.json') await symlink(path.join(appDirOf('next-app'), name), path.join(appDir, name));
    }
    const pkg = JSON.parse(await readFile(path.join(appDirOf('next-app'), 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    pkg.scripts['start'] = 'NODE_ENV=production node server.js';
    await writeFile(path.join(appDir, 'package.json'), JSON.stringify(pkg, null, 2));
    await writeFile(
      path.join(appDir, 'server.js'),
      [
        "const { createServer } = require('http')",
        "const { parse } = require('url')",
        "const next = require('next')",
        "const port = parseInt(process.env.PORT || '3000', 10)",
        "const dev = process.env.NODE_ENV !== 'production'",
        'const app = next({ dev })',
        'const handle = app.getRequestHandler()',
        'app.prepare().then(() => {',
        '  createServer((req, res) => {',
        '    const parsedUrl = parse(req.url, true)',
        '    handle(req, res, parsedUrl)',
        '  }).listen(port)',
        "  console.log(`> Server listening at http://localhost:${port} as ${dev ? 'development' : process.env.NODE_ENV}`)",
        '})',
        '',
      ].join('\n'),
    );
    const oracle = await npmStart(appDir);
    let w: WsgidProcess | undefined;
    try {
      w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=1', '--listen-wait-ms=120000']), { cwd: dir, readyUrl: `${m2.baseUrl}/`, readyTimeoutMs: 150_000 });
      await w.waitForOutput(/> Server listening at http:\/\/localhost:3000 as production/);
      const [got, want] = await Promise.all([request(`${m2.baseUrl}/`), request(`${oracle.base}/`)]);
      assert.equal(want.status, 200);
      assert.equal(got.status, want.status, w.output());
      assert.equal(contentType(got), contentType(want));
      assert.match(got.text, /To get started, edit the/);
      assert.deepEqual(nextAssets(got.text), nextAssets(want.text));
    } finally {
      await oracle.stop();
      if (w) assert.equal(await w.stop(), 0, w.output());
    }
  });

  test('SvelteKit (`sv create --template minimal --add sveltekit-adapter=adapter:node`, vite build): --command="node build"', { timeout: 300_000 }, async () => {
    // adapter-node's README: the built app runs with `node build`; the template has no start script.
    const appDir = appDirOf('sveltekit-app');
    assert.ok(existsSync(path.join(appDir, 'build', 'index.js')), 'vite build ran');
    const oracle = await npmStart(appDir, [process.execPath, 'build']);
    let w: WsgidProcess | undefined;
    try {
      const dir = await wsgidFolder('sveltekit-app', dirs);
      w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2', '--command=node build']), { cwd: dir, readyUrl: `${m2.baseUrl}/`, readyTimeoutMs: 60_000 });
      await w.waitForOutput(/app\/build\/index\.js \(server it started/);
      const [got, want] = await Promise.all([request(`${m2.baseUrl}/`), request(`${oracle.base}/`)]);
      assert.equal(want.status, 200);
      assert.equal(got.status, want.status, w.output());
      assert.equal(contentType(got), contentType(want));
      assert.match(got.text, /<h1>Welcome to SvelteKit<\/h1>/);
      assert.equal(got.text, want.text);
      const assets = [...new Set(want.text.match(/\/_app\/immutable\/[^"'\s]+/g) ?? [])];
      assert.ok(assets.length > 0, want.text);
      for (const url of [...assets, '/robots.txt', '/no-such-page']) {
        const [g, r] = await Promise.all([request(`${m2.baseUrl}${url}`), request(`${oracle.base}${url}`)]);
        assert.equal(g.status, r.status, url);
        assert.equal(contentType(g), contentType(r), url);
        assert.ok(g.body.equals(r.body), `${url}: same bytes`);
      }
    } finally {
      await oracle.stop();
      if (w) assert.equal(await w.stop(), 0, w.output());
    }
  });

  for (const [how, extra, log] of [
    ['as its start script says (fastify-cli)', [], /from package\.json scripts\.start `fastify start -l info app\.js`/],
    ['--wsgi-app=app.js (the plugin, through its fastify)', ['--wsgi-app=app.js'], /app\/app\.js \(default export, fastify-cli plugin \(fastify, opts\), served by its fastify; from --wsgi-app=app\.js\)/],
  ] as const) {
    test(`create-fastify (\`"main": "app.js"\`, \`"start": "fastify start -l info app.js"\`, a fastify-cli plugin): ${how}`, { timeout: 300_000 }, async () => {
      const appDir = appDirOf('fastify-app');
      const oracle = await npmStart(appDir);
      let w: WsgidProcess | undefined;
      try {
        const dir = await wsgidFolder('fastify-app', dirs);
        w = await startWsgid(wsgidArgs(m2.handler('app'), dir, ['--workers=2', ...extra]), { cwd: dir, readyUrl: `${m2.baseUrl}/`, readyTimeoutMs: 60_000 });
        await w.waitForOutput(log);
        for (const url of ['/', '/example', '/example/', '/nope']) {
          const [got, want] = await Promise.all([request(`${m2.baseUrl}${url}`), request(`${oracle.base}${url}`)]);
          assert.equal(got.status, want.status, `${url}\n${w.output()}`);
          assert.equal(contentType(got), contentType(want), url);
          assert.equal(got.text, want.text, url);
        }
        assert.equal((await request(`${m2.baseUrl}/`)).text, '{"root":true}');
        assert.equal((await request(`${m2.baseUrl}/example`)).text, 'this is an example');
      } finally {
        await oracle.stop();
        if (w) assert.equal(await w.stop(), 0, w.output());
      }
    });
  }
  // `wsgid dev` on the project folder itself, as a newcomer types it: the same pages as npm start.
  test('wsgid dev on the create-next-app folder: the page and its assets as next start serves them', { timeout: 300_000 }, async () => {
    const appDir = appDirOf('next-app');
    const oracle = await npmStart(appDir);
    const dev = await startDev([appDir], { readyTimeoutMs: 120_000 });
    try {
      const [got, want] = await Promise.all([request(`${dev.url}/`), request(`${oracle.base}/`)]);
      assert.equal(got.status, 200, dev.wsgid.output());
      assert.equal(contentType(got), contentType(want));
      assert.match(got.text, /<title>Create Next App<\/title>/);
      assert.deepEqual(nextAssets(got.text), nextAssets(want.text));
      for (const asset of nextAssets(want.text)) {
        const [g, r] = await Promise.all([request(`${dev.url}${asset}`), request(`${oracle.base}${asset}`)]);
        assert.equal(g.status, r.status, asset);
        assert.ok(g.body.equals(r.body), `${asset}: same bytes`);
      }
      assert.doesNotMatch(dev.wsgid.output(), /next dev/);
    } finally {
      await oracle.stop();
      assert.equal(await dev.wsgid.stop('SIGINT'), 0, dev.wsgid.output());
    }
  });

  test('wsgid dev --command="node build" on the SvelteKit folder: the same bytes as node build', { timeout: 300_000 }, async () => {
    const appDir = appDirOf('sveltekit-app');
    const oracle = await npmStart(appDir, [process.execPath, 'build']);
    const dev = await startDev([appDir, '--command=node build']);
    try {
      for (const url of ['/', '/robots.txt', '/no-such-page']) {
        const [got, want] = await Promise.all([request(`${dev.url}${url}`), request(`${oracle.base}${url}`)]);
        assert.equal(got.status, want.status, `${url}\n${dev.wsgid.output()}`);
        assert.ok(got.body.equals(want.body), `${url}: same bytes`);
      }
    } finally {
      await oracle.stop();
      assert.equal(await dev.wsgid.stop('SIGINT'), 0, dev.wsgid.output());
    }
  });
});
