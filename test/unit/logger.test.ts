/** Log hygiene for hostile input: control bytes never reach a log line raw; repeated lines are rate-limited. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatValue } from '../../src/log/logger.js';
import { LogRateLimit } from '../../src/log/rate-limit.js';

test('field values: control bytes (NUL, ESC, DEL, C1) are escaped, plain words stay bare', () => {
  assert.equal(formatValue('plain'), 'plain');
  assert.equal(formatValue('a\u0000b'), '"a\\u0000b"');
  assert.equal(formatValue('\u001b[31mred'), '"\\u001b[31mred"');
  assert.equal(formatValue('x\u007fy\u0085z'), '"x\\u007fy\\u0085z"');
  assert.equal(formatValue({ k: 'v\u0000' }), '{"k":"v\\u0000"}');
  assert.equal(formatValue('two words'), '"two words"');
  for (const v of ['\u0000', 'a\u0000b', { k: '\u009b' }, ['\u0007']]) assert.doesNotMatch(formatValue(v), /[\x00-\x1f\x7f-\x9f]/);
});

test('rate limit: one line per interval, carrying the count since the last', () => {
  const limit = new LogRateLimit(1000);
  assert.equal(limit.hit(0), 1);
  assert.equal(limit.hit(10), undefined);
  assert.equal(limit.hit(999), undefined);
  assert.equal(limit.hit(1000), 3);
  assert.equal(limit.hit(5000), 1);
});
