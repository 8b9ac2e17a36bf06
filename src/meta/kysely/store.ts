/** The MetaStore on Kysely: one implementation for SQLite and PostgreSQL. */
import { CompiledQuery, Kysely, sql, type Dialect, type Transaction } from 'kysely';
import { Migrator } from 'kysely/migration';
import { KyselyAccountStore } from './accounts.ts';
import { KyselyTufStore } from './tuf.ts';
import { KyselyTrustStore } from './trust.ts';
import { KyselyPolicyStore } from './policy.ts';
import { KyselyGcStore } from './gc.ts';
import { KyselyQuotaStore } from './quota.ts';
import { KyselyRetentionStore } from './retention.ts';
import { KyselyQueryStore } from './query.ts';
import { KyselyInsightStore } from './insight.ts';
import { KyselyCostStore } from './cost.ts';
import { KyselyWebhookStore } from './webhooks.ts';
import { KyselyLeaseStore } from './leases.ts';
import { KyselyRateStore } from './rates.ts';
import { namespaceOf } from '../../reference.ts';
import type { ManifestCache } from '../manifest-cache.ts';
import type { NamespaceCache } from '../namespace-cache.ts';
import type { QuotaSettings } from '../quota.ts';
import type { ManifestRecord, MetaStore, NewManifest, Page, PutManifestResult, Upload, UploadPart } from '../metastore.ts';
import { migrations, type Engine } from './migrations.ts';
import type { Database } from './schema.ts';

type ManifestRow = Pick<Database['manifests'], 'repo' | 'digest' | 'media_type' | 'content' | 'artifact_type' | 'subject' | 'annotations'>;

const manifestFields = ['repo', 'digest', 'media_type', 'content', 'artifact_type', 'subject', 'annotations'] as const;

export interface StoreOptions {
  /** the SQLite database's file, where events get a writer thread of their own (sqlite-events.ts) */
  sqliteFile?: string;
  /** PostgreSQL: the manifest and namespace caches, kept live by a change feed that `closeFeed` stops */
  manifestCache?: ManifestCache;
  namespaceCache?: NamespaceCache<QuotaSettings | undefined>;
  closeFeed?: () => Promise<void>;
}

export class KyselyMetaStore implements MetaStore {
  private readonly db: Kysely<Database>;
  readonly accounts: KyselyAccountStore;
  readonly tuf: KyselyTufStore;
  readonly trust: KyselyTrustStore;
  readonly policy: KyselyPolicyStore;
  readonly gc: KyselyGcStore;
  readonly quota: KyselyQuotaStore;
  readonly retention: KyselyRetentionStore;
  readonly query: KyselyQueryStore;
  readonly insight: KyselyInsightStore;
  readonly cost: KyselyCostStore;
  readonly webhooks: KyselyWebhookStore;
  readonly leases: KyselyLeaseStore;
  readonly rates: KyselyRateStore;
  private readonly engine: Engine;
  /**
   * The reads behind every manifest and blob GET, compiled once: building a query costs more
   * than running it on SQLite. Parameters are (repo, digest), (repo, tag) and (repo, digest).
   */
  private readonly hot: { byDigest: string; byTag: string; blobSize: string };
  /** PostgreSQL: manifest GETs answered from memory while the change feed runs (manifest-cache.ts) */
  private readonly manifests: ManifestCache | undefined;
  private readonly closeFeed: () => Promise<void>;

  private constructor(db: Kysely<Database>, engine: Engine, options: StoreOptions) {
    this.db = db;
    this.engine = engine;
    this.manifests = options.manifestCache;
    this.closeFeed = options.closeFeed ?? (async () => {});
    this.gc = new KyselyGcStore(db, engine);
    this.accounts = new KyselyAccountStore(db, options.namespaceCache);
    this.tuf = new KyselyTufStore(db);
    this.trust = new KyselyTrustStore(db);
    this.policy = new KyselyPolicyStore(db);
    this.quota = new KyselyQuotaStore(db, options.namespaceCache);
    this.retention = new KyselyRetentionStore(db, engine);
    this.query = new KyselyQueryStore(db, engine);
    this.insight = new KyselyInsightStore(db, engine, options);
    this.cost = new KyselyCostStore(db);
    this.webhooks = new KyselyWebhookStore(db, engine);
    this.leases = new KyselyLeaseStore(db);
    this.rates = new KyselyRateStore(db, engine);
    this.hot = {
      byDigest: this.manifestColumns().where('repo', '=', '').where('digest', '=', '').compile().sql,
      byTag: db
        .selectFrom('tags')
        .innerJoin('manifests', (j) => j.onRef('manifests.repo', '=', 'tags.repo').onRef('manifests.digest', '=', 'tags.digest'))
        .select(manifestFields.map((f) => `manifests.${f}` as const))
        .where('tags.repo', '=', '')
        .where('tags.name', '=', '')
        .compile().sql,
      blobSize: db
        .selectFrom('repo_blobs')
        .innerJoin('blobs', 'blobs.digest', 'repo_blobs.digest')
        .select('blobs.size')
        .where('repo_blobs.repo', '=', '')
        .where('repo_blobs.digest', '=', '')
        .compile().sql,
    };
  }

