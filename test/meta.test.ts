import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe } from 'vitest';
import { openMetaStore } from '../src/meta/open.ts';
import { metaStoreSuite } from '../src/meta/testsuite.ts';
import { trustStoreSuite } from '../src/meta/trust-testsuite.ts';
import { tufStoreSuite } from '../src/meta/tuf-testsuite.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';

const sqlite = async () => openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-meta-')), 'custody.db'));
metaStoreSuite('sqlite', sqlite);
trustStoreSuite('sqlite', sqlite);
tufStoreSuite('sqlite', sqlite);

const havePostgres = await postgresAvailable();
describe.runIf(havePostgres)('postgres', () => {
  afterAll(dropDatabases);
  metaStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  trustStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  tufStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
});
