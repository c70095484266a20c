/**
 * A tolerant reader for mongrel2's JSON header object (protocol='json').
 *
 * mongrel2 writes that JSON by hand and escapes only `\` and `"`: raw control bytes (a TAB in a header
 * value is legal HTTP) and non-UTF-8 bytes land inside strings as they are, and PATH is not escaped at
 * all, so JSON.parse fails on real traffic. This reader accepts exactly the shape mongrel2 produces —
 * one object whose values are strings or arrays of strings — and any bytes inside strings.
 *
 * Strings come out as latin1 "byte strings" (one char per byte, like Node's http raw headers and like
 * tnetstring mode), so both header formats give identical values for identical requests:
 * - raw bytes inside a string are kept one char per byte (a UTF-8 "é" arrives as "\u00c3\u00a9");
 * - an escape `\uXXXX` (mongrel2 never writes one, but a well-formed JSON text may) stands for a
 *   character of the JSON text, whose bytes are UTF-8: a code point >= 0x80 is written as its UTF-8
 *   bytes, one char per byte (surrogate pairs are combined first; a lone surrogate becomes U+FFFD);
 * - `\" \\ \/ \b \f \n \r \t` give their usual byte; an unknown escape `\x` is kept as the two bytes.
 */
import { ProtocolError } from './types.js';
import type { Mongrel2Headers, HeaderValue } from './types.js';
import { hex } from './netstring.js';
import { setOwn } from './tnetstring.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Parses the JSON object in `buf[start, end)`. */
export function parseJsonHeaders(buf: Buffer, start: number, end: number): Mongrel2Headers {
  const p = new JsonReader(buf, start, end);
  return p.readObject();
}

class JsonReader {
  pos: number;
  /** The whole object as latin1 (byte i = char i): strings are cheap substrings of it. */
  readonly text: string;
  constructor(
    readonly buf: Buffer,
    readonly start: number,
    readonly end: number,
  ) {
    this.pos = start;
    this.text = buf.toString('latin1', start, end);
  }

  latin1(from: number, to: number): string {
    return this.text.slice(from - this.start, to - this.start);
  }

  fail(what: string): never {
    const found = this.pos < this.end ? `byte 0x${hex(this.buf[this.pos]!)}` : 'end of headers';
    throw new ProtocolError('M2_ERR_JSON', `JSON headers: ${what} at offset ${this.pos}, found ${found}`);
  }

  skipWs(): void {
    const { buf, end } = this;
    let pos = this.pos;
    while (pos < end) {
      const c = buf[pos]!;
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      pos++;
    }
    this.pos = pos;
  }

  readObject(): Mongrel2Headers {
    const headers: Mongrel2Headers = {};
    this.skipWs();
    if (this.buf[this.pos] !== 0x7b || this.pos >= this.end) this.fail("expected '{'");
    this.pos++;
    this.skipWs();
    if (this.pos < this.end && this.buf[this.pos] === 0x7d) {
      this.pos++;
    } else {
      for (;;) {
        this.skipWs();
        if (this.pos >= this.end || this.buf[this.pos] !== QUOTE) this.fail('expected a quoted header name');
        const name = this.readString();
        this.skipWs();
        if (this.pos >= this.end || this.buf[this.pos] !== 0x3a) this.fail("expected ':' after a header name");
        this.pos++;
        this.skipWs();
        const value = this.readValue(name);
        const prev = Object.prototype.hasOwnProperty.call(headers, name) ? headers[name] : undefined;
        setOwn(headers, name, prev === undefined ? value : mergeValues(prev, value));
        this.skipWs();
        if (this.pos >= this.end) this.fail("expected ',' or '}'");
        const c = this.buf[this.pos]!;
        this.pos++;
        if (c === 0x7d) break;
        if (c !== 0x2c) {
          this.pos--;
          this.fail("expected ',' or '}'");
        }
      }
    }
    this.skipWs();
    if (this.pos !== this.end) this.fail('unexpected data after the header object');
    return headers;
  }

