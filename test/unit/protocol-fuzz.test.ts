/**
 * Property tests with a seeded PRNG: random and mutated frames never throw anything but
 * ProtocolError, and generated messages round-trip through both header formats.
 * Set PROTOCOL_FUZZ_SEED to reproduce a failure with another seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  dumpTnetstring,
  encodeBroadcast,
  encodeReply,
  parseMessage,
  parseTnetstring,
  peekConnection,
  ProtocolError,
  type TnetValue,
} from '../../src/protocol/index.js';
import { frame, jsonHeaders, tnet, tnetHeaders, type Headers } from './protocol-helpers.js';
import { prng } from '../helpers/prng.js';

const SEED = Number(process.env['PROTOCOL_FUZZ_SEED'] ?? 0x5eed);

class Gen {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
  /** A latin1 byte string biased towards the bytes that matter to the codecs. */
  byteString(max: number): string {
    const special = [0x00, 0x09, 0x0a, 0x20, 0x22, 0x2c, 0x3a, 0x5c, 0x5d, 0x7d, 0x7b, 0x80, 0xc3, 0xe9, 0xff];
    let s = '';
    const n = this.int(max + 1);
    for (let i = 0; i < n; i++) {
      s += String.fromCharCode(this.next() < 0.3 ? this.pick(special) : 0x20 + this.int(0x5f));
    }
    return s;
  }
  token(chars: string, min: number, max: number): string {
    let s = '';
    const n = min + this.int(max - min + 1);
    for (let i = 0; i < n; i++) s += chars[this.int(chars.length)];
    return s;
  }
}

const SENDER_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-';
const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-_';

function genHeaders(g: Gen): Headers {
  const h: Headers = { METHOD: g.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH']), PATH: '/' + g.byteString(10) };
  const n = g.int(12);
  for (let i = 0; i < n; i++) {
    const name = g.token(NAME_CHARS, 1, 12);
    if (name in h) continue;
    if (g.next() < 0.2) {
      const values: string[] = [];
      const k = 2 + g.int(4);
      for (let j = 0; j < k; j++) values.push(g.byteString(20));
      h[name] = values;
    } else h[name] = g.byteString(30);
  }
  return h;
}

function genMessage(g: Gen): { sender: string; connId: number; path: string; headers: Headers; body: Buffer } {
  let path = '/';
  for (let i = g.int(20); i > 0; i--) {
    const c = g.int(256);
    path += c === 0x20 ? '%20' : String.fromCharCode(c);
  }
  return {
    sender: g.token(SENDER_CHARS, 1, 40),
    connId: g.next() < 0.1 ? 0xffffffff : g.int(0x100000000),
    path,
    headers: genHeaders(g),
    body: g.bytes(g.next() < 0.2 ? 0 : g.int(300)),
  };
}

function genValidFrame(g: Gen): Buffer {
  const m = genMessage(g);
  return frame(m.sender, m.connId, m.path, g.next() < 0.5 ? jsonHeaders(m.headers) : tnetHeaders(m.headers), m.body);
}

/** Runs fn; anything thrown must be a ProtocolError with a code and a message. */
function onlyProtocolErrors(fn: () => unknown, input: Buffer): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (!(err instanceof ProtocolError) || !err.code.startsWith('M2_ERR_') || err.message.length === 0) {
      assert.fail(`non-ProtocolError ${String(err)} for input ${input.toString('hex')}`);
    }
    return false;
  }
}

function mutate(g: Gen, src: Buffer): Buffer {
  const buf = Buffer.from(src);
  switch (g.int(6)) {
    case 0: // truncate
      return buf.subarray(0, g.int(buf.length + 1));
    case 1: {
      // flip a few bytes
      for (let i = 1 + g.int(3); i > 0 && buf.length > 0; i--) buf[g.int(buf.length)] = g.int(256);
      return buf;
    }
    case 2: {
      // change a digit (length prefixes, conn id)
      const digits: number[] = [];
      for (let i = 0; i < buf.length; i++) if (buf[i]! >= 0x30 && buf[i]! <= 0x39) digits.push(i);
      if (digits.length > 0) buf[g.pick(digits)] = 0x30 + g.int(10);
      return buf;
    }
    case 3: {
      // insert random bytes
      const at = g.int(buf.length + 1);
      return Buffer.concat([buf.subarray(0, at), g.bytes(1 + g.int(4)), buf.subarray(at)]);
    }
    case 4: {
      // delete a range
      const at = g.int(buf.length + 1);
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1 + g.int(5))]);
    }
    default: {
      // swap a structural byte for another
      const structural = [0x20, 0x2c, 0x3a, 0x7d, 0x5d, 0x22, 0x5c, 0x7b, 0x5b, 0x23, 0x7e, 0x21];
      const at: number[] = [];
      for (let i = 0; i < buf.length; i++) if (structural.includes(buf[i]!)) at.push(i);
      if (at.length > 0) buf[g.pick(at)] = g.pick(structural);
      return buf;
    }
  }
}

test('random byte strings only ever throw ProtocolError', () => {
  const g = new Gen(SEED);
  for (let i = 0; i < 5000; i++) {
    const prefix = g.next() < 0.5 ? Buffer.from(`${g.token(SENDER_CHARS, 1, 8)} ${g.int(1000)} /`, 'latin1') : Buffer.alloc(0);
    const input = Buffer.concat([prefix, g.bytes(g.int(120))]);
    onlyProtocolErrors(() => parseMessage(input), input);
    onlyProtocolErrors(() => peekConnection(input), input);
    onlyProtocolErrors(() => parseTnetstring(input), input);
  }
});

