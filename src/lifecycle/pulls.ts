/**
 * Pull tracking for retention's `pulledWithin`: each manifest GET or HEAD adds one to a count in
 * this process's memory (a map update, nothing awaited), and once a minute the counts go to the
 * store in batches, one row per artifact. So an artifact costs at most one write per minute per
 * replica however often it is pulled, and replicas add up: the store adds counts and keeps the
 * later time (src/meta/kysely/retention.ts, recordPulls). Counts of the last minute are lost if
 * the process is killed; a clean stop writes them.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { PullCount, PullCounts } from '../meta/retention.ts';

export interface PullRecorderOptions {
  /** how often the counts are written (default: a minute) */
  flushMs?: number;
  /** the most artifacts held between writes; pulls of others are dropped (and counted) until the next write */
  maxPending?: number;
  now?: () => number;
}

const batch = 500;

export class PullRecorder {
  private readonly store: PullCounts;
  private readonly log: FastifyBaseLogger;
  private readonly flushMs: number;
  private readonly maxPending: number;
  private readonly now: () => number;
  /** by repository, then digest: no key is built per pull (a concatenated key cost 4x the lookups) */
  private pending = new Map<string, Map<string, PullCount>>();
  private size = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** pulls not counted because the map was full */
  dropped = 0;

  constructor(store: PullCounts, log: FastifyBaseLogger, options: PullRecorderOptions = {}) {
    this.store = store;
    this.log = log;
    this.flushMs = options.flushMs ?? 60_000;
    this.maxPending = options.maxPending ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  /** Counts a pull. On the request path: a map update, no await, no I/O. */
  record(repo: string, digest: string): void {
    const at = this.now();
    let inRepo = this.pending.get(repo);
    const seen = inRepo?.get(digest);
    if (seen) {
      seen.count++;
      if (at > seen.lastPulledAt) seen.lastPulledAt = at;
      return;
    }
    if (this.size >= this.maxPending) {
      this.dropped++;
      return;
    }
    if (!inRepo) this.pending.set(repo, (inRepo = new Map<string, PullCount>()));
    inRepo.set(digest, { repo, digest, lastPulledAt: at, count: 1 });
    this.size++;
  }

  private add(p: PullCount): void {
    let inRepo = this.pending.get(p.repo);
    if (!inRepo) this.pending.set(p.repo, (inRepo = new Map<string, PullCount>()));
    const seen = inRepo.get(p.digest);
    if (seen) {
      seen.count += p.count;
      seen.lastPulledAt = Math.max(seen.lastPulledAt, p.lastPulledAt);
    } else {
      inRepo.set(p.digest, p);
      this.size++;
    }
  }

  /** A timer of this process (not a scheduled job): what it writes is this replica's own counts. */
  start(): void {
    this.timer ??= setInterval(() => void this.flush().catch((err: unknown) => this.log.warn({ err }, 'writing pull counts failed')), this.flushMs);
    this.timer.unref();
  }

  /** Writes what was counted since the last write (one at a time; counts that fail to write are added back). */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (this.dropped > 0) {
      this.log.warn({ dropped: this.dropped }, 'pulls of too many distinct artifacts in a minute: some were not counted');
      this.dropped = 0;
    }
    const taken = [...this.pending.values()].flatMap((inRepo) => [...inRepo.values()]);
    this.pending = new Map();
    this.size = 0;
    for (let i = 0; i < taken.length; i += batch) {
      const chunk = taken.slice(i, i + batch);
      try {
        await this.store.recordPulls(chunk);
      } catch (err) {
        // keep what was not written for the next time, merged with what came in meanwhile
        for (const p of taken.slice(i)) this.add(p);
        throw err;
      }
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush().catch((err: unknown) => this.log.warn({ err }, 'writing pull counts failed'));
  }
}