  static async open(dialect: Dialect, engine: Engine, options: StoreOptions = {}): Promise<KyselyMetaStore> {
    const db = new Kysely<Database>({ dialect });
    const migrator = new Migrator({
      db,
      provider: migrations(engine),
      migrationTableName: 'custody_migrations',
      migrationLockTableName: 'custody_migrations_lock',
    });
    const { error } = await migrator.migrateToLatest();
    if (error) {
      await db.destroy();
      await options.closeFeed?.();
      throw error instanceof Error ? error : new Error(`migration failed: ${JSON.stringify(error)}`);
    }
    return new KyselyMetaStore(db, engine, options);
  }

  async touchBlob(digest: string): Promise<{ linkedSize: number }> {
    const now = Date.now();
    // size 0 until linkBlob knows it; an unlinked row is never served, and the GC sweeps it
    // (with any bytes a failed write left) once the grace period has passed.
    const row = await this.db
      .insertInto('blobs')
      .values({ digest, size: 0, created_at: now, touched_at: now })
      .onConflict((c) => c.column('digest').doUpdateSet({ touched_at: now }))
      .returning('size')
      .executeTakeFirst();
    return { linkedSize: Number(row?.size ?? 0) };
  }

  async linkBlob(
    repo: string,
    digest: string,
    size: number,
    options: { afterTouch?: boolean; endUpload?: string } = {},
  ): Promise<{ collected: boolean; uploadEnded?: boolean }> {
    const now = Date.now();
    const ended = options.endUpload === undefined ? {} : { uploadEnded: true };
    if (this.engine === 'postgres' && (await this.linkTouchedBlob(repo, digest, size, now, options.endUpload))) return { collected: false, ...ended };
    return this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('repositories')
        .values({ name: repo, created_at: now })
        .onConflict((c) => c.doNothing())
        .execute();
      // An update first: it waits for a sweep that holds the row, and finds it gone if the sweep won.
      const touched = await tx.updateTable('blobs').set({ size, touched_at: now }).where('digest', '=', digest).executeTakeFirst();
      const collected = touched.numUpdatedRows === 0n;
      if (collected) {
        await tx
          .insertInto('blobs')
          .values({ digest, size, created_at: now, touched_at: now })
          .onConflict((c) => c.column('digest').doUpdateSet({ size, touched_at: now }))
          .execute();
        // swept since the caller's touchBlob: its bytes may have gone with it; no link before the caller has looked
        if (options.afterTouch) return { collected };
      }
      await this.link(tx, repo, digest, now);
      if (options.endUpload === undefined) return { collected };
      await removeUpload(tx, options.endUpload);
      return { collected, ...ended };
    });
  }

  /**
   * PostgreSQL, the usual case of linkBlob in one statement (one round trip where the transaction
   * takes five): the repository, the blob's row updated — waiting for a sweep that holds it, as
   * the transaction's update does — and the link, made only if the row was there. False when a
   * sweep took the row: linkBlob then takes its transaction's path for collected blobs. With
   * `endUpload`, the upload's rows go too, only if the row was there (one commit instead of two).
   */
  private async linkTouchedBlob(repo: string, digest: string, size: number, now: number, endUpload?: string): Promise<boolean> {
    const ending =
      endUpload === undefined
        ? sql``
        : sql`, parts as (delete from upload_parts where upload_id = ${endUpload} and exists (select 1 from touched)),
          ended as (delete from uploads where id = ${endUpload} and exists (select 1 from touched))`;
    const { rows } = await sql<{ linked: number }>`
      with repository as (insert into repositories (name, created_at) values (${repo}, ${now}) on conflict do nothing),
      touched as (update blobs set size = ${size}, touched_at = ${now} where digest = ${digest} returning digest),
      linked as (
        insert into repo_blobs (repo, digest, namespace, created_at) select cast(${repo} as text), digest, cast(${namespaceOf(repo)} as text), cast(${now} as bigint) from touched
        on conflict (repo, digest) do update set created_at = excluded.created_at returning 1)${ending}
      select count(*) as linked from linked`.execute(this.db);
    return Number(rows[0]?.linked) > 0;
  }

  async linkExistingBlob(repo: string, from: string, digest: string): Promise<number | undefined> {
    const now = Date.now();
    try {
      return await this.db.transaction().execute(async (tx) => {
        // Rows in the order linkBlob takes them: the repository, the blob, then links. Share-locking
        // the source link before the blob row deadlocked (PostgreSQL) with an upload of the same
        // blob into `from`, and with a mount of it the other way round.
        await tx
          .insertInto('repositories')
          .values({ name: repo, created_at: now })
          .onConflict((c) => c.doNothing())
          .execute();
        // Touching the row holds it against a sweep; a row already swept means there is nothing to mount.
        const blob = await tx.updateTable('blobs').set({ touched_at: now }).where('digest', '=', digest).returning('size').executeTakeFirst();
        if (!blob) throw new NothingToMount();
        let source = tx.selectFrom('repo_blobs').select('digest').where('repo', '=', from).where('digest', '=', digest);
        if (this.engine === 'postgres') source = source.forShare();
        if (!(await source.executeTakeFirst())) throw new NothingToMount();
        await this.link(tx, repo, digest, now);
        return blob.size;
      });
    } catch (err) {
      // rolled back: no repository made, no blob touched
      if (err instanceof NothingToMount) return undefined;
      throw err;
    }
  }

  /** A link's created_at restarts on every link: the GC's grace period for an unreferenced link counts from it. */
  private async link(tx: Transaction<Database>, repo: string, digest: string, now: number): Promise<void> {
    await tx
      .insertInto('repo_blobs')
      .values({ repo, digest, namespace: namespaceOf(repo), created_at: now })
      .onConflict((c) => c.columns(['repo', 'digest']).doUpdateSet({ created_at: now }))
      .execute();
  }

  async blobInRepo(repo: string, digest: string): Promise<number | undefined> {
    const { rows } = await this.db.executeQuery<{ size: number }>(CompiledQuery.raw(this.hot.blobSize, [repo, digest]));
    return rows[0]?.size;
  }

  async unlinkBlob(repo: string, digest: string): Promise<boolean> {
    const r = await this.db.deleteFrom('repo_blobs').where('repo', '=', repo).where('digest', '=', digest).executeTakeFirst();
    return r.numDeletedRows > 0n;
  }

  async createUpload(id: string, repo: string): Promise<void> {
    const now = Date.now();
    await this.db.insertInto('uploads').values({ id, repo, offset: 0, created_at: now, updated_at: now }).execute();
  }

  /** One query: the session and its parts, joined (a round trip each would double a PATCH's reads on PostgreSQL). */
  async getUpload(id: string): Promise<Upload | undefined> {
    const rows = await this.db
      .selectFrom('uploads')
      .leftJoin('upload_parts', 'upload_parts.upload_id', 'uploads.id')
      .select([
        'uploads.id',
        'uploads.repo',
        'uploads.offset',
        'uploads.created_at',
        'upload_parts.start',
        'upload_parts.size',
        'upload_parts.sha256',
        'upload_parts.key',
      ])
      .where('uploads.id', '=', id)
      .orderBy('upload_parts.start')
      .execute();
    const row = rows[0];
    if (!row) return undefined;
    const parts: UploadPart[] = [];
    for (const p of rows)
      if (p.start !== null && p.size !== null && p.sha256 !== null && p.key !== null)
        parts.push({ start: p.start, size: p.size, sha256: p.sha256, key: p.key });
    return { id: row.id, repo: row.repo, offset: row.offset, parts, createdAt: row.created_at };
  }

  async appendUploadPart(id: string, part: UploadPart): Promise<boolean> {
    const now = Date.now();
    if (this.engine === 'postgres') {
      // One statement, so one round trip and atomic as the transaction below: the part goes in
      // only if the offset moved, and a concurrent PATCH at the same offset finds it moved.
      const { rows } = await sql<{ upload_id: string }>`
        with moved as (update uploads set "offset" = ${part.start + part.size}, updated_at = ${now} where id = ${id} and "offset" = ${part.start} returning id)
        insert into upload_parts (upload_id, start, size, sha256, key)
          select id, cast(${part.start} as bigint), cast(${part.size} as bigint), cast(${part.sha256} as text), cast(${part.key} as text) from moved
        returning upload_id`.execute(this.db);
      return rows.length > 0;
    }
    return this.db.transaction().execute(async (tx) => {
      const moved = await tx
        .updateTable('uploads')
        .set({ offset: part.start + part.size, updated_at: now })
        .where('id', '=', id)
        .where('offset', '=', part.start)
        .executeTakeFirst();
      if (moved.numUpdatedRows === 0n) return false;
      await tx
        .insertInto('upload_parts')
        .values({ upload_id: id, ...part })
        .execute();
      return true;
    });
  }

  async deleteUpload(id: string): Promise<void> {
    if (this.engine === 'postgres') {
      await sql`with parts as (delete from upload_parts where upload_id = ${id}) delete from uploads where id = ${id}`.execute(this.db);
      return;
    }
    await this.db.transaction().execute((tx) => removeUpload(tx, id));
  }

  async staleUploads(cutoff: number): Promise<Upload[]> {
    const rows = await this.db.selectFrom('uploads').select('id').where('updated_at', '<', cutoff).limit(1000).execute();
    const uploads = await Promise.all(rows.map((r) => this.getUpload(r.id)));
    return uploads.filter((u): u is Upload => u !== undefined);
  }

  async countUploads(): Promise<number> {
    const row = await this.db
      .selectFrom('uploads')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async putManifest(m: NewManifest): Promise<PutManifestResult> {
    try {
      return await this.storeManifest(m);
    } finally {
      // at once for this replica's next GET; the others hear of it from the change feed
      this.manifests?.invalidate(m.repo);
    }
  }

  private storeManifest(m: NewManifest): Promise<PutManifestResult> {
    const now = Date.now();
    return this.db.transaction().execute(async (tx) => {
      // On PostgreSQL the rows found are share-locked until commit, so a GC sweep (which locks
      // them for update and checks again) cannot take a blob link or child this manifest needs.
      const share = this.engine === 'postgres';
      const missing =
        (await missingFrom(m.blobs, (chunk) => {
          const q = tx.selectFrom('repo_blobs').select('digest').where('repo', '=', m.repo).where('digest', 'in', chunk);
          return (share ? q.forShare() : q).execute();
        })) ??
        (await missingFrom(m.manifests, (chunk) => {
          const q = tx.selectFrom('manifests').select('digest').where('repo', '=', m.repo).where('digest', 'in', chunk);
          return (share ? q.forShare() : q).execute();
        }));
      if (missing) return { ok: false, missing };
      await tx
        .insertInto('repositories')
        .values({ name: m.repo, created_at: now })
        .onConflict((c) => c.doNothing())
        .execute();
      await tx
        .insertInto('manifests')
        .values({
          repo: m.repo,
          digest: m.digest,
          media_type: m.mediaType,
          content: m.content,
          size: m.content.byteLength,
          artifact_type: m.artifactType ?? null,
          subject: m.subject ?? null,
          annotations: m.annotations ? JSON.stringify(m.annotations) : null,
          created_at: now,
          touched_at: now,
        })
        // a re-push touches the row (and locks it): the grace period restarts, and a sweep waits
        .onConflict((c) => c.columns(['repo', 'digest']).doUpdateSet({ touched_at: now }))
        .execute();
      const refs = [...new Set(m.blobs)].map((ref) => ({ repo: m.repo, digest: m.digest, ref, kind: 'blob' }));
      refs.push(...[...new Set(m.manifests)].map((ref) => ({ repo: m.repo, digest: m.digest, ref, kind: 'manifest' })));
      for (let i = 0; i < refs.length; i += 200) {
        await tx
          .insertInto('manifest_refs')
          .values(refs.slice(i, i + 200))
          .onConflict((c) => c.doNothing())
          .execute();
      }
      if (m.tag !== undefined) {
        await tx
          .insertInto('tags')
          .values({ repo: m.repo, name: m.tag, digest: m.digest, updated_at: now })
          .onConflict((c) => c.columns(['repo', 'name']).doUpdateSet({ digest: m.digest, updated_at: now }))
          .execute();
      }
      return { ok: true };
    });
  }

  getManifest(repo: string, digest: string): Promise<ManifestRecord | undefined> {
    const load = () => this.hotManifest(this.hot.byDigest, repo, digest);
    return this.manifests ? this.manifests.read(repo, digest, load) : load();
  }

  getTaggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    const load = () => this.hotManifest(this.hot.byTag, repo, tag);
    return this.manifests ? this.manifests.read(repo, tag, load) : load();
  }

  private async hotManifest(query: string, repo: string, ref: string): Promise<ManifestRecord | undefined> {
    const { rows } = await this.db.executeQuery<ManifestRow>(CompiledQuery.raw(query, [repo, ref]));
    return rows[0] && toRecord(rows[0]);
  }

  async resolveTag(repo: string, tag: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('tags').select('digest').where('repo', '=', repo).where('name', '=', tag).executeTakeFirst();
    return row?.digest;
  }

  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    const deleted = await this.db.transaction().execute(async (tx) => {
      const r = await tx.deleteFrom('manifests').where('repo', '=', repo).where('digest', '=', digest).executeTakeFirst();
      await tx.deleteFrom('manifest_refs').where('repo', '=', repo).where('digest', '=', digest).execute();
      await tx.deleteFrom('tags').where('repo', '=', repo).where('digest', '=', digest).execute();
      return r.numDeletedRows > 0n;
    });
    this.manifests?.invalidate(repo);
    return deleted;
  }

  async deleteTag(repo: string, tag: string): Promise<boolean> {
    const r = await this.db.deleteFrom('tags').where('repo', '=', repo).where('name', '=', tag).executeTakeFirst();
    this.manifests?.invalidate(repo);
    return r.numDeletedRows > 0n;
  }

  async repositoryExists(repo: string): Promise<boolean> {
    return (await this.db.selectFrom('repositories').select('name').where('name', '=', repo).executeTakeFirst()) !== undefined;
  }

  async listTags(repo: string, page: Page): Promise<string[]> {
    let q = this.db.selectFrom('tags').select('name').where('repo', '=', repo);
    if (page.last !== undefined) q = q.where('name', '>', page.last);
    const rows = await q.orderBy('name').limit(page.n).execute();
    return rows.map((r) => r.name);
  }

  async listManifests(repo: string, page: Page): Promise<{ digest: string; tagged: boolean }[]> {
    let q = this.db
      .selectFrom('manifests as m')
      .select((eb) => [
        'm.digest',
        eb.exists(eb.selectFrom('tags as t').select('t.name').whereRef('t.repo', '=', 'm.repo').whereRef('t.digest', '=', 'm.digest')).as('tagged'),
      ])
      .where('m.repo', '=', repo);
    if (page.last !== undefined) q = q.where('m.digest', '>', page.last);
    const rows = await q.orderBy('m.digest').limit(page.n).execute();
    // SQLite answers exists() with 0 or 1, PostgreSQL with a boolean
    return rows.map((r) => ({ digest: r.digest, tagged: Boolean(r.tagged) }));
  }

  async listRepositories(page: Page): Promise<string[]> {
    let q = this.db.selectFrom('repositories').select('name');
    if (page.last !== undefined) q = q.where('name', '>', page.last);
    const rows = await q.orderBy('name').limit(page.n).execute();
    return rows.map((r) => r.name);
  }

  async listReferrers(repo: string, subject: string): Promise<ManifestRecord[]> {
    const rows = await this.manifestColumns().where('repo', '=', repo).where('subject', '=', subject).orderBy('created_at').execute();
    return rows.map(toRecord);
  }

  async storedBytes(namespace: string): Promise<number> {
    // the figure quotas judge by: the namespace's fair share of its blobs, plus its manifests
    const usage = await this.quota.usage(namespace);
    return usage.fairBlobBytes + usage.manifestBytes;
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.closeFeed();
    await this.insight.close();
    await this.db.destroy();
  }

  private manifestColumns() {
    return this.db.selectFrom('manifests').select(manifestFields);
  }
}

