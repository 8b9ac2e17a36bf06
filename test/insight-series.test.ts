/**
 * The pieces under /metrics, without a server: the text format of the hot-path series, the top-N
 * namespace counter (bounded, every series only grows, rates add up), the store wrapper (each
 * call timed once, by operation, failures and async iteration included), and the registration
 * other parts use.
 */
import { describe, expect, it } from 'vitest';
import { instrument, probes, type CallProbe } from '../src/insight/instrument.ts';
import { Metrics } from '../src/insight/metrics.ts';
import { CounterFamily, HistogramFamily } from '../src/insight/series.ts';
import { TopNamespaces } from '../src/insight/top.ts';

describe('series', () => {
  it('writes cumulative histogram buckets, sum and count', () => {
    const h = new HistogramFamily('custody_x_seconds', 'x', ['op'], [0.1, 1]);
    const s = h.child('get');
    for (const v of [0.05, 0.1, 0.5, 2]) h.observe(s, v);
    expect(h.format().split('\n')).toEqual([
      '# HELP custody_x_seconds x',
      '# TYPE custody_x_seconds histogram',
      'custody_x_seconds_bucket{op="get",le="0.1"} 2',
      'custody_x_seconds_bucket{op="get",le="1"} 3',
      'custody_x_seconds_bucket{op="get",le="+Inf"} 4',
      'custody_x_seconds_sum{op="get"} 2.65',
      'custody_x_seconds_count{op="get"} 4',
    ]);
  });

  it('escapes label values and help, and writes nothing for a family without series', () => {
    const c = new CounterFamily('custody_y_total', 'a \\ b\nc', ['v']);
    expect(c.format()).toBe('');
    c.child('say "hi"\\\n').value += 2;
    expect(c.format()).toBe('# HELP custody_y_total a \\\\ b\\nc\n# TYPE custody_y_total counter\ncustody_y_total{v="say \\"hi\\"\\\\\\n"} 2');
    expect(c.child('say "hi"\\\n')).toBe(c.child('say "hi"\\\n'));
  });
});

describe('top namespaces', () => {
  const values = (top: TopNamespaces) =>
    Object.fromEntries(
      top
        .format()
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .map((l) => {
          const m = /namespace="([^"]+)"\} (\d+)/.exec(l);
          return [m?.[1], Number(m?.[2])];
        }),
    ) as Record<string, number>;

  it('with N namespaces or fewer, is exact and other is 0', () => {
    const top = new TopNamespaces('custody_ns_total', 'h', 3);
    top.add('a', 5);
    top.add('b', 1);
    expect(values(top)).toEqual({ a: 5, b: 1, other: 0 });
  });

  it('gives 100 namespaces at most N+1 series, each only growing, and their increases add up to what was added', () => {
    const n = 20;
    const top = new TopNamespaces('custody_ns_total', 'h', n);
    let previous: Record<string, number> = {};
    let added = 0;
    let increased = 0;
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 100; i++) {
        // the busiest namespaces change from round to round
        const value = ((i * 7 + round * 13) % 100) + 1;
        top.add(`ns${i}`, value);
        added += value;
      }
      const now = values(top);
      expect(Object.keys(now).length).toBeLessThanOrEqual(n + 1);
      for (const [ns, v] of Object.entries(now)) {
        // as Prometheus counts an increase: none for a series' first sample
        if (previous[ns] !== undefined) {
          expect(v, ns).toBeGreaterThanOrEqual(previous[ns]);
          increased += v - previous[ns];
        }
      }
      if (round === 0) increased += Object.values(now).reduce((a, b) => a + b, 0);
      previous = now;
    }
    // what went to a namespace while it was not shown went to other; rounds where a series is new count nothing for it
    expect(increased).toBeLessThanOrEqual(added);
    expect(increased).toBeGreaterThan(added * 0.5);
  });

  it('stops tracking new names past its bound: they count in other only', () => {
    const top = new TopNamespaces('custody_ns_total', 'h', 2, 3);
    for (const ns of ['a', 'b', 'c', 'd', 'e']) top.add(ns, 1);
    const v = values(top);
    expect(Object.keys(v).length).toBe(3);
    expect(v.other).toBe(3);
  });
});

describe('instrument', () => {
  const recorded: { op: string; failed: boolean }[] = [];
  const probe: CallProbe<string> = { start: (_c, op) => op, end: (op, failed) => recorded.push({ op, failed }) };

  class Store {
    private readonly secret = 42;
    readonly sub = { lookup: async (x: number) => x * 2 };
    async get(): Promise<number> {
      return this.secret;
    }
    async fail(): Promise<void> {
      throw new Error('boom');
    }
    async *list(): AsyncGenerator<number> {
      yield 1;
      yield 2;
    }
  }

  it('times each call once, by operation, with its own this; failures and iterations included', async () => {
    recorded.length = 0;
    const store = instrument(new Store(), 'meta', probe);
    expect(await store.get()).toBe(42);
    expect(await store.sub.lookup(2)).toBe(4);
    await expect(store.fail()).rejects.toThrow('boom');
    const items: number[] = [];
    for await (const i of store.list()) items.push(i);
    expect(items).toEqual([1, 2]);
    expect(recorded).toEqual([
      { op: 'get', failed: false },
      { op: 'sub.lookup', failed: false },
      { op: 'fail', failed: true },
      { op: 'list', failed: false },
    ]);
    // the wrapper is made once per method, not on every read
    expect(Reflect.get(store, 'get')).toBe(Reflect.get(store, 'get'));
    expect(instrument(store, 'meta', probe)).toBe(store);
  });

  it('tells several probes', async () => {
    const seen: string[] = [];
    const a: CallProbe = { start: () => 'a', end: (x) => seen.push(String(x)) };
    const b: CallProbe = { start: () => 'b', end: (x) => seen.push(String(x)) };
    await instrument(new Store(), 'storage', probes(a, b)).get();
    expect(seen).toEqual(['a', 'b']);
  });
});

describe('registration', () => {
  it('adds gauges and counters read at scrape time; a failing one reads NaN', async () => {
    const m = new Metrics({ topNamespaces: 20 });
    let queued = 3;
    m.gauge('custody_test_queued', 'waiting', () => queued);
    m.counter('custody_test_sent_total', 'sent', () => [{ labels: { outcome: 'ok' }, value: 7 }], ['outcome']);
    m.gauge('custody_test_broken', 'broken', () => {
      throw new Error('down');
    });
    expect(() => m.gauge('webhook_queue', 'no prefix', () => 1)).toThrow(/custody_/);
    expect(() => m.counter('custody_test_sent', 'no _total', () => 1)).toThrow(/_total/);
    let text = await m.text();
    expect(text).toContain('custody_test_queued 3');
    expect(text).toContain('custody_test_sent_total{outcome="ok"} 7');
    // prom-client writes NaN as `Nan`, which Prometheus reads as NaN (its parser ignores the case)
    expect(text).toMatch(/^custody_test_broken nan$/im);
    queued = 0;
    text = await m.text();
    expect(text).toContain('custody_test_queued 0');
  });
});
