/**
 * The Prometheus metrics behind GET /metrics (docs/insight.md lists every one).
 *
 * What the request path updates (requests, their durations and bytes, metadata and storage calls,
 * the per-namespace figures) are plain series from series.ts and top.ts, updated by the request
 * hook (requests.ts) and the store wrappers (instrument.ts): nothing in a handler records a
 * metric. What is read when Prometheus scrapes (queues, uploads in progress, GC runs, other parts'
 * gauges registered with gauge() and counter()) are prom-client collectors, and the process's
 * own figures are prom-client's default metrics, collected once per process.
 *
 * Cardinality is bounded by construction: routes are templates, operations are method names,
 * statuses and methods are finite, and namespaces appear only for the top N.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { GcRunReport } from '../lifecycle/gc.ts';
import type { MetaStore } from '../meta/metastore.ts';
import type { DecisionLatency } from '../policy/latency.ts';
import { namespaceOf } from '../reference.ts';
import type { CallProbe, Component } from './instrument.ts';
import type { Completed } from './requests.ts';
import { CounterFamily, formatSamples, HistogramFamily, type CounterSeries, type HistogramSeries, type Sample } from './series.ts';
import { TopNamespaces } from './top.ts';

export interface MetricsSettings {
  /** how many namespaces get their own series in the per-namespace metrics; the rest are `other` */
  topNamespaces: number;
}

/** What a collector reads at scrape time: one value, or one per combination of labels. */
export type Reading = number | readonly { labels: Record<string, string>; value: number }[];

/**
 * How other parts add their figures (webhooks' queue, say) without a dependency on prom-client:
 * `collect` is called at each scrape; a failure leaves the value NaN for that scrape.
 */
export interface MetricsRegistration {
  /** A value that goes up and down (a queue's length). */
  gauge(name: string, help: string, collect: () => Reading | Promise<Reading>, labelNames?: readonly string[]): void;
  /** A total that only grows while the process runs (deliveries made); `collect` returns the total. */
  counter(name: string, help: string, collect: () => Reading | Promise<Reading>, labelNames?: readonly string[]): void;
}

/** Registration when metrics are off: nothing is kept, nothing is called. */
export const noMetrics: MetricsRegistration = { gauge: () => {}, counter: () => {} };

const requestBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const callBuckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];
const namePattern = /^custody_[a-z0-9_]+$/;

/** One request shape's series, found by route, then method, then status (no key is built per request). */
interface RequestSeries {
  requests: CounterSeries;
  duration: HistogramSeries;
  received: CounterSeries;
  sent: CounterSeries;
}

interface CallSeries {
  family: HistogramFamily;
  duration: HistogramSeries;
  errors: CounterFamily;
  operation: string;
}

