/**
 * The events skopeo causes: a copy into the registry (push) and back out (pull), as a user who
 * logged in with skopeo login. Each blob's push and pull records its size in bytes, the manifest's
 * too; the client is skopeo; the identity is the user; the token skopeo got from /token is an
 * event with what it grants.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveClient, run } from '../helpers/clients.ts';
import { request } from '../helpers/http.ts';
import { imageLayout, type Written } from '../helpers/layout.ts';
import { startProcess, tempDir, type ProcessServer } from '../helpers/server.ts';
import { eventsOnceSent, type EventView } from '../helpers/events.ts';

const available = await haveClient('skopeo');

describe.runIf(available)('skopeo and usage events', () => {
  let server: ProcessServer;
  let work: string;
  let layout: string;
  let manifest: Written;
  const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];
  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { REGISTRY_AUTH_FILE: path.join(work, 'auth.json') });
  const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  const events = (type: string, count: number) => eventsOnceSent(server.url, 'team/app', type, count);

  beforeAll(async () => {
    work = await tempDir('custody-skopeo-events-');
    const config = path.join(work, 'custody.yaml');
    await writeFile(config, 'insight:\n  events:\n    flushMs: 50\n');
    server = await startProcess({ args: ['--config', config] });
    expect((await request(server.url, '/api/v1/users', { method: 'POST', ...json({ name: 'carol', password: 'carol-password' }) })).status).toBe(201);
    expect((await request(server.url, '/api/v1/namespaces/team', { method: 'PUT', ...json({}) })).status).toBe(200);
    expect((await request(server.url, '/api/v1/namespaces/team/grants/user/carol', { method: 'PUT', ...json({ role: 'writer' }) })).status).toBe(204);
    layout = path.join(work, 'image');
    manifest = await imageLayout(layout, 'v1');
    expect(await skopeo('login', '--tls-verify=false', '-u', 'carol', '-p', 'carol-password', server.host)).toMatch(/Login Succeeded/);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('records the push and the pull of each blob and the manifest, with their sizes, skopeo, and the user', async () => {
    const body = JSON.parse(manifest.body.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
    const blobs = [body.config, ...body.layers];
    await skopeo('copy', ...tls, `oci:${layout}:v1`, `docker://${server.host}/team/app:v1`);

    const pushes = await events('push', blobs.length + 1);

    const pushedBlobs = pushes.filter((e) => e.object === 'blob' && e.result === 'ok');
    expect(pushedBlobs.map((e) => [e.digest, e.bytes]).sort()).toEqual(blobs.map((b) => [b.digest, b.size]).sort());
    const pushedManifest = pushes.filter((e) => e.object === 'manifest');
    expect(pushedManifest.map((e) => [e.digest, e.tag, e.bytes, e.status])).toEqual([[manifest.digest, 'v1', manifest.size, 201]]);

    const back = path.join(work, 'back');
    await skopeo('copy', ...tls, `docker://${server.host}/team/app:v1`, `oci:${back}:v1`);
    // before the copy in, skopeo asked (HEAD) for each blob, and was told 404: pulls that failed
    const all = await events('pull', blobs.length + 1);
    const failed = all.filter((e) => e.result !== 'ok');
    expect(
      failed.every((e) => e.object === 'blob' && e.status === 404 && e.bytes === 0),
      JSON.stringify(failed),
    ).toBe(true);
    const pulls = all.filter((e) => e.result === 'ok');
    const pulledBlobs = pulls.filter((e) => e.object === 'blob' && e.status === 200);
    // each blob whole, once; skopeo may ask HEAD first, which sends no bytes
    expect(
      pulledBlobs
        .filter((e) => e.bytes > 0)
        .map((e) => [e.digest, e.bytes])
        .sort(),
    ).toEqual(blobs.map((b) => [b.digest, b.size]).sort());
    const pulledManifest = pulls.filter((e) => e.object === 'manifest' && e.bytes > 0);
    expect(pulledManifest.length).toBeGreaterThanOrEqual(1);
    expect(pulledManifest.every((e) => e.digest === manifest.digest && e.bytes === manifest.size)).toBe(true);

    for (const e of [...pushes, ...pulls]) {
      expect(e.userAgent).toMatch(/skopeo/i);
      expect(e).toMatchObject({ actor: 'carol', actorKind: 'user' });
    }

    // skopeo traded carol's password for tokens at /token: each is an event, with what it grants
    const tokens = (await request(server.url, '/api/v1/events?type=token&limit=500')).json<{ events: EventView[] }>().events;
    const granted = tokens.filter((e) => e.actor === 'carol' && e.result === 'ok').flatMap((e) => e.detail.scopes as string[]);
    expect(granted).toContain('repository:team/app:pull,push');
    expect(tokens.every((e) => /skopeo/i.test(e.userAgent) || e.actor !== 'carol')).toBe(true);
  });
});
