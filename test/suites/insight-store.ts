/** The InsightStore suite: events, their pages, rollups and pruning; run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import { dayMs, eventId, hourMs, type UsageEvent } from '../../src/meta/insight.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';

const t0 = Date.UTC(2025, 0, 15, 10, 0, 0);

function event(at: number, extra: Partial<UsageEvent> = {}): UsageEvent {
  return {
    id: eventId(at),
    at,
    type: 'pull',
    object: 'manifest',
    namespace: 'team',
    repository: 'team/app',
    digest: `sha256:${'a'.repeat(64)}`,
    tag: 'v1',
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    actor: 'alice',
    actorKind: 'user',
    tokenId: '',
    bytes: 100,
    userAgent: 'skopeo/1.13',
    source: '127.0.0.1',
    durationMicros: 1234,
    status: 200,
    result: 'ok',
    detail: {},
    ...extra,
  };
}

export function insightStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`InsightStore: ${name}`, () => {
    it('stores every field of an event as given, and reads pages in (at, id) order after a cursor', async () => {
      const meta = await open();
      const store = meta.insight;
      const first = event(t0, { detail: { policy: 'p', version: 2, nested: { a: [1, 2] } }, tokenId: 'tok1', actorKind: 'robot' });
      const events = [first, ...Array.from({ length: 9 }, (_, i) => event(t0 + Math.floor(i / 3), { bytes: i, type: i % 2 ? 'push' : 'pull' }))];
      await store.recordEvents(events);
      const all = await store.eventsAfter(undefined, 100);
      expect(all).toHaveLength(10);
      expect(all[0]).toEqual(first);
      const order = [...events].sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1)).map((e) => e.id);
      expect(all.map((e) => e.id)).toEqual(order);
      // ids made in one process sort in the order they were made, within a millisecond too
      expect(order).toEqual(events.map((e) => e.id).sort());

      const seen: string[] = [];
      let cursor: { at: number; id: string } | undefined;
      for (;;) {
        const page = await store.eventsAfter(cursor, 3);
        if (page.length === 0) break;
        seen.push(...page.map((e) => e.id));
        const last = page.at(-1)!;
        cursor = { at: last.at, id: last.id };
      }
      expect(seen).toEqual(order);
      expect((await store.eventsAfter(undefined, 100, { types: ['push'] })).map((e) => e.type)).toEqual(Array(4).fill('push'));
      expect(await store.eventsAfter(undefined, 100, { until: t0 + 1 })).toHaveLength(4);
      await meta.close();
    });

    it('skips events it holds already and counts them once: a batch written again adds nothing', async () => {
      const meta = await open();
      const store = meta.insight;
      const a = event(t0, { bytes: 5 });
      const batch = [a, ...Array.from({ length: 300 }, (_, i) => event(t0 + i, { bytes: 1 }))];
      await store.recordEvents(batch);
      await store.recordEvents(batch.map((e) => ({ ...e })));
      // one written before, one new
      await store.recordEvents([{ ...a }, event(t0 + 1, { bytes: 100 })]);
      expect(await store.eventsAfter(undefined, 1000)).toHaveLength(302);
      expect((await store.rollups({ period: 'hour' })).map((r) => [r.count, r.bytes])).toEqual([[302, 405]]);
      expect((await store.rollups({ period: 'day' })).map((r) => [r.count, r.bytes])).toEqual([[302, 405]]);
      await store.recordEvents([]);
      await meta.close();
    });

    it('stores a field the caller left undefined as empty, rather than failing the batch', async () => {
      const meta = await open();
      // req.ip is undefined once the client has gone: such an event once failed every batch it was in
      const odd = { ...event(t0), source: undefined, userAgent: undefined, bytes: Number.NaN } as unknown as UsageEvent;
      await meta.insight.recordEvents([event(t0 - 1), odd]);
      const [, stored] = await meta.insight.eventsAfter(undefined, 10);
      expect(stored).toMatchObject({ id: odd.id, source: '', userAgent: '', bytes: 0 });
      await meta.close();
    });

    it('writes batches larger than one statement holds', async () => {
      const meta = await open();
      const events = Array.from({ length: 1203 }, (_, i) => event(t0 + i, { repository: `team/r${i % 7}`, bytes: i }));
      await meta.insight.recordEvents(events);
      expect(await meta.insight.eventsAfter(undefined, 2000)).toHaveLength(1203);
      const hour = await meta.insight.rollups({ period: 'hour' });
      expect(hour).toHaveLength(7);
      expect(hour.reduce((s, r) => s + r.count, 0)).toBe(1203);
      expect(hour.reduce((s, r) => s + r.bytes, 0)).toBe((1202 * 1203) / 2);
      await meta.close();
    });

    it('lists newest first with filters and pages that neither skip nor repeat', async () => {
      const meta = await open();
      const store = meta.insight;
      const events = [
        ...Array.from({ length: 7 }, (_, i) => event(t0 + i * 1000)),
        // two in the same millisecond: the page boundary falls between them
        event(t0 + 7000, { namespace: 'other', repository: 'other/x' }),
        event(t0 + 7000, { namespace: 'other', repository: 'other/y', type: 'delete' }),
        event(t0 + 8000, { namespace: '', repository: '', type: 'login', object: '' }),
      ];
      await store.recordEvents(events);
      const newest = [...events].reverse().map((e) => e.id);
      const pages: string[][] = [];
      let before: { at: number; id: string } | undefined;
      do {
        const page = await store.listEvents({}, { limit: 4, ...(before ? { before } : {}) });
        pages.push(page.events.map((e) => e.id));
        before = page.next;
      } while (before);
      expect(pages.flat()).toEqual(newest);
      expect(pages.map((p) => p.length)).toEqual([4, 4, 2]);

      expect((await store.listEvents({ namespaces: ['other'] }, { limit: 10 })).events.map((e) => e.repository)).toEqual(['other/y', 'other/x']);
      expect((await store.listEvents({ namespaces: ['team', 'other'] }, { limit: 20 })).events).toHaveLength(9);
      expect((await store.listEvents({ namespaces: [] }, { limit: 20 })).events).toEqual([]);
      expect((await store.listEvents({ types: [] }, { limit: 20 })).events).toEqual([]);
      expect((await store.listEvents({ repository: 'other/x' }, { limit: 20 })).events).toHaveLength(1);
      expect((await store.listEvents({ types: ['login', 'delete'] }, { limit: 20 })).events.map((e) => e.type)).toEqual(['login', 'delete']);
      const window = await store.listEvents({ since: t0 + 2000, until: t0 + 5000 }, { limit: 20 });
      expect(window.events.map((e) => e.at)).toEqual([t0 + 4000, t0 + 3000, t0 + 2000]);
      expect(window.next).toBeUndefined();
      await meta.close();
    });

    it('rolls events up per hour and per UTC day as they are written, adding batch to batch', async () => {
      const meta = await open();
      const store = meta.insight;
      await store.recordEvents([
        event(t0 + 5, { bytes: 10 }),
        event(t0 + hourMs - 1, { bytes: 20 }),
        event(t0 + hourMs, { bytes: 40 }),
        event(t0 + 1, { type: 'push', object: 'blob', bytes: 7 }),
        event(t0 + 2, { namespace: 'other', repository: 'other/x', bytes: 1 }),
      ]);
      // a second batch (another replica, say) adds to the same rows
      await store.recordEvents([event(t0 + 10, { bytes: 5 }), event(t0 + 14 * hourMs, { bytes: 1000 })]);
      const pulls = (await store.rollups({ period: 'hour', namespaces: ['team'] })).filter((r) => r.type === 'pull');
      expect(pulls.map((r) => [r.start - t0, r.count, r.bytes])).toEqual([
        [0, 3, 35],
        [hourMs, 1, 40],
        [14 * hourMs, 1, 1000],
      ]);
      const day = t0 - (t0 % dayMs);
      const days = await store.rollups({ period: 'day' });
      expect(days.map((r) => [r.start - day, r.namespace, r.type, r.object, r.count, r.bytes])).toEqual([
        [0, 'other', 'pull', 'manifest', 1, 1],
        [0, 'team', 'pull', 'manifest', 4, 75],
        [0, 'team', 'push', 'blob', 1, 7],
        [dayMs, 'team', 'pull', 'manifest', 1, 1000],
      ]);
      expect(await store.rollups({ period: 'hour', since: t0 + hourMs, until: t0 + 2 * hourMs })).toHaveLength(1);
      expect(await store.rollups({ period: 'hour', repository: 'other/x' })).toHaveLength(1);
      expect(await store.rollups({ period: 'hour', namespaces: [] })).toEqual([]);
      expect((await store.rollups({ period: 'day', limit: 2 })).map((r) => r.namespace)).toEqual(['other', 'team']);
      await meta.close();
    });

    it('adds up batches written at once by several writers', async () => {
      const meta = await open();
      const batches = Array.from({ length: 8 }, (_, b) =>
        Array.from({ length: 50 }, (_, i) => event(t0 + i, { repository: `team/r${(b + i) % 3}`, bytes: 2 })),
      );
      await Promise.all(batches.map((batch) => meta.insight.recordEvents(batch)));
      const hour = await meta.insight.rollups({ period: 'hour' });
      expect(hour.reduce((s, r) => s + r.count, 0)).toBe(400);
      expect(hour.reduce((s, r) => s + r.bytes, 0)).toBe(800);
      await meta.close();
    });

    it('prunes old events oldest first in bounded steps, and rollups by period, each on its own', async () => {
      const meta = await open();
      const store = meta.insight;
      await store.recordEvents(Array.from({ length: 10 }, (_, i) => event(t0 + i * hourMs)));
      expect(await store.pruneEvents(t0 + 5 * hourMs, 3)).toBe(3);
      expect((await store.eventsAfter(undefined, 100))[0]?.at).toBe(t0 + 3 * hourMs);
      expect(await store.pruneEvents(t0 + 5 * hourMs, 3)).toBe(2);
      expect(await store.pruneEvents(t0 + 5 * hourMs, 3)).toBe(0);
      expect(await store.eventsAfter(undefined, 100)).toHaveLength(5);
      // the rollups of pruned events stay
      expect(await store.rollups({ period: 'hour' })).toHaveLength(10);
      expect(await store.pruneRollups('hour', t0 + 2 * hourMs)).toBe(2);
      expect(await store.rollups({ period: 'hour' })).toHaveLength(8);
      expect(await store.rollups({ period: 'day' })).toHaveLength(1);
      expect(await store.pruneRollups('day', t0 + dayMs)).toBe(1);
      expect(await store.rollups({ period: 'day' })).toEqual([]);
      await meta.close();
    });
  });
}