test('mutated valid frames only ever throw ProtocolError, and what parses is well-formed', () => {
  const g = new Gen(SEED + 1);
  let ok = 0;
  for (let i = 0; i < 5000; i++) {
    let input = genValidFrame(g);
    for (let k = 1 + g.int(3); k > 0; k--) input = mutate(g, input);
    let msg: ReturnType<typeof parseMessage> | undefined;
    if (onlyProtocolErrors(() => (msg = parseMessage(input)), input) && msg) {
      ok++;
      assert.match(msg.sender, /^[A-Za-z0-9-]+$/);
      assert.ok(Number.isInteger(msg.connId) && msg.connId >= 0 && msg.connId <= 0xffffffff);
      assert.equal(msg.body.buffer, input.buffer);
      for (const v of Object.values(msg.headers)) {
        assert.ok(typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')));
      }
      assert.deepEqual(peekConnection(input), { sender: msg.sender, connId: msg.connId });
    }
  }
  // Some mutations (a flipped body byte, say) leave a valid frame: make sure both paths were exercised.
  assert.ok(ok > 100 && ok < 4900, `parsed ${ok} of 5000 mutated frames`);
});

test('generated messages round-trip through both header formats', () => {
  const g = new Gen(SEED + 2);
  for (let i = 0; i < 3000; i++) {
    const m = genMessage(g);
    for (const headers of [jsonHeaders(m.headers), tnetHeaders(m.headers)]) {
      const raw = frame(m.sender, m.connId, m.path, headers, m.body);
      const got = parseMessage(raw);
      assert.equal(got.kind, 'request');
      assert.equal(got.sender, m.sender);
      assert.equal(got.connId, m.connId);
      assert.equal(got.path, m.path);
      assert.deepEqual(got.headers, m.headers);
      assert.ok(got.body.equals(m.body));
      assert.deepEqual(peekConnection(raw), { sender: m.sender, connId: m.connId });
    }
  }
});

test('\\u escapes decode to the UTF-8 bytes of the text, like raw UTF-8 does', () => {
  const g = new Gen(SEED + 3);
  for (let i = 0; i < 2000; i++) {
    let text = '';
    for (let n = g.int(12); n > 0; n--) {
      const r = g.next();
      const cp = r < 0.4 ? 0x20 + g.int(0x5f) : r < 0.6 ? 0x80 + g.int(0x780) : r < 0.8 ? 0xe000 + g.int(0x2000) : 0x10000 + g.int(0xfffff);
      text += String.fromCodePoint(cp);
    }
    const escaped = JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
    const rawUtf8 = Buffer.concat([Buffer.from('{"e":' + escaped + ',"r":"', 'latin1'), Buffer.from(text.replace(/[\\"]/g, (c) => '\\' + c), 'utf8'), Buffer.from('"}', 'latin1')]);
    const got = parseMessage(frame('s', 1, '/', tnet(rawUtf8, ','), '')).headers;
    const expected = Buffer.from(text, 'utf8').toString('latin1');
    assert.equal(got['e'], expected);
    assert.equal(got['r'], expected);
  }
});

function genTnet(g: Gen, depth: number): TnetValue {
  const r = g.int(depth > 3 ? 6 : 8);
  switch (r) {
    case 0: return g.byteString(20);
    case 1: return g.int(2 ** 31) - 2 ** 30;
    case 2: return (g.next() - 0.5) * 1e6;
    case 3: return g.next() < 0.5;
    case 4: return null;
    case 5: return Number.MAX_SAFE_INTEGER * (g.next() < 0.5 ? 1 : -1);
    case 6: {
      const list: TnetValue[] = [];
      for (let n = g.int(5); n > 0; n--) list.push(genTnet(g, depth + 1));
      return list;
    }
    default: {
      const dict: Record<string, TnetValue> = {};
      for (let n = g.int(5); n > 0; n--) dict[g.byteString(8)] = genTnet(g, depth + 1);
      return dict;
    }
  }
}

test('tnetstrings round-trip; mutated ones only throw ProtocolError', () => {
  const g = new Gen(SEED + 4);
  for (let i = 0; i < 3000; i++) {
    const v = genTnet(g, 0);
    const wire = dumpTnetstring(v);
    const r = parseTnetstring(wire);
    assert.equal(r.next, wire.length);
    assert.deepEqual(r.value, v);
    const bad = mutate(g, wire);
    onlyProtocolErrors(() => parseTnetstring(bad), bad);
  }
});

test('reply encoding: random id lists and payloads decode back', () => {
  const g = new Gen(SEED + 5);
  for (let i = 0; i < 1000; i++) {
    const sender = g.token(SENDER_CHARS, 1, 20);
    const ids = Array.from({ length: 1 + g.int(300) }, () => g.int(0x100000000));
    const payload = g.bytes(g.int(100));
    const frames = encodeBroadcast(sender, ids, payload);
    assert.equal(frames.length, Math.ceil(ids.length / 128));
    const seen: number[] = [];
    for (const f of frames) {
      const sp = f.indexOf(0x20);
      assert.equal(f.toString('latin1', 0, sp), sender);
      const colon = f.indexOf(0x3a, sp);
      const len = Number(f.toString('latin1', sp + 1, colon));
      const list = f.toString('latin1', colon + 1, colon + 1 + len).split(' ').map(Number);
      assert.ok(list.length <= 128);
      seen.push(...list);
      assert.equal(f[colon + 1 + len], 0x2c);
      assert.equal(f[colon + 2 + len], 0x20);
      assert.ok(f.subarray(colon + 3 + len).equals(payload));
    }
    assert.deepEqual(seen, ids);
    if (ids.length <= 128) assert.ok(encodeReply(sender, ids, payload).equals(frames[0]!));
  }
});
