/**
 * wsgi_bridge.py's start_response has a fast path (names and values joined with NUL, checked with one
 * regular expression) and a slow path (each check on its own, for a precise error). Generated
 * cases (seeded) must get the same answer from both: the same bytes, or an exception from both.
 * Real Python, the real bridge module; no mongrel2 needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/wsgid.js';

const PYTHON = '/usr/bin/python3';
const BRIDGE_DIR = path.join(REPO_ROOT, 'src', 'gateways', 'python', 'bridge');

const SCRIPT = String.raw`
import json, random, sys
sys.path.insert(0, sys.argv[1])
import wsgi_bridge as bridge

seed = int(sys.argv[2])
rng = random.Random(seed)
NAMES = ["Content-Type", "content-length", "Content-Length", "X-A", "Set-Cookie", "x_y", "", "a b",
         "a:b", "a\0b", "a\r\nb", "X\u00e9", "X\u0100", "ok!#$%&'*+.^_` + "`" + String.raw`|~", b"X-Bytes", 7, None]
VALUES = ["text/plain", "", " 5 ", "5", "12x", "abc", "\u0663", "a: b", "a\0b", "a\rb", "a\nb", "\u00e9t\u00e9",
          "\u20ac", "a" * 300, " \t", b"bytes", 5, None]
STATUSES = ["200 OK", "204 ", "404 Not Found", "20 OK", "200", "200 OK\r\n", "099 X", "200 \u00e9", "200 \u20ac", b"200 OK", 200]

class Sub(str):
    pass

def item():
    r = rng.random()
    name, value = rng.choice(NAMES), rng.choice(VALUES)
    if r < 0.03:
        return name if isinstance(name, str) and len(name) == 2 else "ab"
    if r < 0.06:
        return (name, value, "extra")
    if r < 0.09:
        return [name, value]
    if r < 0.12 and isinstance(name, str) and isinstance(value, str):
        return (Sub(name), Sub(value))
    return (name, value)

def outcome(fn):
    try:
        return ["ok", fn().decode("latin-1")]
    except Exception as exc:
        return ["error", type(exc).__name__]

class Dummy:
    pass

mismatches = []
for case in range(4000):
    status = rng.choice(STATUSES) if rng.random() < 0.3 else "200 OK"
    good = rng.random() < 0.5
    headers = [(rng.choice(NAMES[:5]), rng.choice(VALUES[:2])) if good else item() for _ in range(rng.randrange(0, 5))]
    if rng.random() < 0.02:
        headers = tuple(headers)
    if rng.random() < 0.02:
        headers = {"a": "b"}
    request = bridge.Request(Dummy(), 1, b"")
    fast = outcome(lambda: (request.start_response(status, headers), request.head)[1])
    slow = outcome(lambda: bridge.Request.checked_head(status, headers))
    if (fast[0] != slow[0]) or (fast[0] == "ok" and fast[1] != slow[1]):
        mismatches.append({"status": repr(status), "headers": repr(headers), "fast": fast, "slow": slow})
print(json.dumps({"mismatches": mismatches[:5], "count": len(mismatches)}))
`;

test('start_response: the fast path and the precise checks agree on 4000 generated heads', () => {
  const seed = Number(process.env.WSGI_HEAD_SEED ?? Date.now() % 100_000);
  const out = execFileSync(PYTHON, ['-c', SCRIPT, BRIDGE_DIR, String(seed)], { encoding: 'utf8' });
  const result = JSON.parse(out) as { count: number; mismatches: unknown[] };
  assert.equal(result.count, 0, `seed ${seed} (replay with WSGI_HEAD_SEED=${seed}): ${JSON.stringify(result.mismatches, null, 1)}`);
});
