/**
 * The namespace cache on PostgreSQL, end to end: two replicas on one database. A push reads its
 * namespace's quota settings from memory (it is admitted while `namespaces` is locked), and a
 * quota set on one replica, or in SQL from outside Custody, or a soft quota crossed, reaches the
 * other through LISTEN/NOTIFY: the next push there is judged by it.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { request, sha256, type Reply } from './helpers/http.ts';
import { postgresAvailable } from './helpers/postgres.ts';
import { twoReplicasOnPostgres } from './helpers/replicas-pg.ts';
import type { InProcessServer } from './helpers/server.ts';

const havePostgres = await postgresAvailable();
const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

describe.runIf(havePostgres)('namespace cache on PostgreSQL', () => {
  const replicas = twoReplicasOnPostgres();
  let a: InProcessServer;
  let b: InProcessServer;
  let sql: pg.Client;
  beforeAll(() => void ({ a, b, sql } = replicas));

  const setQuota = (server: InProcessServer, ns: string, quotaBytes: number) =>
    request(server.url, `/api/v1/namespaces/${ns}`, { method: 'PUT', ...json({ quotaBytes }) });
  const push = (server: InProcessServer, ns: string, size: number): Promise<Reply> => {
    const data = randomBytes(size);
    return request(server.url, `/v2/${ns}/app/blobs/uploads/?digest=${sha256(data)}`, {
      method: 'POST',
      body: data,
      headers: { 'content-type': 'application/octet-stream' },
    });
  };
  /** Pushes `size` bytes to `ns` on `server` until the answer is `status`; fails after 10 s (entries live 30 s without the feed). */
  async function judged(server: InProcessServer, ns: string, size: number, status: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (let r = await push(server, ns, size); r.status !== status; r = await push(server, ns, size)) {
      if (Date.now() > deadline) throw new Error(`a push of ${size} bytes to ${ns} on ${server.url} still answers ${r.status}, not ${status}, after 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  const within = <T>(ms: number, p: Promise<T>) => Promise.race([p, new Promise<'blocked'>((r) => setTimeout(() => r('blocked'), ms))]);

  it('admits a push without reading the namespaces table once the settings are cached', async () => {
    expect((await setQuota(a, 'hot', 100_000)).status).toBe(200);
    await judged(b, 'hot', 1000, 201); // b has the settings now
    await sql.query('begin');
    try {
      await sql.query('lock table namespaces in access exclusive mode');
      expect(
        await within(
          5000,
          push(b, 'hot', 1000).then((r) => r.status),
        ),
      ).toBe(201);
      // the control: a namespace b has not seen waits for the lock
      expect(
        await within(
          300,
          push(b, 'cold', 1000).then((r) => r.status),
        ),
      ).toBe('blocked');
    } finally {
      await sql.query('rollback');
    }
  });

  it('judges a push on one replica by a quota set on the other, and at once on the replica that set it', async () => {
    expect((await push(b, 'moved', 5000)).status).toBe(201); // b caches "no quota"
    expect((await setQuota(a, 'moved', 6000)).status).toBe(200);
    expect((await push(a, 'moved', 5000)).status).toBe(403);
    await judged(b, 'moved', 5000, 403);
    expect((await setQuota(b, 'moved', 0)).status).toBe(200);
    expect((await push(b, 'moved', 5000)).status).toBe(201);
    await judged(a, 'moved', 5000, 201);
  });

  it('sees a quota set in SQL from outside Custody', async () => {
    expect((await setQuota(a, 'outside', 1e12)).status).toBe(200); // no push here comes near it
    expect((await push(b, 'outside', 2000)).status).toBe(201);
    await sql.query('update namespaces set quota_bytes = $1 where name = $2', [1000, 'outside']);
    await judged(b, 'outside', 2000, 403);
  });
});
