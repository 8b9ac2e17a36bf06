/** Opens the MetaStore a database URL names: PostgreSQL (`postgres://…`) or an SQLite file. */
import { chmod, open } from 'node:fs/promises';
import { PostgresDialect } from 'kysely';
import { nodeSqliteDialect } from './kysely/sqlite-dialect.ts';
import { ChangeFeed, feedApplicationName, manifestChannel, namespaceChannel } from './kysely/change-feed.ts';
import { KyselyMetaStore } from './kysely/store.ts';
import { ManifestCache } from './manifest-cache.ts';
import type { MetaStore } from './metastore.ts';
import { NamespaceCache } from './namespace-cache.ts';
import type { QuotaSettings } from './quota.ts';

export interface OpenOptions {
  /** PostgreSQL: hears of pooled connections that fail while idle (see below) */
  onIdleError?: (err: Error) => void;
  /** PostgreSQL: memory for the manifest cache, in MiB; 0 turns it off, and the namespace cache with it */
  manifestCacheMiB?: number;
  /** PostgreSQL: hears when the manifest cache's change feed goes down and comes back */
  onFeedChange?: (message: string, err?: Error) => void;
}

/**
 * `onIdleError` hears of pooled PostgreSQL connections that fail while idle (the server restarted,
 * an administrator ended them): the pool drops them and opens new ones when needed. Without a
 * listener, pg's pool would raise the error as an uncaught exception and end the process.
 */
export async function openMetaStore(url: string, options: OpenOptions = {}): Promise<MetaStore> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    // Loaded only when used: the embedded default should not pay pg's memory.
    const { default: pg } = await import('pg');
    const getTypeParser = int8AsNumber(pg.types.getTypeParser);
    const pool = new pg.Pool({ connectionString: url, max: 10, types: { getTypeParser } });
    pool.on('error', options.onIdleError ?? (() => {}));
    const cacheMiB = options.manifestCacheMiB ?? 64;
    if (cacheMiB === 0) return KyselyMetaStore.open(new PostgresDialect({ pool }), 'postgres');
    // SQLite needs no cache: a read there is a function call, not a round trip.
    const manifestCache = new ManifestCache({ maxBytes: cacheMiB * 1024 * 1024 });
    const namespaceCache = new NamespaceCache<QuotaSettings | undefined>();
    const connect = () => new pg.Client({ connectionString: url, keepAlive: true, application_name: feedApplicationName });
    const feed = new ChangeFeed(connect, { [manifestChannel]: manifestCache, [namespaceChannel]: namespaceCache }, { log: options.onFeedChange });
    const store = await KyselyMetaStore.open(new PostgresDialect({ pool }), 'postgres', { manifestCache, namespaceCache, closeFeed: () => feed.close() });
    // after the migrations, which create the triggers it listens to
    await feed.start();
    return store;
  }
  const file = url.startsWith('sqlite://') ? url.slice('sqlite://'.length) : url;
  await ownerOnly(file);
  return KyselyMetaStore.open(nodeSqliteDialect(file), 'sqlite', file === ':memory:' || file === '' ? {} : { sqliteFile: file });
}

/**
 * The database holds the JWT and TUF private keys: only its owner may read it. SQLite gives the
 * -wal and -shm files the database file's mode, so the file is made (or narrowed to) 0600 first.
 */
async function ownerOnly(file: string): Promise<void> {
  if (file === ':memory:' || file === '') return;
  await (await open(file, 'a', 0o600)).close();
  for (const f of [file, `${file}-wal`, `${file}-shm`])
    await chmod(f, 0o600).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
}

const INT8 = 20;

type TypeParser = (oid: number, format?: 'text') => (value: string) => unknown;

// Sizes and times are bigint columns; they fit in a JS number, so read them as one.
function int8AsNumber(fallback: TypeParser): (oid: number, format?: 'text' | 'binary') => (value: string) => unknown {
  return (oid, format) => (oid === INT8 ? (value: string) => Number(value) : fallback(oid, format as 'text'));
}
