/**
 * The event recorder: usage events are kept in this process's memory and written to the store in
 * batches, off the request path. `record` is O(1): it pushes the event on an array (no await, no
 * I/O, no serialisation); the batch's ids and JSON are made when it is written.
 *
 * A batch is written every `flushMs`, and at once when `batchSize` events wait. One write runs at
 * a time. While the database is behind, at most `maxBuffered` events wait: past that, new ones are
 * dropped and counted, and the count is logged as a warning once per flush, so a slow or absent
 * database costs the registry memory up to that bound and no more. A batch that fails to write
 * is kept (within the bound) and written again with the same ids: the store skips the events it
 * holds already (a first attempt that committed after all), so nothing counts twice.
 *
 * On close (the server's onClose, which `custody serve` reaches on SIGTERM once in-flight requests
 * are done) everything buffered is written before the database closes. A crash or SIGKILL loses
 * what was buffered: up to `flushMs` of events, more while the database was behind.
 *
 * Pruning (prune()) removes events older than the retention, in bounded deletes, and rollups older
 * than theirs; buildApp schedules it once per interval across replicas (src/lifecycle/schedule.ts).
 * The flush timer stays here: what it writes is this process's buffer.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.ts';
import { dayMs, eventId, hourMs, type InsightStore, type UsageEvent } from '../meta/insight.ts';

export interface EventRecorderSettings {
  flushMs: number;
  batchSize: number;
  maxBuffered: number;
  /** events older than this are pruned */
  retentionMs: number;
  /** rollups older than this are pruned */
  rollupRetentionMs: number;
}

/** An event as the sources make it, with `id: ''`: the recorder gives it its id when it is written. */
export type NewEvent = UsageEvent;

export interface RecorderStats {
  /** waiting to be written */
  buffered: number;
  /** written since start */
  written: number;
  /** dropped since start because too many were waiting */
  dropped: number;
}

const pruneChunk = 5000;
/** a batch that failed this often is written event by event, and what still fails is dropped */
const failuresBeforeSplitting = 3;

export class EventRecorder {
  private readonly store: InsightStore;
  private readonly log: FastifyBaseLogger;
  private readonly settings: EventRecorderSettings;
  private readonly now: () => number;
  /** recorded, not yet given to a write */
  private buffer: NewEvent[] = [];
  /** batches whose write failed, with their ids, to be written again, and how often they failed */
  private retries: { events: UsageEvent[]; failures: number }[] = [];
  private retrying = 0;
  private flushing: Promise<void> | undefined;
  private soon: NodeJS.Immediate | undefined;
  private timers: NodeJS.Timeout[] = [];
  private droppedSinceWarning = 0;
  private readonly totals = { written: 0, dropped: 0 };

  constructor(store: InsightStore, log: FastifyBaseLogger, settings: EventRecorderSettings, now: () => number = Date.now) {
    this.store = store;
    this.log = log;
    this.settings = settings;
    this.now = now;
  }

  /** Takes an event. On the request path: an array push, nothing awaited. */
  record(event: NewEvent): void {
    if (this.buffer.length + this.retrying >= this.settings.maxBuffered) {
      this.droppedSinceWarning++;
      this.totals.dropped++;
      return;
    }
    this.buffer.push(event);
    if (this.buffer.length >= this.settings.batchSize && !this.soon && !this.flushing) this.soon = setImmediate(() => void this.flushInBackground());
  }

  stats(): RecorderStats {
    return { buffered: this.buffer.length + this.retrying, written: this.totals.written, dropped: this.totals.dropped };
  }

  start(): void {
    if (this.timers.length > 0) return;
    const flush = setInterval(() => void this.flushInBackground(), this.settings.flushMs);
    flush.unref();
    this.timers.push(flush);
  }

