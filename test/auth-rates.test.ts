/**
 * The request limit shared by replicas (src/auth/shared-rates.ts), several limiters in this
 * process standing for replicas on one store (SQLite's meta.rates, which exchanges as
 * PostgreSQL's does): the window's limit holds across them, an identity on one replica still
 * gets the whole rate, Retry-After says when the window ends, and a store that stops answering
 * hands the decisions to the local bucket without failing or holding up a request.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SharedRateLimiter } from '../src/auth/shared-rates.ts';
import type { MetaStore } from '../src/meta/metastore.ts';
import { openMetaStore } from '../src/meta/open.ts';
import type { RateExchange, RateStore, RateTotals } from '../src/meta/rates.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';

const windowMs = 2000;
/** the start of a window: the clock the limiters count by stands still unless the test moves it */
let at = 1_000_000 * windowMs;
const now = () => at;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class Lines {
  readonly seen: { level: string; msg: string }[] = [];
  readonly warn = (_obj: unknown, msg?: string) => this.seen.push({ level: 'warn', msg: msg ?? '' });
  readonly info = (_obj: unknown, msg?: string) => this.seen.push({ level: 'info', msg: msg ?? '' });
}

/** A store that can be made to stop answering: its exchanges then hang until it is released. */
class Stalling implements RateStore {
  readonly shared = true;
  private readonly inner: RateStore;
  private stalled: Promise<void> | undefined;
  private release: () => void = () => {};
  exchanges = 0;

  constructor(inner: RateStore) {
    this.inner = inner;
  }

  stall(): void {
    this.stalled = new Promise((resolve) => (this.release = resolve));
  }

  answer(): void {
    this.stalled = undefined;
    this.release();
  }

  async exchange(x: RateExchange): Promise<RateTotals[]> {
    this.exchanges++;
    if (this.stalled) await this.stalled;
    return this.inner.exchange(x);
  }

  prune(before: number): Promise<number> {
    return this.inner.prune(before);
  }
}

const opened: MetaStore[] = [];
const limiters: SharedRateLimiter[] = [];
afterEach(async () => {
  for (const l of limiters.splice(0)) await l.stop();
  for (const m of opened.splice(0)) await m.close();
});

async function replicas(n: number, perSecond: number, options: { timeoutMs?: number } = {}) {
  const meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-rates-')), 'custody.db'));
  opened.push(meta);
  const store = new Stalling(meta.rates);
  const log = new Lines();
  const made = Array.from(
    { length: n },
    (_, i) => new SharedRateLimiter(store, { perSecond, windowMs, exchangeMs: 40, replica: `r${i}`, ...options }, log, now),
  );
  limiters.push(...made);
  for (const l of made) l.start();
  // each has exchanged once and heard of the others
  await sleep(100);
  return { limiters: made, store, log };
}

/** Takes `count` requests of one key, round-robin over the limiters; the allowed ones. */
async function spread(over: SharedRateLimiter[], key: string, count: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < count; i++) {
    const answer = await over[i % over.length]!.take(key);
    if (answer.allowed) ok++;
    // a client that sends a request every millisecond or so: the exchanges run meanwhile
    if (i % 3 === 2) await sleep(2);
  }
  return ok;
}

