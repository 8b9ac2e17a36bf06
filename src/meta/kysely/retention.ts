/** The RetentionStore on Kysely: the same queries on SQLite and PostgreSQL. */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { PullCount, RepositoryContents, RetentionRun, RetentionStore, RulesKind, RunCounts, RunFilter, StoredRules } from '../retention.ts';
import type { Engine } from './migrations.ts';
import { acquireLease, releaseLease } from './leases.ts';
import type { Database } from './schema.ts';

const chunkSize = 500;

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += chunkSize) out.push(items.slice(i, i + chunkSize));
  return out;
}

const toRules = (r: Selectable<Database['retention_rules']>): StoredRules => ({
  kind: r.kind as RulesKind,
  name: r.name,
  document: JSON.parse(r.document) as unknown,
  source: r.source,
  updatedBy: r.updated_by,
  updatedAt: r.updated_at,
});

type RunRow = Selectable<Database['retention_runs']>;

const toRun = (r: Omit<RunRow, 'result'> & { result?: string | null }): RetentionRun => ({
  id: r.id,
  trigger: r.trigger,
  actor: r.actor,
  scope: r.scope_kind === 'all' ? { kind: 'all' } : { kind: r.scope_kind as RulesKind, name: r.scope_name },
  ...(r.namespace === null ? {} : { namespace: r.namespace }),
  dryRun: r.dry_run === 1,
  status: r.status as RetentionRun['status'],
  startedAt: r.started_at,
  updatedAt: r.updated_at,
  ...(r.finished_at === null ? {} : { finishedAt: r.finished_at }),
  phase: r.phase,
  done: r.done,
  total: r.total,
  counts: JSON.parse(r.counts) as RunCounts,
  ...(r.error === null ? {} : { error: r.error }),
  ...(r.result ? { result: JSON.parse(r.result) as unknown } : {}),
});

/** `namespace` itself, or a name under `namespace/` (a range: `_` and `%` need no escaping; '0' follows '/'). */
const inNamespace = (column: string, namespace: string) =>
  sql<boolean>`(${sql.ref(column)} = ${namespace} or (${sql.ref(column)} >= ${`${namespace}/`} and ${sql.ref(column)} < ${`${namespace}0`}))`;

/** A page cursor: the start time and id of the last run seen. */
function readCursor(value: string | undefined): { at: number; id: string } | undefined {
  if (!value) return undefined;
  const dot = value.indexOf('.');
  const at = Number(value.slice(0, dot));
  return dot > 0 && Number.isSafeInteger(at) ? { at, id: value.slice(dot + 1) } : undefined;
}

