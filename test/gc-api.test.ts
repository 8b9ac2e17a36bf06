/**
 * Garbage collection through /api/v1/gc, as `custody gc` drives it: a dry run says what a run
 * then removes, a run frees the bytes of what nothing references and keeps everything a tag
 * reaches, untagged manifests go only where the namespace says so, one run at a time, admins only.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { basic, imageManifest, pushBlob, putManifest, request, sha256, types, type Reply } from './helpers/http.ts';

let server: AccountsServer;

beforeAll(async () => {
  server = await startWithAccounts({ lifecycle: { gc: { graceSeconds: 0, intervalSeconds: 0, batchSize: 2, heartbeatSeconds: 1 } } }, {}, { listen: false });
  await createUser(server.accounts, 'nsadmin', 'nsadmin-password', { gc: 'admin' });
});
afterAll(() => server.stop());

const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;
type Run = { id: string; state: string; phase: string; dryRun: boolean; planned: Counts; done: Counts; finishedAt: string | null };
type Counts = { manifests: number; links: number; blobs: number; bytes: number };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a run and follows it to its end, as the CLI does. */
async function collect(dryRun: boolean): Promise<Run> {
  await sleep(5); // grace 0: what was written in this millisecond is not yet older than the cutoff
  const started = await request(server.url, '/api/v1/gc', { method: 'POST', ...json({ dryRun }) });
  expect(started.status, started.body.toString()).toBe(202);
  const { id } = started.json<Run>();
  for (let i = 0; i < 200; i++) {
    const run = (await request(server.url, `/api/v1/gc/runs/${id}`)).json<Run>();
    if (run.state !== 'running') return run;
    await sleep(25);
  }
  throw new Error(`run ${id} did not finish`);
}

const blobFile = (digest: string) => path.join(server.dataDir, 'blobs', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

describe('garbage collection', () => {
  it('frees what nothing references, says so first in a dry run, and keeps what a tag reaches', async () => {
    const kept = await imageManifest(server.url, 'gc/app', ['shared-layer', 'kept-layer']);
    expect((await putManifest(server.url, 'gc/app', 'v1', kept.body)).status).toBe(201);
    const dropped = await imageManifest(server.url, 'gc/app', ['shared-layer', 'dropped-layer']);
    expect((await putManifest(server.url, 'gc/app', 'v2', dropped.body)).status).toBe(201);
    const orphan = await pushBlob(server.url, 'gc/app', 'an upload no manifest ever named');
    expect((await request(server.url, `/v2/gc/app/manifests/${dropped.digest}`, { method: 'DELETE' })).status).toBe(202);
    const droppedLayer = sha256('dropped-layer');
    expect(await exists(blobFile(droppedLayer))).toBe(true);

    const expected = { manifests: 0, links: 2, blobs: 2, bytes: 'dropped-layer'.length + 'an upload no manifest ever named'.length };
    const dry = await collect(true);
    expect(dry).toMatchObject({ state: 'done', dryRun: true, planned: expected, done: { manifests: 0, links: 0, blobs: 0, bytes: 0 } });
    expect(await exists(blobFile(droppedLayer))).toBe(true);

    const real = await collect(false);
    expect(real).toMatchObject({ state: 'done', phase: 'done', dryRun: false, planned: expected, done: expected });
    expect(real.finishedAt).not.toBeNull();
    for (const gone of [droppedLayer, orphan]) {
      expect((await request(server.url, `/v2/gc/app/blobs/${gone}`, { method: 'HEAD' })).status).toBe(404);
      expect(await exists(blobFile(gone))).toBe(false);
    }
    const pulled = await request(server.url, '/v2/gc/app/manifests/v1', { headers: { accept: types.manifest } });
    expect(pulled.status).toBe(200);
    for (const layer of ['shared-layer', 'kept-layer']) {
      const r = await request(server.url, `/v2/gc/app/blobs/${sha256(layer)}`);
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(layer);
    }
    // nothing left to do
    expect((await collect(true)).planned).toEqual({ manifests: 0, links: 0, blobs: 0, bytes: 0 });
  });

  it('removes untagged manifests only in namespaces that collect them', async () => {
    for (const ns of ['gckeep', 'gctidy']) {
      await server.accounts.upsertNamespace(ns, { collectUntagged: ns === 'gctidy' });
      const image = await imageManifest(server.url, `${ns}/app`, [`${ns}-layer`]);
      expect((await putManifest(server.url, `${ns}/app`, 'v1', image.body)).status).toBe(201);
      // retag: v1 now names another image, and the first is untagged
      const next = await imageManifest(server.url, `${ns}/app`, [`${ns}-next`]);
      expect((await putManifest(server.url, `${ns}/app`, 'v1', next.body)).status).toBe(201);
    }
    const run = await collect(false);
    expect(run.done).toMatchObject({ manifests: 1, links: 1, blobs: 1, bytes: 'gctidy-layer'.length });
    expect((await request(server.url, `/v2/gckeep/app/blobs/${sha256('gckeep-layer')}`, { method: 'HEAD' })).status).toBe(200);
    expect((await request(server.url, `/v2/gctidy/app/blobs/${sha256('gctidy-layer')}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('runs one collection at a time', async () => {
    // another replica's run, alive
    const now = Date.now();
    const other = await server.meta.gc.claimRun({ id: 'other-replica-run', owner: 'elsewhere', dryRun: false, graceMs: 0, now, staleMs: 60_000 });
    expect(other).toBeDefined();
    const refused = await request(server.url, '/api/v1/gc', { method: 'POST', ...json({}) });
    expect(refused.status).toBe(409);
    expect(errorOf(refused).message).toContain('other-replica-run');
    await server.meta.gc.updateRun('other-replica-run', 'elsewhere', { heartbeatAt: now, state: 'done', phase: 'done', finishedAt: now });
    const runs = (await request(server.url, '/api/v1/gc/runs?limit=2')).json<{ runs: Run[]; next?: string }>();
    expect(runs.runs.map((r) => r.id)[0]).toBe('other-replica-run');
    expect(runs.next).toBeDefined();
  });

  it('is for registry administrators, and refuses bad requests', async () => {
    const as = basic('nsadmin', 'nsadmin-password');
    const start = await request(server.url, '/api/v1/gc', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', authorization: as } });
    expect(start.status).toBe(403);
    expect((await request(server.url, '/api/v1/gc/runs', { headers: { authorization: as } })).status).toBe(403);
    expect((await request(server.url, '/api/v1/gc', { method: 'POST', ...json({ dryRun: 'yes' }) })).status).toBe(400);
    expect((await request(server.url, '/api/v1/gc', { method: 'POST', ...json({ everything: true }) })).status).toBe(400);
    expect((await request(server.url, '/api/v1/gc/runs?limit=0')).status).toBe(400);
    expect((await request(server.url, '/api/v1/gc/runs/no-such-run')).status).toBe(404);
  });
});