  readValue(name: string): HeaderValue {
    if (this.pos < this.end) {
      const c = this.buf[this.pos]!;
      if (c === QUOTE) return this.readString();
      if (c === 0x5b) {
        this.pos++;
        const list: string[] = [];
        this.skipWs();
        if (this.pos < this.end && this.buf[this.pos] === 0x5d) {
          this.pos++;
          return list;
        }
        for (;;) {
          this.skipWs();
          if (this.pos >= this.end || this.buf[this.pos] !== QUOTE) {
            this.notString(name);
          }
          list.push(this.readString());
          this.skipWs();
          if (this.pos >= this.end) this.fail("expected ',' or ']'");
          const d = this.buf[this.pos]!;
          this.pos++;
          if (d === 0x5d) return list;
          if (d !== 0x2c) {
            this.pos--;
            this.fail("expected ',' or ']'");
          }
        }
      }
    }
    return this.notString(name);
  }

  notString(name: string): never {
    if (this.pos >= this.end) this.fail(`expected a value for header ${JSON.stringify(name)}`);
    throw new ProtocolError(
      'M2_ERR_HEADERS',
      `JSON headers: value of header ${JSON.stringify(name)} at offset ${this.pos} is not a string or a list of strings`,
    );
  }

  /** Reads a string starting at the opening quote; returns its latin1 byte string. */
  readString(): string {
    const { buf, end } = this;
    const open = this.pos;
    let pos = open + 1;
    // Fast path: no escapes, one slice.
    while (pos < end) {
      const c = buf[pos]!;
      if (c === QUOTE) {
        this.pos = pos + 1;
        return this.latin1(open + 1, pos);
      }
      if (c === BACKSLASH) break;
      pos++;
    }
    let out = this.latin1(open + 1, pos);
    let runStart = pos;
    while (pos < end) {
      const c = buf[pos]!;
      if (c === QUOTE) {
        out += this.latin1(runStart, pos);
        this.pos = pos + 1;
        return out;
      }
      if (c !== BACKSLASH) {
        pos++;
        continue;
      }
      out += this.latin1(runStart, pos);
      if (pos + 1 >= end) break;
      const e = buf[pos + 1]!;
      pos += 2;
      switch (e) {
        case 0x22: out += '"'; break;
        case 0x5c: out += '\\'; break;
        case 0x2f: out += '/'; break;
        case 0x62: out += '\b'; break;
        case 0x66: out += '\f'; break;
        case 0x6e: out += '\n'; break;
        case 0x72: out += '\r'; break;
        case 0x74: out += '\t'; break;
        case 0x75: {
          let cp = this.hex4(pos);
          pos += 4;
          if (cp >= 0xd800 && cp <= 0xdbff) {
            // A high surrogate: combine with a following \uDC00-\uDFFF, else it is a lone surrogate.
            if (pos + 6 <= end && buf[pos] === BACKSLASH && buf[pos + 1] === 0x75) {
              const lo = this.hex4(pos + 2);
              if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                pos += 6;
              } else cp = 0xfffd;
            } else cp = 0xfffd;
          } else if (cp >= 0xdc00 && cp <= 0xdfff) cp = 0xfffd;
          out += utf8ByteString(cp);
          break;
        }
        default:
          // Not a JSON escape: keep the backslash and the byte (tolerance, e.g. an unescaped PATH).
          out += this.latin1(pos - 2, pos);
      }
      runStart = pos;
    }
    this.pos = open;
    return this.fail('unterminated string');
  }

  hex4(at: number): number {
    if (at + 4 > this.end) {
      this.pos = at;
      this.fail('truncated \\u escape');
    }
    let v = 0;
    for (let i = at; i < at + 4; i++) {
      const c = this.buf[i]!;
      let d: number;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else {
        this.pos = i;
        this.fail('bad hex digit in \\u escape');
      }
      v = (v << 4) | d;
    }
    return v;
  }
}

/** The UTF-8 bytes of a code point, one latin1 char per byte. */
function utf8ByteString(cp: number): string {
  if (cp < 0x80) return String.fromCharCode(cp);
  if (cp < 0x800) return String.fromCharCode(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  if (cp < 0x10000) {
    return String.fromCharCode(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return String.fromCharCode(
    0xf0 | (cp >> 18),
    0x80 | ((cp >> 12) & 0x3f),
    0x80 | ((cp >> 6) & 0x3f),
    0x80 | (cp & 0x3f),
  );
}

/** A repeated name (mongrel2 never repeats one, it sends an array) keeps every value, in order. @internal */
export function mergeValues(prev: HeaderValue, value: HeaderValue): string[] {
  return (typeof prev === 'string' ? [prev] : prev).concat(value);
}
