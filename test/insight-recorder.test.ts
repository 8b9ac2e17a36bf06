/** The event recorder against a store the test controls: batches, the bound, retries, stop, pruning. */
import { describe, expect, it } from 'vitest';
import type { FastifyBaseLogger } from 'fastify';
import { EventRecorder, type EventRecorderSettings } from '../src/insight/events.ts';
import type { InsightStore, UsageEvent } from '../src/meta/insight.ts';

function event(at: number): UsageEvent {
  return {
    id: '',
    at,
    type: 'pull',
    object: 'blob',
    namespace: 'team',
    repository: 'team/app',
    digest: '',
    tag: '',
    mediaType: '',
    actor: 'anonymous',
    actorKind: 'anonymous',
    tokenId: '',
    bytes: 1,
    userAgent: '',
    source: '127.0.0.1',
    durationMicros: 1,
    status: 200,
    result: 'ok',
    detail: {},
  };
}

/** A store that keeps what it is given, by id (once), and fails (or hangs) when told to. */
class FakeStore implements Pick<InsightStore, 'recordEvents' | 'pruneEvents' | 'pruneRollups'> {
  readonly rows = new Map<string, UsageEvent>();
  readonly batches: number[] = [];
  failNext: Error | undefined;
  /** commits, then reports a failure: the write went through but the caller cannot know */
  commitThenFail = false;
  hold: Promise<void> | undefined;
  /** a value the store cannot take: any batch holding an event from this source fails */
  refuseSource: string | undefined;
  pruned: number[] = [];
  oldRows = 0;

  async recordEvents(events: UsageEvent[]): Promise<void> {
    if (this.hold) await this.hold;
    this.batches.push(events.length);
    if (events.some((e) => e.source === this.refuseSource)) throw new Error('Provided value cannot be bound to SQLite parameter 15.');
    if (this.failNext) {
      const err = this.failNext;
      this.failNext = undefined;
      throw err;
    }
    // as the store does: an id it holds already is skipped
    for (const e of events) if (!this.rows.has(e.id)) this.rows.set(e.id, e);
    if (this.commitThenFail) {
      this.commitThenFail = false;
      throw new Error('connection lost during commit');
    }
  }

  async pruneEvents(_before: number, limit: number): Promise<number> {
    const n = Math.min(limit, this.oldRows);
    this.oldRows -= n;
    this.pruned.push(n);
    return n;
  }

  async pruneRollups(): Promise<number> {
    return 0;
  }
}

function logger(): { log: FastifyBaseLogger; warnings: { obj: Record<string, unknown>; msg: string }[] } {
  const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = {
    warn: (obj: Record<string, unknown>, msg: string) => warnings.push({ obj, msg }),
    error: (obj: Record<string, unknown>, msg: string) => warnings.push({ obj, msg }),
  } as unknown as FastifyBaseLogger;
  return { log, warnings };
}

const settings: EventRecorderSettings = { flushMs: 60_000, batchSize: 10, maxBuffered: 25, retentionMs: 1000, rollupRetentionMs: 1000 };

function recorder(store: FakeStore, extra: Partial<EventRecorderSettings> = {}) {
  const { log, warnings } = logger();
  return { r: new EventRecorder(store as unknown as InsightStore, log, { ...settings, ...extra }), warnings };
}

