/**
 * A Map that keeps at most `limit` entries, dropping one that has not been used lately when a new
 * key would pass the limit. For caches whose keys come from clients (credentials, tokens, names):
 * they must stay bounded, and dropping everything at once, as a plain `clear()` at N would, makes
 * every hot entry miss together. A leaf: no imports.
 *
 * Eviction is "second chance" (CLOCK), an approximation of least-recently-used: a read only marks
 * its entry used, and the eviction that meets a used entry at the old end moves it to the young
 * end instead of dropping it. A true LRU re-inserts the key on every read, and that Map delete and
 * set was a fifth of a policy decision's time on the pull path.
 */
interface Entry<V> {
  value: V;
  used: boolean;
}

export class BoundedMap<K, V> {
  private readonly map = new Map<K, Entry<V>>();
  private readonly limit: number;

  constructor(limit: number) {
    if (!(limit >= 1)) throw new Error(`a BoundedMap needs a limit of at least 1, not ${limit}`);
    this.limit = limit;
  }

  get size(): number {
    return this.map.size;
  }

  /** The value, which is marked used: kept over unused ones at the next eviction. */
  get(key: K): V | undefined {
    const entry = this.map.get(key);
    if (!entry) return undefined;
    entry.used = true;
    return entry.value;
  }

  set(key: K, value: V): this {
    const entry = this.map.get(key);
    if (entry) {
      entry.value = value;
      entry.used = true;
      return this;
    }
    // Each pass over a used entry clears its mark, so this ends within one round of the map.
    while (this.map.size >= this.limit) {
      const [oldestKey, oldest] = this.map.entries().next().value as [K, Entry<V>];
      this.map.delete(oldestKey);
      if (!oldest.used) break;
      oldest.used = false;
      this.map.set(oldestKey, oldest);
    }
    this.map.set(key, { value, used: false });
    return this;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}
