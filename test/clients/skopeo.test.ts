/**
 * skopeo against the real server: copy both ways, inspect, list tags, delete. Every call is
 * authenticated the way users do it: `skopeo login` writes an auth file, and skopeo then goes
 * through the Docker token flow (401 challenge, GET /token with Basic, Bearer on /v2).
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { haveClient, run } from '../helpers/clients.ts';
import { request, sha256, testAdmin } from '../helpers/http.ts';
import { imageLayout, indexLayout } from '../helpers/layout.ts';
import { startProcess, tempDir, type ProcessServer } from '../helpers/server.ts';

const available = await haveClient('skopeo');

describe.runIf(available)('skopeo', () => {
  let server: ProcessServer;
  let work: string;
  const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];
  /** skopeo, reading and writing credentials in this run's own auth file only */
  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { REGISTRY_AUTH_FILE: path.join(work, 'auth.json') });

  type Logged = { msg?: string; method: string; url: string; status: number; actor?: string };
  /** The server's one-line-per-request log entries (complete lines only). */
  function requestLog(): Logged[] {
    const lines = server.output().split('\n').slice(0, -1);
    return lines
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Logged)
      .filter((entry) => entry.msg === 'request');
  }

  beforeAll(async () => {
    server = await startProcess();
    work = await tempDir('custody-skopeo-');
    expect(await skopeo('login', '--tls-verify=false', '-u', testAdmin.username, '-p', testAdmin.password, server.host)).toMatch(/Login Succeeded/);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** The manifest digests an OCI layout's index.json names. */
  async function layoutIndex(dir: string): Promise<{ digest: string; mediaType: string }[]> {
    return (JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; mediaType: string }[] }).manifests;
  }

  it('copies a single image to the registry and back, byte for byte', async () => {
    const src = path.join(work, 'single');
    const manifest = await imageLayout(src, 'v1');
    await skopeo('copy', ...tls, `oci:${src}:v1`, `docker://${server.host}/interop/single:v1`);
    const pulled = await request(server.url, '/v2/interop/single/manifests/v1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(pulled.headers['docker-content-digest']).toBe(manifest.digest);
    expect(pulled.body).toEqual(manifest.body);

    const back = path.join(work, 'single-back');
    await skopeo('copy', ...tls, `docker://${server.host}/interop/single:v1`, `oci:${back}:v1`);
    expect((await layoutIndex(back))[0]?.digest).toBe(manifest.digest);
    const body = JSON.parse(manifest.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [body.config.digest, ...body.layers.map((l) => l.digest)]) {
      const bytes = await readFile(path.join(back, 'blobs', 'sha256', d.slice(7)));
      expect(sha256(bytes)).toBe(d);
    }
  });

  it('goes through the token flow with the credentials of `skopeo login`', async () => {
    const src = path.join(work, 'flow');
    await imageLayout(src, 'v1');
    const before = requestLog().length;
    await skopeo('copy', ...tls, `oci:${src}:v1`, `docker://${server.host}/interop/flow:v1`);
    // The server writes its log asynchronously: wait for the manifest PUT to show.
    await vi.waitFor(
      () =>
        expect(requestLog().slice(before)).toContainEqual(
          expect.objectContaining({ method: 'PUT', url: '/v2/interop/flow/manifests/v1', status: 201, actor: 'admin' }),
        ),
      { timeout: 5000 },
    );
    const log = requestLog().slice(before);
    // Challenged, then a token for the repository, then the push as admin with it (above).
    expect(log.some((e) => e.url === '/v2/' && e.status === 401)).toBe(true);
    const token = log.find((e) => e.method === 'GET' && e.url.startsWith('/token?') && e.status === 200);
    expect(token?.url).toContain('account=admin');
    expect(decodeURIComponent(token?.url ?? '')).toContain('scope=repository:interop/flow:pull,push');
    // Nothing reached /v2 anonymously but the challenges.
    expect(log.filter((e) => e.url.startsWith('/v2/') && e.status !== 401).every((e) => e.actor === 'admin')).toBe(true);
  });

  it('copies a multi-arch index with --all, both ways', async () => {
    const src = path.join(work, 'multi');
    const { index, children } = await indexLayout(src, 'v1');
    await skopeo('copy', '--all', ...tls, `oci:${src}:v1`, `docker://${server.host}/interop/multi:v1`);
    const got = await request(server.url, '/v2/interop/multi/manifests/v1', { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    expect(got.headers['docker-content-digest']).toBe(index.digest);
    for (const child of children) expect((await request(server.url, `/v2/interop/multi/manifests/${child.digest}`)).status).toBe(200);

    const back = path.join(work, 'multi-back');
    await skopeo('copy', '--all', ...tls, `docker://${server.host}/interop/multi:v1`, `oci:${back}:v1`);
    expect((await layoutIndex(back))[0]?.digest).toBe(index.digest);
    for (const child of children) expect(sha256(await readFile(path.join(back, 'blobs', 'sha256', child.digest.slice(7))))).toBe(child.digest);
  });

  it('copies an image converted to Docker schema 2', async () => {
    const src = path.join(work, 'docker');
    await imageLayout(src, 'v1');
    await skopeo('copy', '--format', 'v2s2', ...tls, `oci:${src}:v1`, `docker://${server.host}/interop/docker:v1`);
    const got = await request(server.url, '/v2/interop/docker/manifests/v1', { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('application/vnd.docker.distribution.manifest.v2+json');
    const back = path.join(work, 'docker-back');
    await skopeo('copy', ...tls, `docker://${server.host}/interop/docker:v1`, `oci:${back}:v1`);
  });

  it('inspects, lists tags and deletes', async () => {
    const src = path.join(work, 'tags');
    const manifest = await imageLayout(src, 'v1');
    for (const tag of ['v1', 'v2', 'latest']) await skopeo('copy', ...tls, `oci:${src}:v1`, `docker://${server.host}/interop/tags:${tag}`);

    const inspect = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${server.host}/interop/tags:v2`)) as {
      Digest: string;
      Architecture: string;
    };
    expect(inspect.Digest).toBe(manifest.digest);
    expect(inspect.Architecture).toBe('amd64');
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${server.host}/interop/tags:v2`);
    expect(raw).toBe(manifest.body.toString());

    const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${server.host}/interop/tags`)) as { Tags: string[] };
    expect(tags.Tags.sort()).toEqual(['latest', 'v1', 'v2']);

    await skopeo('delete', '--tls-verify=false', `docker://${server.host}/interop/tags:v2`);
    expect((await request(server.url, `/v2/interop/tags/manifests/${manifest.digest}`)).status).toBe(404);
    await expect(skopeo('inspect', '--tls-verify=false', `docker://${server.host}/interop/tags:v1`)).rejects.toThrow();
  });
});