describe('EventRecorder', () => {
  it('writes a batch as soon as batchSize events wait, in batches of batchSize, with ids in the order recorded', async () => {
    const store = new FakeStore();
    const { r } = recorder(store);
    r.start();
    for (let i = 0; i < 9; i++) r.record(event(1000));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(store.rows.size).toBe(0); // below batchSize, and the timer is a minute away
    for (let i = 0; i < 14; i++) r.record(event(1000 + i));
    // the flush that the tenth started writes everything waiting, a batch at a time
    await expect.poll(() => store.rows.size).toBe(23);
    expect(store.batches).toEqual([10, 10, 3]);
    await r.stop();
    const ids = [...store.rows.keys()];
    expect(ids).toEqual([...ids].sort());
    expect(ids[0]).toMatch(/^0000000001000-[0-9a-f]{16}$/);
    expect(r.stats()).toEqual({ buffered: 0, written: 23, dropped: 0 });
  });

  it('holds at most maxBuffered while the database is behind, drops the rest and says how many', async () => {
    const store = new FakeStore();
    let release = () => {};
    store.hold = new Promise((resolve) => (release = resolve));
    const { r, warnings } = recorder(store);
    for (let i = 0; i < 40; i++) r.record(event(i));
    expect(r.stats()).toEqual({ buffered: 25, written: 0, dropped: 15 });
    release();
    store.hold = undefined;
    await r.stop();
    expect(store.rows.size).toBe(25);
    expect(warnings).toEqual([{ obj: { dropped: 15, maxBuffered: 25 }, msg: expect.stringMatching(/dropped: the database is behind/) }]);
  });

  it('writes a failed batch again with the same ids, and a batch that had in fact committed once', async () => {
    const store = new FakeStore();
    const { r } = recorder(store);
    for (let i = 0; i < 5; i++) r.record(event(i));
    store.failNext = new Error('database is down');
    await expect(r.flush()).rejects.toThrow('database is down');
    expect(r.stats().buffered).toBe(5);
    await r.flush();
    expect(store.rows.size).toBe(5);

    for (let i = 0; i < 3; i++) r.record(event(100 + i));
    store.commitThenFail = true;
    await expect(r.flush()).rejects.toThrow('connection lost');
    expect(store.rows.size).toBe(8);
    r.record(event(200));
    await r.flush();
    // the retry wrote nothing new; the new event went in; nothing twice
    expect(store.rows.size).toBe(9);
    expect(r.stats()).toEqual({ buffered: 0, written: 9, dropped: 0 });
  });

  it('drops an event the store cannot take after a few tries, and holds back none of the others', async () => {
    const store = new FakeStore();
    store.refuseSource = 'bad';
    const { r, warnings } = recorder(store);
    for (let i = 0; i < 4; i++) r.record(event(i));
    r.record({ ...event(4), source: 'bad' });
    for (let i = 5; i < 8; i++) r.record(event(i));
    for (let attempt = 0; attempt < 3; attempt++) await expect(r.flush()).rejects.toThrow('cannot be bound');
    expect(store.rows.size).toBe(0);
    // the fourth try writes the batch event by event
    await r.flush();
    expect([...store.rows.values()].map((e) => e.at)).toEqual([0, 1, 2, 3, 5, 6, 7]);
    expect(warnings).toEqual([
      {
        obj: expect.objectContaining({ event: expect.objectContaining({ at: 4, source: 'bad' }) }),
        msg: expect.stringMatching(/could not be written and is dropped/),
      },
    ]);
    // what comes afterwards flows as before
    for (let i = 10; i < 13; i++) r.record(event(i));
    await r.flush();
    expect(store.rows.size).toBe(10);
    expect(r.stats()).toEqual({ buffered: 0, written: 10, dropped: 1 });
  });

  it('keeps a batch of which no event could be written: the database, not the events, is what fails', async () => {
    const store = new FakeStore();
    const { r } = recorder(store);
    for (let i = 0; i < 3; i++) r.record(event(i));
    store.refuseSource = '127.0.0.1';
    for (let attempt = 0; attempt < 5; attempt++) await expect(r.flush()).rejects.toThrow('cannot be bound');
    expect(r.stats()).toEqual({ buffered: 3, written: 0, dropped: 0 });
    store.refuseSource = undefined;
    await r.flush();
    expect(r.stats()).toEqual({ buffered: 0, written: 3, dropped: 0 });
  });

  it('says on stop how many events it could not write', async () => {
    const store = new FakeStore();
    const { r, warnings } = recorder(store);
    r.record(event(1));
    store.failNext = new Error('database is down');
    await r.stop();
    expect(warnings).toEqual([{ obj: expect.objectContaining({ lost: 1 }), msg: expect.stringMatching(/lost/) }]);
  });

  it('prunes in bounded deletes until none is left', async () => {
    const store = new FakeStore();
    const { r } = recorder(store);
    store.oldRows = 12_345;
    expect(await r.prune()).toBe(12_345);
    expect(store.pruned).toEqual([5000, 5000, 2345]);
  });
});
