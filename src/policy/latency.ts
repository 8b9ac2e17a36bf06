/**
 * How long decisions take, per engine: the last 4096 evaluations of each, kept in a ring, read
 * as percentiles on demand (GET /api/v1/policy-stats, /metrics, and the benchmark's decision-latency rows).
 * Recording is one store into a typed array, so the pull path pays nothing measurable for it.
 */
const size = 4096; // a power of two

/** Where one engine's evaluation times go: a policy holds its engine's, so recording one looks nothing up. */
export interface LatencyRing {
  add(micros: number): void;
}

class Ring implements LatencyRing {
  private readonly values = new Float64Array(size);
  private next = 0;
  count = 0;
  /** every evaluation's time added up, since start */
  sumMicros = 0;

  add(micros: number): void {
    this.values[this.next] = micros;
    this.next = (this.next + 1) & (size - 1);
    this.count++;
    this.sumMicros += micros;
  }

  percentiles(): { p50Micros: number; p99Micros: number; maxMicros: number } | undefined {
    const n = Math.min(this.count, size);
    if (n === 0) return undefined;
    const sorted = this.values.slice(0, n).sort();
    const at = (q: number) => Math.round((sorted[Math.min(n - 1, Math.floor(q * n))] ?? 0) * 10) / 10;
    return { p50Micros: at(0.5), p99Micros: at(0.99), maxMicros: at(1) };
  }
}

export class DecisionLatency {
  private readonly rings = new Map<string, Ring>();

  record(engine: string, micros: number): void {
    this.ring(engine).add(micros);
  }

  /** The ring an engine's evaluations are recorded in; made when first asked for. */
  ring(engine: string): LatencyRing {
    let ring = this.rings.get(engine);
    if (!ring) this.rings.set(engine, (ring = new Ring()));
    return ring;
  }

  /** Per engine: evaluations since start and their time added up (the metrics' summary reads these with summary()). */
  totals(): Record<string, { evaluations: number; sumMicros: number }> {
    const out: Record<string, { evaluations: number; sumMicros: number }> = {};
    for (const [engine, ring] of this.rings) out[engine] = { evaluations: ring.count, sumMicros: ring.sumMicros };
    return out;
  }

  /** Per engine: evaluations since start, and percentiles over the most recent 4096. */
  summary(): Record<string, { evaluations: number; p50Micros: number; p99Micros: number; maxMicros: number }> {
    const out: Record<string, { evaluations: number; p50Micros: number; p99Micros: number; maxMicros: number }> = {};
    for (const [engine, ring] of this.rings) {
      const p = ring.percentiles();
      if (p) out[engine] = { evaluations: ring.count, ...p };
    }
    return out;
  }
}
