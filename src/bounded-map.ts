/**
 * A Map that keeps at most `limit` entries, dropping the least recently used one when a new key
 * would pass the limit. For caches whose keys come from clients (credentials, tokens, names):
 * they must stay bounded, and dropping everything at once, as a plain `clear()` at N would, makes
 * every hot entry miss together. A leaf: no imports.
 */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();
  private readonly limit: number;

  constructor(limit: number) {
    if (!(limit >= 1)) throw new Error(`a BoundedMap needs a limit of at least 1, not ${limit}`);
    this.limit = limit;
  }

  get size(): number {
    return this.map.size;
  }

  /** The value, which also becomes the most recently used. */
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      // a Map iterates in insertion order: re-inserting moves the key to the young end
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): this {
    this.map.delete(key);
    if (this.map.size >= this.limit) this.map.delete(this.map.keys().next().value as K);
    this.map.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}