export class KyselyRetentionStore implements RetentionStore {
  private readonly db: Kysely<Database>;
  private readonly engine: Engine;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.db = db;
    this.engine = engine;
  }

  async putRules(r: StoredRules): Promise<{ created: boolean }> {
    const row = { kind: r.kind, name: r.name, document: JSON.stringify(r.document), source: r.source, updated_by: r.updatedBy, updated_at: r.updatedAt };
    return this.db.transaction().execute(async (tx) => {
      const before = await tx.selectFrom('retention_rules').select('name').where('kind', '=', r.kind).where('name', '=', r.name).executeTakeFirst();
      await tx
        .insertInto('retention_rules')
        .values(row)
        .onConflict((c) =>
          c.columns(['kind', 'name']).doUpdateSet({ document: row.document, source: row.source, updated_by: row.updated_by, updated_at: row.updated_at }),
        )
        .execute();
      return { created: before === undefined };
    });
  }

  async getRules(kind: RulesKind, name: string): Promise<StoredRules | undefined> {
    const row = await this.db.selectFrom('retention_rules').selectAll().where('kind', '=', kind).where('name', '=', name).executeTakeFirst();
    return row && toRules(row);
  }

  async deleteRules(kind: RulesKind, name: string): Promise<boolean> {
    const r = await this.db.deleteFrom('retention_rules').where('kind', '=', kind).where('name', '=', name).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async listRules(namespace?: string): Promise<StoredRules[]> {
    let q = this.db.selectFrom('retention_rules').selectAll();
    if (namespace !== undefined) q = q.where(inNamespace('name', namespace));
    return (await q.orderBy('kind').orderBy('name').execute()).map(toRules);
  }

  async recordPulls(pulls: PullCount[]): Promise<void> {
    // One row per artifact in a statement (PostgreSQL refuses to update a row twice in one).
    const merged = new Map<string, PullCount>();
    for (const p of pulls) {
      const key = `${p.repo}@${p.digest}`;
      const seen = merged.get(key);
      if (seen) merged.set(key, { ...seen, count: seen.count + p.count, lastPulledAt: Math.max(seen.lastPulledAt, p.lastPulledAt) });
      else merged.set(key, p);
    }
    for (const chunk of chunks([...merged.values()])) {
      await this.db
        .insertInto('artifact_pulls')
        .values(chunk.map((p) => ({ repo: p.repo, digest: p.digest, last_pulled_at: p.lastPulledAt, pull_count: p.count })))
        .onConflict((c) =>
          c.columns(['repo', 'digest']).doUpdateSet({
            pull_count: sql<number>`artifact_pulls.pull_count + excluded.pull_count`,
            last_pulled_at: sql<number>`case when excluded.last_pulled_at > artifact_pulls.last_pulled_at then excluded.last_pulled_at else artifact_pulls.last_pulled_at end`,
          }),
        )
        .execute();
    }
  }

  async pullsOf(repo: string): Promise<PullCount[]> {
    const rows = await this.db.selectFrom('artifact_pulls').selectAll().where('repo', '=', repo).orderBy('digest').execute();
    return rows.map((r) => ({ repo: r.repo, digest: r.digest, lastPulledAt: r.last_pulled_at, count: r.pull_count }));
  }

  async repositoriesIn(namespace: string): Promise<string[]> {
    const rows = await this.db.selectFrom('repositories').select('name').where(inNamespace('name', namespace)).orderBy('name').execute();
    return rows.map((r) => r.name);
  }

  async contents(repo: string): Promise<RepositoryContents> {
    const [tags, manifests, children, pulls] = await Promise.all([
      this.db.selectFrom('tags').select(['name', 'digest', 'updated_at']).where('repo', '=', repo).orderBy('name').execute(),
      this.db.selectFrom('manifests').select(['digest', 'media_type', 'subject', 'size', 'created_at']).where('repo', '=', repo).orderBy('digest').execute(),
      this.db.selectFrom('manifest_refs').select(['digest', 'ref']).where('repo', '=', repo).where('kind', '=', 'manifest').execute(),
      this.db.selectFrom('artifact_pulls').select(['digest', 'last_pulled_at', 'pull_count']).where('repo', '=', repo).execute(),
    ]);
    return {
      tags: tags.map((t) => ({ name: t.name, digest: t.digest, updatedAt: t.updated_at })),
      manifests: manifests.map((m) => ({
        digest: m.digest,
        mediaType: m.media_type,
        ...(m.subject ? { subject: m.subject } : {}),
        size: m.size,
        createdAt: m.created_at,
      })),
      children: children.map((c) => ({ parent: c.digest, child: c.ref })),
      pulls: pulls.map((p) => ({ digest: p.digest, lastPulledAt: p.last_pulled_at, count: p.pull_count })),
    };
  }

  async blobsOf(repo: string, digests: string[]): Promise<{ digest: string; blob: string }[]> {
    const out: { digest: string; blob: string }[] = [];
    // Only references the repository links: what the GC keeps a blob for (a link some manifest of
    // the repository references), so that blobReferences counts the same way.
    for (const chunk of chunks([...new Set(digests)])) {
      const rows = await this.db
        .selectFrom('manifest_refs as mr')
        .innerJoin('repo_blobs as rb', (j) => j.onRef('rb.repo', '=', 'mr.repo').onRef('rb.digest', '=', 'mr.ref'))
        .select(['mr.digest', 'mr.ref'])
        .where('mr.repo', '=', repo)
        .where('mr.kind', '=', 'blob')
        .where('mr.digest', 'in', chunk)
        .execute();
      for (const r of rows) out.push({ digest: r.digest, blob: r.ref });
    }
    return out;
  }

  async blobReferences(blobs: string[]): Promise<{ blob: string; size: number; references: number }[]> {
    const out: { blob: string; size: number; references: number }[] = [];
    for (const chunk of chunks([...new Set(blobs)])) {
      const [counts, sizes] = await Promise.all([
        this.db
          .selectFrom('repo_blobs as rb')
          .innerJoin('manifest_refs as mr', (j) => j.onRef('mr.repo', '=', 'rb.repo').onRef('mr.ref', '=', 'rb.digest'))
          .select(['rb.digest', (eb) => eb.fn.countAll<number>().as('n')])
          .where('rb.digest', 'in', chunk)
          .where('mr.kind', '=', 'blob')
          .groupBy('rb.digest')
          .execute(),
        this.db.selectFrom('blobs').select(['digest', 'size']).where('digest', 'in', chunk).execute(),
      ]);
      const n = new Map(counts.map((c) => [c.digest, Number(c.n)]));
      for (const s of sizes) out.push({ blob: s.digest, size: Number(s.size), references: n.get(s.digest) ?? 0 });
    }
    return out;
  }

  async deleteTagIf(repo: string, tag: string, digest: string, updatedAt: number): Promise<boolean> {
    const r = await this.db
      .deleteFrom('tags')
      .where('repo', '=', repo)
      .where('name', '=', tag)
      .where('digest', '=', digest)
      .where('updated_at', '=', updatedAt)
      .executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async deleteManifestIfUnused(repo: string, digest: string): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      // PostgreSQL: lock the row first, so that a push holding it (tagging it again, an index
      // listing it) commits before the check below, which then sees it. SQLite writes one at a time.
      if (this.engine === 'postgres')
        await tx.selectFrom('manifests').select('digest').where('repo', '=', repo).where('digest', '=', digest).forUpdate().execute();
      const r = await tx
        .deleteFrom('manifests')
        .where('repo', '=', repo)
        .where('digest', '=', digest)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('tags').select('tags.name').where('tags.repo', '=', repo).where('tags.digest', '=', digest))))
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom('manifest_refs')
                .select('manifest_refs.ref')
                .where('manifest_refs.repo', '=', repo)
                .where('manifest_refs.ref', '=', digest)
                .where('manifest_refs.kind', '=', 'manifest'),
            ),
          ),
        )
        .executeTakeFirst();
      if (r.numDeletedRows === 0n) return false;
      await tx.deleteFrom('manifest_refs').where('repo', '=', repo).where('digest', '=', digest).execute();
      return true;
    });
  }

  async forgetPulls(repo: string, digests: string[]): Promise<void> {
    for (const chunk of chunks(digests)) await this.db.deleteFrom('artifact_pulls').where('repo', '=', repo).where('digest', 'in', chunk).execute();
  }

  async createRun(run: RetentionRun): Promise<void> {
    await this.db
      .insertInto('retention_runs')
      .values({
        id: run.id,
        trigger: run.trigger,
        actor: run.actor,
        scope_kind: run.scope.kind,
        scope_name: run.scope.kind === 'all' ? '' : run.scope.name,
        namespace: run.namespace ?? null,
        dry_run: run.dryRun ? 1 : 0,
        status: run.status,
        started_at: run.startedAt,
        updated_at: run.updatedAt,
        finished_at: run.finishedAt ?? null,
        phase: run.phase,
        done: run.done,
        total: run.total,
        counts: JSON.stringify(run.counts),
        error: run.error ?? null,
        result: run.result === undefined ? null : JSON.stringify(run.result),
      })
      .execute();
  }

  async updateRun(
    id: string,
    change: Partial<Pick<RetentionRun, 'status' | 'phase' | 'done' | 'total' | 'counts' | 'error' | 'finishedAt' | 'result'>> & { updatedAt: number },
  ): Promise<void> {
    await this.db
      .updateTable('retention_runs')
      .set({
        updated_at: change.updatedAt,
        ...(change.status === undefined ? {} : { status: change.status }),
        ...(change.phase === undefined ? {} : { phase: change.phase }),
        ...(change.done === undefined ? {} : { done: change.done }),
        ...(change.total === undefined ? {} : { total: change.total }),
        ...(change.counts === undefined ? {} : { counts: JSON.stringify(change.counts) }),
        ...(change.error === undefined ? {} : { error: change.error }),
        ...(change.finishedAt === undefined ? {} : { finished_at: change.finishedAt }),
        ...(change.result === undefined ? {} : { result: JSON.stringify(change.result) }),
      })
      .where('id', '=', id)
      .execute();
  }

  async getRun(id: string): Promise<RetentionRun | undefined> {
    const row = await this.db.selectFrom('retention_runs').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRun(row);
  }

  async listRuns(filter: RunFilter, page: { limit: number; before?: string }): Promise<{ runs: RetentionRun[]; next?: string }> {
    let q = this.db
      .selectFrom('retention_runs')
      .select([
        'id',
        'trigger',
        'actor',
        'scope_kind',
        'scope_name',
        'namespace',
        'dry_run',
        'status',
        'started_at',
        'updated_at',
        'finished_at',
        'phase',
        'done',
        'total',
        'counts',
        'error',
      ]);
    if (filter.namespace !== undefined) q = q.where('namespace', '=', filter.namespace);
    if (filter.registryWide) q = q.where('scope_kind', '=', 'all');
    const before = readCursor(page.before);
    if (before) q = q.where((eb) => eb.or([eb('started_at', '<', before.at), eb.and([eb('started_at', '=', before.at), eb('id', '<', before.id)])]));
    const rows = await q
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(page.limit + 1)
      .execute();
    const shown = rows.slice(0, page.limit);
    const last = shown.at(-1);
    return { runs: shown.map(toRun), ...(rows.length > page.limit && last ? { next: `${last.started_at}.${last.id}` } : {}) };
  }

  async lastScheduledStart(): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('retention_runs')
      .select((eb) => eb.fn.max('started_at').as('at'))
      .where('trigger', '=', 'schedule')
      .executeTakeFirst();
    return row?.at === null || row?.at === undefined ? undefined : Number(row.at);
  }

  async failStaleRuns(before: number, now: number): Promise<number> {
    const r = await this.db
      .updateTable('retention_runs')
      .set({ status: 'failed', error: 'interrupted: the replica running it stopped', finished_at: now, updated_at: now })
      .where('status', '=', 'running')
      .where('updated_at', '<', before)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  async pruneRuns(before: number): Promise<number> {
    const r = await this.db.deleteFrom('retention_runs').where('status', '!=', 'running').where('finished_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
    return acquireLease(this.db, 'retention_leases', name, holder, now, ttlMs);
  }

  releaseLease(name: string, holder: string): Promise<void> {
    return releaseLease(this.db, 'retention_leases', name, holder);
  }
}
