/** The query language's shared suite (test/suites/query.ts) on SQLite and on PostgreSQL. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe } from 'vitest';
import { openMetaStore } from '../src/meta/open.ts';
import { queryStoreSuite } from './suites/query.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';

queryStoreSuite('sqlite', async () => openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-query-')), 'custody.db')));

const havePostgres = await postgresAvailable();
describe.runIf(havePostgres)('postgres', () => {
  afterAll(dropDatabases);
  queryStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
});
