/**
 * A real browser through mongrel2 and wsgid: Debian's Chromium driven by playwright-core (no browser
 * download), `--workers=2`, mongrel2 with async uploads and download credits on. What a user sees:
 * - a page with its stylesheet, script and image: every request answered, no console error, the
 *   stylesheet applied and the script run;
 * - an EventSource receiving 20 events with seeded pauses, each in order — and each one reaching
 *   the page before the app writes the next (the app waits for the page's acknowledgement of event
 *   k, sent on another connection, before it writes event k+1: streaming shown by order, not speed);
 * - a WebSocket echoing 200 messages of seeded random sizes up to 64 KB, text and binary, exactly;
 * - a multipart form upload of a 20 MB file, hashed (sha256) by the app and by the page;
 * - a 50 MB download, hashed by the page and compared with the same bytes made here;
 * - a Django project made by `django-admin startproject`, its admin login form with its CSRF token:
 *   a wrong password is refused, the right one logs in (static files from mongrel2's Dir handler);
 *   and the same login through `wsgid dev` on the project folder itself.
 * Chromium is installed by .ci/run (scripts/install-system-deps.sh); where it is not, the suite
 * fails loudly outside CI only if BROWSER_TESTS=require, else skips with a message naming the fix.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startMongrel2, type Mongrel2Handle } from '../helpers/mongrel2.js';
import { REPO_ROOT, WSGID_CLI, startWsgid, wsgidArgs, type WsgidProcess } from '../helpers/wsgid.js';
import { prng } from '../helpers/prng.js';
import { startDev } from '../helpers/dev.js';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const PYTHON = '/usr/bin/python3';
const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'browser', 'app.mjs');
const SEED = Number(process.env.BROWSER_SEED ?? Date.now() % 1_000_000);
const MB = 1024 * 1024;

const missing = !existsSync(WSGID_CLI)
  ? 'wsgid CLI not built'
  : !existsSync(CHROMIUM)
    ? `Chromium is not installed (${CHROMIUM}): apt-get install chromium, as scripts/install-system-deps.sh does`
    : undefined;
if (missing && (process.env.CI || process.env.BROWSER_TESTS === 'require')) throw new Error(`browser suite cannot run: ${missing}`);
if (missing) process.stderr.write(`\n*** browser suite SKIPPED: ${missing} ***\n\n`);

/** The flags the machine's closed network needs (no background connections, no QUIC). */
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** What the page did: failed requests, console errors, uncaught exceptions. */
function watch(page: Page): { problems: string[] } {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()} for ${res.url()}`);
  });
  return { problems };
}

/** The bytes of the app's download (test/fixtures/browser/app.mjs downloadChunk): made here again. */
function downloadDigest(seed: number, size: number): string {
  const hash = createHash('sha256');
  const CHUNK = 64 * 1024;
  for (let index = 0, offset = 0; offset < size; index++, offset += CHUNK) {
    const len = Math.min(CHUNK, size - offset);
    const out = Buffer.allocUnsafe(len);
    let x = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0 || 1;
    for (let i = 0; i < len; i += 4) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      out.writeUInt32LE(x, i);
    }
    hash.update(out);
  }
  return hash.digest('hex');
}

/** Opens an EventSource on the page and acknowledges each event (GET /ack) as it arrives; resolves
 *  with the events' data, then 'end', 'unacknowledged N' (the app gave up waiting for the ack of
 *  event N: it had not reached the page) or 'timeout'. */
async function receiveEvents(page: Page, id: string, pauses: number[]): Promise<string[]> {
  return page.evaluate(
    ({ id, pauses }) =>
      new Promise<string[]>((resolve) => {
        const got: string[] = [];
        const source = new EventSource(`/events?id=${id}&count=20&pauses=${pauses.join(',')}`);
        source.onmessage = (event) => {
          got.push(event.data as string);
          const n = (JSON.parse(event.data as string) as { n: number }).n;
          void fetch(`/ack?id=${id}&n=${n}`);
        };
        const finish = (what: string) => {
          got.push(what);
          source.close();
          resolve(got);
        };
        source.addEventListener('end', () => finish('end'));
        source.addEventListener('unacknowledged', (event) => finish(`unacknowledged ${(event as MessageEvent).data as string}`));
        setTimeout(() => finish('timeout'), 60_000);
      }),
    { id, pauses },
  );
}

const EXPECTED_EVENTS = [...Array.from({ length: 20 }, (_, i) => `{"n":${i + 1}}`), 'end'];

function seededPauses(seed: number): number[] {
  const random = prng(seed);
  return Array.from({ length: 20 }, () => [0, 0, 5, 20, 50, 120][Math.floor(random() * 6)]!);
}

/** A served stack for one describe: mongrel2, wsgid (`--workers=2` and the given arguments) on the
 *  app folder `prepare` fills, and Chromium; started before its tests, stopped after them. */
interface Stack {
  m2: Mongrel2Handle;
  wsgid: WsgidProcess;
  browser: Browser;
  dir: string;
  diagnostics(): string;
}

interface StackPlan {
  /** mongrel2's options (settings, a Dir route). */
  mongrel2?: Parameters<typeof startMongrel2>[0];
  /** wsgid's arguments after the usual ones. */
  args(m2: Mongrel2Handle): string[];
  /** Where to probe until it answers. */
  readyPath: string;
  /** After mongrel2 started, before wsgid does (e.g. copy static files into its folder). */
  withMongrel2?(m2: Mongrel2Handle, dir: string): Promise<void> | void;
}

function useStack(prefix: string, prepare: (dir: string) => Promise<StackPlan>): Stack {
  const stack = {} as Stack;
  stack.diagnostics = () => `seed ${SEED} (BROWSER_SEED replays)\n--- wsgid\n${stack.wsgid?.output().slice(-4000)}\n--- mongrel2\n${stack.m2?.log().slice(-2000)}`;
  before(async () => {
    stack.dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    await mkdir(path.join(stack.dir, 'app'), { recursive: true });
    await mkdir(path.join(stack.dir, 'acks'));
    const plan = await prepare(stack.dir);
    stack.m2 = await startMongrel2(plan.mongrel2);
    await plan.withMongrel2?.(stack.m2, stack.dir);
    stack.wsgid = await startWsgid(wsgidArgs(stack.m2.handler('app'), stack.dir, ['--workers=2', ...plan.args(stack.m2)]), {
      cwd: stack.dir,
      env: { BROWSER_ACK_DIR: path.join(stack.dir, 'acks') },
      readyUrl: `${stack.m2.baseUrl}${plan.readyPath}`,
      readyTimeoutMs: 60_000,
    });
    await stack.wsgid.waitForOutput(/all workers ready/, 60_000);
    stack.browser = await launchBrowser();
  });
  after(async () => {
    await stack.browser?.close();
    await stack.wsgid?.stop();
    await stack.m2?.stop();
    if (stack.dir) await rm(stack.dir, { recursive: true, force: true });
  });
  return stack;
}

describe('a real browser through mongrel2 and wsgid (--workers=2)', { skip: missing ?? false }, () => {
  process.stderr.write(`browser suite seed ${SEED}\n`);
  const stack = useStack('wsgid-browser-', async (dir) => {
    await copyFile(FIXTURE, path.join(dir, 'app', 'app.mjs'));
    return {
      mongrel2: { settings: { 'limits.content_length': 65536, 'upload.temp_store': '/tmp/upload.XXXXXX', 'download.flow_control': 1 } },
      args: (m2) => ['--wsgi-app=app.mjs', ...(m2.chrooted ? [`--mongrel2-chroot=${m2.dir}`] : [])],
      readyPath: '/blank',
    };
  });
  const diagnostics = () => stack.diagnostics();

  test('a page with its stylesheet, script and image: no failed request, no console error', async () => {
    const page = await stack.browser.newPage();
    const seen = watch(page);
    const responses: string[] = [];
    page.on('response', (res) => responses.push(new URL(res.url()).pathname));
    await page.goto(`${stack.m2.baseUrl}/`, { waitUntil: 'load' });
    await page.waitForFunction(() => document.getElementById('state')?.textContent?.startsWith('ready'), undefined, { timeout: 20_000 });
    // The stylesheet applied (green heading) and the image decoded at its size.
    assert.equal(await page.textContent('#state'), 'ready rgb(0, 128, 0) 32');
    for (const asset of ['/', '/assets/style.css', '/assets/app.js', '/assets/icon.svg']) assert.ok(responses.includes(asset), `${asset} not loaded: ${responses.join(' ')}`);
    assert.deepEqual(seen.problems, [], diagnostics());
    await page.close();
  });

  test('an EventSource gets 20 events with pauses, in order, each before the app writes the next', async () => {
    const pauses = seededPauses(SEED);
    const id = `s${SEED}`;
    const page = await stack.browser.newPage();
    const seen = watch(page);
    await page.goto(`${stack.m2.baseUrl}/blank`);
    const received = await receiveEvents(page, id, pauses);
    assert.deepEqual(received, EXPECTED_EVENTS, diagnostics());
    assert.deepEqual(seen.problems, [], diagnostics());
    await page.close();
  });

  test('a WebSocket echoes 200 messages of random sizes up to 64 KB, text and binary, exactly', async () => {
    const page = await stack.browser.newPage();
    const seen = watch(page);
    await page.goto(`${stack.m2.baseUrl}/blank`);
    const outcome = await page.evaluate(
      (seed) =>
        new Promise<string>((resolve) => {
          // The page's own seeded generator (mulberry32, as test/helpers/prng.ts).
          let a = seed >>> 0;
          const random = () => {
            a = (a + 0x6d2b79f5) >>> 0;
            let t = a;
            t = Math.imul(t ^ (t >>> 15), t | 1);
            t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
            return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
          };
          const messages: Array<string | Uint8Array> = [];
          for (let i = 0; i < 200; i++) {
            const size = Math.floor(random() * 65537);
            if (random() < 0.5) {
              messages.push(Array.from({ length: size }, () => String.fromCharCode(32 + Math.floor(random() * 95))).join(''));
            } else {
              const bytes = new Uint8Array(size);
              for (let j = 0; j < size; j++) bytes[j] = Math.floor(random() * 256);
              messages.push(bytes);
            }
          }
          const ws = new WebSocket(`ws://${location.host}/ws`);
          ws.binaryType = 'arraybuffer';
          let next = 0;
          ws.onopen = () => ws.send(messages[0]!);
          ws.onmessage = (event) => {
            const want = messages[next]!;
            const ok = typeof want === 'string'
              ? event.data === want
              : event.data instanceof ArrayBuffer && event.data.byteLength === want.length && new Uint8Array(event.data).every((b, i) => b === want[i]);
            if (!ok) return resolve(`message ${next} (${typeof want === 'string' ? 'text' : 'binary'}, ${want.length}) came back different`);
            if (++next === messages.length) {
              ws.close(1000);
              return resolve('all echoed');
            }
            ws.send(messages[next]!);
          };
          ws.onerror = () => resolve(`error after ${next} messages`);
          ws.onclose = (event) => next < messages.length && resolve(`closed (${event.code}) after ${next} messages`);
        }),
      SEED,
    );
    assert.equal(outcome, 'all echoed', diagnostics());
    assert.deepEqual(seen.problems, [], diagnostics());
    await page.close();
  });

  test('a multipart form upload of a 20 MB file: the app hashes what the page sent', async () => {
    const page = await stack.browser.newPage();
    const seen = watch(page);
    await page.goto(`${stack.m2.baseUrl}/blank`);
    const result = await page.evaluate(async (seed) => {
      const bytes = new Uint8Array(20 * 1024 * 1024);
      let x = seed >>> 0 || 1;
      for (let i = 0; i < bytes.length; i++) {
        x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
        bytes[i] = x & 0xff;
      }
      const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
      const form = new FormData();
      form.append('note', 'résumé ✓');
      form.append('file', new Blob([bytes], { type: 'application/octet-stream' }), 'data.bin');
      const res = await fetch('/upload', { method: 'POST', body: form });
      return { status: res.status, answer: (await res.json()) as Record<string, unknown>, digest };
    }, SEED);
    assert.equal(result.status, 200, diagnostics());
    assert.deepEqual(result.answer, { name: 'data.bin', size: 20 * MB, sha256: result.digest, note: 'résumé ✓' }, diagnostics());
    assert.deepEqual(seen.problems, [], diagnostics());
    await page.close();
  });

  test('a 50 MB download arrives whole: the page hashes the same bytes as made here', async () => {
    const page = await stack.browser.newPage();
    const seen = watch(page);
    await page.goto(`${stack.m2.baseUrl}/blank`);
    const size = 50 * MB;
    const result = await page.evaluate(async ({ seed, size }) => {
      const res = await fetch(`/download?seed=${seed}&size=${size}`);
      const body = await res.arrayBuffer();
      const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', body)), (b) => b.toString(16).padStart(2, '0')).join('');
      return { status: res.status, length: body.byteLength, digest };
    }, { seed: SEED, size });
    assert.deepEqual(result, { status: 200, length: size, digest: downloadDigest(SEED, size) }, diagnostics());
    assert.deepEqual(seen.problems, [], diagnostics());
    await page.close();
  });
});

