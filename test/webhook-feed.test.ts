/**
 * The webhook feed on PostgreSQL, where batches commit in any order: an event batch that began
 * first and commits last is still read, because the feed numbers batches one after the other
 * (the trigger's advisory lock) instead of in the order their rows were inserted. The second
 * test removes the lock and shows the event a cursor then skips.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openMetaStore } from '../src/meta/open.ts';
import type { MetaStore } from '../src/meta/metastore.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { usageEvent } from './suites/webhook-store.ts';

const havePostgres = await postgresAvailable();
const now = Date.UTC(2025, 0, 15, 10, 0, 0);

async function setUp(): Promise<{ meta: MetaStore; client: pg.Client }> {
  const url = await freshDatabase();
  const meta = await openMetaStore(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await meta.webhooks.createWebhook({
    id: 'w1',
    namespace: 'team',
    url: 'https://hooks.example.com/',
    secret: 'a-secret-of-enough-length',
    types: ['push'],
    repositories: ['team/**'],
    mode: 'structured',
    description: '',
    createdBy: 'alice',
    createdAt: now,
    updatedAt: now,
  });
  await meta.webhooks.acquireLeases('r1', now, 3_600_000, 10);
  return { meta, client };
}

/** Inserts an event in the open transaction of `client`, as another replica's batch would. */
async function insertEvent(client: pg.Client, id: string): Promise<void> {
  await client.query(
    `insert into usage_events (id, at, type, object, namespace, repository, result) values ($1, $2, 'push', 'manifest', 'team', 'team/app', 'ok')`,
    [id, now],
  );
}

const read = async (meta: MetaStore): Promise<string[]> => {
  await meta.webhooks.ingest('w1', 'r1', { now, limit: 100, maxQueued: 100, accept: () => true });
  const out: string[] = [];
  for (;;) {
    const [head] = await meta.webhooks.due('w1', now, 1);
    if (!head) return out;
    out.push(head.event.id);
    await meta.webhooks.settle(head, 'r1', now, { done: true }, { at: now, durationMs: 1, status: 200, outcome: 'delivered', error: '', response: '' });
  }
};

describe.runIf(havePostgres)('the webhook feed on PostgreSQL', () => {
  afterAll(dropDatabases);

  it('reads a batch that commits after a later one began and ended, in commit order', async () => {
    const { meta, client } = await setUp();
    try {
      await client.query('begin');
      await insertEvent(client, 'slow-batch');
      // a second batch, from this process, while the first is still open: it waits for the
      // first to commit before it is numbered
      const later = usageEvent({ id: 'quick-batch' });
      let recorded = false;
      const quick = meta.insight.recordEvents([later]).then(() => (recorded = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(recorded).toBe(false);
      expect(await read(meta)).toEqual([]);
      await client.query('commit');
      await quick;
      expect(await read(meta)).toEqual(['slow-batch', 'quick-batch']);
    } finally {
      await client.end();
      await meta.close();
    }
  });

  it('without the lock, a cursor would skip the batch that committed last (why the lock is there)', async () => {
    const { meta, client } = await setUp();
    try {
      const source = (await client.query<{ src: string }>(`select prosrc as src from pg_proc where proname = 'webhook_feed_append'`)).rows[0]?.src ?? '';
      expect(source).toMatch(/pg_advisory_xact_lock/);
      await client.query(
        `create or replace function webhook_feed_append() returns trigger language plpgsql as $$${source.replace(/perform pg_advisory_xact_lock\([^)]*\);/, '')}$$`,
      );
      await client.query('begin');
      await insertEvent(client, 'slow-batch');
      await meta.insight.recordEvents([usageEvent({ id: 'quick-batch' })]);
      expect(await read(meta)).toEqual(['quick-batch']);
      await client.query('commit');
      expect(await read(meta)).toEqual([]);
    } finally {
      await client.end();
      await meta.close();
    }
  });
});
