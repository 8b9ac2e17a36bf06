/**
 * Quotas over HTTP: a push that would take a namespace's fair usage over its hard quota is
 * `403 DENIED` with the figures, on every way a blob or manifest arrives (POST ?digest=, a body
 * without a length, PATCH then PUT, several PATCHes, POST then PUT, a mount, a manifest PUT), and
 * leaves nothing stored; a shared layer costs its fair share; crossing the soft quota is shown by
 * the API, marked once. Answered through inject(): nothing here is about the socket.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetaStore } from '../src/meta/metastore.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { createUser } from './helpers/accounts.ts';
import { basic, descriptorOf, pushBlob, putManifest, request, sha256, types, type Reply } from './helpers/http.ts';
import { startInjected, tempDir, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let meta: MetaStore;
let dataDir: string;
let base: string;

beforeAll(async () => {
  dataDir = await tempDir();
  meta = await openMetaStore(path.join(dataDir, 'custody.db'));
  server = await startInjected({ dataDir, parts: { meta } });
  base = server.url;
  await createUser(meta.accounts, 'qadmin', 'qadmin-password', { q1: 'admin' });
});
afterAll(() => server.stop());

const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
const setNamespace = (ns: string, settings: Record<string, unknown>) => request(base, `/api/v1/namespaces/${ns}`, { method: 'PUT', ...json(settings) });
const usage = async (ns: string) => {
  const r = await request(base, `/api/v1/namespaces/${ns}/usage`);
  expect(r.status).toBe(200);
  return r.json<Record<string, unknown> & { usedBytes: number; softExceededAt: string | null }>();
};
const ociError = (r: Reply) => r.json<{ errors: { code: string; message: string; detail: unknown }[] }>().errors[0];

/** Everything a push could leave: files in the blob store, and the rows of blobs, links, manifests, tags and uploads. */
async function stored(): Promise<unknown> {
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else files.push(path.relative(dataDir, p));
    }
  };
  await walk(path.join(dataDir, 'blobs'));
  const db = new DatabaseSync(path.join(dataDir, 'custody.db'), { readOnly: true });
  try {
    const rows = (q: string) => db.prepare(q).all();
    return {
      files: files.sort(),
      blobs: rows('select digest, size from blobs order by digest'),
      links: rows('select repo, digest from repo_blobs order by repo, digest'),
      manifests: rows('select repo, digest from manifests order by repo, digest'),
      tags: rows('select repo, name from tags order by repo, name'),
      uploads: rows('select id from uploads order by id'),
      parts: rows('select upload_id, key from upload_parts order by key'),
    };
  } finally {
    db.close();
  }
}

/** A namespace with a hard quota of 1000 bytes, 900 of them used by one blob. */
async function nearlyFull(ns: string): Promise<void> {
  expect((await setNamespace(ns, { quotaBytes: 1000 })).status).toBe(200);
  await pushBlob(base, `${ns}/app`, randomBytes(900));
  expect((await usage(ns)).usedBytes).toBe(900);
}

function expectRefused(r: Reply, ns: string, used: number, adds: number, quota: number): void {
  expect(r.status).toBe(403);
  const e = ociError(r);
  expect(e?.code).toBe('DENIED');
  expect(e?.message).toBe(
    `namespace ${ns} is over its hard quota: it uses ${used} bytes (fair share), this ${e?.message.includes('manifest') ? 'manifest' : 'blob'} would add ${adds}, and the quota is ${quota} bytes`,
  );
  expect(e?.detail).toEqual({ reason: 'quota', namespace: ns, usedBytes: used, pushBytes: adds, quotaBytes: quota });
}

