/**
 * The option table's parsers (src/config/options.ts): each value is parsed once where it is read
 * (command line, environment, wsgid.json) into what the setting holds (bytes, {host, port}, an
 * enum word), and shown back in its raw form; old spellings are still read, with a warning.
 * Generated cases come from fast-check with a fixed seed.
 */
import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { cliArgsOf, parseCommandLine } from '../../src/config/args.js';
import { formatHostPort, parseHostPort } from '../../src/config/address.js';
import { setDeprecationSink } from '../../src/config/deprecations.js';
import { validateConfigObject, writeConfigFile } from '../../src/config/file.js';
import { COMMANDS, OPTIONS, OPTION_LIST, SECTIONS, formatSize, parseSize, parseValue } from '../../src/config/options.js';
import { envValues, givenEnvVariables, overriddenFileValues, resolveSettings } from '../../src/config/resolve.js';
import { renderHelp, renderOptionsMarkdown } from '../../src/cli/help.js';

/** fast-check's seed (OPTIONS_TEST_SEED to try another). */
const SEED = Number(process.env['OPTIONS_TEST_SEED'] ?? 0x0b7);
const MB = 2 ** 20;
let warnings: string[] = [];
let previousSink: ((line: string) => void) | undefined;
beforeEach(() => {
  warnings = [];
  previousSink = setDeprecationSink((line) => warnings.push(line));
});
afterEach(() => {
  if (previousSink) setDeprecationSink(previousSink);
});

describe('sizes: settings hold bytes', () => {
  test('a size reads back from its shown form (binary units), for any whole number of K, M, G or T', () => {
    const unit = fc.constantFrom(1, 2 ** 10, 2 ** 20, 2 ** 30, 2 ** 40);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4096 }), unit, (n, factor) => {
        const bytes = n * factor;
        assert.equal(parseSize(formatSize(bytes)), bytes);
      }),
      { seed: SEED, numRuns: 300 },
    );
    assert.equal(formatSize(0), '0');
    assert.equal(formatSize(8 * MB), '8M');
    assert.equal(formatSize(1536 * MB), '1536M');
    assert.equal(formatSize(1000), '1000');
  });

  test('the command line, the environment-free wsgid.json and the defaults all give bytes', () => {
    assert.equal(parseCommandLine(['--max-memory=512M']).values.maxMemory, 512 * MB);
    assert.equal(parseCommandLine(['--uncredited-limit=1.5G']).values.uncreditedLimit, 1.5 * 2 ** 30);
    assert.equal(validateConfigObject({ app_output_rate: '64K' }, 'f').appOutputRate, 64 * 1024);
    const { settings } = resolveSettings({}, { cwd: '/' });
    assert.equal(settings.maxMemory, 0);
    assert.equal(settings.appOutputRate, MB);
  });

  test('a bad size names where it came from, with the same text as before', () => {
    const expected = "expected a size like 200M, 1G or 0 (bytes; K, M, G, T = powers of 1024), got '12Q'";
    assert.throws(() => parseCommandLine(['--max-memory=12Q']), { name: 'UsageError', message: `--max-memory: ${expected}` });
    assert.throws(() => validateConfigObject({ uncredited_limit: '12Q' }, '/srv/wsgid.json'), {
      name: 'ConfigFileError',
      message: `/srv/wsgid.json: key "uncredited_limit": ${expected}`,
    });
    assert.throws(() => validateConfigObject({ max_memory: 512 }, 'f'), /key "max_memory": expected a string, got number 512/);
  });
});

