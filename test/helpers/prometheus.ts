/**
 * Test helper: parse a Prometheus text exposition two ways: with the official Python client's
 * parser (prometheus_client, Debian's python3-prometheus-client: an oracle nobody here wrote), and
 * with a strict line grammar of the text format 0.0.4 (every line must be a HELP, a TYPE or a
 * sample, each family's samples together after its TYPE).
 */
import { execFile } from 'node:child_process';

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const PY = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        out.append({"family": f.name, "type": f.type, "name": s.name, "labels": s.labels, "value": repr(float(s.value))})
print(json.dumps(out))
`;

/** Samples as prometheus_client parses them (rejects when it refuses the text). */
export function parseWithPrometheusClient(text: string): Promise<Array<ParsedSample & { family: string; type: string }>> {
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/python3', ['-c', PY], { encoding: 'utf8', maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`prometheus_client refused the exposition: ${stderr || error.message}`));
      else {
        // Values come as Python's repr (NaN and infinities are not JSON).
        const raw = JSON.parse(stdout) as Array<Omit<ParsedSample, 'value'> & { family: string; type: string; value: string }>;
        const number = (v: string): number => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : Number(v));
        resolve(raw.map((s) => ({ ...s, value: number(s.value) })));
      }
    });
    child.stdin!.end(text);
  });
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const LABELS = `\\{(?:[a-zA-Z_][a-zA-Z0-9_]*=${LABEL_VALUE}(?:,[a-zA-Z_][a-zA-Z0-9_]*=${LABEL_VALUE})*)?\\}`;
const VALUE = '(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|NaN|[-+]Inf)';
const SAMPLE = new RegExp(`^(${NAME})(${LABELS})? (${VALUE})$`);
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

function unescape(value: string): string {
  return value.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Strict parse; throws on the first line that is not the text format. */
export function parseStrict(text: string): { samples: ParsedSample[]; types: Map<string, string> } {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const types = new Map<string, string>();
  const samples: ParsedSample[] = [];
  let family: string | undefined;
  const done = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    let m = HELP.exec(line);
    if (m) continue;
    m = TYPE.exec(line);
    if (m) {
      if (types.has(m[1]!)) throw new Error(`second TYPE for ${m[1]}`);
      if (family !== undefined) done.add(family);
      family = m[1]!;
      types.set(family, m[2]!);
      continue;
    }
    m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a line of the text format: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const type = family && types.get(family);
    const belongs =
      name === family || (type === 'histogram' && [`${family}_bucket`, `${family}_sum`, `${family}_count`].includes(name));
    if (!belongs) throw new Error(`sample ${name} outside its family (current: ${family})`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(new RegExp(`([a-zA-Z_][a-zA-Z0-9_]*)=(${LABEL_VALUE})`, 'g'))) {
      labels[k!] = unescape(v!.slice(1, -1));
    }
    const raw = m[3]!;
    samples.push({ name, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return { samples, types };
}

/** The value of the one sample named `name` whose labels include `labels` (throws if not exactly one). */
export function valueOf(samples: readonly ParsedSample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length !== 1) throw new Error(`${found.length} samples ${name}${JSON.stringify(labels)}`);
  return found[0]!.value;
}