/** The process's own figures (CPU, memory, event loop, GC, handles): one registry per process, however many apps it builds. */
let processRegistry: Registry | undefined;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class Metrics implements MetricsRegistration {
  private readonly registry = new Registry();
  private readonly process = processMetrics();
  private readonly requests = new CounterFamily('custody_http_requests_total', 'HTTP requests answered, by route template, method and status', [
    'route',
    'method',
    'status',
  ]);
  private readonly durations = new HistogramFamily(
    'custody_http_request_duration_seconds',
    'Time from the request’s arrival to the end of its response (or the connection’s close)',
    ['route', 'method', 'status'],
    requestBuckets,
  );
  private readonly received = new CounterFamily('custody_http_received_bytes_total', 'Bytes received on the connection for requests (headers included)', [
    'route',
    'method',
    'status',
  ]);
  private readonly sent = new CounterFamily('custody_http_sent_bytes_total', 'Bytes sent on the connection for responses (headers included)', [
    'route',
    'method',
    'status',
  ]);
  private inFlight = 0;
  private readonly byRoute = new Map<string, Map<string, Map<number, RequestSeries>>>();

  private readonly metaDurations = new HistogramFamily(
    'custody_meta_operation_duration_seconds',
    'Metadata store calls, by operation',
    ['operation'],
    callBuckets,
  );
  private readonly metaErrors = new CounterFamily('custody_meta_operation_errors_total', 'Metadata store calls that failed, by operation', ['operation']);
  private readonly storageDurations = new HistogramFamily(
    'custody_storage_operation_duration_seconds',
    'Blob store calls, by operation (a read until its stream is open; a write until every byte is stored)',
    ['operation'],
    callBuckets,
  );
  private readonly storageErrors = new CounterFamily('custody_storage_operation_errors_total', 'Blob store calls that failed, by operation', ['operation']);
  private readonly calls = { meta: new Map<string, CallSeries>(), storage: new Map<string, CallSeries>() };

  private readonly pulledBytes: TopNamespaces;
  private readonly pushedBytes: TopNamespaces;
  private readonly pulls: TopNamespaces;
  private readonly families: (() => string)[] = [];

  constructor(settings: MetricsSettings) {
    const n = settings.topNamespaces;
    this.pulledBytes = new TopNamespaces('custody_namespace_pulled_bytes_total', 'Bytes sent for blob and manifest GETs, for the busiest namespaces', n);
    this.pushedBytes = new TopNamespaces('custody_namespace_pushed_bytes_total', 'Bytes received for uploads and manifest PUTs, for the busiest namespaces', n);
    this.pulls = new TopNamespaces('custody_namespace_pulls_total', 'Blob and manifest GETs answered, for the busiest namespaces', n);
    this.gauge('custody_http_requests_in_flight', 'Requests being answered now', () => this.inFlight);
  }

  /** The Content-Type of text(). */
  get contentType(): string {
    return this.registry.contentType;
  }

  requestStarted(): void {
    this.inFlight++;
  }

  requestDone(r: Completed): void {
    this.inFlight--;
    const s = this.seriesFor(r.route, r.method, r.status);
    s.requests.value++;
    this.durations.observe(s.duration, r.seconds);
    s.received.value += r.bytesIn;
    s.sent.value += r.bytesOut;
    if (r.transfer === undefined || r.repository === undefined || r.status >= 400) return;
    const namespace = namespaceOf(r.repository);
    if (r.transfer === 'pull') {
      this.pulledBytes.add(namespace, r.bytesOut);
      this.pulls.add(namespace, 1);
    } else this.pushedBytes.add(namespace, r.bytesIn);
  }

  private seriesFor(route: string, method: string, status: number): RequestSeries {
    let methods = this.byRoute.get(route);
    if (!methods) this.byRoute.set(route, (methods = new Map<string, Map<number, RequestSeries>>()));
    let statuses = methods.get(method);
    if (!statuses) methods.set(method, (statuses = new Map<number, RequestSeries>()));
    let s = statuses.get(status);
    if (!s) {
      const labels = [route, method, String(status)];
      s = {
        requests: this.requests.child(...labels),
        duration: this.durations.child(...labels),
        received: this.received.child(...labels),
        sent: this.sent.child(...labels),
      };
      statuses.set(status, s);
    }
    return s;
  }

  /** What the store wrappers (instrument.ts) report to: each call's time by operation, and its failures. */
  readonly probe: CallProbe<{ series: CallSeries; at: number }> = {
    start: (component: Component, operation: string) => ({ series: this.callSeries(component, operation), at: performance.now() }),
    end: (started, failed) => {
      const { series } = started;
      series.family.observe(series.duration, (performance.now() - started.at) / 1000);
      if (failed) series.errors.child(series.operation).value++;
    },
  };

  private callSeries(component: Component, operation: string): CallSeries {
    const map = this.calls[component];
    let s = map.get(operation);
    if (!s) {
      const [family, errors] = component === 'meta' ? [this.metaDurations, this.metaErrors] : [this.storageDurations, this.storageErrors];
      map.set(operation, (s = { family, duration: family.child(operation), errors, operation }));
    }
    return s;
  }

  gauge(name: string, help: string, collect: () => Reading | Promise<Reading>, labelNames: readonly string[] = []): void {
    checkName(name);
    const registry = this.registry;
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        this.reset();
        const reading = await read(collect, labelNames);
        for (const { labels, value } of reading) this.set(labels, value);
      },
    });
  }

  counter(name: string, help: string, collect: () => Reading | Promise<Reading>, labelNames: readonly string[] = []): void {
    checkName(name);
    if (!name.endsWith('_total')) throw new Error(`a counter's name ends in _total: ${name}`);
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        this.reset();
        const reading = await read(collect, labelNames);
        // A counter cannot be set: after the reset, one increment by the total.
        for (const { labels, value } of reading) if (Number.isFinite(value) && value >= 0) this.inc(labels, value);
      },
    });
  }

  /** A family written as text at scrape time, for what prom-client cannot hold (a summary computed elsewhere). */
  private family(format: () => string): void {
    this.families.push(format);
  }

  /** The other parts' figures: registered once, read at each scrape. */
  watch(parts: {
    meta: MetaStore;
    trust?: { backlog: { queued: number; running: number } };
    policy?: { backlog: { decisions: number; inputs: number; dropped: number }; latency: DecisionLatency };
    gc?: { running: boolean };
  }): void {
    const { meta, trust, policy, gc } = parts;
    this.gauge('custody_uploads_in_progress', 'Uploads started and neither finished, cancelled nor expired, on every replica (from the metadata store)', () =>
      meta.countUploads(),
    );
    if (trust) {
      this.gauge('custody_trust_queued', 'Signatures, attestations and SBOMs waiting for verification in this process', () => trust.backlog.queued);
      this.gauge('custody_trust_verifying', 'Verifications running now in this process', () => trust.backlog.running);
    }
    if (policy) {
      this.gauge('custody_policy_decision_log_queued', 'Policy decisions waiting to be written to the decision log', () => policy.backlog.decisions);
      this.gauge('custody_policy_inputs_queued', 'Recorded decision inputs waiting to be written', () => policy.backlog.inputs);
      this.counter(
        'custody_policy_decisions_dropped_total',
        'Policy decisions not logged because the decision log queue was full',
        () => policy.backlog.dropped,
      );
      this.family(() => policySummary(policy.latency));
    }
    if (gc) this.gauge('custody_gc_running', '1 while this process executes a garbage collection', () => (gc.running ? 1 : 0));
  }

  /** What GarbageCollector reports at the end of each run this process executed. */
  readonly gcRunEnded = (report: GcRunReport): void => {
    this.gcRuns.child(report.outcome, report.dryRun ? 'true' : 'false').value++;
    this.durationsOfGc.observe(this.durationsOfGc.child(report.outcome), report.seconds);
    for (const kind of ['manifests', 'links', 'blobs'] as const) this.gcSwept.child(kind).value += report.done[kind];
    this.gcBytes.child().value += report.done.bytes;
  };

  private readonly gcRuns = new CounterFamily('custody_gc_runs_total', 'Garbage collections this process executed, by how they ended', ['outcome', 'dry_run']);
  private readonly durationsOfGc = new HistogramFamily(
    'custody_gc_run_duration_seconds',
    'How long the garbage collections this process executed took',
    ['outcome'],
    [0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600],
  );
  private readonly gcSwept = new CounterFamily(
    'custody_gc_swept_total',
    'Rows garbage collection removed in this process: untagged manifests, blob links, blobs',
    ['kind'],
  );
  private readonly gcBytes = new CounterFamily('custody_gc_swept_bytes_total', 'Bytes of the blobs garbage collection removed in this process', []);

  /** Everything, in the Prometheus text format. */
  async text(): Promise<string> {
    const own = [
      this.requests,
      this.durations,
      this.received,
      this.sent,
      this.metaDurations,
      this.metaErrors,
      this.storageDurations,
      this.storageErrors,
      this.gcRuns,
      this.durationsOfGc,
      this.gcSwept,
      this.gcBytes,
    ].map((f) => f.format());
    const tops = [this.pulledBytes, this.pushedBytes, this.pulls].map((t) => t.format());
    const written = this.families.map((format) => format());
    const [collected, processText] = await Promise.all([this.registry.metrics(), this.process.metrics()]);
    const parts = [...own, ...tops, ...written, collected.trimEnd(), processText.trimEnd()];
    return `${parts.filter((t) => t !== '').join('\n\n')}\n`;
  }
}