describe('--metrics: settings hold {host, port}', () => {
  test('PORT, HOST:PORT and [IPv6]:PORT; shown back as HOST:PORT', () => {
    assert.deepEqual(parseCommandLine(['--metrics=9150']).values.metrics, { host: '127.0.0.1', port: 9150 });
    assert.deepEqual(parseCommandLine(['--metrics=[::1]:0']).values.metrics, { host: '::1', port: 0 });
    assert.deepEqual(envValues({ WSGID_METRICS: 'localhost:9' }).metrics, { host: 'localhost', port: 9 });
    for (const text of ['127.0.0.1:9150', '[::1]:9150', 'metrics.internal:80', '[::ffff:127.0.0.1]:1']) {
      const parsed = parseHostPort(text);
      assert.ok(typeof parsed !== 'string', text);
      assert.equal(formatHostPort(parsed), text);
    }
  });

  test('refused: the same messages as before; a non-loopback address without --metrics-expose', () => {
    assert.throws(() => parseCommandLine(['--metrics=127.0.0.1:http']), /^UsageError: --metrics: expected PORT, HOST:PORT or \[IPv6\]:PORT like 127\.0\.0\.1:9150, got '127\.0\.0\.1:http'$/);
    assert.throws(() => parseCommandLine(['--metrics=70000']), /\(port must be 0-65535\)/);
    assert.throws(() => resolveSettings({ metrics: { host: '0.0.0.0', port: 9150 } }, { cwd: '/' }), /--metrics=0\.0\.0\.0:9150 is not a loopback address/);
    assert.equal(resolveSettings({ metrics: { host: '0.0.0.0', port: 9150 }, metricsExpose: true }, { cwd: '/' }).settings.metrics?.port, 9150);
  });
});

describe('--log-format: an enum', () => {
  test("'text' or 'json', anything else refused", () => {
    assert.equal(parseCommandLine(['--log-format=json']).values.logFormat, 'json');
    assert.equal(resolveSettings({}, { cwd: '/' }).settings.logFormat, 'text');
    assert.throws(() => parseCommandLine(['--log-format=JSON']), { message: "--log-format: expected text or json, got 'JSON'" });
    assert.throws(() => validateConfigObject({ log_format: 'xml' }, 'f'), /key "log_format": expected text or json, got 'xml'/);
  });
});