  /** Writes everything buffered now (and full batches of what comes while it writes); one flush at a time. */
  flush(): Promise<void> {
    if (this.soon) clearImmediate(this.soon);
    this.soon = undefined;
    this.flushing ??= this.write().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private flushInBackground(): Promise<void> {
    return this.flush().catch((err: unknown) =>
      this.log.warn({ err, buffered: this.stats().buffered }, 'writing usage events failed; they are kept and written again'),
    );
  }

  private async write(): Promise<void> {
    if (this.droppedSinceWarning > 0) {
      this.log.warn(
        { dropped: this.droppedSinceWarning, maxBuffered: this.settings.maxBuffered },
        'usage events were dropped: the database is behind and insight.events.maxBuffered events are waiting',
      );
      this.droppedSinceWarning = 0;
    }
    // what was buffered when this flush began is written; what comes meanwhile only in full
    // batches (a writer that answers in a fraction of a millisecond, the SQLite thread, would
    // otherwise be sent a stream of batches of a few events, each a commit)
    let owed = this.buffer.length;
    for (;;) {
      const retry = this.retries[0];
      if (retry) {
        if (retry.failures >= failuresBeforeSplitting) await this.writeEach(retry.events);
        else {
          try {
            await this.store.recordEvents(retry.events);
          } catch (err) {
            retry.failures++;
            throw err;
          }
          this.totals.written += retry.events.length;
        }
        this.retries.shift();
        this.retrying -= retry.events.length;
        continue;
      }
      if (this.buffer.length === 0 || (owed <= 0 && this.buffer.length < this.settings.batchSize)) return;
      const taken = this.buffer.length <= this.settings.batchSize ? this.buffer : this.buffer.slice(0, this.settings.batchSize);
      this.buffer = taken === this.buffer ? [] : this.buffer.slice(taken.length);
      owed -= taken.length;
      const batch = withIds(taken);
      try {
        await this.store.recordEvents(batch);
        this.totals.written += batch.length;
      } catch (err) {
        this.retries.push({ events: batch, failures: 1 });
        this.retrying += batch.length;
        throw err;
      }
    }
  }

  /**
   * A batch that failed again and again: each event on its own, so that one the store cannot take
   * costs only itself. Such an event is dropped and logged with what it was. When every event of
   * the batch fails, the store is what fails (the database is down): this throws and the batch
   * waits for the next flush, unless it is one event, which would otherwise block all others.
   */
  private async writeEach(batch: UsageEvent[]): Promise<void> {
    const failed: { event: UsageEvent; err: unknown }[] = [];
    for (const event of batch) {
      try {
        await this.store.recordEvents([event]);
        this.totals.written++;
      } catch (err) {
        failed.push({ event, err });
      }
    }
    // nothing went in: the store is what fails, not the events; they wait for the next flush
    if (failed.length === batch.length && batch.length > 1) throw failed[0]?.err;
    for (const { event, err } of failed) {
      this.totals.dropped++;
      this.log.error({ err, event }, 'a usage event could not be written and is dropped');
    }
  }

  /** Deletes events and rollups past their retention; how many events went. */
  async prune(): Promise<number> {
    const now = this.now();
    let deleted = 0;
    for (;;) {
      const n = await this.store.pruneEvents(now - this.settings.retentionMs, pruneChunk);
      deleted += n;
      if (n < pruneChunk) break;
    }
    // a rollup goes once its whole period is past the retention
    await this.store.pruneRollups('hour', now - this.settings.rollupRetentionMs - hourMs);
    await this.store.pruneRollups('day', now - this.settings.rollupRetentionMs - dayMs);
    return deleted;
  }

  /** Stops the timers and writes what is buffered (the server's onClose, before the database closes). */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    try {
      // a flush under way when stop() came may have left what arrived meanwhile
      for (let i = 0; i < 1000 && (this.buffer.length > 0 || this.retries.length > 0); i++) await this.flush();
      await this.flush();
    } catch (err) {
      this.log.error({ err, lost: this.stats().buffered }, 'usage events could not be written before stopping; they are lost');
    }
  }
}

function withIds(events: NewEvent[]): UsageEvent[] {
  for (const e of events) if (e.id === '') e.id = eventId(e.at);
  return events;
}

/** The recorder's settings from the configuration (insight.events, insight.rollups). */
export function recorderSettings(config: Config): EventRecorderSettings {
  const { events, rollups } = config.insight;
  return {
    flushMs: events.flushMs,
    batchSize: events.batchSize,
    maxBuffered: events.maxBuffered,
    retentionMs: events.retentionDays * dayMs,
    rollupRetentionMs: rollups.retentionDays * dayMs,
  };
}