function checkName(name: string): void {
  if (!namePattern.test(name)) throw new Error(`metric names start with custody_ and use a-z, 0-9 and _: ${name}`);
}

/** A reading as prom-client takes it; a failing collector reads NaN (for an unlabelled metric) or nothing. */
async function read(collect: () => Reading | Promise<Reading>, labelNames: readonly string[]): Promise<{ labels: Record<string, string>; value: number }[]> {
  let reading: Reading;
  try {
    reading = await collect();
  } catch {
    return labelNames.length === 0 ? [{ labels: {}, value: NaN }] : [];
  }
  return typeof reading === 'number' ? [{ labels: {}, value: reading }] : [...reading];
}

/** The policy engines' evaluation times as a summary: quantiles over the last 4096 evaluations, sum and count since start. */
function policySummary(latency: DecisionLatency): string {
  const quantiles = latency.summary();
  const samples: Sample[] = [];
  for (const [engine, t] of Object.entries(latency.totals())) {
    const q = quantiles[engine];
    if (q)
      for (const [quantile, micros] of [
        ['0.5', q.p50Micros],
        ['0.99', q.p99Micros],
        ['1', q.maxMicros],
      ] as const)
        samples.push({ labels: { engine, quantile }, value: micros / 1e6 });
    samples.push({ suffix: '_sum', labels: { engine }, value: t.sumMicros / 1e6 }, { suffix: '_count', labels: { engine }, value: t.evaluations });
  }
  return formatSamples(
    'custody_policy_evaluation_duration_seconds',
    'Policy evaluations by engine: quantiles over the last 4096 evaluations, sum and count since start',
    'summary',
    samples,
  );
}