const startUpload = async (repo: string) => {
  const r = await request(base, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(r.status).toBe(202);
  return r.headers.location as string;
};
const patch = async (location: string, chunk: Buffer, start: number) => {
  const r = await request(base, location, {
    method: 'PATCH',
    body: chunk,
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${start + chunk.length - 1}` },
  });
  expect(r.status).toBe(202);
  return r.headers.location as string;
};
const finish = (location: string, digest: string, body?: Buffer) =>
  request(base, `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, {
    method: 'PUT',
    ...(body ? { body, headers: { 'content-type': 'application/octet-stream' } } : {}),
  });

describe('a push over the hard quota is refused and leaves nothing stored', () => {
  it('POST ?digest= with the whole blob', async () => {
    await nearlyFull('p1');
    const before = await stored();
    const blob = randomBytes(200);
    const r = await request(base, `/v2/p1/app/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      body: blob,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expectRefused(r, 'p1', 900, 200, 1000);
    expect(await stored()).toEqual(before);
    expect((await request(base, `/v2/p1/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status).toBe(404);
    // what fits still goes in: the refusal was the quota's alone
    await pushBlob(base, 'p1/app', randomBytes(100));
    expect((await usage('p1')).usedBytes).toBe(1000);
  });

  it('POST ?digest= with a body of no announced length, judged once written and before it becomes visible', async () => {
    await nearlyFull('p2');
    const before = (await stored()) as { blobs: unknown[] };
    const blob = randomBytes(200);
    const r = await server.app.inject({
      method: 'POST',
      url: `/v2/p2/app/blobs/uploads/?digest=${sha256(blob)}`,
      headers: { authorization: basic('admin', 'test-admin-password'), 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
      payload: Readable.from([blob.subarray(0, 100), blob.subarray(100)]),
    });
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ errors: [{ code: 'DENIED', detail: { usedBytes: 900, pushBytes: 200, quotaBytes: 1000 } }] });
    // No bytes and no link. An upload touches the blob's row before its bytes come (the garbage
    // collector's grace period): that row may stay, unlinked and of no size, for the collector.
    const after = (await stored()) as { blobs: { digest: string; size: number }[] };
    expect({ ...after, blobs: before.blobs }).toEqual(before);
    const added = after.blobs.filter((b) => !before.blobs.some((x) => JSON.stringify(x) === JSON.stringify(b)));
    expect(added.every((b) => b.digest === sha256(blob) && b.size === 0)).toBe(true);
  });

  it('PATCH then PUT: the single part is not moved into place, and the upload is gone', async () => {
    await nearlyFull('p3');
    const before = await stored();
    const blob = randomBytes(200);
    const location = await patch(await startUpload('p3/app'), blob, 0);
    const r = await finish(location, sha256(blob));
    expectRefused(r, 'p3', 900, 200, 1000);
    expect(await stored()).toEqual(before);
    expect((await request(base, location)).status).toBe(404);
  });

  it('several PATCHes then PUT: the parts are not joined, and they are deleted', async () => {
    await nearlyFull('p4');
    const before = await stored();
    const blob = randomBytes(300);
    let location = await startUpload('p4/app');
    for (let start = 0; start < blob.length; start += 100) location = await patch(location, blob.subarray(start, start + 100), start);
    const r = await finish(location, sha256(blob));
    expectRefused(r, 'p4', 900, 300, 1000);
    expect(await stored()).toEqual(before);
  });

  it('PATCH, then PUT with the last chunk', async () => {
    await nearlyFull('p5');
    const before = await stored();
    const blob = randomBytes(250);
    const location = await patch(await startUpload('p5/app'), blob.subarray(0, 50), 0);
    expectRefused(await finish(location, sha256(blob), blob.subarray(50)), 'p5', 900, 250, 1000);
    expect(await stored()).toEqual(before);
  });

  it('POST, then PUT with the whole blob', async () => {
    await nearlyFull('p6');
    const before = await stored();
    const blob = randomBytes(101);
    const location = await startUpload('p6/app');
    expectRefused(await finish(location, sha256(blob), blob), 'p6', 900, 101, 1000);
    expect(await stored()).toEqual(before);
    expect((await request(base, location)).status).toBe(404);
  });

  it('a mount from another namespace, charged its fair share', async () => {
    await nearlyFull('p7');
    const big = await pushBlob(base, 'elsewhere/src', randomBytes(400)); // would cost 200 once shared
    const small = await pushBlob(base, 'elsewhere/src', randomBytes(150)); // 75
    const before = await stored();
    const r = await request(base, `/v2/p7/app/blobs/uploads/?mount=${big}&from=elsewhere/src`, { method: 'POST' });
    expectRefused(r, 'p7', 900, 200, 1000);
    expect(await stored()).toEqual(before);
    const fits = await request(base, `/v2/p7/app/blobs/uploads/?mount=${small}&from=elsewhere/src`, { method: 'POST' });
    expect(fits.status).toBe(201);
    expect(await usage('p7')).toMatchObject({ usedBytes: 975, fairBlobBytes: 975, physicalBlobBytes: 1050, sharedBlobs: 1 });
    // elsewhere gave up half of the shared blob
    expect(await usage('elsewhere')).toMatchObject({ fairBlobBytes: 400 + 75, physicalBlobBytes: 550 });
  });

  it('a manifest PUT, before the manifest or its tag is stored', async () => {
    expect((await setNamespace('p8', { quotaBytes: 1000 })).status).toBe(200);
    const config = '{"architecture":"amd64","os":"linux"}';
    const layer = randomBytes(700);
    await pushBlob(base, 'p8/app', config);
    await pushBlob(base, 'p8/app', layer);
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: descriptorOf(config, types.config),
      layers: [{ mediaType: types.layer, digest: sha256(layer), size: layer.length }],
      annotations: { pad: 'x'.repeat(400) },
    });
    const used = 700 + config.length;
    const before = await stored();
    expectRefused(await putManifest(base, 'p8/app', 'v1', body), 'p8', used, Buffer.byteLength(body), 1000);
    expect(await stored()).toEqual(before);
    expect((await request(base, '/v2/p8/app/manifests/v1')).status).toBe(404);
    expect((await setNamespace('p8', { quotaBytes: used + Buffer.byteLength(body) })).status).toBe(200);
    expect((await putManifest(base, 'p8/app', 'v1', body)).status).toBe(201);
    // at the quota now: the same manifest again (another tag) adds nothing, so it passes
    expect((await putManifest(base, 'p8/app', 'v2', body)).status).toBe(201);
    expect(await usage('p8')).toMatchObject({ usedBytes: used + Buffer.byteLength(body), overHardQuota: false, manifests: 1 });
  });

  it('lets through a push that adds nothing, even over the quota, and one of a layer another repository of the namespace holds', async () => {
    await nearlyFull('p9');
    const blob = randomBytes(300);
    expect((await setNamespace('p9', { quotaBytes: 2000 })).status).toBe(200);
    await pushBlob(base, 'p9/app', blob);
    expect((await setNamespace('p9', { quotaBytes: 500 })).status).toBe(200);
    expect(await usage('p9')).toMatchObject({ usedBytes: 1200, overHardQuota: true });
    await pushBlob(base, 'p9/app', blob); // already linked here
    await pushBlob(base, 'p9/other', blob); // linked by another repository of p9: counted once
    expect((await usage('p9')).usedBytes).toBe(1200);
    expectRefused(await request(base, `/v2/p9/app/blobs/uploads/?digest=${sha256('x')}`, { method: 'POST', body: 'x' }), 'p9', 1200, 1, 500);
  });
});

