/** The TufStore on Kysely: the same queries on SQLite and PostgreSQL. */
import type { Kysely, Selectable } from 'kysely';
import type { TufKeyRecord, TufMetadataRecord, TufRole, TufStore } from '../tuf.ts';
import type { Database } from './schema.ts';

const toMetadata = (r: Selectable<Database['tuf_metadata']>): TufMetadataRecord => ({
  namespace: r.namespace,
  role: r.role as TufRole,
  version: r.version,
  json: r.json,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
});

const toKey = (r: Selectable<Database['tuf_keys']>): TufKeyRecord => ({
  namespace: r.namespace,
  keyId: r.key_id,
  role: r.role as TufRole,
  publicKey: r.public_key,
  privateKeyPem: r.private_key_pem,
  createdAt: r.created_at,
});

/** Thrown inside publish()'s transaction to roll it back when a version was taken. */
class VersionTaken extends Error {}

export class KyselyTufStore implements TufStore {
  private readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  async publish(metadata: TufMetadataRecord[], keys: TufKeyRecord[]): Promise<boolean> {
    try {
      await this.db.transaction().execute(async (tx) => {
        for (const k of keys) {
          await tx
            .insertInto('tuf_keys')
            .values({
              namespace: k.namespace,
              key_id: k.keyId,
              role: k.role,
              public_key: k.publicKey,
              private_key_pem: k.privateKeyPem,
              created_at: k.createdAt,
            })
            .onConflict((c) => c.columns(['namespace', 'key_id']).doNothing())
            .execute();
        }
        for (const m of metadata) {
          const r = await tx
            .insertInto('tuf_metadata')
            .values({ namespace: m.namespace, role: m.role, version: m.version, json: m.json, expires_at: m.expiresAt, created_at: m.createdAt })
            .onConflict((c) => c.columns(['namespace', 'role', 'version']).doNothing())
            .executeTakeFirst();
          if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 0) throw new VersionTaken();
        }
      });
      return true;
    } catch (err) {
      if (err instanceof VersionTaken) return false;
      throw err;
    }
  }

  async namespaces(): Promise<string[]> {
    const rows = await this.db
      .selectFrom('tuf_metadata')
      .select('namespace')
      .where('role', '=', 'root')
      .where('version', '=', 1)
      .orderBy('namespace')
      .execute();
    return rows.map((r) => r.namespace);
  }

  async latestVersions(namespace: string): Promise<Partial<Record<TufRole, number>>> {
    const rows = await this.db
      .selectFrom('tuf_metadata')
      .select(['role', (eb) => eb.fn.max('version').as('version')])
      .where('namespace', '=', namespace)
      .groupBy('role')
      .execute();
    const out: Partial<Record<TufRole, number>> = {};
    for (const r of rows) out[r.role as TufRole] = Number(r.version);
    return out;
  }

  async getVersion(namespace: string, role: TufRole, version: number): Promise<TufMetadataRecord | undefined> {
    const row = await this.db
      .selectFrom('tuf_metadata')
      .selectAll()
      .where('namespace', '=', namespace)
      .where('role', '=', role)
      .where('version', '=', version)
      .executeTakeFirst();
    return row && toMetadata(row);
  }

  async keys(namespace: string, keyIds: string[]): Promise<TufKeyRecord[]> {
    if (keyIds.length === 0) return [];
    const rows = await this.db.selectFrom('tuf_keys').selectAll().where('namespace', '=', namespace).where('key_id', 'in', keyIds).execute();
    return rows.map(toKey);
  }

  async prune(namespace: string, role: Exclude<TufRole, 'root'>, below: number): Promise<number> {
    const r = await this.db
      .deleteFrom('tuf_metadata')
      .where('namespace', '=', namespace)
      .where('role', '=', role)
      .where('version', '<', below)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
