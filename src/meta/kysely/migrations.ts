/** The one migration set, for SQLite and PostgreSQL alike. */
import { sql, type Kysely } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';

export type Engine = 'sqlite' | 'postgres';

export function migrations(engine: Engine): MigrationProvider {
  // Names compare byte by byte on both engines (PostgreSQL would otherwise sort by locale, and
  // the spec wants tags and repositories in lexical order).
  const name = engine === 'postgres' ? sql`text collate "C"` : sql`text`;
  const bytes = engine === 'postgres' ? sql`bytea` : sql`blob`;
  const all: Record<string, Migration> = {
    '0001-registry-core': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('repositories')
          .addColumn('name', name, (c) => c.primaryKey())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('blobs')
          .addColumn('digest', 'text', (c) => c.primaryKey())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('repo_blobs')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('repo_blobs_pk', ['repo', 'digest'])
          .execute();
        await db.schema.createIndex('repo_blobs_digest').on('repo_blobs').column('digest').execute();
        await db.schema
          .createTable('manifests')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('media_type', 'text', (c) => c.notNull())
          .addColumn('content', bytes, (c) => c.notNull())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('artifact_type', 'text')
          .addColumn('subject', 'text')
          .addColumn('annotations', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('manifests_pk', ['repo', 'digest'])
          .execute();
        await db.schema.createIndex('manifests_subject').on('manifests').columns(['repo', 'subject']).execute();
        await db.schema
          .createTable('manifest_refs')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('ref', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('manifest_refs_pk', ['repo', 'digest', 'ref'])
          .execute();
        await db.schema
          .createTable('tags')
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('name', name, (c) => c.notNull())
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('tags_pk', ['repo', 'name'])
          .execute();
        await db.schema.createIndex('tags_digest').on('tags').columns(['repo', 'digest']).execute();
        await db.schema
          .createTable('uploads')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('repo', name, (c) => c.notNull())
          .addColumn('offset', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('upload_parts')
          .addColumn('upload_id', 'text', (c) => c.notNull())
          .addColumn('start', 'bigint', (c) => c.notNull())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('sha256', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('upload_parts_pk', ['upload_id', 'start'])
          .execute();
      },
    },
  };
  return { getMigrations: async () => all };
}
