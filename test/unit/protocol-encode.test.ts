import { test } from 'node:test';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import {
  encodeBroadcast,
  encodeClose,
  encodeControl,
  encodeReply,
  encodeReplyParts,
  encodeXRequest,
  isValidSender,
  MAX_REPLY_TARGETS,
  parseTnetstring,
  ProtocolError,
} from '../../src/protocol/index.js';

function isCode(code: string) {
  return (err: unknown): boolean => err instanceof ProtocolError && err.code === code;
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

test('reply to one id, string payload as UTF-8, bytes untouched', () => {
  assert.equal(encodeReply('8a1f0c2e-app', 42, 'HTTP/1.1 200 OK\r\n\r\n').toString(), '8a1f0c2e-app 2:42, HTTP/1.1 200 OK\r\n\r\n');
  assert.deepEqual([...encodeReply('a', [7], 'é')], [...Buffer.from('a 1:7, é', 'utf8')]);
  const bin = Buffer.from([0, 0xff, 0x2c, 0x20]);
  const out = encodeReply('a', 0, bin);
  assert.deepEqual([...out.subarray(out.length - 4)], [...bin]);
  assert.equal(out.subarray(0, out.length - 4).toString(), 'a 1:0, ');
  assert.equal(encodeReply('a', 4294967295, new Uint8Array(0)).toString(), 'a 10:4294967295, ');
});

test('reply to 128 ids; 0 or 129 ids is M2_ERR_TARGETS', () => {
  const ids = range(1, 128);
  const s = encodeReply('srv', ids, 'x').toString();
  const list = ids.join(' ');
  assert.equal(s, `srv ${list.length}:${list}, x`);
  assert.equal(MAX_REPLY_TARGETS, 128);
  assert.throws(() => encodeReply('srv', range(1, 129), 'x'), isCode('M2_ERR_TARGETS'));
  assert.throws(() => encodeReply('srv', [], 'x'), isCode('M2_ERR_TARGETS'));
});

test('ids must be uint32 and the sender [A-Za-z0-9-]+', () => {
  for (const id of [-1, 1.5, 4294967296, NaN]) assert.throws(() => encodeReply('s', id, ''), isCode('M2_ERR_CONN_ID'));
  assert.throws(() => encodeReply('s', [1, 2, -3], ''), /index 2/);
  for (const s of ['', 'a_b', 'a b', 'é', 'a:b']) {
    assert.equal(isValidSender(s), false);
    assert.throws(() => encodeReply(s, 1, ''), isCode('M2_ERR_SENDER'));
  }
  assert.equal(isValidSender('Az09-'), true);
});

test('close is an empty payload, to one id or many', () => {
  assert.equal(encodeClose('s', 3).toString(), 's 1:3, ');
  assert.equal(encodeClose('s', [3, 14]).toString(), 's 4:3 14, ');
});

test('broadcast splits into batches of at most 128 ids', () => {
  const ids = range(1000, 300);
  const frames = encodeBroadcast('s', ids, 'hi');
  assert.equal(frames.length, 3);
  const got: number[] = [];
  for (const f of frames) {
    const m = /^s (\d+):([\d ]+), hi$/.exec(f.toString());
    assert.ok(m, f.toString());
    assert.equal(Number(m[1]), m[2]!.length);
    got.push(...m[2]!.split(' ').map(Number));
  }
  assert.deepEqual(frames.map((f) => f.toString().split(',')[0]!.split(' ').length - 1), [128, 128, 44]);
  assert.deepEqual(got, ids);
  assert.deepEqual(encodeBroadcast('s', [], 'x'), []);
  assert.equal(encodeBroadcast('s', [1], Buffer.from('y')).length, 1);
});

function splitX(frame: Buffer): { ids: string; body: Buffer } {
  const s = frame.toString('latin1');
  const m = /^[A-Za-z0-9-]+ (\d+):(X [\d ]+), /.exec(s);
  assert.ok(m, s);
  assert.equal(Number(m[1]), m[2]!.length);
  return { ids: m[2]!, body: frame.subarray(m[0].length) };
}

test('ctl: keep-alive, credits, cancel as an X request', () => {
  const f = encodeControl('s', [12, 13], { keepAlive: true, credits: 8192, cancel: true });
  const { ids, body } = splitX(f);
  assert.equal(ids, 'X 12 13');
  const r = parseTnetstring(body);
  assert.equal(r.next, body.length);
  assert.deepEqual(r.value, ['ctl', { 'keep-alive': true, credits: 8192, cancel: true }]);
  assert.equal(encodeControl('s', 7, { keepAlive: true }).toString(), 's 3:X 7, 31:3:ctl,21:10:keep-alive,4:true!}]');
  assert.deepEqual(parseTnetstring(splitX(encodeControl('s', 7, { credits: 1 })).body).value, ['ctl', { credits: 1 }]);
  assert.throws(() => encodeControl('s', 7, { credits: -1 }), ProtocolError);
  assert.throws(() => encodeControl('s', 7, { credits: 1.5 }), ProtocolError);
});

test('generic X request (sendfile plugin)', () => {
  const f = encodeXRequest('s', 9, 'sendfile', '/srv/big.iso');
  assert.equal(f.toString(), 's 3:X 9, 27:8:sendfile,12:/srv/big.iso,]');
  assert.throws(() => encodeXRequest('s', range(0, 129), 'k', null), isCode('M2_ERR_TARGETS'));
});

test('a reply given as parts is byte for byte the reply of the joined parts (generated)', () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[A-Za-z0-9-]{1,36}$/),
      fc.nat(2 ** 31),
      fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
      (sender, id, parts) => {
        const joined = Buffer.concat(parts);
        assert.deepEqual(encodeReplyParts(sender, id, parts, joined.length), encodeReply(sender, id, joined));
      },
    ),
    { seed: Number(process.env.PROTOCOL_SEED ?? 20261201) },
  );
});
