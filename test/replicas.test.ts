/**
 * Two replicas on one PostgreSQL database and one blob store: an upload started on one is
 * continued and finished on the other, and what one stores the other serves.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageManifest, putManifest, request, sha256 } from './helpers/http.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

const havePostgres = await postgresAvailable();

describe.runIf(havePostgres)('replicas sharing PostgreSQL', () => {
  let a: InProcessServer;
  let b: InProcessServer;
  beforeAll(async () => {
    const url = await freshDatabase();
    const blobs = path.join(await tempDir(), 'blobs');
    const config = { database: { url }, storage: { url: blobs, fsync: false } };
    a = await startInProcess({ config });
    b = await startInProcess({ config });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await dropDatabases();
  });

  it('continues an upload on another replica', async () => {
    const start = await request(a.url, '/v2/scale/app/blobs/uploads/', { method: 'POST' });
    const loc = start.headers.location as string;
    expect((await request(b.url, loc, { method: 'PATCH', body: 'first half, ', headers: { 'content-range': '0-11' } })).status).toBe(202);
    expect((await request(a.url, loc)).headers.range).toBe('0-11');
    const digest = sha256('first half, second half');
    const done = await request(a.url, `${loc}?digest=${digest}`, { method: 'PUT', body: 'second half', headers: { 'content-range': '12-22' } });
    expect(done.status).toBe(201);
    expect((await request(b.url, `/v2/scale/app/blobs/${digest}`)).body.toString()).toBe('first half, second half');
  });

  it('serves from one replica what another stored, through the whole API', async () => {
    const { body, digest } = await imageManifest(a.url, 'scale/app');
    expect((await putManifest(a.url, 'scale/app', 'v1', body)).status).toBe(201);
    expect((await request(b.url, '/v2/scale/app/manifests/v1')).headers['docker-content-digest']).toBe(digest);
    expect((await request(b.url, '/v2/scale/app/tags/list')).json()).toEqual({ name: 'scale/app', tags: ['v1'] });
    expect((await request(b.url, '/v2/_catalog')).json()).toEqual({ repositories: ['scale/app'] });
    expect((await request(b.url, `/v2/scale/app/manifests/${digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await request(a.url, '/v2/scale/app/manifests/v1')).status).toBe(404);
    expect((await request(a.url, '/readyz')).status).toBe(200);
  });
});
