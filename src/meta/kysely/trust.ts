/** The TrustStore on Kysely: the same queries on SQLite and PostgreSQL. */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { ArtifactKind, NewTrustArtifact, SignedTag, StoredSbom, TrustArtifact, TrustStore, VerdictUpdate } from '../trust.ts';
import type { Database } from './schema.ts';

const toArtifact = (r: Selectable<Database['trust_artifacts']>): TrustArtifact => ({
  repo: r.repo,
  digest: r.digest,
  subject: r.subject,
  kind: r.kind as ArtifactKind,
  format: r.format,
  via: r.via,
  status: r.status === 'done' ? 'done' : 'pending',
  verified: r.verified === null ? null : r.verified === 1,
  signer: r.signer,
  // as stored: a code a newer version wrote is passed on, not dropped (clients treat unknown codes as errors)
  code: r.code,
  reason: r.reason,
  details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>),
  checkedAt: r.checked_at,
  createdAt: r.created_at,
});

/**
 * Repositories of a namespace: the namespace itself and everything below `<ns>/`. A range
 * rather than LIKE, so that `_` and `%` in names need no escaping ('0' follows '/').
 */
function inNamespace(namespace: string, column: string) {
  const c = sql.ref(column);
  return sql<boolean>`(${c} = ${namespace} or (${c} >= ${`${namespace}/`} and ${c} < ${`${namespace}0`}))`;
}

export class KyselyTrustStore implements TrustStore {
  private readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  async recordArtifact(a: NewTrustArtifact): Promise<void> {
    const pending = {
      subject: a.subject,
      kind: a.kind,
      format: a.format,
      via: a.via,
      status: 'pending',
      verified: null,
      signer: null,
      code: null,
      reason: null,
      details: null,
      checked_at: null,
      trust_fingerprint: null,
    };
    await this.db
      .insertInto('trust_artifacts')
      .values({ repo: a.repo, digest: a.digest, ...pending, created_at: Date.now() })
      .onConflict((c) => c.columns(['repo', 'digest']).doUpdateSet(pending))
      .execute();
  }

  async setVerdict(repo: string, digest: string, v: VerdictUpdate): Promise<void> {
    await this.db
      .updateTable('trust_artifacts')
      .set({
        kind: v.kind,
        status: 'done',
        verified: v.verified === null ? null : v.verified ? 1 : 0,
        signer: v.signer ?? null,
        code: v.code,
        reason: v.reason,
        details: v.details ? JSON.stringify(v.details) : null,
        checked_at: Date.now(),
        trust_fingerprint: v.trustFingerprint,
        claimed_by: '',
        claimed_until: 0,
      })
      .where('repo', '=', repo)
      .where('digest', '=', digest)
      .execute();
  }

  async getArtifact(repo: string, digest: string): Promise<TrustArtifact | undefined> {
    const row = await this.db.selectFrom('trust_artifacts').selectAll().where('repo', '=', repo).where('digest', '=', digest).executeTakeFirst();
    return row && toArtifact(row);
  }

  async artifactsFor(repo: string, subject: string): Promise<TrustArtifact[]> {
    const rows = await this.db
      .selectFrom('trust_artifacts')
      .selectAll()
      .where('repo', '=', repo)
      .where('subject', '=', subject)
      .orderBy('created_at')
      .orderBy('digest')
      .execute();
    return rows.map(toArtifact);
  }

  async pending(limit: number, now?: number): Promise<TrustArtifact[]> {
    let q = this.db.selectFrom('trust_artifacts').selectAll().where('status', '=', 'pending');
    if (now !== undefined) q = q.where('claimed_until', '<=', now);
    const rows = await q.orderBy('created_at').limit(limit).execute();
    return rows.map(toArtifact);
  }

