/**
 * Metadata and storage calls, timed once for everyone: `instrument(store, 'meta', probe)` returns
 * the store behind a Proxy whose methods tell the probe when each call starts and when its promise
 * settles (the latency histograms and the trace's child spans both hang off this one wrapper; no
 * caller times anything). Sub-stores (`meta.accounts`, `meta.trust`, …) are wrapped the same way
 * when first read, their operations named `accounts.getUser`. A method that returns an async
 * iterable (BlobStore.list) is timed until the iteration ends.
 *
 * The promise a caller gets is the store's own: the probe listens to it beside the caller.
 */

export type Component = 'meta' | 'storage';

/** What an instrumented call reports to; `start` returns what `end` is given back. */
export interface CallProbe<T = unknown> {
  /** A call begins; `operation` is the method's name, prefixed by its sub-store's. */
  start(component: Component, operation: string): T;
  end(started: T, failed: boolean): void;
}

const wrapped = new WeakSet<object>();

export function instrument<S extends object>(store: S, component: Component, probe: CallProbe): S {
  if (wrapped.has(store)) return store;
  const proxy = wrap(store, component, probe, '');
  wrapped.add(proxy);
  return proxy;
}

function wrap<S extends object>(target: S, component: Component, probe: CallProbe, prefix: string): S {
  const cache = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(t, key) {
      const hit = cache.get(key);
      if (hit !== undefined) return hit;
      const value: unknown = Reflect.get(t, key, t);
      if (typeof key === 'symbol' || key === 'constructor' || key === 'then') return value;
      let made: unknown;
      if (typeof value === 'function') made = timed(value as (...args: unknown[]) => unknown, t, component, `${prefix}${key}`, probe);
      else if (typeof value === 'object' && value !== null) made = wrap(value, component, probe, `${prefix}${key}.`);
      else return value;
      cache.set(key, made);
      return made;
    },
  });
}

function timed(fn: (...args: unknown[]) => unknown, self: object, component: Component, operation: string, probe: CallProbe) {
  return function (...args: unknown[]): unknown {
    const started = probe.start(component, operation);
    let result: unknown;
    try {
      result = fn.apply(self, args);
    } catch (err) {
      probe.end(started, true);
      throw err;
    }
    if (result instanceof Promise) {
      result.then(
        () => probe.end(started, false),
        () => probe.end(started, true),
      );
      return result;
    }
    if (typeof result === 'object' && result !== null && Symbol.asyncIterator in result) return iterated(result as AsyncIterable<unknown>, started, probe);
    probe.end(started, false);
    return result;
  };
}

async function* iterated<T>(source: AsyncIterable<T>, started: unknown, probe: CallProbe): AsyncGenerator<T> {
  let failed = false;
  try {
    yield* source;
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    probe.end(started, failed);
  }
}

/** One probe that tells several (the latency histograms and the trace's spans). */
export function probes(...list: CallProbe[]): CallProbe {
  if (list.length === 1) return list[0] as CallProbe;
  return {
    start: (component, operation) => list.map((p) => p.start(component, operation)),
    end: (started, failed) => list.forEach((p, i) => p.end((started as unknown[])[i], failed)),
  };
}
