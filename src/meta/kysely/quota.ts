/**
 * The QuotaStore on Kysely: the same queries on SQLite and PostgreSQL. repo_blobs.namespace
 * (migration 0010-quotas, filled by linkBlob) makes "which namespaces link this blob" an index
 * read: (namespace, digest) finds a namespace's blobs, (digest, namespace) who else links each.
 *
 * The fair share of a blob of `size` bytes linked by k namespaces, for the namespace that has
 * `before` of them sorting ahead of it, is size / k + (before < size % k ? 1 : 0) in integer
 * arithmetic (see src/meta/quota.ts): both engines divide integers to integers.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { NamespaceUsage, PushFigures, QuotaSettings, QuotaStore, RegistryUsage } from '../quota.ts';
import type { NamespaceCache } from '../namespace-cache.ts';
import type { Database } from './schema.ts';

/** PostgreSQL answers sum() of bigints as numeric (a string); counts and sizes come as numbers. */
const num = (v: unknown): number => Number(v ?? 0);

interface BlobSums {
  fair: unknown;
  physical: unknown;
  blobs: unknown;
  shared: unknown;
}

export class KyselyQuotaStore implements QuotaStore {
  private readonly db: Kysely<Database>;
  /** PostgreSQL: the settings from memory while the change feed runs (namespace-cache.ts) */
  private readonly cache: NamespaceCache<QuotaSettings | undefined> | undefined;

  constructor(db: Kysely<Database>, cache?: NamespaceCache<QuotaSettings | undefined>) {
    this.db = db;
    this.cache = cache;
  }

  async settings(namespace: string): Promise<QuotaSettings | undefined> {
    const load = async () => {
      const row = await this.db
        .selectFrom('namespaces')
        .select(['quota_bytes', 'soft_quota_bytes', 'soft_exceeded_at'])
        .where('name', '=', namespace)
        .executeTakeFirst();
      return row && { hardBytes: num(row.quota_bytes), softBytes: num(row.soft_quota_bytes), softExceededAt: row.soft_exceeded_at };
    };
    return this.cache ? this.cache.read(namespace, load) : load();
  }

  async usage(namespace: string): Promise<NamespaceUsage> {
    const { rows } = await sql<BlobSums & { manifest_bytes: unknown; manifests: unknown }>`
      select s.fair, s.physical, s.blobs, s.shared, m.manifest_bytes, m.manifests
      from (${blobSums(namespace)}) s, (${manifestSums(namespace)}) m`.execute(this.db);
    const r = rows[0];
    return {
      namespace,
      fairBlobBytes: num(r?.fair),
      physicalBlobBytes: num(r?.physical),
      manifestBytes: num(r?.manifest_bytes),
      blobs: num(r?.blobs),
      sharedBlobs: num(r?.shared),
      manifests: num(r?.manifests),
    };
  }

