/**
 * Two in-process replicas on one fresh PostgreSQL database and one blob directory, with no usage
 * events (so the only statements are the ones a test causes), and a client of the test's own to
 * the same database: for the tests of what the replicas cache (manifests, namespaces). Registers
 * its own beforeAll and afterAll: call it inside a describe.
 */
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { dropDatabases, freshDatabase } from './postgres.ts';
import { startInProcess, tempDir, type InProcessServer } from './server.ts';

export interface TwoReplicas {
  a: InProcessServer;
  b: InProcessServer;
  sql: pg.Client;
}

/** The replicas and the client, filled in once beforeAll has run. */
export function twoReplicasOnPostgres(): TwoReplicas {
  const replicas = {} as TwoReplicas;
  beforeAll(async () => {
    const url = await freshDatabase();
    const blobs = path.join(await tempDir(), 'blobs');
    const config = { database: { url }, storage: { url: blobs, fsync: false }, insight: { events: { enabled: false } } };
    replicas.a = await startInProcess({ config });
    replicas.b = await startInProcess({ config });
    replicas.sql = new pg.Client({ connectionString: url });
    await replicas.sql.connect();
  });
  afterAll(async () => {
    await replicas.sql?.end();
    await replicas.a?.stop();
    await replicas.b?.stop();
    await dropDatabases();
  });
  return replicas;
}
