/**
 * The metrics the request path updates: counters and histograms whose series are plain objects
 * the caller holds, so that recording is an addition (and a bucket search) with no label hashing.
 * prom-client's observe() hashes its label object on every call (~0.7 µs); a request updates four
 * series and each metadata or storage call one more, so these are kept here and written in the
 * Prometheus text format beside prom-client's registry at scrape time (src/insight/metrics.ts).
 */

export interface CounterSeries {
  value: number;
}

export interface HistogramSeries {
  /** per bucket (not cumulative), the last one for values above every bound */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** A family of series, one per combination of label values; the label names are fixed. */
abstract class Family<S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  private readonly series = new Map<string, { values: readonly string[]; series: S }>();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  /** The series for these label values (in labelNames' order), made when first asked for: hold it. */
  child(...values: string[]): S {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name} takes ${this.labelNames.length} label values`);
    const key = values.join('\u0000');
    let entry = this.series.get(key);
    if (!entry) this.series.set(key, (entry = { values, series: this.make() }));
    return entry.series;
  }

  protected abstract make(): S;
  protected abstract lines(labels: string, series: S): string[];
  protected abstract readonly type: string;

  /** The family in the text exposition format (without a trailing newline); '' with no series. */
  format(): string {
    if (this.series.size === 0) return '';
    const out = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const { values, series } of this.series.values()) out.push(...this.lines(labelText(this.labelNames, values), series));
    return out.join('\n');
  }
}

export class CounterFamily extends Family<CounterSeries> {
  protected readonly type = 'counter';

  protected make(): CounterSeries {
    return { value: 0 };
  }

  protected lines(labels: string, series: CounterSeries): string[] {
    return [`${this.name}${braces(labels)} ${number(series.value)}`];
  }
}

export class HistogramFamily extends Family<HistogramSeries> {
  protected readonly type = 'histogram';
  /** upper bounds, ascending */
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    this.buckets = buckets;
  }

  protected make(): HistogramSeries {
    return { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }

  /** Records one value in a series of this family. */
  observe(series: HistogramSeries, value: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    series.counts[i] = (series.counts[i] ?? 0) + 1;
    series.sum += value;
    series.count++;
  }

  protected lines(labels: string, series: HistogramSeries): string[] {
    const sep = labels === '' ? '' : ',';
    const out: string[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += series.counts[i] as number;
      out.push(`${this.name}_bucket{${labels}${sep}le="${number(this.buckets[i] as number)}"} ${cumulative}`);
    }
    out.push(`${this.name}_bucket{${labels}${sep}le="+Inf"} ${series.count}`);
    out.push(`${this.name}_sum${braces(labels)} ${number(series.sum)}`, `${this.name}_count${braces(labels)} ${series.count}`);
    return out;
  }
}

/** One family written from values read at scrape time (a summary computed elsewhere, a top-N). */
export interface Sample {
  /** appended to the family's name: '_sum', '_count' */
  suffix?: string;
  labels: Record<string, string>;
  value: number;
}

export function formatSamples(name: string, help: string, type: 'counter' | 'gauge' | 'summary', samples: readonly Sample[]): string {
  if (samples.length === 0) return '';
  const out = [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`];
  for (const s of samples) {
    const labels = labelText(Object.keys(s.labels), Object.values(s.labels));
    out.push(`${name}${s.suffix ?? ''}${braces(labels)} ${number(s.value)}`);
  }
  return out.join('\n');
}

function labelText(names: readonly string[], values: readonly string[]): string {
  return names.map((n, i) => `${n}="${escapeValue(values[i] ?? '')}"`).join(',');
}

const braces = (labels: string) => (labels === '' ? '' : `{${labels}}`);

function number(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

const escapeValue = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
