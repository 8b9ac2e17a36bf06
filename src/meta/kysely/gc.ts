/**
 * The GcStore on Kysely (see ../gc.ts for the contract). Each sweep finds candidates without
 * locks, then, in one transaction, locks them (PostgreSQL: FOR UPDATE SKIP LOCKED, so a row a
 * concurrent push holds is left for the next run; SQLite has one writer, so the transaction is
 * the lock), asks the same question again in a new statement (which in READ COMMITTED sees what
 * committed meanwhile), and deletes only what is still garbage.
 */
import { sql, type ExpressionBuilder, type Kysely, type RawBuilder, type Selectable, type Transaction } from 'kysely';
import type { ClaimRun, GcCounts, GcPhase, GcRun, GcStore, GcSweep } from '../gc.ts';
import type { Engine } from './migrations.ts';
import type { Database } from './schema.ts';

type Db = Kysely<Database> | Transaction<Database>;
const none: GcCounts = { manifests: 0, links: 0, blobs: 0, bytes: 0 };
/** rows per planning query */
const planChunk = 500;
/** Lets the requests waiting on the event loop run (SQLite queries are synchronous). */
const yieldToRequests = () => new Promise<void>((resolve) => setImmediate(resolve));

export class KyselyGcStore implements GcStore {
  private readonly db: Kysely<Database>;
  private readonly engine: Engine;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.db = db;
    this.engine = engine;
  }

  async plan(cutoff: number, between: () => Promise<void> = yieldToRequests): Promise<GcCounts> {
    // In chunks, each a short query, so that on SQLite (whose queries run on the event loop)
    // a plan over millions of rows never holds up the requests around it for long.
    const doomed = await this.doomedManifests(cutoff);
    const doomedKey = new Set(doomed.map((m) => linkKey(m)));
    const goneLinks = new Set<string>();
    for (let after: { repo: string; digest: string } | undefined; ;) {
      let q = this.db.selectFrom('repo_blobs').select(['repo', 'digest', 'created_at']);
      if (after) q = q.where((eb) => eb(eb.refTuple('repo', 'digest'), '>', eb.tuple(after!.repo, after!.digest)));
      const chunk = await q.orderBy('repo').orderBy('digest').limit(planChunk).execute();
      const old = chunk.filter((l) => l.created_at < cutoff);
      if (old.length > 0) {
        // the manifests of each link's repository that reference it
        const refs = await this.db
          .selectFrom('manifest_refs')
          .select(['repo', 'digest', 'ref'])
          .where('kind', '=', 'blob')
          .where((eb) =>
            eb(
              eb.refTuple('repo', 'ref'),
              'in',
              old.map((l) => eb.tuple(l.repo, l.digest)),
            ),
          )
          .execute();
        const held = new Set(refs.filter((r) => !doomedKey.has(linkKey(r))).map((r) => linkKey({ repo: r.repo, digest: r.ref })));
        for (const l of old) if (!held.has(linkKey(l))) goneLinks.add(linkKey(l));
      }
      const last = chunk.at(-1);
      if (chunk.length < planChunk || !last) break;
      after = last;
      await between();
    }
    let blobs = 0;
    let bytes = 0;
    for (let after: string | undefined; ;) {
      let q = this.db.selectFrom('blobs').select(['digest', 'size', 'touched_at']);
      if (after !== undefined) q = q.where('digest', '>', after);
      const chunk = await q.orderBy('digest').limit(planChunk).execute();
      const old = chunk.filter((b) => b.touched_at < cutoff);
      if (old.length > 0) {
        const links = await this.db
          .selectFrom('repo_blobs')
          .select(['repo', 'digest'])
          .where(
            'digest',
            'in',
            old.map((b) => b.digest),
          )
          .execute();
        const linked = new Set(links.filter((l) => !goneLinks.has(linkKey(l))).map((l) => l.digest));
        for (const b of old)
          if (!linked.has(b.digest)) {
            blobs++;
            bytes += Number(b.size);
          }
      }
      const last = chunk.at(-1);
      if (chunk.length < planChunk || !last) break;
      after = last.digest;
      await between();
    }
    return { manifests: doomed.length, links: goneLinks.size, blobs, bytes };
  }

  /**
   * The manifests a run would delete: in collecting namespaces, those that neither a tag nor
   * anything touched within the grace period reaches, through index children and referrers'
   * subjects. One recursive query over the collecting namespaces only.
   */
  private async doomedManifests(cutoff: number): Promise<{ repo: string; digest: string }[]> {
    const namespaces = await this.collectingNamespaces();
    if (namespaces.length === 0) return [];
    const inScope = (column: string) => inNamespaces(sql.ref(column), namespaces);
    const { rows } = await sql<{ repo: string; digest: string }>`
      with recursive
        edges(repo, src, dst) as (
          select repo, digest, ref from manifest_refs where kind = 'manifest' and ${inScope('repo')}
          union all
          select repo, subject, digest from manifests where subject is not null and ${inScope('repo')}
        ),
        live(repo, digest) as (
          select repo, digest from tags where ${inScope('repo')}
          union
          select repo, digest from manifests where touched_at >= ${cutoff} and ${inScope('repo')}
          union
          select e.repo, e.dst from edges e join live l on e.repo = l.repo and e.src = l.digest
        )
      select m.repo, m.digest from manifests m
      where ${inScope('m.repo')} and not exists (select 1 from live l where l.repo = m.repo and l.digest = m.digest)
    `.execute(this.db);
    return rows;
  }

  async sweepManifests(cutoff: number, limit: number): Promise<number> {
    const namespaces = await this.collectingNamespaces();
    if (namespaces.length === 0) return 0;
    const unheld = (db: Db) =>
      db
        .selectFrom('manifests as m')
        .select(['m.repo', 'm.digest'])
        .where(inNamespaces(sql.ref('m.repo'), namespaces))
        .where('m.touched_at', '<', cutoff)
        .where((eb) =>
          eb.not(
            eb.or([
              eb.exists(eb.selectFrom('tags as t').select(sql.lit(1).as('one')).whereRef('t.repo', '=', 'm.repo').whereRef('t.digest', '=', 'm.digest')),
              eb.exists(
                eb
                  .selectFrom('manifest_refs as r')
                  .select(sql.lit(1).as('one'))
                  .whereRef('r.repo', '=', 'm.repo')
                  .whereRef('r.ref', '=', 'm.digest')
                  .where('r.kind', '=', 'manifest'),
              ),
              eb.and([
                eb('m.subject', 'is not', null),
                eb.exists(
                  eb.selectFrom('manifests as s').select(sql.lit(1).as('one')).whereRef('s.repo', '=', 'm.repo').whereRef('s.digest', '=', 'm.subject'),
                ),
              ]),
            ]),
          ),
        );
    const candidates = await unheld(this.db).limit(limit).execute();
    if (candidates.length === 0) return 0;
    return this.db.transaction().execute(async (tx) => {
      const locked = await this.lock(tx, 'manifests', candidates);
      if (locked.length === 0) return 0;
      const still = await unheld(tx)
        .where((eb) =>
          eb(
            eb.refTuple('m.repo', 'm.digest'),
            'in',
            locked.map((k) => eb.tuple(k.repo, k.digest)),
          ),
        )
        .execute();
      if (still.length === 0) return 0;
      const keys = (eb: ExpressionBuilder<Database, 'manifests' | 'manifest_refs'>) =>
        eb(
          eb.refTuple('repo', 'digest'),
          'in',
          still.map((k) => eb.tuple(k.repo, k.digest)),
        );
      await tx.deleteFrom('manifest_refs').where(keys).execute();
      await tx.deleteFrom('manifests').where(keys).execute();
      return still.length;
    });
  }

  async sweepLinks(cutoff: number, limit: number, after?: string): Promise<GcSweep> {
    const unreferenced = (db: Db) =>
      db
        .selectFrom('repo_blobs as l')
        .select(['l.repo', 'l.digest'])
        .where('l.created_at', '<', cutoff)
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom('manifest_refs as r')
                .select(sql.lit(1).as('one'))
                .whereRef('r.repo', '=', 'l.repo')
                .whereRef('r.ref', '=', 'l.digest')
                .where('r.kind', '=', 'blob'),
            ),
          ),
        );
    let q = unreferenced(this.db);
    const from = after === undefined ? undefined : readLinkKey(after);
    if (from) q = q.where((eb) => eb(eb.refTuple('l.repo', 'l.digest'), '>', eb.tuple(from.repo, from.digest)));
    const candidates = await q.orderBy('l.repo').orderBy('l.digest').limit(limit).execute();
    const last = candidates.at(-1);
    const next = candidates.length === limit && last ? linkKey(last) : undefined;
    if (candidates.length === 0) return { count: 0 };
    const count = await this.db.transaction().execute(async (tx) => {
      const locked = await this.lock(tx, 'repo_blobs', candidates);
      if (locked.length === 0) return 0;
      const still = await unreferenced(tx)
        .where((eb) =>
          eb(
            eb.refTuple('l.repo', 'l.digest'),
            'in',
            locked.map((k) => eb.tuple(k.repo, k.digest)),
          ),
        )
        .execute();
      if (still.length === 0) return 0;
      await tx
        .deleteFrom('repo_blobs')
        .where((eb) =>
          eb(
            eb.refTuple('repo', 'digest'),
            'in',
            still.map((k) => eb.tuple(k.repo, k.digest)),
          ),
        )
        .execute();
      return still.length;
    });
    return next === undefined ? { count } : { count, next };
  }

  async sweepBlobs(
    cutoff: number,
    limit: number,
    removeBytes: (blobs: { digest: string; size: number }[]) => Promise<void>,
    after?: string,
  ): Promise<GcSweep & { bytes: number }> {
    const unlinked = (db: Db) =>
      db
        .selectFrom('blobs as b')
        .select(['b.digest', 'b.size'])
        .where('b.touched_at', '<', cutoff)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('repo_blobs as l').select(sql.lit(1).as('one')).whereRef('l.digest', '=', 'b.digest'))));
    let q = unlinked(this.db);
    if (after !== undefined) q = q.where('b.digest', '>', after);
    const candidates = await q.orderBy('b.digest').limit(limit).execute();
    const last = candidates.at(-1);
    const next = candidates.length === limit && last ? last.digest : undefined;
    if (candidates.length === 0) return { count: 0, bytes: 0 };
    const swept = await this.db.transaction().execute(async (tx) => {
      let digests = candidates.map((c) => c.digest);
      if (this.engine === 'postgres') {
        const locked = await tx.selectFrom('blobs').select('digest').where('digest', 'in', digests).forUpdate().skipLocked().execute();
        digests = locked.map((r) => r.digest);
        if (digests.length === 0) return [];
      }
      const still = await unlinked(tx).where('b.digest', 'in', digests).execute();
      if (still.length === 0) return [];
      await removeBytes(still);
      await tx
        .deleteFrom('blobs')
        .where(
          'digest',
          'in',
          still.map((b) => b.digest),
        )
        .execute();
      return still;
    });
    const bytes = swept.reduce((sum, b) => sum + Number(b.size), 0);
    return next === undefined ? { count: swept.length, bytes } : { count: swept.length, bytes, next };
  }

  async claimRun(run: ClaimRun): Promise<GcRun | undefined> {
    try {
      return await this.db.transaction().execute(async (tx) => {
        let q = tx.selectFrom('gc_runs').selectAll().where('state', '=', 'running');
        if (this.engine === 'postgres') q = q.forUpdate();
        const alive = await q.executeTakeFirst();
        if (alive && alive.heartbeat_at >= run.now - run.staleMs) return undefined;
        if (alive) {
          await tx
            .updateTable('gc_runs')
            .set({ owner: run.owner, heartbeat_at: run.now, resumed: alive.resumed + 1 })
            .where('id', '=', alive.id)
            .execute();
          return toRun({ ...alive, owner: run.owner, heartbeat_at: run.now, resumed: alive.resumed + 1 });
        }
        if (run.resumeOnly) return undefined;
        const row = {
          id: run.id,
          state: 'running',
          dry_run: run.dryRun ? 1 : 0,
          phase: 'plan',
          owner: run.owner,
          started_at: run.now,
          heartbeat_at: run.now,
          finished_at: null,
          grace_ms: run.graceMs,
          resumed: 0,
          planned: JSON.stringify(none),
          done: JSON.stringify(none),
          error: null,
        };
        await tx.insertInto('gc_runs').values(row).execute();
        return toRun(row);
      });
    } catch (err) {
      // Two replicas inserting at once: gc_runs_one_running lets one in; the other stands aside.
      if (isUniqueViolation(err)) return undefined;
      throw err;
    }
  }

  async updateRun(
    id: string,
    owner: string,
    change: Partial<Pick<GcRun, 'state' | 'phase' | 'planned' | 'done' | 'error' | 'finishedAt'>> & { heartbeatAt: number },
  ): Promise<boolean> {
    const r = await this.db
      .updateTable('gc_runs')
      .set({
        heartbeat_at: change.heartbeatAt,
        ...(change.state ? { state: change.state } : {}),
        ...(change.phase ? { phase: change.phase } : {}),
        ...(change.planned ? { planned: JSON.stringify(change.planned) } : {}),
        ...(change.done ? { done: JSON.stringify(change.done) } : {}),
        ...(change.error !== undefined ? { error: change.error } : {}),
        ...(change.finishedAt !== undefined ? { finished_at: change.finishedAt } : {}),
      })
      .where('id', '=', id)
      .where('owner', '=', owner)
      .where('state', '=', 'running')
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  async getRun(id: string): Promise<GcRun | undefined> {
    const row = await this.db.selectFrom('gc_runs').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRun(row);
  }

  async listRuns(page: { limit: number; before?: string }): Promise<GcRun[]> {
    let q = this.db.selectFrom('gc_runs').selectAll();
    if (page.before !== undefined) {
      const before = await this.db.selectFrom('gc_runs').select(['started_at', 'id']).where('id', '=', page.before).executeTakeFirst();
      if (!before) return [];
      q = q.where((eb) => eb(eb.refTuple('started_at', 'id'), '<', eb.tuple(before.started_at, before.id)));
    }
    const rows = await q.orderBy('started_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    return rows.map(toRun);
  }

  private async collectingNamespaces(): Promise<string[]> {
    const rows = await this.db.selectFrom('namespaces').select('name').where('collect_untagged', '=', 1).execute();
    return rows.map((r) => r.name);
  }

  /** The candidates a concurrent transaction does not hold (PostgreSQL); on SQLite, all of them. */
  private async lock(tx: Transaction<Database>, table: 'manifests' | 'repo_blobs', keys: { repo: string; digest: string }[]) {
    if (this.engine !== 'postgres') return keys;
    return tx
      .selectFrom(table)
      .select(['repo', 'digest'])
      .where((eb) =>
        eb(
          eb.refTuple('repo', 'digest'),
          'in',
          keys.map((k) => eb.tuple(k.repo, k.digest)),
        ),
      )
      .forUpdate()
      .skipLocked()
      .execute();
  }
}

/** `column` names a repository in one of `namespaces` (a range, so `_` and `%` need no escaping). */
function inNamespaces(column: RawBuilder<unknown>, namespaces: string[]): RawBuilder<boolean> {
  if (namespaces.length === 0) return sql<boolean>`1 = 0`;
  return sql<boolean>`(${sql.join(
    namespaces.map((ns) => sql`${column} = ${ns} or (${column} >= ${`${ns}/`} and ${column} < ${`${ns}0`})`),
    sql` or `,
  )})`;
}

const linkKey = (k: { repo: string; digest: string }) => `${k.repo}@${k.digest}`;
function readLinkKey(key: string): { repo: string; digest: string } | undefined {
  const at = key.lastIndexOf('@');
  return at > 0 ? { repo: key.slice(0, at), digest: key.slice(at + 1) } : undefined;
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e.code === '23505' || (typeof e.message === 'string' && /UNIQUE constraint failed/i.test(e.message));
}

function toRun(r: Selectable<Database['gc_runs']>): GcRun {
  return {
    id: r.id,
    state: r.state as GcRun['state'],
    dryRun: r.dry_run === 1,
    phase: r.phase as GcPhase,
    owner: r.owner,
    startedAt: r.started_at,
    heartbeatAt: r.heartbeat_at,
    ...(r.finished_at === null ? {} : { finishedAt: r.finished_at }),
    graceMs: r.grace_ms,
    resumed: r.resumed,
    planned: JSON.parse(r.planned) as GcCounts,
    done: JSON.parse(r.done) as GcCounts,
    ...(r.error === null ? {} : { error: r.error }),
  };
}
