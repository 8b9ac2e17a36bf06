/**
 * OPA Wasm policies end to end through the API: the bundle pushed to the registry itself as an
 * OCI artifact and named by repository and digest, decisions at /v2 with the module's own
 * messages, a missing or hostile bundle refused when saved, and a policy that loops at
 * evaluation answered by its failure mode. Modules are built from WAT at test time (opa-wat.ts).
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { descriptorOf, imageManifest, pushBlob, putManifest, request, sha256, types, type Reply } from './helpers/http.ts';
import { buildModule, bundle } from './policy/opa-wat.ts';

let server: AccountsServer;

beforeAll(async () => {
  server = await startWithAccounts({ policy: { reloadSeconds: 3600, opa: { workers: 1, memoryMiB: 16, timeoutMs: 300 } } }, {}, { listen: false });
});
afterAll(() => server.stop());

const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
const ociMessage = (r: Reply) => r.json<{ errors: { message: string }[] }>().errors[0]?.message;
const save = (doc: Record<string, unknown>) => request(server.url, `/api/v1/policies/${String(doc.name)}`, { method: 'PUT', ...json(doc) });

/** Pushes a bundle as OPA's OCI downloader and oras write it: one tar+gzip layer. */
async function pushBundle(repo: string, tag: string, bytes: Uint8Array): Promise<string> {
  const layer = Buffer.from(bytes);
  await pushBlob(server.url, repo, layer);
  await pushBlob(server.url, repo, '{}');
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: types.manifest,
    artifactType: 'application/vnd.openpolicyagent.bundle',
    config: descriptorOf('{}', types.empty),
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  });
  expect((await putManifest(server.url, repo, tag, body)).status).toBe(201);
  return sha256(body);
}

