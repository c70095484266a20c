/**
 * The option table and everything generated from it: command-line parsing, wsgid.json validation,
 * precedence (command line over wsgid.json over defaults), help text and the Markdown reference.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCommandLine, parseArgsOptions } from '../../src/config/args.js';
import { ConfigFileError, UsageError } from '../../src/errors.js';
import { readConfigFile, validateConfigObject, writeConfigFile } from '../../src/config/file.js';
import { OPTIONS, OPTION_LIST, checkEndpoint, cliOptionsFor, jsonKey } from '../../src/config/options.js';
import { envValues, mergeValues, resolveSettings } from '../../src/config/resolve.js';
import { renderHelp, renderOptionsMarkdown } from '../../src/cli/help.js';
import { replaceReference } from '../../src/cli/docs.js';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function tempFolder(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'wsgid-config-'));
}

describe('option table', () => {
  test('wsgid.json keys follow the original rule (flag, - → _), except env ↔ envs', () => {
    for (const { spec } of OPTION_LIST) {
      const expected = spec.flag === 'env' ? 'envs' : spec.flag.replace(/-/g, '_');
      assert.equal(jsonKey(spec), expected);
    }
    assert.equal(jsonKey(OPTIONS.appPath), 'app_path');
    assert.equal(jsonKey(OPTIONS.maxRequestsJitter), 'max_requests_jitter');
  });

  test('parseArgs config is generated: repeatables are multiple, default-true booleans get --no-', () => {
    const config = parseArgsOptions(cliOptionsFor('start'));
    assert.deepEqual(config.recv, { type: 'string', multiple: true });
    assert.deepEqual(config.workers, { type: 'string', multiple: false });
    assert.deepEqual(config['no-respawn'], { type: 'boolean' });
    assert.deepEqual(config['no-daemon'], { type: 'boolean', multiple: false });
    assert.equal(config['no-no-daemon'], undefined);
    assert.equal(config['send-signal'], undefined, 'send-signal is not a start option');
  });

  test('endpoint check', () => {
    for (const ok of ['tcp://127.0.0.1:9997', 'tcp://localhost:1', 'tcp://[::1]:9997', 'tcp://*:5555', 'ipc:///tmp/x', 'ipc://rel/sock']) {
      assert.equal(checkEndpoint(ok), undefined, ok);
    }
    for (const bad of ['x', 'tcp://127.0.0.1', 'tcp://127.0.0.1:0', 'tcp://h:70000', 'http://h:1', 'ipc://']) {
      assert.match(checkEndpoint(bad) ?? '', /expected a ZeroMQ endpoint like tcp:\/\/127\.0\.0\.1:9997/, bad);
    }
  });
});

describe('command line', () => {
  test('defaults to start; the command may come first or after options', () => {
    assert.equal(parseCommandLine(['--workers=2']).command, 'start');
    assert.equal(parseCommandLine(['stop', '--app-path=/x']).command, 'stop');
    assert.equal(parseCommandLine(['--app-path', '/x', 'status']).command, 'status');
    assert.equal(parseCommandLine(['--app-path', '/x', 'status']).values.appPath, '/x');
  });

  test('types: int, repeatable lists paired by index, KEY=VALUE map, negation', () => {
    const { values } = parseCommandLine([
      '--recv=tcp://127.0.0.1:1',
      '--recv',
      'tcp://127.0.0.1:3',
      '--send=tcp://127.0.0.1:2',
      '--send=tcp://127.0.0.1:4',
      '--workers=3',
      '--env',
      'A=1',
      '--env=B=x=y',
      '--no-respawn',
      '--no-daemon',
      '--loader-dir=a',
      '--loader-dir=b',
    ]);
    assert.deepEqual(values.recv, ['tcp://127.0.0.1:1', 'tcp://127.0.0.1:3']);
    assert.deepEqual(values.send, ['tcp://127.0.0.1:2', 'tcp://127.0.0.1:4']);
    assert.equal(values.workers, 3);
    assert.deepEqual(values.envs, { A: '1', B: 'x=y' });
    assert.equal(values.respawn, false);
    assert.equal(values.noDaemon, true);
    assert.deepEqual(values.loaderDir, ['a', 'b']);
  });

  test('clear messages for wrong values', () => {
    assert.throws(() => parseCommandLine(['--recv=x']), {
      name: 'UsageError',
      message: "--recv: expected a ZeroMQ endpoint like tcp://127.0.0.1:9997 or ipc:///path/to/socket, got 'x'",
    });
    assert.throws(() => parseCommandLine(['--workers=two']), { message: "--workers: expected an integer, got 'two'" });
    assert.throws(() => parseCommandLine(['--workers=-1']), { message: '--workers: expected an integer from 0 to 256, got -1' });
    assert.throws(() => parseCommandLine(['--workers=100000']), { message: '--workers: expected an integer from 0 to 256, got 100000' });
    assert.equal(parseCommandLine(['--workers=256']).values.workers, 256);
    assert.throws(() => parseCommandLine(['--worker-connections=0']), /--worker-connections: expected an integer >= 1/);
    assert.throws(() => parseCommandLine(['--env=NOEQUALS']), /--env: expected KEY=VALUE, got 'NOEQUALS'/);
    assert.throws(() => parseCommandLine(['--recv']), /--recv needs a value/);
    assert.throws(() => parseCommandLine(['--wokers=2']), /unknown option --wokers/);
    assert.throws(() => parseCommandLine(['stop', '--recv=tcp://a:1']), /--recv is not an option of `wsgid stop`/);
    assert.throws(() => parseCommandLine(['stop', '--send-signal=NOPE']), /--send-signal: expected a signal name/);
    assert.throws(() => parseCommandLine(['frobnicate']), /unknown command 'frobnicate'/);
    assert.throws(() => parseCommandLine(['status', 'extra']), UsageError);
  });

  test('command-only values: send-signal (stop/restart), json (status)', () => {
    assert.equal(parseCommandLine(['stop', '--send-signal=INT']).values.sendSignal, 'INT');
    assert.equal(parseCommandLine(['restart', '--send-signal=9']).values.sendSignal, '9');
    assert.equal(parseCommandLine(['status', '--json']).values.json, true);
  });

  test('--help and --version anywhere', () => {
    assert.equal(parseCommandLine(['--help']).help, true);
    assert.equal(parseCommandLine(['stop', '-h']).help, true);
    assert.equal(parseCommandLine(['--version']).version, true);
  });

  test('plugin commands accept the start options and positionals', () => {
    const parsed = parseCommandLine(['deploy', '--workers=2', 'target'], ['deploy']);
    assert.equal(parsed.command, 'deploy');
    assert.equal(parsed.values.workers, 2);
    assert.deepEqual(parsed.positionals, ['target']);
  });
});

describe('wsgid.json', () => {
  test('validation names the file, the key and what was expected', () => {
    const file = '/srv/app/wsgid.json';
    const cases: [unknown, RegExp][] = [
      [{ wokers: 2 }, /^\/srv\/app\/wsgid\.json: key "wokers": unknown key \(did you mean "workers"\?\)$/],
      [{ frob: 1 }, /key "frob": unknown key \(known keys: recv, send, /],
      [{ workers: '2' }, /key "workers": expected an integer, got "2"$/],
      [{ workers: 1.5 }, /key "workers": expected an integer, got number 1.5/],
      [{ respawn: 'yes' }, /key "respawn": expected true or false, got "yes"/],
      [{ recv: [1] }, /key "recv": expected an array of strings, got an array/],
      [{ recv: ['nope'] }, /key "recv": expected a ZeroMQ endpoint like tcp:\/\/127\.0\.0\.1:9997.*got 'nope'/],
      [{ envs: { A: 1 } }, /key "envs": expected an object of string values, got number 1 for "A"/],
      [{ envs: ['A=1'] }, /key "envs": expected an object of string values, got an array/],
      [{ app_path: '/x' }, /key "app_path": unknown key/],
      [{ send_signal: 'TERM' }, /key "send_signal": unknown key/],
      [[1, 2], /wsgid\.json: expected a JSON object, got an array/],
    ];
    for (const [raw, expected] of cases) {
      assert.throws(() => validateConfigObject(raw, file), (error: unknown) => {
        assert.ok(error instanceof ConfigFileError);
        assert.match(error.message, expected);
        return true;
      });
    }
  });

  test('a single string is accepted for a list (as the original wrote recv/send)', () => {
    assert.deepEqual(validateConfigObject({ recv: 'tcp://127.0.0.1:1' }, 'f').recv, ['tcp://127.0.0.1:1']);
  });

  test('unreadable JSON is refused with the file name', () => {
    const dir = tempFolder();
    try {
      writeFileSync(path.join(dir, 'wsgid.json'), '{"workers": ');
      assert.throws(() => readConfigFile(dir), { name: 'ConfigFileError', message: new RegExp(`^${path.join(dir, 'wsgid.json')}: not valid JSON`) });
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('write merges with what is there; envs merge key by key', () => {
    const dir = tempFolder();
    try {
      writeConfigFile(dir, { recv: ['tcp://127.0.0.1:1'], send: ['tcp://127.0.0.1:2'], envs: { A: '1' }, workers: 4 });
      writeConfigFile(dir, { workers: 2, envs: { B: '2' }, respawn: false });
      const json: unknown = JSON.parse(readFileSync(path.join(dir, 'wsgid.json'), 'utf8'));
      assert.deepEqual(json, {
        recv: ['tcp://127.0.0.1:1'],
        send: ['tcp://127.0.0.1:2'],
        workers: 2,
        respawn: false,
        envs: { A: '1', B: '2' },
      });
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('precedence: command line over wsgid.json over defaults', () => {
  test('each layer', () => {
    const dir = tempFolder();
    try {
      writeFileSync(
        path.join(dir, 'wsgid.json'),
        JSON.stringify({
          recv: ['tcp://127.0.0.1:1'],
          send: ['tcp://127.0.0.1:2'],
          workers: 4,
          timeout: 10,
          envs: { A: 'file', B: 'file' },
          loader_dir: ['loaders'],
        }),
      );
      const cli = parseCommandLine([`--app-path=${dir}`, '--workers=2', '--env=A=cli', '--recv=tcp://127.0.0.1:5', '--send=tcp://127.0.0.1:6']).values;
      const { settings, configFile } = resolveSettings(cli, { readFile: true, cwd: '/' });
      assert.equal(configFile, path.join(dir, 'wsgid.json'));
      assert.equal(settings.workers, 2, 'command line wins');
      assert.equal(settings.timeout, 10, 'wsgid.json over default');
      assert.equal(settings.gracefulTimeout, 30, 'default');
      assert.equal(settings.respawn, true);
      assert.deepEqual(settings.recv, ['tcp://127.0.0.1:5'], 'a list on the command line replaces the saved one');
      assert.deepEqual(settings.envs, { A: 'cli', B: 'file' }, 'maps merge key by key');
      assert.deepEqual(settings.loaderDir, [path.join(dir, 'loaders')], 'wsgid.json folders are relative to the app folder');
      assert.equal(settings.appPath, dir);
      assert.equal(settings.python, 'python3');
      assert.equal(settings.wsgiApp, undefined);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('app-path defaults to the current directory; relative paths resolve against it', () => {
    const { settings } = resolveSettings({}, { cwd: '/srv/app' });
    assert.equal(settings.appPath, '/srv/app');
    const { settings: s2 } = resolveSettings({ appPath: 'x', loaderDir: ['l'] }, { cwd: '/srv' });
    assert.equal(s2.appPath, '/srv/x');
    assert.deepEqual(s2.loaderDir, ['/srv/l']);
  });

  test('recv and send must pair; start needs at least one pair', () => {
    assert.throws(
      () => resolveSettings({ recv: ['tcp://127.0.0.1:1'] }, { cwd: '/' }),
      /--recv and --send pair by position: got 1 --recv and 0 --send/,
    );
    assert.throws(() => resolveSettings({}, { cwd: '/', requireEndpoints: true }), /no mongrel2 endpoints/);
  });
});

describe('generated help and docs', () => {
  test('--help lists every start option with its default and wsgid.json key', () => {
    const help = renderHelp();
    for (const { spec } of cliOptionsFor('start')) assert.ok(help.includes(`--${spec.flag}`) || help.includes(`--[no-]${spec.flag}`), spec.flag);
    assert.match(help, /--workers=N +Worker processes/);
    assert.match(help, /default: 1; wsgid\.json: workers/);
    assert.match(help, /--\[no-\]respawn/);
    assert.match(help, /Commands:\n  start/);
    assert.match(help.replace(/\s+/g, ' '), /Precedence: command line over environment \(where an option has a variable\) over wsgid\.json over defaults/);
  });

  test('command help shows only that command\'s options', () => {
    const help = renderHelp('stop');
    assert.match(help, /^Usage: wsgid stop --app-path=DIR/);
    assert.match(help, /--send-signal=SIGNAL/);
    assert.doesNotMatch(help, /--recv/);
    assert.match(renderHelp('status'), /--json/);
  });

  test('the Markdown reference has one entry per option', () => {
    const md = renderOptionsMarkdown();
    const rows = md.split('\n').filter((l) => l.startsWith('- `--'));
    assert.equal(rows.length, OPTION_LIST.length);
    assert.match(md, /- `--\[no-\]respawn` \(bool; default: true; wsgid\.json: `respawn`;/);
    assert.match(md, /- `--env=KEY=VALUE` \(map \(repeatable KEY=VALUE\); wsgid\.json: `envs`/);
    assert.match(md, /### Exit codes/);
  });

  for (const file of ['docs/CLI.md']) {
    test(`${file} carries the current reference (run \`npm run docs\` after changing options)`, () => {
      const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
      assert.equal(replaceReference(text), text);
    });
  }
});

describe('settings from the environment (options that declare a variable)', () => {
  test('command line over environment over wsgid.json over defaults', () => {
    const env = envValues({ WSGID_KEEPALIVE_MS: '500', WSGID_LISTEN_WAIT_MS: '250', WSGID_STANDARD_RESPONSE: 'yes' });
    assert.deepEqual(env, { pingMs: 500, listenWaitMs: 250, standardResponse: true });
    const merged = mergeValues({ listenWaitMs: 100 }, { pingMs: 9000, listenWaitMs: 7000, maxQueued: 50 }, env);
    assert.equal(merged.listenWaitMs, 100, 'the command line wins');
    assert.equal(merged.pingMs, 500, 'the environment beats wsgid.json');
    assert.equal(merged.maxQueued, 50, 'wsgid.json beats the default');
    assert.equal(merged.timeout, OPTIONS.timeout.default);
  });

  test('a bad value names the variable', () => {
    assert.throws(() => envValues({ WSGID_KEEPALIVE_MS: 'soon' }), (e: unknown) => e instanceof UsageError && /WSGID_KEEPALIVE_MS: expected an integer, got 'soon'/.test(e.message));
    assert.throws(() => envValues({ WSGID_STANDARD_RESPONSE: 'maybe' }), /WSGID_STANDARD_RESPONSE: expected 1\/0/);
    assert.throws(() => envValues({ WSGID_LISTEN_WAIT_MS: '-1' }), /WSGID_LISTEN_WAIT_MS: /);
  });

  test('no code outside config/ reads a WSGID_ setting from the environment (settings come from the option table)', () => {
    // Plumbing between wsgid's own processes: not settings (test hooks live in config/test-hooks.ts).
    const plumbing = new Set(['WSGID_WORKER_CONFIG', 'WSGID_DAEMON_CHILD', 'WSGID_PARENT_PID']);
    const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const full = path.join(dir, name);
        if (statSync(full).isDirectory()) walk(full);
        else if (name.endsWith('.ts') && !full.includes(`${path.sep}config${path.sep}`)) {
          for (const match of readFileSync(full, 'utf8').matchAll(/process\.env\[?['".]?(WSGID_[A-Z_]+)/g)) {
            if (!plumbing.has(match[1]!)) offenders.push(`${path.relative(src, full)}: ${match[1]}`);
          }
        }
      }
    };
    walk(src);
    assert.deepEqual(offenders, []);
  });
});
