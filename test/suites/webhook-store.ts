/** The WebhookStore suite: webhooks, the feed the events feed, cursors, leases, the queue and the log; run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import { eventId, type UsageEvent } from '../../src/meta/insight.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';
import type { QueuedEvent, Webhook } from '../../src/meta/webhooks.ts';

const t0 = Date.UTC(2025, 0, 15, 10, 0, 0);

export function usageEvent(extra: Partial<UsageEvent> = {}): UsageEvent {
  const at = extra.at ?? t0;
  return {
    id: eventId(at),
    at,
    type: 'push',
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
    status: 201,
    result: 'ok',
    detail: {},
    ...extra,
  };
}

function webhook(id: string, extra: Partial<Webhook> = {}): Webhook {
  return {
    id,
    namespace: 'team',
    url: 'https://hooks.example.com/custody',
    secret: 'a-secret-of-enough-length',
    types: ['push', 'pull', 'delete'],
    repositories: ['team/**'],
    mode: 'structured',
    description: '',
    createdBy: 'alice',
    createdAt: t0,
    updatedAt: t0,
    ...extra,
  };
}

const all = () => true;
const ingestAll = (meta: MetaStore, id: string, holder: string, now = t0) =>
  meta.webhooks.ingest(id, holder, { now, limit: 100, maxQueued: 1000, accept: all });
const delivered = { at: t0, durationMs: 3, status: 204, outcome: 'delivered' as const, error: '', response: '' };
const failed = { at: t0, durationMs: 3, status: 503, outcome: 'failed' as const, error: 'HTTP 503', response: 'busy' };
const ids = (q: QueuedEvent[]) => q.map((e) => e.event.id);

export function webhookStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`WebhookStore: ${name}`, () => {
    it('creates, reads, lists, changes and deletes webhooks', async () => {
      const meta = await open();
      const store = meta.webhooks;
      await store.createWebhook(webhook('w1'));
      await store.createWebhook(webhook('w2', { namespace: 'other', repositories: ['other/*'], createdAt: t0 + 1 }));
      await store.createWebhook(webhook('w3', { createdAt: t0 + 2, mode: 'binary', types: ['pull'] }));
      expect(await store.getWebhook('w1')).toEqual(webhook('w1'));
      expect(await store.getWebhook('nope')).toBeUndefined();
      expect((await store.listWebhooks()).map((w) => w.id)).toEqual(['w1', 'w2', 'w3']);
      expect((await store.listWebhooks('team')).map((w) => w.id)).toEqual(['w1', 'w3']);
      const changed = await store.updateWebhook('w1', {
        url: 'http://other.example/x',
        types: ['delete'],
        repositories: ['team/a', 'team/b*'],
        updatedAt: t0 + 9,
      });
      expect(changed).toEqual(webhook('w1', { url: 'http://other.example/x', types: ['delete'], repositories: ['team/a', 'team/b*'], updatedAt: t0 + 9 }));
      expect(await store.updateWebhook('nope', { description: 'x', updatedAt: t0 })).toBeUndefined();
      expect(await store.deleteWebhook('w1')).toBe(true);
      expect(await store.deleteWebhook('w1')).toBe(false);
      expect((await store.listWebhooks()).map((w) => w.id)).toEqual(['w2', 'w3']);
      await meta.close();
    });

    it('feeds a webhook the pushes, pulls and deletes of its namespace recorded after it was made, in the order recorded', async () => {
      const meta = await open();
      const store = meta.webhooks;
      const before = usageEvent({ tag: 'before' });
      await meta.insight.recordEvents([before]);
      await store.createWebhook(webhook('w1'));
      expect(await store.acquireLeases('r1', t0, 30_000, 100)).toEqual(['w1']);
      // a long pull: it began (at) before the push, and is recorded after it
      const push = usageEvent({ at: t0 + 5000, tag: 'v2' });
      const longPull = usageEvent({ at: t0 - 60_000, type: 'pull', object: 'blob', bytes: 1 << 30 });
      const login = usageEvent({ type: 'login', object: '', repository: '', namespace: '' });
      const elsewhere = usageEvent({ namespace: 'other', repository: 'other/app' });
      await meta.insight.recordEvents([push, login, elsewhere]);
      await meta.insight.recordEvents([longPull]);
      const del = usageEvent({ at: t0 + 6000, type: 'delete', object: 'tag' });
      await meta.insight.recordEvents([del]);
      expect(await ingestAll(meta, 'w1', 'r1')).toEqual({ read: 3, queued: 3 });
      const queued = await store.due('w1', t0, 10);
      // one repository: only its head is due
      expect(ids(queued)).toEqual([push.id]);
      expect(queued[0]?.event).toEqual(push);
      expect(queued[0]).toMatchObject({ webhookId: 'w1', attempts: 0, nextAttemptAt: t0, queuedAt: t0 });
      for (const want of [push, longPull, del]) {
        const [head] = await store.due('w1', t0, 10);
        expect(head?.event.id).toBe(want.id);
        expect(await store.settle(head!, 'r1', t0, { done: true }, delivered)).toBe(true);
      }
      expect(await store.due('w1', t0, 10)).toEqual([]);
      expect(await ingestAll(meta, 'w1', 'r1')).toEqual({ read: 0, queued: 0 });
      await meta.close();
    });

    it('queues only what the filter accepts, and moves past the rest', async () => {
      const meta = await open();
      const store = meta.webhooks;
      await store.createWebhook(webhook('w1'));
      await store.acquireLeases('r1', t0, 30_000, 100);
      const events = Array.from({ length: 10 }, (_, i) => usageEvent({ at: t0 + i, repository: `team/r${i % 2}`, type: i % 3 === 0 ? 'pull' : 'push' }));
      await meta.insight.recordEvents(events);
      const accept = (e: UsageEvent) => e.type === 'push' && e.repository === 'team/r1';
      expect(await store.ingest('w1', 'r1', { now: t0, limit: 4, maxQueued: 100, accept })).toEqual({ read: 4, queued: 1 });
      expect(await store.ingest('w1', 'r1', { now: t0, limit: 100, maxQueued: 100, accept })).toEqual({ read: 6, queued: 2 });
      expect(await store.ingest('w1', 'r1', { now: t0, limit: 100, maxQueued: 100, accept })).toEqual({ read: 0, queued: 0 });
      const want = events.filter(accept).map((e) => e.id);
      const got: string[] = [];
      for (;;) {
        const [head] = await store.due('w1', t0, 10);
        if (!head) break;
        got.push(head.event.id);
        await store.settle(head, 'r1', t0, { done: true }, delivered);
      }
      expect(got).toEqual(want);
      await meta.close();
    });

    it('holds back a failing repository and no other, retries when due, and logs every attempt', async () => {
      const meta = await open();
      const store = meta.webhooks;
      await store.createWebhook(webhook('w1'));
      await store.acquireLeases('r1', t0, 3_600_000, 100);
      const a1 = usageEvent({ at: t0 + 1, repository: 'team/a' });
      const b1 = usageEvent({ at: t0 + 2, repository: 'team/b' });
      const a2 = usageEvent({ at: t0 + 3, repository: 'team/a' });
      const b2 = usageEvent({ at: t0 + 4, repository: 'team/b' });
      await meta.insight.recordEvents([a1, b1, a2, b2]);
      await ingestAll(meta, 'w1', 'r1');
      const heads = await store.due('w1', t0, 10);
      expect(ids(heads)).toEqual([a1.id, b1.id]);
      expect(ids(await store.due('w1', t0, 1))).toEqual([a1.id]);
      // a1 fails: a waits until t0 + 1000; b goes on
      expect(await store.settle(heads[0]!, 'r1', t0, { done: false, retryAt: t0 + 1000 }, failed)).toBe(true);
      await store.settle(heads[1]!, 'r1', t0, { done: true }, delivered);
      expect(ids(await store.due('w1', t0 + 10, 10))).toEqual([b2.id]);
      await store.settle((await store.due('w1', t0 + 10, 10))[0]!, 'r1', t0 + 10, { done: true }, { ...delivered, at: t0 + 10 });
      expect(await store.due('w1', t0 + 999, 10)).toEqual([]);
      const retry = await store.due('w1', t0 + 1000, 10);
      expect(retry).toMatchObject([{ attempts: 1, nextAttemptAt: t0 + 1000 }]);
      expect(ids(retry)).toEqual([a1.id]);
      await store.settle(retry[0]!, 'r1', t0 + 1000, { done: true }, { ...delivered, at: t0 + 1000 });
      expect(ids(await store.due('w1', t0 + 1000, 10))).toEqual([a2.id]);
      expect(await store.queued()).toEqual(new Map([['w1', 1]]));

      const log = await store.listDeliveries('w1', { limit: 2 });
      expect(log.deliveries.map((d) => [d.eventId, d.attempt, d.outcome])).toEqual([
        [a1.id, 2, 'delivered'],
        [b2.id, 1, 'delivered'],
      ]);
      expect(log.next).toBeDefined();
      const rest = await store.listDeliveries('w1', { limit: 10, before: log.next! });
      expect(rest.deliveries.map((d) => [d.eventId, d.attempt, d.outcome, d.status, d.error, d.response])).toEqual([
        [b1.id, 1, 'delivered', 204, '', ''],
        [a1.id, 1, 'failed', 503, 'HTTP 503', 'busy'],
      ]);
      expect(rest.next).toBeUndefined();
      expect(rest.deliveries[1]).toMatchObject({ webhookId: 'w1', eventType: 'push', repository: 'team/a', at: t0, durationMs: 3 });
      await meta.close();
    });

    it('stops ingesting while the queue is full, and catches up once it drains', async () => {
      const meta = await open();
      const store = meta.webhooks;
      await store.createWebhook(webhook('w1'));
      await store.acquireLeases('r1', t0, 30_000, 100);
      const events = Array.from({ length: 7 }, (_, i) => usageEvent({ at: t0 + i, repository: `team/r${i}` }));
      await meta.insight.recordEvents(events);
      const ingest = () => store.ingest('w1', 'r1', { now: t0, limit: 100, maxQueued: 3, accept: all });
      expect(await ingest()).toEqual({ read: 3, queued: 3 });
      expect(await ingest()).toEqual({ read: 0, queued: 0 });
      for (const head of await store.due('w1', t0, 2)) await store.settle(head, 'r1', t0, { done: true }, delivered);
      expect(await ingest()).toEqual({ read: 2, queued: 2 });
      for (const head of await store.due('w1', t0, 10)) await store.settle(head, 'r1', t0, { done: true }, delivered);
      expect(await ingest()).toEqual({ read: 2, queued: 2 });
      expect(await store.queued()).toEqual(new Map([['w1', 2]]));
      await meta.close();
    });

    it('leases each webhook to one holder at a time, and refuses the writes of one that lost it', async () => {
      const meta = await open();
      const store = meta.webhooks;
      for (const id of ['w1', 'w2', 'w3']) await store.createWebhook(webhook(id));
      expect(await store.acquireLeases('r1', t0, 1000, 2)).toEqual(['w1', 'w2']);
      expect(await store.acquireLeases('r2', t0 + 1, 1000, 10)).toEqual(['w3']);
      // r1 renews its own first
      expect(await store.acquireLeases('r1', t0 + 500, 1000, 2)).toEqual(['w1', 'w2']);
      expect(await store.acquireLeases('r2', t0 + 1200, 1000, 10)).toEqual(['w3']);
      await meta.insight.recordEvents([usageEvent()]);
      // r2 does not hold w1: it neither ingests nor settles it
      expect(await ingestAll(meta, 'w1', 'r2', t0 + 1200)).toEqual({ read: 0, queued: 0 });
      expect(await ingestAll(meta, 'w1', 'r1', t0 + 1200)).toEqual({ read: 1, queued: 1 });
      const [head] = await store.due('w1', t0 + 1200, 10);
      // r1's lease ran out at t0 + 1500 and r2 took it: r1's result is not recorded
      expect(await store.acquireLeases('r2', t0 + 1600, 1000, 10)).toEqual(['w1', 'w2', 'w3']);
      expect(await store.settle(head!, 'r1', t0 + 1600, { done: true }, delivered)).toBe(false);
      expect(await store.due('w1', t0 + 1600, 10)).toHaveLength(1);
      expect(await store.settle(head!, 'r2', t0 + 1600, { done: true }, delivered)).toBe(true);
      expect((await store.listDeliveries('w1', { limit: 10 })).deliveries).toHaveLength(1);
      // a settled event is gone: settling it again records nothing
      expect(await store.settle(head!, 'r2', t0 + 1600, { done: true }, delivered)).toBe(false);
      await store.releaseLeases('r2');
      expect(await store.acquireLeases('r1', t0 + 1700, 1000, 10)).toEqual(['w1', 'w2', 'w3']);
      await meta.close();
    });

    it('ages out the delivery log, keeps at most the newest rows of each webhook, and drops the feed every cursor has passed', async () => {
      const meta = await open();
      const store = meta.webhooks;
      await store.createWebhook(webhook('w1'));
      await store.createWebhook(webhook('w2', { namespace: 'other', repositories: ['other/**'] }));
      await store.acquireLeases('r1', t0, 3_600_000, 10);
      const events = Array.from({ length: 6 }, (_, i) => usageEvent({ at: t0 + i, repository: `team/r${i}` }));
      await meta.insight.recordEvents(events);
      await ingestAll(meta, 'w1', 'r1');
      let i = 0;
      for (const head of await store.due('w1', t0, 10)) await store.settle(head, 'r1', t0, { done: true }, { ...delivered, at: t0 + i++ * 1000 });
      expect(await store.pruneDeliveries(t0 + 2000, 100)).toBe(2);
      expect((await store.listDeliveries('w1', { limit: 100 })).deliveries).toHaveLength(4);
      expect(await store.pruneDeliveries(0, 3)).toBe(1);
      expect((await store.listDeliveries('w1', { limit: 100 })).deliveries.map((d) => d.at)).toEqual([t0 + 5000, t0 + 4000, t0 + 3000]);
      // w2 (another namespace) has read nothing, but its cursor moved with the feed's end
      expect(await ingestAll(meta, 'w2', 'r1')).toEqual({ read: 0, queued: 0 });
      expect(await store.pruneFeed()).toBe(6);
      await meta.insight.recordEvents([usageEvent({ namespace: 'other', repository: 'other/x' }), usageEvent()]);
      expect(await store.pruneFeed()).toBe(0);
      expect(await ingestAll(meta, 'w2', 'r1')).toEqual({ read: 1, queued: 1 });
      expect(await store.pruneFeed()).toBe(0);
      await ingestAll(meta, 'w1', 'r1');
      expect(await store.pruneFeed()).toBe(2);
      // with no webhook left, nothing will read the feed
      await store.deleteWebhook('w1');
      await meta.insight.recordEvents([usageEvent({ namespace: 'other', repository: 'other/y' })]);
      await store.deleteWebhook('w2');
      expect(await store.pruneFeed()).toBe(1);
      // and nothing is fed
      await meta.insight.recordEvents([usageEvent()]);
      expect(await store.pruneFeed()).toBe(0);
      await meta.close();
    });

    it('a webhook made after the feed was pruned starts at its end, and a deleted one takes its queue and log with it', async () => {
      const meta = await open();
      const store = meta.webhooks;
      await store.createWebhook(webhook('w1'));
      await store.acquireLeases('r1', t0, 3_600_000, 10);
      await meta.insight.recordEvents([usageEvent(), usageEvent()]);
      await ingestAll(meta, 'w1', 'r1');
      await store.settle((await store.due('w1', t0, 1))[0]!, 'r1', t0, { done: true }, delivered);
      await store.deleteWebhook('w1');
      expect(await store.queued()).toEqual(new Map());
      expect((await store.listDeliveries('w1', { limit: 10 })).deliveries).toEqual([]);
      await store.pruneFeed();
      await store.createWebhook(webhook('w2'));
      await store.acquireLeases('r1', t0, 3_600_000, 10);
      const fresh = usageEvent({ tag: 'fresh' });
      await meta.insight.recordEvents([fresh]);
      expect(await ingestAll(meta, 'w2', 'r1')).toEqual({ read: 1, queued: 1 });
      expect(ids(await store.due('w2', t0, 10))).toEqual([fresh.id]);
      await meta.close();
    });
  });
}
