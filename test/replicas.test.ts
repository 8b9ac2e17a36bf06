/**
 * Two replicas on one PostgreSQL database and one blob store: an upload started on one is
 * continued and finished on the other, and what one stores the other serves, and a replica that
 * starts leaves the other's uploads in progress alone.
 */
import { randomBytes } from 'node:crypto';
import { readdir, stat, utimes, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, imageManifest, putManifest, request, sha256, testAdmin } from './helpers/http.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { startInProcess, startProcess, tempDir, type InProcessServer, type ProcessServer } from './helpers/server.ts';

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

/** Resolves once `check` answers true, looking again every few milliseconds (no time limit but the test's). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 10));
}

describe.runIf(havePostgres)('a replica starting beside another on the same blob directory', () => {
  const running: ProcessServer[] = [];
  afterAll(async () => {
    for (const s of running) await s.kill('SIGKILL');
    await dropDatabases();
  });

  it('leaves the push streaming into the other alone, and removes only leftovers older than the upload expiry', async () => {
    const blobs = path.join(await tempDir('custody-shared-'), 'blobs');
    const tmp = path.join(blobs, '_tmp');
    const env = { CUSTODY_DATABASE_URL: await freshDatabase(), CUSTODY_STORAGE_URL: blobs, CUSTODY_STORAGE_FSYNC: 'true' };
    const a = await startProcess({ env });
    running.push(a);

    // A chunked push into A whose body is still being sent: the first 64 KiB, then nothing yet.
    const data = randomBytes(4 * 1024 * 1024);
    const digest = sha256(data);
    const start = await request(a.url, '/v2/shared/app/blobs/uploads/', { method: 'POST' });
    expect(start.status).toBe(202);
    const location = start.headers.location as string;
    const { hostname, port } = new URL(a.url);
    const patch = http.request({
      host: hostname,
      port,
      method: 'PATCH',
      path: location,
      headers: { 'content-length': data.length, 'content-type': 'application/octet-stream', authorization: basic(testAdmin.username, testAdmin.password) },
    });
    const patched = new Promise<number>((resolve, reject) => {
      patch.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      patch.on('error', reject);
    });
    patch.write(data.subarray(0, 64 * 1024));
    // A's temporary file holds the first bytes: the write is in progress.
    await until(async () => {
      const files = await readdir(tmp);
      return files.length === 1 && (await stat(path.join(tmp, files[0] as string))).size === 64 * 1024;
    });
    // What a crash left two days ago, older than the default upload expiry of 24 h.
    const stale = path.join(tmp, 'left-by-a-crash');
    await writeFile(stale, 'partial bytes');
    const twoDaysAgo = Date.now() / 1000 - 2 * 24 * 3600;
    await utimes(stale, twoDaysAgo, twoDaysAgo);

    const b = await startProcess({ env });
    running.push(b);
    expect(await readdir(tmp), 'B removed the stale leftover and kept the write in progress').toHaveLength(1);

    // The rest of the body, in pieces, after B has opened the blob directory.
    for (let at = 64 * 1024; at < data.length; at += 512 * 1024) {
      await new Promise<void>((resolve) => (patch.write(data.subarray(at, at + 512 * 1024)) ? resolve() : patch.once('drain', resolve)));
    }
    patch.end();
    expect(await patched).toBe(202);
    const done = await request(a.url, `${location}?digest=${digest}`, { method: 'PUT' });
    expect(done.status, done.body.toString()).toBe(201);
    for (const server of [a, b]) {
      const got = await request(server.url, `/v2/shared/app/blobs/${digest}`);
      expect(got.status).toBe(200);
      expect(sha256(got.body)).toBe(digest);
    }
  });
});
