/**
 * Prometheus text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/),
 * rendered from plain values. Why not prom-client: its Counter and Histogram only take `inc()` and
 * `observe()` one event at a time, while wsgid's master publishes totals it receives already
 * counted (the workers' heartbeats); its cluster `AggregatorRegistry` would put prom-client in every
 * worker's request path (label hashing per request, a JSON dump per heartbeat) and still lose the
 * counts of workers that exit. What remains, writing the text, is this file.
 */

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  labels?: Labels;
  value: number;
}

export interface HistogramSample {
  labels?: Labels;
  /** Upper bounds, ascending, without +Inf. */
  bounds: readonly number[];
  /** Per bucket, not cumulative: bounds.length + 1 entries (the last is above the last bound). */
  counts: readonly number[];
  sum: number;
}

export type Family =
  | { name: string; help: string; type: 'counter' | 'gauge'; samples: Sample[] }
  | { name: string; help: string; type: 'histogram'; samples: HistogramSample[] };

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelText(labels: Labels | undefined, extra?: [string, string]): string {
  const pairs = Object.entries(labels ?? {});
  if (extra) pairs.push(extra);
  if (pairs.length === 0) return '';
  for (const [k] of pairs) if (!LABEL.test(k) || k.startsWith('__')) throw new Error(`invalid label name: ${k}`);
  return '{' + pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',') + '}';
}

/** The exposition text of `families` (each family's samples together, HELP and TYPE first). */
export function render(families: readonly Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`invalid metric name: ${f.name}`);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === 'histogram') {
      for (const h of f.samples) {
        let cumulative = 0;
        h.bounds.forEach((le, i) => {
          cumulative += h.counts[i] ?? 0;
          out.push(`${f.name}_bucket${labelText(h.labels, ['le', formatValue(le)])} ${cumulative}`);
        });
        cumulative += h.counts[h.bounds.length] ?? 0;
        out.push(`${f.name}_bucket${labelText(h.labels, ['le', '+Inf'])} ${cumulative}`);
        out.push(`${f.name}_sum${labelText(h.labels)} ${formatValue(h.sum)}`);
        out.push(`${f.name}_count${labelText(h.labels)} ${cumulative}`);
      }
    } else {
      for (const s of f.samples) out.push(`${f.name}${labelText(s.labels)} ${formatValue(s.value)}`);
    }
  }
  return out.join('\n') + '\n';
}
