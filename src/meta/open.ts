/** Opens the MetaStore a database URL names: PostgreSQL (`postgres://…`) or an SQLite file. */
import { PostgresDialect } from 'kysely';
import { nodeSqliteDialect } from './kysely/sqlite-dialect.ts';
import { KyselyMetaStore } from './kysely/store.ts';
import type { MetaStore } from './metastore.ts';

/**
 * `onIdleError` hears of pooled PostgreSQL connections that fail while idle (the server restarted,
 * an administrator ended them): the pool drops them and opens new ones when needed. Without a
 * listener, pg's pool would raise the error as an uncaught exception and end the process.
 */
export async function openMetaStore(url: string, onIdleError: (err: Error) => void = () => {}): Promise<MetaStore> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    // Loaded only when used: the embedded default should not pay pg's memory.
    const { default: pg } = await import('pg');
    const getTypeParser = int8AsNumber(pg.types.getTypeParser);
    const pool = new pg.Pool({ connectionString: url, max: 10, types: { getTypeParser } });
    pool.on('error', onIdleError);
    return KyselyMetaStore.open(new PostgresDialect({ pool }), 'postgres');
  }
  const file = url.startsWith('sqlite://') ? url.slice('sqlite://'.length) : url;
  return KyselyMetaStore.open(nodeSqliteDialect(file), 'sqlite');
}

const INT8 = 20;

type TypeParser = (oid: number, format?: 'text') => (value: string) => unknown;

// Sizes and times are bigint columns; they fit in a JS number, so read them as one.
function int8AsNumber(fallback: TypeParser): (oid: number, format?: 'text' | 'binary') => (value: string) => unknown {
  return (oid, format) => (oid === INT8 ? (value: string) => Number(value) : fallback(oid, format as 'text'));
}
