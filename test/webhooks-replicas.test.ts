/**
 * Webhooks on two replicas sharing one PostgreSQL database: events pushed through both are
 * delivered once each (one replica holds the webhook's lease), in order per repository, and
 * when the replica that delivers stops, another goes on. Answered through inject().
 */
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageManifest, putManifest, request } from './helpers/http.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { startInjected, tempDir, type InProcessServer } from './helpers/server.ts';
import { signed, startReceiver, type Receiver } from './helpers/receiver.ts';
import { openMetaStore } from '../src/meta/open.ts';
import type { MetaStore } from '../src/meta/metastore.ts';

const havePostgres = await postgresAvailable();

async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.runIf(havePostgres)('webhooks on replicas sharing PostgreSQL', () => {
  let a: InProcessServer;
  let b: InProcessServer;
  let c: InProcessServer | undefined;
  let startThird: () => Promise<InProcessServer>;
  let dbUrl: string;
  let meta: MetaStore;
  let receiver: Receiver;
  beforeAll(async () => {
    const url = await freshDatabase();
    dbUrl = url;
    const blobs = path.join(await tempDir(), 'blobs');
    const config = {
      database: { url },
      storage: { url: blobs, fsync: false },
      insight: { events: { flushMs: 50 }, webhooks: { allowPrivateNetworks: true, pollSeconds: 0.05, leaseSeconds: 10, timeoutSeconds: 2 } },
    };
    receiver = await startReceiver();
    a = await startInjected({ config });
    b = await startInjected({ config });
    startThird = () => startInjected({ config });
    meta = await openMetaStore(url);
  });
  afterAll(async () => {
    for (const s of [a, b, c]) await s?.stop().catch(() => {});
    await meta?.close();
    await receiver?.stop();
    await dropDatabases();
  });

  it('delivers each event once, whichever replica recorded it, and another replica takes over when the one delivering stops', async () => {
    await request(a.url, '/api/v1/namespaces/team', { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } });
    const created = await request(b.url, '/api/v1/namespaces/team/webhooks', {
      method: 'POST',
      body: JSON.stringify({ url: receiver.url, types: ['push'], repositories: ['team/**'] }),
      headers: { 'content-type': 'application/json' },
    });
    expect(created.status).toBe(201);
    const { secret } = created.json<{ secret: string }>();
    const pushes = async (replicas: InProcessServer[], rounds: number, from: number) => {
      for (let k = from; k < from + rounds; k++)
        for (const [i, replica] of replicas.entries()) {
          const repo = `team/app${i}`;
          const image = await imageManifest(replica.url, repo, [`layer ${k}`]);
          expect((await putManifest(replica.url, repo, `t${k}`, image.body)).status).toBe(201);
        }
    };
    const wanted = async () => (await meta.insight.eventsAfter(undefined, 10_000, { namespaces: ['team'], types: ['push'] })).filter((e) => e.result === 'ok');
    // app0 through a, app1 through b, alternately
    await pushes([a, b], 10, 0);
    await eventually(async () => receiver.received.length >= (await wanted()).length && (await meta.webhooks.queued()).size === 0, 'every push to arrive');
    await new Promise((r) => setTimeout(r, 300));
    const first = await wanted();
    expect(receiver.received.map((r) => r.event.id).sort()).toEqual(first.map((e) => e.id).sort());
    expect(receiver.received.every((r) => signed(r, secret))).toBe(true);
    for (const repo of ['team/app0', 'team/app1']) {
      const tags = receiver.received.filter((r) => r.event.data?.repository === repo && r.event.data?.object === 'manifest').map((r) => r.event.subject);
      expect(tags).toEqual(Array.from({ length: 10 }, (_, k) => `t${k}`));
    }
    // one replica holds the lease
    const holders = await meta.webhooks.acquireLeases('observer', Date.now(), 1, 10);
    expect(holders).toEqual([]);

    // the replica that holds the lease stops (stop gives it up), and another takes over
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    const holder = async () => (await client.query<{ holder: string }>('select holder from webhook_cursors')).rows[0]?.holder ?? '';
    try {
      const delivering = await holder();
      expect(delivering).not.toBe('');
      await a.stop();
      // a held it, and b goes on; or b holds it: a third replica starts, and b stops
      let survivor = b;
      if ((await holder()) === delivering) {
        c = await startThird();
        await b.stop();
        survivor = c;
      }
      expect(await holder()).not.toBe(delivering);
      const before = receiver.received.length;
      await pushes([survivor], 3, 10);
      await eventually(async () => receiver.received.length - before >= (await wanted()).length - first.length, 'the pushes after the stop');
      await eventually(async () => ![delivering, ''].includes(await holder()), 'another replica to take the lease');
    } finally {
      await client.end();
    }
    await new Promise((r) => setTimeout(r, 300));
    const all = await wanted();
    expect(receiver.received.map((r) => r.event.id).sort()).toEqual(all.map((e) => e.id).sort());
    expect(new Set(receiver.received.map((r) => r.event.id)).size).toBe(receiver.received.length);
  });
});