describe('OPA Wasm policies', () => {
  it('decide pushes with a bundle pushed to the registry, and the module says why', async () => {
    const digest = await pushBundle('policies/cost', 'v1', bundle(await buildModule('require-cost-center')));
    const saved = await save({
      name: 'opa-cost-center',
      engine: 'opa-wasm',
      bundle: { repository: 'policies/cost', digest },
      entrypoint: 'custody/deny',
      actions: ['push'],
      scope: { namespaces: ['opa'] },
      message: 'refused by {{ policy.name }}: {{ violations }}',
    });
    expect(saved.status, saved.body.toString()).toBe(201);
    try {
      const bare = await imageManifest(server.url, 'opa/app');
      const refused = await putManifest(server.url, 'opa/app', 'v1', bare.body);
      expect(refused.status).toBe(403);
      expect(ociMessage(refused)).toBe('refused by opa-cost-center: a push needs a cost-center label or annotation');
      const labelled = await imageManifest(server.url, 'opa/app', ['l'], { annotations: { 'cost-center': 'cc-1' } });
      expect((await putManifest(server.url, 'opa/app', 'v1', labelled.body)).status).toBe(201);
      const stats = (await request(server.url, '/api/v1/policy-stats')).json<{ latency: Record<string, { evaluations: number }> }>();
      expect(stats.latency['opa-wasm']?.evaluations).toBe(2);
    } finally {
      await request(server.url, '/api/v1/policies/opa-cost-center', { method: 'DELETE' });
    }
  });

  it('refuses, when saved, a bundle that is not there, is not a bundle, or imports what OPA does not give', async () => {
    const base = { engine: 'opa-wasm', entrypoint: 'custody/deny', actions: ['push'] };
    const missing = await save({ ...base, name: 'opa-missing', bundle: { repository: 'policies/none', digest: `sha256:${'0'.repeat(64)}` } });
    expect(missing.status).toBe(400);
    expect(missing.json<{ error: { message: string } }>().error.message).toContain('push the bundle first');
    const garbage = await pushBundle('policies/garbage', 'v1', Buffer.from('not a bundle at all'));
    expect((await save({ ...base, name: 'opa-garbage', bundle: { repository: 'policies/garbage', digest: garbage } })).status).toBe(400);
    const wasi = await pushBundle(
      'policies/wasi',
      'v1',
      bundle(await buildModule('allow-all', { imports: '(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))' })),
    );
    const refused = await save({ ...base, name: 'opa-wasi', bundle: { repository: 'policies/wasi', digest: wasi } });
    expect(refused.status).toBe(400);
    expect(refused.json<{ error: { message: string } }>().error.message).toMatch(/wasi/i);
    expect((await request(server.url, '/api/v1/policies/opa-wasi')).status).toBe(404);
    // a bundle whose manifest is stored but whose layer's bytes are gone: a 400 that says so, not a 500
    const layer = Buffer.from(bundle(await buildModule('allow-all', { abi: [1, 3] })));
    const gone = await pushBundle('policies/gone', 'v1', layer);
    const hex = sha256(layer).slice('sha256:'.length);
    const files = (await readdir(server.dataDir, { recursive: true })).filter((f) => f.endsWith(hex));
    expect(files.length).toBe(1);
    await rm(path.join(server.dataDir, files[0]!));
    const lost = await save({ ...base, name: 'opa-gone', bundle: { repository: 'policies/gone', digest: gone } });
    expect(lost.status).toBe(400);
    expect(lost.json<{ error: { message: string } }>().error.message).toContain('is not stored');
  });

  it('answers a policy that loops by its failure mode, and logs the failure', async () => {
    const digest = await pushBundle('policies/loop', 'v1', bundle(await buildModule('loop')));
    const doc = { engine: 'opa-wasm', entrypoint: 'custody/deny', actions: ['pull'], bundle: { repository: 'policies/loop', digest } };
    const image = await imageManifest(server.url, 'loopy/app');
    expect((await putManifest(server.url, 'loopy/app', 'v1', image.body)).status).toBe(201);
    expect((await save({ ...doc, name: 'opa-loop-open', failure: 'open', scope: { namespaces: ['loopy'] } })).status).toBe(201);
    try {
      expect((await request(server.url, '/v2/loopy/app/manifests/v1')).status).toBe(200);
    } finally {
      await request(server.url, '/api/v1/policies/opa-loop-open', { method: 'DELETE' });
    }
    expect((await save({ ...doc, name: 'opa-loop-closed', scope: { namespaces: ['loopy'] } })).status).toBe(201);
    try {
      const refused = await request(server.url, '/v2/loopy/app/manifests/v1');
      expect(refused.status).toBe(403);
      expect(ociMessage(refused)).toMatch(/^policy opa-loop-closed failed \(.*\); it fails closed: the request is denied$/);
    } finally {
      await request(server.url, '/api/v1/policies/opa-loop-closed', { method: 'DELETE' });
    }
    let errors: { policy: string; result: string }[] = [];
    for (let i = 0; i < 50 && errors.length < 2; i++) {
      errors = (await request(server.url, '/api/v1/policy-decisions?result=error')).json<{ decisions: { policy: string; result: string }[] }>().decisions;
      if (errors.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    expect(errors.map((e) => e.policy).sort()).toEqual(['opa-loop-closed', 'opa-loop-open']);
    // the pool still answers: a request no policy decides, and the server itself
    expect((await request(server.url, '/v2/loopy/app/manifests/v1')).status).toBe(200);
  });
});

describe('who may use a bundle', () => {
  it('refuses a policy naming a bundle its author may not pull, before reading the bundle', async () => {
    const { createUser } = await import('./helpers/accounts.ts');
    const { basic } = await import('./helpers/http.ts');
    await createUser(server.accounts, 'teamadmin', 'teamadmin-password', { team: 'admin' });
    const digest = await pushBundle('secret/policies', 'v1', bundle(await buildModule('allow-all')));
    const doc = { name: 'borrowed', namespace: 'team', engine: 'opa-wasm', entrypoint: 'custody/deny', actions: ['push'] };
    const as = { 'content-type': 'application/json', authorization: basic('teamadmin', 'teamadmin-password') };
    const put = (bundleRef: { repository: string; digest: string }) =>
      request(server.url, '/api/v1/policies/borrowed', { method: 'PUT', body: JSON.stringify({ ...doc, bundle: bundleRef }), headers: as });
    // the same answer whether the digest is there or not: nothing is learnt about another namespace
    expect((await put({ repository: 'secret/policies', digest })).status).toBe(403);
    expect((await put({ repository: 'secret/policies', digest: `sha256:${'0'.repeat(64)}` })).status).toBe(403);
    const own = await pushBundle('team/policies', 'v1', bundle(await buildModule('allow-all')));
    expect((await put({ repository: 'team/policies', digest: own })).status).toBe(201);
  });
});
