import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe } from 'vitest';
import { openMetaStore } from '../src/meta/open.ts';
import { metaStoreSuite } from '../src/meta/testsuite.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';

metaStoreSuite('sqlite', async () => openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-meta-')), 'custody.db')));

const havePostgres = await postgresAvailable();
describe.runIf(havePostgres)('postgres', () => {
  afterAll(dropDatabases);
  metaStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
});