  async claim(repo: string, digest: string, holder: string, now: number, until: number): Promise<boolean> {
    // One statement: on PostgreSQL a racing claim waits for the row's lock and then finds the
    // condition false; SQLite has one writer.
    const r = await this.db
      .updateTable('trust_artifacts')
      .set({ claimed_by: holder, claimed_until: until })
      .where('repo', '=', repo)
      .where('digest', '=', digest)
      .where('status', '=', 'pending')
      .where('claimed_until', '<=', now)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async renewClaim(repo: string, digest: string, holder: string, until: number): Promise<boolean> {
    // Only the holder's own claim: a verdict or a release (which clear claimed_by) is never undone.
    const r = await this.db
      .updateTable('trust_artifacts')
      .set({ claimed_until: until })
      .where('repo', '=', repo)
      .where('digest', '=', digest)
      .where('status', '=', 'pending')
      .where('claimed_by', '=', holder)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async releaseClaim(repo: string, digest: string, holder: string): Promise<void> {
    await this.db
      .updateTable('trust_artifacts')
      .set({ claimed_by: '', claimed_until: 0 })
      .where('repo', '=', repo)
      .where('digest', '=', digest)
      .where('claimed_by', '=', holder)
      .execute();
  }

  async markNamespacePending(namespace: string, fingerprint?: string): Promise<number> {
    let q = this.db
      .updateTable('trust_artifacts')
      .set({ status: 'pending' })
      .where(inNamespace(namespace, 'trust_artifacts.repo'))
      .where('status', '=', 'done');
    if (fingerprint !== undefined) q = q.where((eb) => eb.or([eb('trust_fingerprint', 'is', null), eb('trust_fingerprint', '!=', fingerprint)]));
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  async forget(repo: string, digest: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('trust_artifacts').where('repo', '=', repo).where('digest', '=', digest).execute();
      await tx.deleteFrom('trust_sboms').where('repo', '=', repo).where('digest', '=', digest).execute();
    });
  }

  async putSbom(s: StoredSbom): Promise<void> {
    const values = { format: s.format, spec_version: s.specVersion, name: s.name ?? null, components: JSON.stringify(s.components) };
    await this.db
      .insertInto('trust_sboms')
      .values({ repo: s.repo, digest: s.digest, ...values })
      .onConflict((c) => c.columns(['repo', 'digest']).doUpdateSet(values))
      .execute();
  }

  async getSbom(repo: string, digest: string): Promise<StoredSbom | undefined> {
    const r = await this.db.selectFrom('trust_sboms').selectAll().where('repo', '=', repo).where('digest', '=', digest).executeTakeFirst();
    if (!r) return undefined;
    return {
      repo: r.repo,
      digest: r.digest,
      format: r.format,
      specVersion: r.spec_version,
      ...(r.name === null ? {} : { name: r.name }),
      components: JSON.parse(r.components) as unknown[],
    };
  }

  async getNamespaceTrust(namespace: string): Promise<{ document: unknown; updatedAt: number } | undefined> {
    const r = await this.db.selectFrom('namespace_trust').selectAll().where('namespace', '=', namespace).executeTakeFirst();
    return r && { document: JSON.parse(r.document) as unknown, updatedAt: r.updated_at };
  }

  async putNamespaceTrust(namespace: string, document: unknown): Promise<void> {
    const values = { document: JSON.stringify(document), updated_at: Date.now() };
    await this.db
      .insertInto('namespace_trust')
      .values({ namespace, ...values })
      .onConflict((c) => c.column('namespace').doUpdateSet(values))
      .execute();
  }

  async deleteNamespaceTrust(namespace: string): Promise<boolean> {
    const r = await this.db.deleteFrom('namespace_trust').where('namespace', '=', namespace).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async tagsOf(repo: string, digest: string): Promise<string[]> {
    const rows = await this.db.selectFrom('tags').select('name').where('repo', '=', repo).where('digest', '=', digest).orderBy('name').execute();
    return rows.map((r) => r.name);
  }

  async signedTags(namespace: string): Promise<SignedTag[]> {
    const rows = await this.db
      .selectFrom('tags')
      .innerJoin('manifests', (j) => j.onRef('manifests.repo', '=', 'tags.repo').onRef('manifests.digest', '=', 'tags.digest'))
      .select(['tags.repo', 'tags.name', 'tags.digest', 'manifests.size', 'manifests.media_type'])
      .where(inNamespace(namespace, 'tags.repo'))
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('trust_artifacts')
            .select('trust_artifacts.digest')
            .whereRef('trust_artifacts.repo', '=', 'tags.repo')
            .whereRef('trust_artifacts.subject', '=', 'tags.digest')
            .where('trust_artifacts.kind', '=', 'signature')
            .where('trust_artifacts.status', '=', 'done')
            .where('trust_artifacts.verified', '=', 1),
        ),
      )
      .orderBy('tags.repo')
      .orderBy('tags.name')
      .execute();
    return rows.map((r) => ({ repository: r.repo, tag: r.name, digest: r.digest, size: r.size, mediaType: r.media_type }));
  }
}
