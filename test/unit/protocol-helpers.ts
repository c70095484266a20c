/**
 * Test-side mongrel2 encoders, written independently of src/protocol so the tests do not check the
 * codec against itself. Strings are latin1 byte strings, as in the codec.
 */
export type Headers = Record<string, string | string[]>;

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

export function tnet(payload: Buffer | string, tag: string): Buffer {
  const p = typeof payload === 'string' ? b(payload) : payload;
  return Buffer.concat([b(`${p.length}:`), p, b(tag)]);
}

/** Headers as mongrel2 writes them with protocol='tnetstring': a dict, duplicates as a list. */
export function tnetHeaders(h: Headers): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(h)) {
    parts.push(tnet(k, ','));
    parts.push(typeof v === 'string' ? tnet(v, ',') : tnet(Buffer.concat(v.map((x) => tnet(x, ','))), ']'));
  }
  return tnet(Buffer.concat(parts), '}');
}

/** mongrel2's JSON: only `\` and `"` are escaped; every other byte goes in raw. */
function m2JsonString(s: string): string {
  return '"' + s.replace(/[\\"]/g, (c) => '\\' + c) + '"';
}

/** Headers as mongrel2 writes them with protocol='json': `LEN:{...},`. */
export function jsonHeaders(h: Headers): Buffer {
  const body = Object.entries(h)
    .map(([k, v]) => m2JsonString(k) + ':' + (typeof v === 'string' ? m2JsonString(v) : '[' + v.map(m2JsonString).join(',') + ']'))
    .join(',');
  return tnet('{' + body + '}', ',');
}

export function frame(sender: string, connId: number | string, path: string, headers: Buffer, body: Buffer | string): Buffer {
  return Buffer.concat([b(`${sender} ${connId} ${path} `), headers, tnet(body, ',')]);
}
