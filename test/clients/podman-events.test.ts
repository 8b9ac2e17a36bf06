/**
 * The events podman causes: `podman push` of an image into the registry and `podman pull` back,
 * as a user who logged in with `podman login`. Each blob's push and pull records the bytes of the
 * blob the registry stores (podman may compress layers differently from the image it was given,
 * so the sizes are read from the manifest it pushed), the client is podman's, the identity the
 * user's.
 */
import { randomBytes } from 'node:crypto';
import { rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveClient, run } from '../helpers/clients.ts';
import { request } from '../helpers/http.ts';
import { imageLayout } from '../helpers/layout.ts';
import { startProcess, tempDir, type ProcessServer } from '../helpers/server.ts';
import { eventsOnceSent } from '../helpers/events.ts';

const available = await haveClient('podman');

describe.runIf(available)('podman and usage events', () => {
  let server: ProcessServer;
  let work: string;
  const podman = (...args: string[]) =>
    run(
      'podman',
      [
        '--root',
        path.join(work, 'root'),
        '--runroot',
        path.join(work, 'run'),
        '--storage-driver',
        'vfs',
        '--cgroup-manager',
        'cgroupfs',
        '--events-backend',
        'file',
        ...args,
      ],
      { XDG_RUNTIME_DIR: path.join(work, 'xdg'), REGISTRY_AUTH_FILE: path.join(work, 'auth.json') },
    );
  const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  const events = (type: string, count: number) => eventsOnceSent(server.url, 'team/web', type, count);

  beforeAll(async () => {
    work = await tempDir('custody-podman-events-');
    const config = path.join(work, 'custody.yaml');
    await writeFile(config, 'insight:\n  events:\n    flushMs: 50\n');
    server = await startProcess({ args: ['--config', config] });
    expect((await request(server.url, '/api/v1/users', { method: 'POST', ...json({ name: 'dave', password: 'dave-password' }) })).status).toBe(201);
    expect((await request(server.url, '/api/v1/namespaces/team', { method: 'PUT', ...json({}) })).status).toBe(200);
    expect((await request(server.url, '/api/v1/namespaces/team/grants/user/dave', { method: 'PUT', ...json({ role: 'writer' }) })).status).toBe(204);
    expect(await podman('login', '--tls-verify=false', '-u', 'dave', '-p', 'dave-password', server.host)).toMatch(/Login Succeeded/);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('records the push and the pull of each blob and the manifest, with their sizes, podman, and the user', async () => {
    const layout = path.join(work, 'image');
    await imageLayout(layout, 'v1');
    // podman names the image after the layout's path, and image names are lowercase
    const lower = path.join(tmpdir(), `custody-podman-layout-${randomBytes(6).toString('hex')}`);
    await symlink(layout, lower);
    try {
      await podman('pull', `oci:${lower}:v1`);
    } finally {
      await rm(lower, { force: true });
    }
    const local = (await podman('images', '--format', '{{.ID}}')).trim().split('\n')[0] ?? '';
    expect(local).not.toBe('');
    const ref = `${server.host}/team/web:v1`;
    await podman('push', '--tls-verify=false', local, `docker://${ref}`);

    // what podman stored: the sizes of its config and layers
    const got = await request(server.url, '/v2/team/web/manifests/v1', {
      // this GET is a pull too: its user agent tells it from podman's
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json', 'user-agent': 'custody-test' },
    });
    expect(got.status).toBe(200);
    const stored = got.json<{ config: { digest: string; size: number }; layers: { digest: string; size: number }[] }>();
    const blobs = [stored.config, ...stored.layers].map((b) => [b.digest, b.size]).sort();
    const manifestDigest = got.headers['docker-content-digest'];

    const pushes = await events('push', blobs.length + 1);
    expect(
      pushes
        .filter((e) => e.object === 'blob' && e.result === 'ok')
        .map((e) => [e.digest, e.bytes])
        .sort(),
    ).toEqual(blobs);
    expect(pushes.filter((e) => e.object === 'manifest').map((e) => [e.digest, e.tag, e.status])).toEqual([[manifestDigest, 'v1', 201]]);

    await podman('rmi', '--all', '--force');
    await podman('pull', '--tls-verify=false', ref);
    const pulls = (await events('pull', blobs.length + 2)).filter((e) => e.result === 'ok' && e.userAgent !== 'custody-test');
    // each blob whole; podman may ask HEAD first, which sends no bytes
    expect(
      pulls
        .filter((e) => e.object === 'blob' && e.bytes > 0)
        .map((e) => [e.digest, e.bytes])
        .sort(),
    ).toEqual(blobs);
    expect(pulls.some((e) => e.object === 'manifest' && e.bytes > 0)).toBe(true);

    for (const e of [...pushes.filter((p) => p.result === 'ok'), ...pulls]) {
      // podman sends containers/image's agent: containers/5.x (github.com/containers/image)
      expect(e.userAgent).toMatch(/containers\/image/);
      expect(e).toMatchObject({ actor: 'dave', actorKind: 'user' });
    }
  });
});
