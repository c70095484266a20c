import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  dumpNetstring,
  dumpTnetstring,
  parseNetstring,
  parseTnetstring,
  ProtocolError,
  type TnetValue,
} from '../../src/protocol/index.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function isCode(code: string) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.code === code;
}

test('tnetstring scalars', () => {
  const cases: Array<[string, TnetValue]> = [
    ['0:,', ''],
    ['5:hello,', 'hello'],
    ['3:a,b,', 'a,b'],
    ['2:42#', 42],
    ['2:-7#', -7],
    ['1:0#', 0],
    ['4:3.25^', 3.25],
    ['5:-1e10^', -1e10],
    ['4:true!', true],
    ['5:false!', false],
    ['0:~', null],
    ['0:]', []],
    ['0:}', {}],
  ];
  for (const [wire, value] of cases) {
    const r = parseTnetstring(b(wire));
    assert.deepEqual(r.value, value, wire);
    assert.equal(r.next, wire.length);
  }
  assert.equal(dumpTnetstring(42).toString(), '2:42#');
  assert.equal(dumpTnetstring(3.25).toString(), '4:3.25^');
  assert.equal(dumpTnetstring(null).toString(), '0:~');
  assert.equal(dumpTnetstring(false).toString(), '5:false!');
});

test('tnetstring nested values round-trip, strings as latin1 byte strings', () => {
  const v: TnetValue = {
    s: 'h\xe9\x00,:}]',
    n: [1, -2, 0.5, true, false, null, ['x', []], {}],
    d: { inner: { deeper: 'yes' } },
    __proto__x: 'k',
  };
  const wire = dumpTnetstring(v);
  assert.deepEqual(parseTnetstring(wire).value, v);
  // A Uint8Array dumps as a string of its bytes and parses back as the latin1 string.
  assert.deepEqual(parseTnetstring(dumpTnetstring([Buffer.from([0xff, 0x00, 0x41])])).value, ['\xff\x00A']);
  assert.equal(dumpTnetstring(['ctl', { 'keep-alive': true }]).toString(), '31:3:ctl,21:10:keep-alive,4:true!}]');
});

test('parseTnetstring at an offset, with trailing data', () => {
  const buf = b('xx3:abc,2:12#');
  const first = parseTnetstring(buf, 2);
  assert.deepEqual(first, { value: 'abc', next: 8 });
  assert.deepEqual(parseTnetstring(buf, first.next), { value: 12, next: 13 });
});

test('tnetstring errors', () => {
  const bad = [
    '', '5', '5:abc,', '3:abc', '3:abc?', 'a:,', '1:x#', '0:#', '3:1e+^', '1:.^', '1:e^', '2:1x^', '3:yes!', '1:x~',
    '4:1:a#}', '3:1:a}', '5:1:a,}', '4:1:a]]', '3:abc]', '12345678901:x,',
  ];
  for (const w of bad) assert.throws(() => parseTnetstring(b(w)), isCode('M2_ERR_TNETSTRING'), JSON.stringify(w));
  assert.throws(() => parseTnetstring(b('17:99999999999999999#')), /safe integer/);
  // Deep nesting is refused before it can blow the stack.
  let deep = b('0:]');
  for (let i = 0; i < 100; i++) deep = Buffer.concat([b(`${deep.length}:`), deep, b(']')]);
  assert.throws(() => parseTnetstring(deep), /nesting/);
  assert.throws(() => dumpTnetstring('€'), /U\+20AC/);
  assert.throws(() => dumpTnetstring(NaN), isCode('M2_ERR_TNETSTRING'));
  const cyclic: Record<string, TnetValue> = {};
  (cyclic as Record<string, unknown>)['self'] = cyclic;
  assert.throws(() => dumpTnetstring(cyclic), /nesting/);
});

test('netstrings', () => {
  const buf = b('3:a b,0:,');
  const one = parseNetstring(buf);
  assert.deepEqual(one, { start: 2, end: 5, next: 6 });
  assert.deepEqual(parseNetstring(buf, one.next), { start: 8, end: 8, next: 9 });
  assert.equal(dumpNetstring(Buffer.from([0, 0x2c])).toString('latin1'), '2:\x00,,');
  assert.throws(() => parseNetstring(b('3:abc}')), isCode('M2_ERR_NETSTRING'));
  assert.throws(() => parseNetstring(b('3:ab')), isCode('M2_ERR_NETSTRING'));
});
