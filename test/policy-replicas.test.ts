/**
 * Policies across replicas: two registries on one PostgreSQL database and one blob store. A
 * policy saved on one decides on the other within policy.reloadSeconds, its decisions are read
 * from either, and deleting it on the second frees the first. Answered through inject().
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageManifest, putManifest, request } from './helpers/http.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { startInjected, tempDir, type InProcessServer } from './helpers/server.ts';

const havePostgres = await postgresAvailable();
if (!havePostgres) console.warn('skipping the policy replica tests: no PostgreSQL answers (see test/helpers/postgres.ts)');

/** Polls `attempt` until it gives `want` (replicas reload every 200 ms here), at most 5 s. */
async function eventually(attempt: () => Promise<number>, want: number): Promise<number> {
  let got = 0;
  for (let i = 0; i < 50; i++) {
    got = await attempt();
    if (got === want) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  return got;
}

describe.runIf(havePostgres)('policies on replicas sharing PostgreSQL', () => {
  let a: InProcessServer;
  let b: InProcessServer;
  beforeAll(async () => {
    const url = await freshDatabase();
    const blobs = path.join(await tempDir(), 'blobs');
    const config = { database: { url }, storage: { url: blobs, fsync: false }, policy: { reloadSeconds: 0.2 } };
    a = await startInjected({ config });
    b = await startInjected({ config });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await dropDatabases();
  });

  it('a policy saved on one replica decides on the other, and its deletion there frees the first', async () => {
    const source = `name: no-pushes\nscope: { namespaces: [frozen] }\nactions: [push]\ndeny: 'true'\nmessage: 'frozen is read-only'`;
    const saved = await request(a.url, '/api/v1/policies/no-pushes', {
      method: 'PUT',
      body: JSON.stringify({ source }),
      headers: { 'content-type': 'application/json' },
    });
    expect(saved.status).toBe(201);
    const image = await imageManifest(b.url, 'frozen/app');
    expect(await eventually(async () => (await putManifest(b.url, 'frozen/app', 'v1', image.body)).status, 403)).toBe(403);
    const logged = async () =>
      (await request(a.url, '/api/v1/policy-decisions?policy=no-pushes')).json<{ decisions: { repository: string }[] }>().decisions.length;
    expect(await eventually(logged, 1)).toBe(1);
    expect((await request(b.url, '/api/v1/policies/no-pushes', { method: 'DELETE' })).status).toBe(204);
    expect(await eventually(async () => (await putManifest(a.url, 'frozen/app', 'v1', image.body)).status, 201)).toBe(201);
  });
});