describe('a real browser: the Django admin login of a startproject site, with its CSRF token', { skip: missing ?? false }, () => {
  const PASSWORD = `pw-${SEED}-Secret!`;
  const manage = (dir: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(PYTHON, ['manage.py', ...args], { cwd: path.join(dir, 'app'), encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, `manage.py ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  };
  const stack = useStack('wsgid-browser-django-', async (dir) => {
    // The project as its starter makes it; then only what its deployment checklist asks for.
    const made = spawnSync(PYTHON, ['-m', 'django', 'startproject', 'mysite', path.join(dir, 'app')], { encoding: 'utf8' });
    assert.equal(made.status, 0, `django startproject: ${made.stderr}`);
    const settingsPath = path.join(dir, 'app', 'mysite', 'settings.py');
    const settings = await readFile(settingsPath, 'utf8');
    await writeFile(
      settingsPath,
      settings
        .replace(/^DEBUG = True$/m, 'DEBUG = False')
        .replace(/^ALLOWED_HOSTS = \[\]$/m, "ALLOWED_HOSTS = ['127.0.0.1', 'localhost']")
        .concat(`\nSTATIC_ROOT = ${JSON.stringify(path.join(dir, 'static'))}\n`),
    );
    manage(dir, ['migrate', '--noinput']);
    manage(dir, ['createsuperuser', '--noinput', '--username', 'admin', '--email', 'admin@example.com'], { DJANGO_SUPERUSER_PASSWORD: PASSWORD });
    manage(dir, ['collectstatic', '--noinput']);
    return {
      mongrel2: { staticDir: { route: '/static/', files: {} } },
      // mongrel2 serves STATIC_URL (/static/) from its own folder: the collected files, copied there.
      withMongrel2(m2) {
        const copied = spawnSync('cp', ['-a', `${path.join(dir, 'static')}/.`, path.join(m2.dir, 'static')], { encoding: 'utf8' });
        assert.equal(copied.status, 0, copied.stderr);
      },
      args: () => [`--python=${PYTHON}`, '--wsgi-app=mysite.wsgi:application'],
      readyPath: '/admin/login/',
    };
  });
  const diagnostics = () => stack.diagnostics();

  test('a wrong password is refused on the form; the right one logs in to Site administration', async () => {
    const page = await stack.browser.newPage();
    const seen = watch(page);
    // Chromium asks for /favicon.ico, which a startproject site does not have (Django's own 404):
    // not a failure of the stack, and the only request let through.
    const problems = () => seen.problems.filter((p) => !/\/favicon\.ico\b/.test(p) && !/Failed to load resource: .*404/.test(p));
    await logIn(page, stack.m2.baseUrl, PASSWORD, diagnostics);
    // The admin's stylesheet came from mongrel2's Dir route and applied.
    const css = await page.evaluate(() => [...document.styleSheets].map((s) => s.href ?? '').filter((h) => h.includes('/static/admin/css/')).length);
    assert.ok(css > 0, 'no admin stylesheet loaded');
    assert.deepEqual(problems(), [], diagnostics());
    await page.close();
  });

  test('wsgid dev on the project folder (manage.py beside it): the same login', async () => {
    // The folder a newcomer has: `wsgid dev mysite/`, no app folder, no mongrel2 of theirs.
    const dev = await startDev([path.join(stack.dir, 'app'), `--python=${PYTHON}`], { readyPath: '/admin/login/' });
    const page = await stack.browser.newPage();
    const seen = watch(page);
    try {
      await logIn(page, dev.url, PASSWORD, () => dev.wsgid.output());
      // Its static files came from the private mongrel2 (collectstatic into its folder), as
      // runserver would serve them: the admin's stylesheet applied, nothing failed.
      assert.match(dev.wsgid.output(), /static files: the Django project's static files \(collectstatic\) at \/static\//);
      const css = await page.evaluate(() => [...document.styleSheets].map((s) => s.href ?? '').filter((h) => h.includes('/static/admin/css/')).length);
      assert.ok(css > 0, 'no admin stylesheet loaded');
      assert.deepEqual(seen.problems.filter((p) => !/\/favicon\.ico\b/.test(p) && !/Failed to load resource: .*404/.test(p)), [], dev.wsgid.output());
    } finally {
      await page.close();
      assert.equal(await dev.wsgid.stop('SIGINT'), 0, dev.wsgid.output());
    }
  });
});

/** The admin login as a user goes through it: redirected to the form, a wrong password refused with
 *  the form's CSRF token, the right one taken to Site administration. */
async function logIn(page: Page, base: string, password: string, diagnostics: () => string): Promise<void> {
  await page.goto(`${base}/admin/`);
  assert.match(page.url(), /\/admin\/login\/\?next=\/admin\/$/, diagnostics());
  // The form carries Django's CSRF token (and the cookie came with the page).
  assert.ok((await page.inputValue('input[name=csrfmiddlewaretoken]')).length >= 32);
  await page.fill('#id_username', 'admin');
  await page.fill('#id_password', 'wrong');
  await Promise.all([page.waitForNavigation(), page.click('input[type=submit]')]);
  assert.match((await page.textContent('.errornote')) ?? '', /correct username and password/, diagnostics());
  await page.fill('#id_password', password);
  await Promise.all([page.waitForNavigation(), page.click('input[type=submit]')]);
  assert.match(page.url(), /\/admin\/$/, diagnostics());
  assert.match((await page.textContent('#site-name')) ?? '', /Django administration/);
  assert.match(await page.content(), /Site administration/);
}

describe('a real browser: server-sent events from a Flask generator (WSGI, --workers=2 --threads=4)', { skip: missing ?? false }, () => {
  const stack = useStack('wsgid-browser-flask-', async (dir) => {
    await copyFile(path.join(REPO_ROOT, 'test', 'fixtures', 'browser', 'flask_sse.py'), path.join(dir, 'app', 'flask_sse.py'));
    return { args: () => ['--threads=4', `--python=${PYTHON}`, '--wsgi-app=flask_sse:app'], readyPath: '/blank' };
  });
  const diagnostics = () => stack.diagnostics();

  test('an EventSource gets the 20 events in order, each before the generator yields the next', async () => {
    const page = await stack.browser.newPage();
    const seen = watch(page);
    await page.goto(`${stack.m2.baseUrl}/blank`);
    const received = await receiveEvents(page, `f${SEED}`, seededPauses(SEED + 1));
    assert.deepEqual(received, EXPECTED_EVENTS, diagnostics());
    assert.deepEqual(seen.problems, [], diagnostics());
    await page.close();
  });
});
