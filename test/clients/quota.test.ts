/**
 * Quotas as skopeo meets them: a copy into a namespace whose hard quota is too small fails with the
 * registry's message and the figures, and keeps nothing of the layer; with room it goes in, and
 * the same image copied into a second namespace halves what each is charged for it.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveClient, run } from '../helpers/clients.ts';
import { request, testAdmin } from '../helpers/http.ts';
import { imageLayout, type Written } from '../helpers/layout.ts';
import { startProcess, tempDir, type ProcessServer } from '../helpers/server.ts';

const available = await haveClient('skopeo');

describe.runIf(available)('skopeo and quotas', () => {
  let server: ProcessServer;
  let work: string;
  let layout: string;
  let manifest: Written;
  const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];
  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { REGISTRY_AUTH_FILE: path.join(work, 'auth.json') });
  const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const usage = async (ns: string) => (await request(server.url, `/api/v1/namespaces/${ns}/usage`)).json<Record<string, number>>();

  beforeAll(async () => {
    server = await startProcess();
    work = await tempDir('custody-skopeo-quota-');
    layout = path.join(work, 'image');
    manifest = await imageLayout(layout, 'v1');
    expect(await skopeo('login', '--tls-verify=false', '-u', testAdmin.username, '-p', testAdmin.password, server.host)).toMatch(/Login Succeeded/);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('fails a copy over the hard quota with the figures, and lets it in once there is room', async () => {
    expect((await request(server.url, '/api/v1/namespaces/tiny', { method: 'PUT', ...json({ quotaBytes: 10_000 }) })).status).toBe(200);
    const body = JSON.parse(manifest.body.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
    const layer = body.layers[0] as { digest: string; size: number };
    expect(layer.size).toBeGreaterThan(10_000); // 64 KiB of random bytes, gzipped
    const refused = await skopeo('copy', ...tls, `oci:${layout}:v1`, `docker://${server.host}/tiny/app:v1`).then(
      () => '',
      (err: Error) => err.message,
    );
    expect(refused).toMatch(/denied/i);
    expect(refused).toMatch(
      new RegExp(`namespace tiny is over its hard quota: it uses \\d+ bytes \\(fair share\\), this blob would add ${layer.size}, and the quota is 10000 bytes`),
    );
    expect((await request(server.url, `/v2/tiny/app/blobs/${layer.digest}`, { method: 'HEAD' })).status).toBe(404);
    expect((await request(server.url, '/v2/tiny/app/manifests/v1', { method: 'HEAD' })).status).toBe(404);
    expect((await usage('tiny')).usedBytes).toBeLessThanOrEqual(10_000);

    expect((await request(server.url, '/api/v1/namespaces/tiny', { method: 'PUT', ...json({ quotaBytes: 1_000_000 }) })).status).toBe(200);
    await skopeo('copy', ...tls, `oci:${layout}:v1`, `docker://${server.host}/tiny/app:v1`);
    const full = layer.size + body.config.size;
    expect(await usage('tiny')).toMatchObject({ fairBlobBytes: full, physicalBlobBytes: full, manifestBytes: manifest.size });

    // the same image in another namespace: each is charged half of the blobs (rounded as documented)
    await skopeo('copy', ...tls, `oci:${layout}:v1`, `docker://${server.host}/other/app:v1`);
    const [tiny, other] = [await usage('tiny'), await usage('other')].map((u) => u.fairBlobBytes) as [number, number];
    expect(tiny + other).toBe(full);
    expect(Math.abs(tiny - other)).toBeLessThanOrEqual(2);
    expect(await usage('tiny')).toMatchObject({ physicalBlobBytes: full, sharedBlobs: 2 });
  });
});
