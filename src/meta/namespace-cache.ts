/**
 * A namespace's quota settings, kept in memory so that a blob or manifest PUT on PostgreSQL
 * makes no round trip to learn that its namespace has no quota (the usual case: one primary-key
 * read of the eight a 4 KiB push made). Correct only while a change feed tells it of every change
 * to `namespaces` (src/meta/kysely/change-feed.ts; migration 0018-namespace-notify), and told at
 * once of this process's own writes:
 *
 * - A change drops the namespace. A read that an invalidation (of any namespace) overtook caches
 *   nothing: it may have read the row before the change.
 * - Unlike the manifest cache it keeps "no such row" too: the trigger fires on insert as well.
 * - While the feed is down nothing is cached or served from here; back, it starts empty.
 * - Entries expire after `ttlMs`, a bound on staleness should the feed fail unnoticed.
 */
import { BoundedMap } from '../bounded-map.ts';

export interface NamespaceCacheOptions {
  /** namespaces held at most (default 10 000) */
  maxNamespaces?: number;
  /** how long an entry is served without the feed having confirmed it (default 30 s) */
  ttlMs?: number;
  now?: () => number;
}

export class NamespaceCache<T> {
  private readonly entries: BoundedMap<string, { value: T; until: number }>;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private live = false;
  /** counts invalidations, suspends and resumes: a read that spans one caches nothing */
  private epoch = 0;

  constructor(options: NamespaceCacheOptions = {}) {
    this.entries = new BoundedMap(options.maxNamespaces ?? 10_000);
    this.ttlMs = options.ttlMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** The namespace's value from memory, else from `load`, remembered when safe. */
  async read(namespace: string, load: () => Promise<T>): Promise<T> {
    if (!this.live) return load();
    const hit = this.entries.get(namespace);
    if (hit && hit.until > this.now()) return hit.value;
    const epoch = this.epoch;
    const value = await load();
    if (this.epoch === epoch) this.entries.set(namespace, { value, until: this.now() + this.ttlMs });
    return value;
  }

  /** Forgets a namespace: the feed said it changed, or this process changed it. */
  invalidate(namespace: string): void {
    this.epoch++;
    this.entries.delete(namespace);
  }

  /** The feed is down: serve nothing from memory until it is back. */
  suspend(): void {
    this.live = false;
    this.epoch++;
    this.entries.clear();
  }

  /** The feed listens again: start from empty. */
  resume(): void {
    this.suspend();
    this.live = true;
  }
}