describe('request rates shared by replicas', () => {
  it('holds the window to its limit across three replicas that a client round-robins over', async () => {
    const { limiters: three } = await replicas(3, 5); // 10 per 2 s window
    expect(three[0]!.limit).toBe(10);
    const perWindow: number[] = [];
    for (let w = 0; w < 3; w++) {
      at += windowMs;
      perWindow.push(await spread(three, 'user:1', 90));
    }
    // each replica's own share first, then what the others left: never three times the limit
    for (const n of perWindow) {
      expect(n).toBeGreaterThanOrEqual(9);
      expect(n).toBeLessThanOrEqual(11);
    }
    // another identity has its own count
    expect(await spread(three, 'user:2', 30)).toBeGreaterThanOrEqual(9);
  });

  it('gives an identity that uses one replica of three the whole limit from its second window, and says when the window ends', async () => {
    const { limiters: three } = await replicas(3, 5);
    const one = three[1]!;
    const takes = async (n: number) => {
      const answers = [];
      for (let i = 0; i < n; i++) {
        answers.push(await one.take('robot:7'));
        // exchanges between the requests
        if (i % 4 === 3) await sleep(45);
      }
      return answers;
    };
    // Its first window: the other two may meet it too, and keep their shares (3 each; the
    // remainder goes to the first replica by name, which this one cannot know it is).
    at += windowMs;
    const first = await takes(8);
    expect(first.filter((a) => a.allowed)).toHaveLength(3);
    expect(first.slice(3)).toEqual(Array.from({ length: 5 }, () => ({ allowed: false, retryAfter: 2 })));
    // From then on the table says nobody else has it.
    at += windowMs;
    const second = await takes(12);
    expect(second.filter((a) => a.allowed)).toHaveLength(10);
    expect(second.slice(10)).toEqual([
      { allowed: false, retryAfter: 2 },
      { allowed: false, retryAfter: 2 },
    ]);
    at += 1500; // half a second before the window ends
    expect(await one.take('robot:7')).toEqual({ allowed: false, retryAfter: 1 });
    at += 500; // the next window
    expect((await one.take('robot:7')).allowed).toBe(true);
  });

  it('decides with the local bucket while the store does not answer, says so once, and shares again once it does', async () => {
    const { limiters: two, store, log } = await replicas(2, 5, { timeoutMs: 150 });
    at += windowMs;
    store.stall();
    // Before the timeout: at most a quarter second more for a request past its share.
    const waited = performance.now();
    const first = await spread(two, 'user:9', 24);
    expect(performance.now() - waited).toBeLessThan(1500);
    expect(first).toBeGreaterThanOrEqual(10);
    await sleep(300);
    // Each replica on its own: a token bucket of twice the rate per replica, no request held up.
    at += windowMs;
    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: 30 }, async (_, i) => two[i % 2]!.take('user:9')));
    expect(performance.now() - started).toBeLessThan(50);
    expect(answers.filter((a) => a.allowed)).toHaveLength(20);
    expect(answers.find((a) => !a.allowed)).toEqual({ allowed: false, retryAfter: 1 });
    await sleep(300);
    expect(log.seen.filter((l) => l.level === 'warn')).toHaveLength(2); // one line per replica, however long it lasts
    expect(log.seen[0]?.msg).toMatch(/did not answer for 150 ms; until they do, each replica limits on its own/);

    store.answer();
    await sleep(300);
    expect(log.seen.filter((l) => l.level === 'info').map((l) => l.msg)).toEqual([
      expect.stringMatching(/answer again; the limit holds across replicas/),
      expect.stringMatching(/answer again/),
    ]);
    at += windowMs;
    const shared = await spread(two, 'user:9', 40);
    expect(shared).toBeGreaterThanOrEqual(9);
    expect(shared).toBeLessThanOrEqual(11);
  });

  it('needs no exchange for a single replica, and lets nothing through past the limit', async () => {
    const { limiters: one, store } = await replicas(1, 2);
    at += windowMs;
    const before = store.exchanges;
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await one[0]!.take('source:192.0.2.1'));
    expect(answers.map((a) => a.allowed)).toEqual([true, true, true, true, false, false]);
    // no request waited for an exchange: the replica alone has the whole window
    expect(store.exchanges - before).toBeLessThanOrEqual(1);
  });
});

const havePostgres = await postgresAvailable();
describe.runIf(havePostgres)('request rates on PostgreSQL', () => {
  afterAll(dropDatabases);

  it('keeps answering while the table is locked, without holding more than one connection, and shares again once it is free', async () => {
    const url = await freshDatabase();
    const meta = await openMetaStore(url);
    opened.push(meta);
    const log = new Lines();
    const two = [0, 1].map((i) => new SharedRateLimiter(meta.rates, { perSecond: 5, windowMs, exchangeMs: 40, timeoutMs: 300, replica: `pg${i}` }, log, now));
    limiters.push(...two);
    for (const l of two) l.start();
    // each has heard of the other (a replica that has not yet counts itself alone for a moment)
    await sleep(400);
    at += windowMs;
    expect(await spread(two, 'user:pg', 30)).toBe(10);

    // What a stuck database looks like to the exchange: its statement waits, and nothing fails.
    const locker = new pg.Client({ connectionString: url });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table rate_counts in access exclusive mode');
      await sleep(500);
      at += windowMs;
      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 30 }, async (_, i) => two[i % 2]!.take('user:pg')));
      expect(performance.now() - started).toBeLessThan(100);
      // each replica's own bucket
      expect(answers.filter((a) => a.allowed)).toHaveLength(20);
      // A stuck exchange is left to finish before the next one starts: one waiting statement per
      // replica however long it lasts, and the rest of the store keeps its connections.
      await sleep(1000);
      const waiting = await locker.query<{ n: number }>(
        "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
      );
      expect(waiting.rows[0]?.n).toBe(2);
      for (let i = 0; i < 12; i++) await meta.ping();
      expect(log.seen.filter((l) => l.level === 'warn')).toHaveLength(2);
    } finally {
      await locker.query('rollback');
      await locker.end();
    }
    await expect.poll(() => log.seen.filter((l) => l.level === 'info').length, { timeout: 2000 }).toBe(2);
    at += windowMs;
    expect(await spread(two, 'user:pg', 30)).toBe(10);
  });

  it('keeps the counts in an UNLOGGED table', async () => {
    const url = await freshDatabase();
    opened.push(await openMetaStore(url));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const r = await client.query<{ relpersistence: string }>("select relpersistence from pg_class where relname = 'rate_counts'");
      expect(r.rows).toEqual([{ relpersistence: 'u' }]);
    } finally {
      await client.end();
    }
  });
});
