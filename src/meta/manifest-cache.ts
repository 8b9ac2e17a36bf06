/**
 * What a manifest GET reads (a tag's or digest's manifest: digest, media type, bytes), kept in
 * memory so that a hot GET on PostgreSQL makes no round trip. It is correct only while a change
 * feed tells it of every change (src/meta/kysely/change-feed.ts: PostgreSQL LISTEN/NOTIFY, fed
 * by triggers on `tags` and `manifests`, so every writer on every replica is covered):
 *
 * - A change to a repository drops that repository's bucket. A read that started before the drop
 *   holds the old bucket, and what it found is not cached: it may predate the change.
 * - While the feed is down nothing is cached or served from here (`suspend`); when it is back
 *   (`resume`) the cache starts empty, since changes in between went unseen.
 * - Misses are not cached: a tag pushed on another replica is found at once.
 * - Entries also expire after `ttlMs`, a bound on staleness should the feed fail unnoticed.
 *
 * Bounded by bytes and by repositories: past either, the oldest buckets go.
 */
import type { ManifestRecord } from './metastore.ts';

export interface ManifestCacheOptions {
  /** manifest bytes held at most */
  maxBytes: number;
  /** repositories held at most */
  maxRepositories?: number;
  /** how long an entry is served without the feed having confirmed it (default 30 s) */
  ttlMs?: number;
  now?: () => number;
}

interface Bucket {
  /** by tag or digest */
  entries: Map<string, { record: ManifestRecord; until: number }>;
  bytes: number;
}

export class ManifestCache {
  private readonly maxBytes: number;
  private readonly maxRepositories: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** in the order the buckets were made: the first is the oldest */
  private readonly buckets = new Map<string, Bucket>();
  private bytes = 0;
  private live = false;
  /** counts suspends and resumes: a read that spans one caches nothing */
  private epoch = 0;
  hits = 0;
  misses = 0;

  constructor(options: ManifestCacheOptions) {
    this.maxBytes = options.maxBytes;
    this.maxRepositories = options.maxRepositories ?? 10_000;
    this.ttlMs = options.ttlMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** The manifest behind `ref` (a tag or digest) from memory, else from `load`, remembered when safe. */
  async read(repo: string, ref: string, load: () => Promise<ManifestRecord | undefined>): Promise<ManifestRecord | undefined> {
    if (!this.live) return load();
    let bucket = this.buckets.get(repo);
    const hit = bucket?.entries.get(ref);
    if (hit && hit.until > this.now()) {
      this.hits++;
      return hit.record;
    }
    this.misses++;
    if (!bucket) {
      this.buckets.set(repo, (bucket = { entries: new Map(), bytes: 0 }));
      this.evict(bucket);
    }
    const epoch = this.epoch;
    const record = await load();
    if (record && this.epoch === epoch && this.buckets.get(repo) === bucket) this.remember(bucket, ref, record);
    return record;
  }

  /** Forgets a repository's manifests: the feed said they changed, or this process changed them. */
  invalidate(repo: string): void {
    const bucket = this.buckets.get(repo);
    if (!bucket) return;
    this.buckets.delete(repo);
    this.bytes -= bucket.bytes;
  }

  /** The feed is down: serve nothing from memory until it is back. */
  suspend(): void {
    this.live = false;
    this.epoch++;
    this.buckets.clear();
    this.bytes = 0;
  }

  /** The feed listens again: start from empty. */
  resume(): void {
    this.suspend();
    this.live = true;
  }

  get size(): { repositories: number; bytes: number } {
    return { repositories: this.buckets.size, bytes: this.bytes };
  }

  private remember(bucket: Bucket, ref: string, record: ManifestRecord): void {
    const size = record.content.byteLength;
    if (size > this.maxBytes / 8) return; // one huge index would push out everything else
    const old = bucket.entries.get(ref);
    if (old) {
      bucket.bytes -= old.record.content.byteLength;
      this.bytes -= old.record.content.byteLength;
    }
    bucket.entries.set(ref, { record, until: this.now() + this.ttlMs });
    bucket.bytes += size;
    this.bytes += size;
    this.evict(bucket);
  }

  /** The oldest buckets go until both bounds hold; then, if need be, the oldest entries of `current`. */
  private evict(current: Bucket): void {
    const within = () => this.bytes <= this.maxBytes && this.buckets.size <= this.maxRepositories;
    for (const [repo, bucket] of this.buckets) {
      if (within()) return;
      if (bucket !== current) this.invalidate(repo);
    }
    for (const [ref, entry] of current.entries) {
      if (this.bytes <= this.maxBytes) return;
      current.entries.delete(ref);
      current.bytes -= entry.record.content.byteLength;
      this.bytes -= entry.record.content.byteLength;
    }
  }
}
