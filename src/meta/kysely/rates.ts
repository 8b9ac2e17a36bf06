/**
 * The RateStore on Kysely. PostgreSQL exchanges in one statement (a data-modifying WITH, the
 * rows passed as arrays, so the statement's text is the same whatever the number of keys);
 * SQLite, which no second process shares, runs the same writes and read in one transaction.
 */
import { sql, type Kysely } from 'kysely';
import type { RateCount, RateExchange, RateStore, RateTotals } from '../rates.ts';
import type { Engine } from './migrations.ts';
import type { Database } from './schema.ts';

/** rows per SQLite statement: 4 parameters each, far below SQLite's limit of 32766 */
const chunk = 500;

type Row = { key: string; peers: number; claimed: number; unseen: number; ahead: number };

export class KyselyRateStore implements RateStore {
  private readonly db: Kysely<Database>;
  private readonly engine: Engine;
  readonly shared: boolean;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.db = db;
    this.engine = engine;
    this.shared = engine === 'postgres';
  }

  async exchange(x: RateExchange): Promise<RateTotals[]> {
    const counts = largestPerRow(x.counts);
    const rows = this.engine === 'postgres' ? await this.exchangePostgres(x, counts) : await this.exchangeSqlite(x, counts);
    return rows.map((r) => ({ key: r.key, peers: Number(r.peers), claimed: Number(r.claimed), unseen: Number(r.unseen), ahead: Number(r.ahead) }));
  }

  private async exchangePostgres(x: RateExchange, counts: RateCount[]): Promise<Row[]> {
    // The insert's rows are not visible to the select (one snapshot), which reads only the
    // other replicas' rows anyway.
    const r = await sql<Row>`
      with written as (
        insert into rate_counts ("key", window_start, replica, count, claim)
        select k, w, ${x.replica}, n, c
        from unnest(
          ${counts.map((c) => c.key)}::text[], ${counts.map((c) => c.windowStart)}::bigint[],
          ${counts.map((c) => c.count)}::bigint[], ${counts.map((c) => c.claim)}::bigint[]
        ) as u(k, w, n, c)
        on conflict ("key", window_start, replica) do update
          set count = greatest(rate_counts.count, excluded.count), claim = greatest(rate_counts.claim, excluded.claim)
      ),
      peers as (
        select "key", replica, max(case when window_start = ${x.current} then greatest(count, claim) end) as taken
        from rate_counts
        where "key" = any(${x.keys}::text[]) and window_start in (${x.previous}, ${x.current}) and replica <> ${x.replica}
        group by "key", replica
      )
      select "key", count(*) as peers, coalesce(sum(taken), 0)::bigint as claimed, count(*) - count(taken) as unseen,
        count(*) filter (where replica < ${x.replica}) as ahead
      from peers
      group by "key"`.execute(this.db);
    return r.rows;
  }

  private async exchangeSqlite(x: RateExchange, counts: RateCount[]): Promise<Row[]> {
    return this.db.transaction().execute(async (tx) => {
      for (let i = 0; i < counts.length; i += chunk) {
        await tx
          .insertInto('rate_counts')
          .values(counts.slice(i, i + chunk).map((c) => ({ key: c.key, window_start: c.windowStart, replica: x.replica, count: c.count, claim: c.claim })))
          .onConflict((oc) =>
            oc.columns(['key', 'window_start', 'replica']).doUpdateSet({
              count: sql<number>`max(rate_counts.count, excluded.count)`,
              claim: sql<number>`max(rate_counts.claim, excluded.claim)`,
            }),
          )
          .execute();
      }
      const out: Row[] = [];
      for (let i = 0; i < x.keys.length; i += chunk) {
        const rows = await sql<Row>`
          select "key", count(*) as peers, coalesce(sum(taken), 0) as claimed, count(*) - count(taken) as unseen,
            count(*) filter (where replica < ${x.replica}) as ahead
          from (
            select "key", replica, max(case when window_start = ${x.current} then max(count, claim) end) as taken
            from rate_counts
            where "key" in (${sql.join(x.keys.slice(i, i + chunk))}) and window_start in (${x.previous}, ${x.current}) and replica <> ${x.replica}
            group by "key", replica
          )
          group by "key"`.execute(tx);
        out.push(...rows.rows);
      }
      return out;
    });
  }

  async prune(before: number): Promise<number> {
    const r = await this.db.deleteFrom('rate_counts').where('window_start', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

/**
 * One row per (key, window): an upsert may not touch a row twice in one statement, and of two
 * values for the same row the larger is the later one.
 */
function largestPerRow(counts: RateCount[]): RateCount[] {
  const rows = new Map<string, RateCount>();
  for (const c of counts) {
    const id = `${c.windowStart} ${c.key}`;
    const had = rows.get(id);
    rows.set(id, had ? { ...had, count: Math.max(had.count, c.count), claim: Math.max(had.claim, c.claim) } : c);
  }
  return [...rows.values()];
}
