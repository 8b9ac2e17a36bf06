/** The namespace cache alone (src/meta/namespace-cache.ts), with a fake clock and loads it controls. */
import { describe, expect, it } from 'vitest';
import { NamespaceCache } from '../../src/meta/namespace-cache.ts';

function counted<T>(value: T) {
  const load = async () => {
    load.calls++;
    return value;
  };
  load.calls = 0;
  return load;
}

describe('namespace cache', () => {
  it('loads every time until the feed listens, then serves from memory, "no row" too', async () => {
    const cache = new NamespaceCache<number | undefined>();
    const load = counted<number | undefined>(undefined);
    await cache.read('ns', load);
    await cache.read('ns', load);
    expect(load.calls).toBe(2);
    cache.resume();
    expect(await cache.read('ns', load)).toBeUndefined();
    expect(await cache.read('ns', load)).toBeUndefined();
    expect(load.calls).toBe(3);
  });

  it('forgets a namespace it is told of, and everything when the feed goes down', async () => {
    const cache = new NamespaceCache<number>();
    cache.resume();
    const load = counted(1);
    await cache.read('a', load);
    await cache.read('b', load);
    cache.invalidate('a');
    await cache.read('a', load);
    await cache.read('b', load);
    expect(load.calls).toBe(3);
    cache.suspend();
    await cache.read('b', load);
    await cache.read('b', load);
    expect(load.calls).toBe(5);
  });

  it('caches nothing from a read that an invalidation overtook: it may have read the row before the change', async () => {
    const cache = new NamespaceCache<string>();
    cache.resume();
    let release = () => {};
    const slow = cache.read('ns', () => new Promise<string>((resolve) => (release = () => resolve('before'))));
    cache.invalidate('ns');
    release();
    expect(await slow).toBe('before');
    expect(await cache.read('ns', async () => 'after')).toBe('after');
  });

  it('serves an entry for ttlMs only', async () => {
    let now = 0;
    const cache = new NamespaceCache<number>({ ttlMs: 1000, now: () => now });
    cache.resume();
    const load = counted(7);
    await cache.read('ns', load);
    now = 999;
    await cache.read('ns', load);
    now = 1000;
    await cache.read('ns', load);
    expect(load.calls).toBe(2);
  });
});
