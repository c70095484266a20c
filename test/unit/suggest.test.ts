/**
 * `wsgid help COMMAND` and "did you mean" for mistyped options and commands (config/suggest.ts,
 * config/args.ts). Mistypings are generated from the option table with a fixed seed
 * (SUGGEST_TEST_SEED to try another).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseCommandLine } from '../../src/config/args.js';
import { closest, editDistance } from '../../src/config/suggest.js';
import { COMMANDS, cliOptionsFor, isNegatable } from '../../src/config/options.js';
import { UsageError } from '../../src/errors.js';

const SEED = Number(process.env['SUGGEST_TEST_SEED'] ?? 0x5a9);

function usageError(argv: string[]): string {
  try {
    parseCommandLine(argv);
  } catch (error) {
    assert.ok(error instanceof UsageError, String(error));
    return error.message;
  }
  assert.fail(`expected ${argv.join(' ')} to be refused`);
}

describe('editDistance / closest', () => {
  test('edits, swaps, and what is too far', () => {
    assert.equal(editDistance('workers', 'workers'), 0);
    assert.equal(editDistance('wokrers', 'workers'), 1, 'an adjacent swap is one edit');
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(closest('wokrers', ['workers', 'worker-connections']), 'workers');
    assert.equal(closest('debgu', ['debug', 'django']), 'debug');
    assert.equal(closest('xyz', ['debug', 'json']), undefined);
    assert.equal(closest('max-req', ['max-requests', 'max-requests-jitter', 'max-queued']), 'max-requests', 'a prefix of the shortest');
    assert.equal(closest('ma', ['max-requests', 'max-queued']), undefined, 'too short to guess');
  });

  test('every start flag mistyped by one edit gets a suggestion one edit away (generated)', () => {
    const flags = ['help', 'version', ...cliOptionsFor('start').flatMap(({ spec }) => (isNegatable(spec) ? [spec.flag, 'no-' + spec.flag] : [spec.flag]))];
    const long = flags.filter((f) => f.length >= 6);
    const letters = 'abcdefghijklmnopqrstuvwxyz-'.split('');
    fc.assert(
      fc.property(fc.constantFrom(...long), fc.nat(), fc.constantFrom(...letters), fc.constantFrom('replace', 'insert', 'delete', 'swap'), (flag, at, letter, how) => {
        const i = at % flag.length;
        const typo =
          how === 'replace' ? flag.slice(0, i) + letter + flag.slice(i + 1)
          : how === 'insert' ? flag.slice(0, i) + letter + flag.slice(i)
          : how === 'delete' ? flag.slice(0, i) + flag.slice(i + 1)
          : i + 1 < flag.length ? flag.slice(0, i) + flag[i + 1] + flag[i] + flag.slice(i + 2) : flag;
        if (flags.includes(typo)) return; // the typo is another real flag
        const message = usageError(['start', `--${typo}=1`]);
        const suggested = /did you mean --([a-z0-9-]+)\?/.exec(message)?.[1];
        assert.ok(suggested !== undefined, `no suggestion for --${typo}: ${message}`);
        assert.ok(flags.includes(suggested));
        assert.ok(editDistance(typo, suggested) <= 1 || suggested.startsWith(typo), `--${typo} → --${suggested}`);
      }),
      { seed: SEED, numRuns: 400 },
    );
  });
});

describe('the command line', () => {
  test('wsgid help [COMMAND] is COMMAND --help', () => {
    for (const command of COMMANDS) {
      assert.deepEqual(parseCommandLine(['help', command]), { command, values: {}, positionals: [], help: true, version: false });
    }
    assert.equal(parseCommandLine(['help']).command, 'start');
    assert.equal(parseCommandLine(['help', 'deploy'], ['deploy']).command, 'deploy');
    assert.match(usageError(['help', 'stpo']), /unknown command 'stpo' \(did you mean 'stop'\?\)/);
    assert.match(usageError(['help', 'stop', 'status']), /takes one command name/);
  });

  test('did you mean: flags of the command, commands, and nothing for nonsense', () => {
    assert.match(usageError(['--wokrers=2']), /^unknown option --wokrers \(did you mean --workers\?\) \(see wsgid --help\)$/);
    assert.match(usageError(['--no-acess-log']), /did you mean --no-access-log\?/);
    assert.match(usageError(['status', '--jsno']), /did you mean --json\?/);
    assert.match(usageError(['systemd-unit', '--afterr=x.service']), /did you mean --after\?/);
    assert.match(usageError(['restrat']), /unknown command 'restrat' \(did you mean 'restart'\?\)/);
    assert.match(usageError(['systemd-unti']), /did you mean 'systemd-unit'\?/);
    assert.doesNotMatch(usageError(['--zzzzzz=1']), /did you mean/);
    assert.doesNotMatch(usageError(['frobnicate']), /did you mean/);
    // A flag of another command is named as such, not "corrected".
    assert.match(usageError(['stop', '--recv=tcp://a:1']), /--recv is not an option of `wsgid stop`/);
  });
});
