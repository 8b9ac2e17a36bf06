/**
 * The manifest cache on PostgreSQL, end to end: two replicas on one database. A hot GET reads
 * no table (it answers while `tags` is locked), a change made anywhere — another replica, or SQL
 * from outside Custody — reaches every replica's cache through LISTEN/NOTIFY, and while the
 * feed's connection is down the replicas read the database, then cache again once it is back.
 */
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { feedApplicationName } from '../src/meta/kysely/change-feed.ts';
import { imageManifest, putManifest, request } from './helpers/http.ts';
import { postgresAvailable } from './helpers/postgres.ts';
import { twoReplicasOnPostgres } from './helpers/replicas-pg.ts';
import type { InProcessServer } from './helpers/server.ts';

const havePostgres = await postgresAvailable();
const repo = 'cache/app';

describe.runIf(havePostgres)('manifest cache on PostgreSQL', () => {
  const replicas = twoReplicasOnPostgres();
  let a: InProcessServer;
  let b: InProcessServer;
  let sql: pg.Client;
  beforeAll(() => void ({ a, b, sql } = replicas));

  /** Pushes an image under `tag` on `server`; its digest. */
  async function push(server: InProcessServer, tag: string, layer: string): Promise<string> {
    const { body, digest } = await imageManifest(server.url, repo, [layer]);
    expect((await putManifest(server.url, repo, tag, body)).status).toBe(201);
    return digest;
  }
  const digestOf = async (server: InProcessServer, ref: string) => (await request(server.url, `/v2/${repo}/manifests/${ref}`)).headers['docker-content-digest'];
  /** GETs `ref` on `server` until it names `digest`; fails after 10 s (entries live 30 s without the feed). */
  async function seen(server: InProcessServer, ref: string, digest: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((await digestOf(server, ref)) !== digest) {
      if (Date.now() > deadline) throw new Error(`${ref} on ${server.url} still does not name ${digest} after 10 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  /** Runs `during` while a transaction of the test's own holds `tags` locked against every reader. */
  async function withTagsLocked<T>(during: () => Promise<T>): Promise<T> {
    await sql.query('begin');
    try {
      await sql.query('lock table tags in access exclusive mode');
      return await during();
    } finally {
      await sql.query('rollback');
    }
  }
  /** What a GET answered, or 'blocked' if it had not answered within `ms`. */
  const within = <T>(ms: number, p: Promise<T>) => Promise.race([p, new Promise<'blocked'>((r) => setTimeout(() => r('blocked'), ms))]);

  it('answers a hot GET from memory: it is served while the tags table is locked', async () => {
    const digest = await push(a, 'hot', 'hot layer');
    await push(a, 'cold', 'cold layer');
    expect(await digestOf(b, 'hot')).toBe(digest); // now cached on b
    await withTagsLocked(async () => {
      expect(await within(5000, digestOf(b, 'hot'))).toBe(digest);
      // the control: a tag b has not read waits for the lock, so the lock does stop readers
      const cold = digestOf(b, 'cold');
      expect(await within(300, cold)).toBe('blocked');
      return { cold }; // wrapped: returning the promise itself would wait for it, under the lock
    }).then(async ({ cold }) => expect(await cold).toMatch(/^sha256:/));
  });

  it('sees a tag moved on another replica, and its own moves at once', async () => {
    const first = await push(a, 'moving', 'first');
    expect(await digestOf(b, 'moving')).toBe(first);
    const second = await push(a, 'moving', 'second');
    expect(await digestOf(a, 'moving')).toBe(second);
    await seen(b, 'moving', second);
    expect((await request(a.url, `/v2/${repo}/manifests/moving`, { method: 'DELETE' })).status).toBe(202);
    const deadline = Date.now() + 10_000;
    while ((await request(b.url, `/v2/${repo}/manifests/moving`)).status !== 404) {
      if (Date.now() > deadline) throw new Error('a deleted tag is still served by the other replica after 10 s');
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it('sees a change made in SQL from outside Custody', async () => {
    const one = await push(a, 'outside', 'one');
    const two = await push(a, 'other', 'two');
    expect(await digestOf(b, 'outside')).toBe(one);
    await sql.query('update tags set digest = $1 where repo = $2 and name = $3', [two, repo, 'outside']);
    await seen(b, 'outside', two);
    await seen(a, 'outside', two);
  });

  it('reads the database while the feed is down, and caches again once it listens anew', async () => {
    const one = await push(a, 'feed', 'feed one');
    const two = await push(a, 'feed-two', 'feed two');
    expect(await digestOf(b, 'feed')).toBe(one);
    const feeds = async () =>
      (
        await sql.query<{ pid: number }>('select pid from pg_stat_activity where application_name = $1 and datname = current_database()', [feedApplicationName])
      ).rows.map((r) => r.pid);
    const before = await feeds();
    expect(before).toHaveLength(2);
    await sql.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1 and datname = current_database()', [
      feedApplicationName,
    ]);
    // a change no feed hears: the replicas must not serve what they cached before it
    await sql.query('update tags set digest = $1 where repo = $2 and name = $3', [two, repo, 'feed']);
    await seen(b, 'feed', two);
    const deadline = Date.now() + 20_000;
    while ((await feeds()).filter((pid) => !before.includes(pid)).length < 2) {
      if (Date.now() > deadline) throw new Error('the feeds did not reconnect within 20 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await digestOf(b, 'feed')).toBe(two); // cached again, now that the feed listens
    await withTagsLocked(async () => expect(await within(5000, digestOf(b, 'feed'))).toBe(two));
  });
});
