/**
 * The CostStore on Kysely: the same queries on SQLite and PostgreSQL (src/meta/cost.ts). Storage is
 * integrated in SQL: each tick's bytes times the part of [at, end_at or now) inside the window,
 * in double precision (bytes × milliseconds overflow 64-bit integers within a month). Egress and
 * requests are summed from the day rollups for whole days and the hour rollups for the hours at
 * either end, so a year's report reads days, not 8760 hours per repository.
 */
import { sql, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import { dayMs, hourMs, type EventCursor } from '../insight.ts';
import {
  bytesPerGb,
  monthOf,
  type Budget,
  type BudgetScope,
  type BudgetThreshold,
  type CostFilter,
  type CostStore,
  type CostWindow,
  type NetworkEgress,
  type RepositoryBytes,
  type RepositoryUsage,
  type StorageSample,
} from '../cost.ts';
import { acquireLease, releaseLease } from './leases.ts';
import type { Database } from './schema.ts';

/** PostgreSQL answers sum() of bigints as numeric (a string). */
const num = (v: unknown): number => Number(v ?? 0);
/** Rows per insert: 5 parameters each. */
const rowsPerInsert = 1000;
const egressCursorName = 'egress';

const ceilTo = (at: number, step: number): number => Math.ceil(at / step) * step;
const floorTo = (at: number, step: number): number => Math.floor(at / step) * step;

/** The rollup periods that cover the hours starting in [since, until): hours at the ends, whole days between. */
export function rollupSegments(since: number, until: number): { period: 'hour' | 'day'; from: number; to: number }[] {
  const a = ceilTo(since, hourMs);
  const b = ceilTo(until, hourMs);
  if (a >= b) return [];
  const d0 = ceilTo(a, dayMs);
  const d1 = floorTo(b, dayMs);
  if (d0 >= d1) return [{ period: 'hour', from: a, to: b }];
  return [
    ...(a < d0 ? [{ period: 'hour' as const, from: a, to: d0 }] : []),
    { period: 'day' as const, from: d0, to: d1 },
    ...(d1 < b ? [{ period: 'hour' as const, from: d1, to: b }] : []),
  ];
}

/** [since, until) cut at the starts of calendar months (UTC). */
export function monthPieces(since: number, until: number): { from: number; to: number; monthMs: number }[] {
  const out: { from: number; to: number; monthMs: number }[] = [];
  for (let from = since; from < until;) {
    const month = monthOf(from);
    const to = Math.min(until, month.end);
    out.push({ from, to, monthMs: month.end - month.start });
    from = to;
  }
  return out;
}

export class KyselyCostStore implements CostStore {
  private readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  async recordSample(at: number, samples: StorageSample[]): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const last = await tx
        .selectFrom('cost_ticks')
        .select((eb) => eb.fn.max('at').as('at'))
        .executeTakeFirst();
      if (last?.at !== null && last?.at !== undefined && num(last.at) >= at) return false;
      await tx.updateTable('cost_ticks').set({ end_at: at }).where('end_at', 'is', null).execute();
      await tx.insertInto('cost_ticks').values({ at, end_at: null }).execute();
      const rows = samples.filter((s) => s.bytes > 0).map((s) => ({ at, namespace: s.namespace, repository: s.repository, bytes: s.bytes }));
      for (let i = 0; i < rows.length; i += rowsPerInsert)
        await tx
          .insertInto('cost_samples')
          .values(rows.slice(i, i + rowsPerInsert))
          .execute();
      return true;
    });
  }

  async lastSampleAt(): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('cost_ticks')
      .select((eb) => eb.fn.max('at').as('at'))
      .executeTakeFirst();
    return row?.at === null || row?.at === undefined ? undefined : num(row.at);
  }

  async repositoryBytes(): Promise<RepositoryBytes[]> {
    const blobs = await this.db
      .selectFrom('repo_blobs')
      .innerJoin('blobs', 'blobs.digest', 'repo_blobs.digest')
      .select((eb) => ['repo_blobs.repo as repo', eb.fn.sum<number>('blobs.size').as('bytes')])
      .groupBy('repo_blobs.repo')
      .execute();
    const manifests = await this.db
      .selectFrom('manifests')
      .select((eb) => ['repo', eb.fn.sum<number>('size').as('bytes')])
      .groupBy('repo')
      .execute();
    const byRepo = new Map<string, RepositoryBytes>();
    const entry = (repository: string) => {
      let e = byRepo.get(repository);
      if (!e) byRepo.set(repository, (e = { repository, blobBytes: 0, manifestBytes: 0 }));
      return e;
    };
    for (const r of blobs) entry(r.repo).blobBytes = num(r.bytes);
    for (const r of manifests) entry(r.repo).manifestBytes = num(r.bytes);
    return [...byRepo.values()].sort((a, b) => (a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : 0));
  }

  async pruneSamples(before: number): Promise<number> {
    return this.db.transaction().execute(async (tx) => {
      const ended = tx.selectFrom('cost_ticks').select('at').where('end_at', '<', before);
      await tx.deleteFrom('cost_samples').where('at', 'in', ended).execute();
      const r = await tx.deleteFrom('cost_ticks').where('end_at', '<', before).executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }

  async usage(window: CostWindow, filter: CostFilter = {}): Promise<RepositoryUsage[]> {
    if (filter.namespaces?.length === 0 || window.since >= window.until) return [];
    const byRepo = new Map<string, RepositoryUsage>();
    const entry = (namespace: string, repository: string): RepositoryUsage => {
      const key = `${namespace}\u0000${repository}`;
      let e = byRepo.get(key);
      if (!e) byRepo.set(key, (e = { namespace, repository, storageGbMonths: 0, egressBytes: 0, egressByNetwork: {}, pushes: 0, pulls: 0 }));
      return e;
    };
    const inNamespaces = (column: RawBuilder<unknown>) =>
      filter.namespaces ? sql`and ${column} in (${sql.join(filter.namespaces.map((n) => sql`${n}`))})` : sql``;

    // Storage, month by month: a GB-month is a GB held for the whole of that calendar month.
    for (const piece of monthPieces(window.since, Math.min(window.until, window.now))) {
      const end = sql`coalesce(t.end_at, cast(${window.now} as bigint))`;
      const { rows } = await sql<{ namespace: string; repository: string; byte_ms: unknown }>`
        select s.namespace, s.repository,
          sum(cast(s.bytes as double precision) * cast(
            (case when ${end} < cast(${piece.to} as bigint) then ${end} else cast(${piece.to} as bigint) end)
            - (case when t.at > cast(${piece.from} as bigint) then t.at else cast(${piece.from} as bigint) end) as double precision)) as byte_ms
        from cost_ticks t join cost_samples s on s.at = t.at
        where t.at < cast(${piece.to} as bigint) and ${end} > cast(${piece.from} as bigint) ${inNamespaces(sql.ref('s.namespace'))}
        group by s.namespace, s.repository`.execute(this.db);
      for (const r of rows) entry(r.namespace, r.repository).storageGbMonths += num(r.byte_ms) / (bytesPerGb * piece.monthMs);
    }

    // Egress and requests: the pull and push events of the hours that start in the window.
    for (const seg of rollupSegments(window.since, window.until)) {
      let q = this.db
        .selectFrom('usage_rollups')
        .select((eb) => ['namespace', 'repository', 'type', eb.fn.sum<number>('count').as('count'), eb.fn.sum<number>('bytes').as('bytes')])
        .where('period', '=', seg.period)
        .where('start', '>=', seg.from)
        .where('start', '<', seg.to)
        .where('type', 'in', ['push', 'pull']);
      if (filter.namespaces) q = q.where('namespace', 'in', filter.namespaces);
      for (const r of await q.groupBy(['namespace', 'repository', 'type']).execute()) {
        const e = entry(r.namespace, r.repository);
        if (r.type === 'pull') {
          e.pulls += num(r.count);
          e.egressBytes += num(r.bytes);
        } else e.pushes += num(r.count);
      }
    }
    const a = ceilTo(window.since, hourMs);
    const b = ceilTo(window.until, hourMs);
    if (a < b) {
      let q = this.db
        .selectFrom('cost_egress')
        .select((eb) => ['namespace', 'repository', 'network', eb.fn.sum<number>('bytes').as('bytes')])
        .where('start', '>=', a)
        .where('start', '<', b);
      if (filter.namespaces) q = q.where('namespace', 'in', filter.namespaces);
      for (const r of await q.groupBy(['namespace', 'repository', 'network']).execute()) {
        const e = entry(r.namespace, r.repository);
        e.egressByNetwork[r.network] = (e.egressByNetwork[r.network] ?? 0) + num(r.bytes);
      }
    }
    return [...byRepo.values()]
      .filter((u) => u.storageGbMonths > 0 || u.egressBytes > 0 || u.pushes > 0 || u.pulls > 0)
      .sort((x, y) => (x.repository < y.repository ? -1 : x.repository > y.repository ? 1 : 0));
  }

  async egressCursor(): Promise<EventCursor | undefined> {
    const row = await this.db.selectFrom('cost_cursors').select(['at', 'id']).where('name', '=', egressCursorName).executeTakeFirst();
    return row && { at: num(row.at), id: row.id };
  }

  async addNetworkEgress(rows: NetworkEgress[], from: EventCursor | undefined, to: EventCursor): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      // Moving the cursor first takes the row's lock (PostgreSQL): of two replicas adding the same
      // events, the second finds the cursor moved and adds nothing.
      if (from) {
        const moved = await tx
          .updateTable('cost_cursors')
          .set({ at: to.at, id: to.id })
          .where('name', '=', egressCursorName)
          .where('at', '=', from.at)
          .where('id', '=', from.id)
          .executeTakeFirst();
        if (moved.numUpdatedRows === 0n) return false;
      } else {
        const made = await tx
          .insertInto('cost_cursors')
          .values({ name: egressCursorName, at: to.at, id: to.id })
          .onConflict((c) => c.column('name').doNothing())
          .executeTakeFirst();
        if (Number(made.numInsertedOrUpdatedRows ?? 0) === 0) return false;
      }
      for (let i = 0; i < rows.length; i += rowsPerInsert)
        await tx
          .insertInto('cost_egress')
          .values(rows.slice(i, i + rowsPerInsert))
          .onConflict((c) => c.columns(['start', 'namespace', 'repository', 'network']).doUpdateSet({ bytes: sql<number>`cost_egress.bytes + excluded.bytes` }))
          .execute();
      return true;
    });
  }

  async getBudget(scope: BudgetScope, name: string): Promise<Budget | undefined> {
    const row = await this.db.selectFrom('cost_budgets').selectAll().where('scope', '=', scope).where('name', '=', name).executeTakeFirst();
    return row && toBudget(row);
  }

  async listBudgets(): Promise<Budget[]> {
    const rows = await this.db.selectFrom('cost_budgets').selectAll().orderBy('scope').orderBy('name').execute();
    return rows.map(toBudget);
  }

  async setBudget(b: Budget): Promise<void> {
    const values = { monthly: b.monthly, soft: b.soft, soft_notified: '', hard_notified: '', updated_by: b.updatedBy, updated_at: b.updatedAt };
    await this.db
      .insertInto('cost_budgets')
      .values({ scope: b.scope, name: b.name, ...values })
      .onConflict((c) => c.columns(['scope', 'name']).doUpdateSet(values))
      .execute();
  }

  async deleteBudget(scope: BudgetScope, name: string): Promise<boolean> {
    const r = await this.db.deleteFrom('cost_budgets').where('scope', '=', scope).where('name', '=', name).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async markBudgetNotified(scope: BudgetScope, name: string, threshold: BudgetThreshold, month: string): Promise<boolean> {
    const column = threshold === 'soft' ? 'soft_notified' : 'hard_notified';
    const r = await this.db
      .updateTable('cost_budgets')
      .set({ [column]: month })
      .where('scope', '=', scope)
      .where('name', '=', name)
      .where(column, '<>', month)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
    return acquireLease(this.db, 'cost_leases', name, holder, now, ttlMs);
  }

  releaseLease(name: string, holder: string): Promise<void> {
    return releaseLease(this.db, 'cost_leases', name, holder);
  }
}

function toBudget(r: Selectable<Database['cost_budgets']>): Budget {
  return {
    scope: r.scope as BudgetScope,
    name: r.name,
    monthly: Number(r.monthly),
    soft: r.soft === null ? null : Number(r.soft),
    updatedBy: r.updated_by,
    updatedAt: num(r.updated_at),
  };
}