describe('raw forms: wsgid.json, generated command lines, override messages', () => {
  test('wsgid config writes what was typed (in its shortest spelling), and reads it back', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wsgid-options-'));
    try {
      const { values } = parseCommandLine(['config', '--max-memory=512MB', '--metrics=[::1]:9150', '--log-format=json', '--app-output-rate=0']);
      writeConfigFile(dir, values);
      const file = path.join(dir, 'wsgid.json');
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { metrics: '[::1]:9150', max_memory: '512M', log_format: 'json', app_output_rate: '0' });
      const { settings } = resolveSettings({ appPath: dir }, { readFile: true, cwd: '/' });
      assert.equal(settings.maxMemory, 512 * MB);
      assert.deepEqual(settings.metrics, { host: '::1', port: 9150 });
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('cliArgsOf renders parsed values as flags parseCommandLine reads back', () => {
    const values = parseCommandLine(['--max-memory=300M', '--metrics=9150', '--log-format=json', '--no-respawn']).values;
    assert.deepEqual(cliArgsOf(values), ['--no-respawn', '--metrics=127.0.0.1:9150', '--max-memory=300M', '--log-format=json']);
    assert.deepEqual(parseCommandLine(cliArgsOf(values)).values, values);
  });

  test('an override names both values in their raw form', () => {
    const cli = parseCommandLine(['--max-memory=1G', '--metrics=127.0.0.1:1']).values;
    const file = validateConfigObject({ max_memory: '512M', metrics: '127.0.0.1:2', log_format: 'text' }, 'f');
    assert.deepEqual(overriddenFileValues(cli, file, {}), ['--metrics=127.0.0.1:1 (wsgid.json: 127.0.0.1:2)', '--max-memory=1G (wsgid.json: 512M)']);
  });

  test('every default is a value its own parser gives (or the kind itself)', () => {
    for (const { name, spec } of OPTION_LIST) {
      if (spec.default === undefined || typeof spec.default === 'function' || spec.show === undefined) continue;
      const raw = spec.show(spec.default);
      assert.deepEqual(parseValue(spec, raw), { value: spec.default }, name);
    }
  });
});

describe('old spellings', () => {
  test('--keep-alive / --no-keep-alive set --respawn, with one warning each', () => {
    assert.equal(parseCommandLine(['--no-keep-alive']).values.respawn, false);
    assert.equal(parseCommandLine(['--keep-alive', '--no-respawn']).values.respawn, false, 'the last one wins, as with one flag');
    assert.equal(parseCommandLine(['config', '--keep-alive']).values.respawn, true);
    assert.deepEqual(warnings, ['wsgid: warning: --no-keep-alive is deprecated: use --no-respawn\n', 'wsgid: warning: --keep-alive is deprecated: use --respawn\n']);
    assert.equal(parseCommandLine(['--no-respawn']).values.respawn, false);
    assert.equal(warnings.length, 2, 'the new spelling warns nothing');
    assert.throws(() => parseCommandLine(['stop', '--keep-alive']), /--keep-alive is not an option of `wsgid stop`/);
    assert.throws(() => parseCommandLine(['--keep-alve']), { message: 'unknown option --keep-alve (did you mean --respawn?) (see wsgid --help)' });
    assert.throws(() => parseCommandLine(['--no-keep-alve']), /did you mean --no-respawn\?/);
  });

  test('wsgid.json "keep_alive" is read as "respawn", with a warning; both at once is refused', () => {
    assert.equal(validateConfigObject({ keep_alive: false }, '/srv/wsgid.json').respawn, false);
    assert.deepEqual(warnings, ['wsgid: warning: /srv/wsgid.json: key "keep_alive" is deprecated: use "respawn"\n']);
    assert.throws(() => validateConfigObject({ keep_alive: false, respawn: true }, 'f'), /key "keep_alive": the old name of "respawn", which is given too/);
    assert.throws(() => validateConfigObject({ keep_alive: 'no' }, 'f'), /key "keep_alive": expected true or false, got "no"/);
  });

  test('WSGID_PING_MS sets --ping-ms; the old WSGID_KEEPALIVE_MS is still read, the new name wins', () => {
    assert.deepEqual(envValues({ WSGID_PING_MS: '700' }), { pingMs: 700 });
    assert.deepEqual(envValues({ WSGID_KEEPALIVE_MS: '500' }), { pingMs: 500 });
    assert.deepEqual(envValues({ WSGID_PING_MS: '700', WSGID_KEEPALIVE_MS: '500' }), { pingMs: 700 });
    assert.throws(() => envValues({ WSGID_KEEPALIVE_MS: '-1' }), /^UsageError: WSGID_KEEPALIVE_MS: expected an integer >= 0, got -1$/);
    assert.deepEqual(givenEnvVariables({ WSGID_KEEPALIVE_MS: '500' }), [['WSGID_KEEPALIVE_MS', '500']], 'a unit keeps the name that was set');
    assert.equal(OPTIONS.pingMs.env, 'WSGID_PING_MS');
  });
});

describe('help and docs: grouped by section, wrapped', () => {
  const pages = (): Array<[string, string]> => [
    ...[undefined, ...COMMANDS].map((c): [string, string] => [`wsgid ${c ?? ''} --help`, renderHelp(c)]),
    ['docs/CLI.md', renderOptionsMarkdown()],
  ];

  test('no line wider than 100 columns', () => {
    for (const [page, text] of pages()) {
      for (const line of text.split('\n')) assert.ok(line.length <= 100, `${page}: ${line.length} columns: ${line}`);
    }
  });

  test('every option is in one section, and the sections come in their order', () => {
    const help = renderHelp();
    const headings = Object.values(SECTIONS).filter((title) => help.includes(`\n${title}:\n`));
    assert.deepEqual(headings, Object.values(SECTIONS).filter((t) => t !== SECTIONS.command), 'start has every section but the command options');
    assert.deepEqual(headings.map((t) => help.indexOf(`\n${t}:\n`)), headings.map((t) => help.indexOf(`\n${t}:\n`)).sort((a, b) => a - b));
    const md = renderOptionsMarkdown();
    for (const title of Object.values(SECTIONS)) assert.ok(md.includes(`#### ${title}\n`), title);
    assert.match(md, /- `--\[no-\]respawn` \(bool; default: true; wsgid\.json: `respawn`; commands: [^)]*; deprecated: --\[no-\]keep-alive, wsgid\.json keep_alive\)/);
  });
});