describe('the soft quota and the usage API', () => {
  it('shows the crossing of the soft quota, marked once, and clears it when a new soft quota is set', async () => {
    expect((await setNamespace('q1', { quotaBytes: 10_000, softQuotaBytes: 600 })).status).toBe(200);
    await pushBlob(base, 'q1/app', randomBytes(500));
    expect(await usage('q1')).toMatchObject({ usedBytes: 500, overSoftQuota: false, softExceededAt: null, softQuotaBytes: 600, hardQuotaBytes: 10_000 });
    await pushBlob(base, 'q1/app', randomBytes(200));
    const crossed = await usage('q1');
    expect(crossed).toMatchObject({ usedBytes: 700, overSoftQuota: true, overHardQuota: false });
    expect(crossed.softExceededAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await pushBlob(base, 'q1/app', randomBytes(50));
    expect((await usage('q1')).softExceededAt).toBe(crossed.softExceededAt); // once per crossing, not per push
    expect((await setNamespace('q1', { softQuotaBytes: 2000 })).status).toBe(200);
    expect(await usage('q1')).toMatchObject({ overSoftQuota: false, softExceededAt: null });
  });

  it("answers a namespace's figures to its admins, and every namespace's to registry admins, adding up", async () => {
    const qadmin = { authorization: basic('qadmin', 'qadmin-password') };
    expect((await request(base, '/api/v1/namespaces/q1/usage', { headers: qadmin })).status).toBe(200);
    expect((await request(base, '/api/v1/namespaces/p1/usage', { headers: qadmin })).status).toBe(403);
    expect((await request(base, '/api/v1/usage', { headers: qadmin })).status).toBe(403);
    expect((await request(base, '/api/v1/usage', { auth: false })).status).toBe(401);
    expect((await request(base, '/api/v1/namespaces/nothing-here/usage')).status).toBe(404);
    expect((await request(base, '/api/v1/namespaces/Bad..Name/usage')).status).toBe(400);

    const all = (await request(base, '/api/v1/usage')).json<{
      namespaces: { namespace: string; fairBlobBytes: number; manifestBytes: number; usedBytes: number }[];
      totals: { physicalBlobBytes: number; fairBlobBytes: number; manifestBytes: number; usedBytes: number };
    }>();
    expect(all.totals.fairBlobBytes).toBe(all.totals.physicalBlobBytes);
    expect(all.namespaces.reduce((s, n) => s + n.fairBlobBytes, 0)).toBe(all.totals.physicalBlobBytes);
    expect(all.namespaces.reduce((s, n) => s + n.manifestBytes, 0)).toBe(all.totals.manifestBytes);
    expect(all.namespaces.find((n) => n.namespace === 'p7')).toMatchObject({ usedBytes: 975 });
    expect(all.namespaces.find((n) => n.namespace === 'elsewhere')).toMatchObject({ fairBlobBytes: 475 });
    // each namespace's own answer agrees with the registry-wide one
    for (const n of all.namespaces) expect((await usage(n.namespace)).usedBytes).toBe(n.usedBytes);
  });

  it('keeps softQuotaBytes and collectUntagged as namespace settings, and refuses bad ones', async () => {
    const r = await setNamespace('s1', { quotaBytes: 5000, softQuotaBytes: 4000, collectUntagged: true });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ name: 's1', quotaBytes: 5000, softQuotaBytes: 4000, collectUntagged: true });
    expect((await request(base, '/api/v1/namespaces/s1')).json()).toMatchObject({ softQuotaBytes: 4000, collectUntagged: true });
    expect((await setNamespace('s1', { anonymousRead: true })).json()).toMatchObject({ softQuotaBytes: 4000, collectUntagged: true });
    for (const bad of [{ softQuotaBytes: -1 }, { softQuotaBytes: 1.5 }, { collectUntagged: 'yes' }, { quotaBytes: 2 ** 60 }]) {
      const refused = await setNamespace('s1', bad);
      expect(refused.status).toBe(400);
      expect(refused.json<{ error: { code: string } }>().error.code).toBe('INVALID');
    }
  });
});
