/** Opens the MetaStore a database URL names: PostgreSQL (`postgres://…`) or an SQLite file. */
import { PostgresDialect } from 'kysely';
import pg from 'pg';
import { nodeSqliteDialect } from './kysely/sqlite-dialect.ts';
import { KyselyMetaStore } from './kysely/store.ts';
import type { MetaStore } from './metastore.ts';

export async function openMetaStore(url: string): Promise<MetaStore> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: 10, types: { getTypeParser } });
    return KyselyMetaStore.open(new PostgresDialect({ pool }), 'postgres');
  }
  const file = url.startsWith('sqlite://') ? url.slice('sqlite://'.length) : url;
  return KyselyMetaStore.open(nodeSqliteDialect(file), 'sqlite');
}

const INT8 = 20;

// Sizes and times are bigint columns; they fit in a JS number, so read them as one.
function getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  if (oid === INT8) return (value: string) => Number(value);
  return pg.types.getTypeParser(oid, format as 'text');
}
