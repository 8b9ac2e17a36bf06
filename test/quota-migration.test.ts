/**
 * Migration 0010-quotas on a database that already holds links: each existing repo_blobs row gets
 * its namespace (the first path segment), so fair shares count what was pushed before it.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kysely, PostgresDialect, sql, type Dialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { migrations, type Engine } from '../src/meta/kysely/migrations.ts';
import { nodeSqliteDialect } from '../src/meta/kysely/sqlite-dialect.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

async function backfill(engine: Engine, dialect: Dialect, url: string): Promise<void> {
  const provider = migrations(engine);
  const names = Object.keys(await provider.getMigrations()).sort();
  const before = names[names.indexOf('0010-quotas') - 1];
  expect(before).toBeDefined();
  const db = new Kysely<unknown>({ dialect });
  const migrator = new Migrator({ db, provider, migrationTableName: 'custody_migrations', migrationLockTableName: 'custody_migrations_lock' });
  expect((await migrator.migrateTo(before as string)).error).toBeUndefined();
  // what an earlier release stored: links without a namespace column
  await sql`insert into repositories (name, created_at) values ('team/app', 1), ('team/app/sub', 1), ('other', 1)`.execute(db);
  await sql`insert into blobs (digest, size, created_at) values (${digest(1)}, 90, 1), (${digest(2)}, 10, 1)`.execute(db);
  await sql`insert into repo_blobs (repo, digest, created_at) values ('team/app', ${digest(1)}, 1), ('team/app/sub', ${digest(2)}, 1), ('other', ${digest(1)}, 1)`.execute(
    db,
  );
  await db.destroy();

  const meta = await openMetaStore(url);
  try {
    expect(await meta.quota.usage('team')).toMatchObject({ fairBlobBytes: 45 + 10, physicalBlobBytes: 100, blobs: 2, sharedBlobs: 1 });
    expect(await meta.quota.usage('other')).toMatchObject({ fairBlobBytes: 45, blobs: 1 });
    expect((await meta.quota.registryUsage()).physicalBlobBytes).toBe(100);
  } finally {
    await meta.close();
  }
}

const havePostgres = await postgresAvailable();

describe('migration 0010-quotas', () => {
  it('fills the namespace of existing links on SQLite', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'custody-quota-migration-')), 'custody.db');
    await backfill('sqlite', nodeSqliteDialect(file), file);
  });

  describe.runIf(havePostgres)('postgres', () => {
    afterAll(dropDatabases);
    it('fills the namespace of existing links on PostgreSQL', async () => {
      const url = await freshDatabase();
      await backfill('postgres', new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }), url);
    });
  });
});
