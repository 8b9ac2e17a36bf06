import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openMetaStore } from '../src/meta/open.ts';
import { metaStoreSuite } from './suites/meta.ts';
import { trustStoreSuite } from './suites/trust-store.ts';
import { tufStoreSuite } from './suites/tuf-store.ts';
import { policyStoreSuite } from './suites/policy-store.ts';
import { gcStoreSuite } from './suites/gc-store.ts';
import { quotaStoreSuite } from './suites/quota-store.ts';
import { retentionStoreSuite } from './suites/retention-store.ts';
import { insightStoreSuite } from './suites/insight-store.ts';
import { webhookStoreSuite } from './suites/webhook-store.ts';
import { costStoreSuite } from './suites/cost-store.ts';
import { leaseStoreSuite } from './suites/lease-store.ts';
import { rateStoreSuite } from './suites/rate-store.ts';
import { adminUrl, dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';

const sqlite = async () => openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-meta-')), 'custody.db'));
metaStoreSuite('sqlite', sqlite);
trustStoreSuite('sqlite', sqlite);
tufStoreSuite('sqlite', sqlite);
policyStoreSuite('sqlite', sqlite);
retentionStoreSuite('sqlite', sqlite);
gcStoreSuite('sqlite', sqlite);
quotaStoreSuite('sqlite', sqlite);
insightStoreSuite('sqlite', sqlite);
webhookStoreSuite('sqlite', sqlite);
costStoreSuite('sqlite', sqlite);
leaseStoreSuite('sqlite', sqlite);
rateStoreSuite('sqlite', sqlite, false);

const havePostgres = await postgresAvailable();
describe.runIf(havePostgres)('postgres', () => {
  afterAll(dropDatabases);
  metaStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  trustStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  tufStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  policyStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  retentionStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  gcStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  quotaStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  insightStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  webhookStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  costStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  leaseStoreSuite('postgres', async () => openMetaStore(await freshDatabase()));
  rateStoreSuite('postgres', async () => openMetaStore(await freshDatabase()), true);

  it('survives its idle connections being ended by the server, and reports them', async () => {
    const url = await freshDatabase();
    const failures: Error[] = [];
    const meta = await openMetaStore(url, { onIdleError: (err) => failures.push(err) });
    try {
      await meta.ping();
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        // What a server restart or an administrator does to every connection of the database.
        await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [
          new URL(url).pathname.slice(1),
        ]);
      } finally {
        await admin.end();
      }
      await expect.poll(() => failures.length).toBeGreaterThan(0);
      expect(failures[0]?.message).toMatch(/terminat/);
      await meta.ping(); // a new connection
    } finally {
      await meta.close();
    }
  });
});