  async registryUsage(): Promise<RegistryUsage> {
    // Each (namespace, blob) once, ranked among the blob's namespaces in byte order: the rank is
    // what hands out a blob's leftover bytes, as in blobSums().
    const { rows: blobs } = await sql<BlobSums & { namespace: string }>`
      select r.namespace,
        sum(b.size / p.k + case when r.rank < b.size % p.k then 1 else 0 end) as fair,
        sum(b.size) as physical,
        count(*) as blobs,
        sum(case when p.k > 1 then 1 else 0 end) as shared
      from (select x.namespace, x.digest, row_number() over (partition by x.digest order by x.namespace) - 1 as rank
            from (select distinct namespace, digest from repo_blobs) x) r
      join (select digest, count(distinct namespace) as k from repo_blobs group by digest) p on p.digest = r.digest
      join blobs b on b.digest = r.digest
      group by r.namespace`.execute(this.db);
    const { rows: totals } = await sql<{ physical: unknown }>`
      select coalesce(sum(size), 0) as physical from blobs where digest in (select digest from repo_blobs)`.execute(this.db);
    // Manifests have no namespace column: summed per repository, then per first path segment.
    const manifests = await this.db
      .selectFrom('manifests')
      .select((eb) => ['repo', eb.fn.sum<number>('size').as('bytes'), eb.fn.countAll<number>().as('count')])
      .groupBy('repo')
      .execute();
    const byName = new Map<string, NamespaceUsage>();
    const entry = (namespace: string): NamespaceUsage => {
      let found = byName.get(namespace);
      if (!found) {
        found = { namespace, fairBlobBytes: 0, physicalBlobBytes: 0, manifestBytes: 0, blobs: 0, sharedBlobs: 0, manifests: 0 };
        byName.set(namespace, found);
      }
      return found;
    };
    for (const r of blobs) {
      Object.assign(entry(r.namespace), { fairBlobBytes: num(r.fair), physicalBlobBytes: num(r.physical), blobs: num(r.blobs), sharedBlobs: num(r.shared) });
    }
    let manifestBytes = 0;
    for (const m of manifests) {
      const e = entry(m.repo.split('/', 1)[0] as string);
      e.manifestBytes += num(m.bytes);
      e.manifests += num(m.count);
      manifestBytes += num(m.bytes);
    }
    const namespaces = [...byName.values()].sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0));
    return { namespaces, physicalBlobBytes: num(totals[0]?.physical), manifestBytes };
  }

  async pushFigures(namespace: string, question: { blob?: string; manifest?: { repo: string; digest: string }; addedSince?: number }): Promise<PushFigures> {
    const blob = question.blob ?? '';
    const manifest = question.manifest ?? { repo: '', digest: '' };
    const since = question.addedSince;
    const usage =
      since === undefined
        ? sql`(select s.fair from (${blobSums(namespace)}) s) as fair, (select m.manifest_bytes from (${manifestSums(namespace)}) m) as manifest_bytes`
        : sql`(select coalesce(sum(b.size), 0) from repo_blobs l join blobs b on b.digest = l.digest
                where l.namespace = ${namespace} and l.created_at >= ${since}) as fair,
              (select coalesce(sum(size), 0) from manifests
                where created_at >= ${since} and ${inNamespace(namespace)}) as manifest_bytes`;
    const { rows } = await sql<{ fair: unknown; manifest_bytes: unknown; linked_here: unknown; others: unknown; before: unknown; stored: unknown }>`
      select
        ${usage},
        (select count(*) from repo_blobs where namespace = ${namespace} and digest = ${blob}) as linked_here,
        (select count(distinct namespace) from repo_blobs where digest = ${blob} and namespace <> ${namespace}) as others,
        (select count(distinct namespace) from repo_blobs where digest = ${blob} and namespace < ${namespace}) as before,
        (select count(*) from manifests where repo = ${manifest.repo} and digest = ${manifest.digest}) as stored`.execute(this.db);
    const r = rows[0];
    const bytes = num(r?.fair) + num(r?.manifest_bytes);
    return {
      ...(since === undefined ? { usedBytes: bytes } : { addedBytes: bytes }),
      ...(question.blob === undefined
        ? {}
        : { blob: { linkedHere: num(r?.linked_here) > 0, otherNamespaces: num(r?.others), namespacesBefore: num(r?.before) } }),
      ...(question.manifest === undefined ? {} : { manifestStored: num(r?.stored) > 0 }),
    };
  }

  async markSoftExceeded(namespace: string, at: number | null): Promise<boolean> {
    const r = await this.db
      .updateTable('namespaces')
      .set({ soft_exceeded_at: at })
      .where('name', '=', namespace)
      .where('soft_exceeded_at', at === null ? 'is not' : 'is', null)
      .executeTakeFirst();
    this.cache?.invalidate(namespace);
    return r.numUpdatedRows > 0n;
  }
}

/**
 * One row: the namespace's fair share of its blobs (fair), the same blobs in full (physical),
 * how many (blobs) and how many of them others link too (shared). One pass over the links of the
 * namespace's blobs: k is how many namespaces link a blob, `before` how many of them sort first.
 */
function blobSums(namespace: string): RawBuilder<BlobSums> {
  return sql<BlobSums>`
    select
      coalesce(sum(b.size / s.k + case when s.before < b.size % s.k then 1 else 0 end), 0) as fair,
      coalesce(sum(b.size), 0) as physical,
      count(*) as blobs,
      coalesce(sum(case when s.k > 1 then 1 else 0 end), 0) as shared
    from (
      select l.digest, count(distinct o.namespace) as k, count(distinct case when o.namespace < ${namespace} then o.namespace end) as before
      from (select distinct digest from repo_blobs where namespace = ${namespace}) l
      join repo_blobs o on o.digest = l.digest
      group by l.digest
    ) s
    join blobs b on b.digest = s.digest`;
}

/** One row: the bytes and count of the namespace's manifests. */
function manifestSums(namespace: string): RawBuilder<{ manifest_bytes: unknown; manifests: unknown }> {
  return sql`select coalesce(sum(size), 0) as manifest_bytes, count(*) as manifests from manifests where ${inNamespace(namespace)}`;
}

/** The namespace's manifests: a range on the name, so `_` and `%` need no escaping ('0' follows '/'). */
function inNamespace(namespace: string): RawBuilder<boolean> {
  return sql<boolean>`(repo = ${namespace} or (repo >= ${`${namespace}/`} and repo < ${`${namespace}0`}))`;
}
