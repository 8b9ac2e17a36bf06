/** BoundedMap: at most `limit` entries; one not used lately goes first (second chance). */
import { expect, it } from 'vitest';
import { BoundedMap } from '../src/bounded-map.ts';

it('keeps at most its limit, dropping the least recently used', () => {
  const m = new BoundedMap<string, number>(3);
  m.set('a', 1).set('b', 2).set('c', 3);
  expect(m.get('a')).toBe(1); // a is now the most recently used
  m.set('d', 4);
  expect(m.size).toBe(3);
  expect(m.get('b')).toBeUndefined();
  expect([m.get('a'), m.get('c'), m.get('d')]).toEqual([1, 3, 4]);
  m.set('c', 30); // replacing a key does not evict another
  expect(m.size).toBe(3);
  expect(m.get('c')).toBe(30);
  expect(m.delete('a')).toBe(true);
  m.clear();
  expect(m.size).toBe(0);
  expect(() => new BoundedMap(0)).toThrow(/at least 1/);
});

it('stays bounded under a flood of distinct keys', () => {
  const m = new BoundedMap<number, number>(100);
  for (let i = 0; i < 100_000; i++) m.set(i, i);
  expect(m.size).toBe(100);
  expect(m.get(99_999)).toBe(99_999);
  expect(m.get(0)).toBeUndefined();
});

it('keeps entries in use through a stream of keys read once (second chance)', () => {
  const m = new BoundedMap<string, number>(10);
  m.set('hot', 1);
  for (let i = 0; i < 1000; i++) {
    expect(m.get('hot')).toBe(1); // read between every new key, as a hot cache entry is
    m.set(`cold-${i}`, i);
  }
  expect(m.size).toBe(10);
  expect(m.get('hot')).toBe(1);
  expect(m.get('cold-0')).toBeUndefined();
});