/** A mount finds no blob to link: its transaction is rolled back. */
class NothingToMount extends Error {}

/** The first digest of `wanted` that the lookup does not find, asked in chunks of 500. */
async function missingFrom(wanted: string[], lookup: (chunk: string[]) => Promise<{ digest: string }[]>): Promise<string | undefined> {
  const unique = [...new Set(wanted)];
  for (let i = 0; i < unique.length; i += 500) {
    const chunk = unique.slice(i, i + 500);
    const found = new Set((await lookup(chunk)).map((r) => r.digest));
    const missing = chunk.find((d) => !found.has(d));
    if (missing) return missing;
  }
  return undefined;
}

function toRecord(row: ManifestRow): ManifestRecord {
  return {
    repo: row.repo,
    digest: row.digest,
    mediaType: row.media_type,
    content: row.content,
    artifactType: row.artifact_type ?? undefined,
    subject: row.subject ?? undefined,
    annotations: row.annotations ? (JSON.parse(row.annotations) as Record<string, string>) : undefined,
  };
}

/** An upload's rows, its parts' first, in the caller's transaction. */
async function removeUpload(tx: Transaction<Database>, id: string): Promise<void> {
  await tx.deleteFrom('upload_parts').where('upload_id', '=', id).execute();
  await tx.deleteFrom('uploads').where('id', '=', id).execute();
}
