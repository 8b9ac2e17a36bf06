/**
 * buildah builds and pushes, podman pulls and pushes, against the real server, as the admin:
 * `podman login` writes an auth file that buildah and podman then both use for the token flow.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { haveClient, run } from '../helpers/clients.ts';
import { request, testAdmin } from '../helpers/http.ts';
import { startProcess, tempDir, type ProcessServer } from '../helpers/server.ts';

const available = (await haveClient('podman')) && (await haveClient('buildah'));

describe.runIf(available)('buildah and podman', () => {
  let server: ProcessServer;
  let work: string;
  /** Separate storage per client and per test run: nothing touches /var/lib/containers. */
  const storage = (name: string) => ['--root', path.join(work, name, 'root'), '--runroot', path.join(work, name, 'run'), '--storage-driver', 'vfs'];
  /** Credentials live in this run's own auth file, which buildah and podman both read. */
  const authFile = () => path.join(work, 'auth.json');
  const buildah = (...args: string[]) => run('buildah', [...storage('buildah'), ...args], { BUILDAH_ISOLATION: 'chroot', REGISTRY_AUTH_FILE: authFile() });
  const podman = (...args: string[]) =>
    run('podman', [...storage('podman'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', ...args], {
      XDG_RUNTIME_DIR: path.join(work, 'xdg'),
      REGISTRY_AUTH_FILE: authFile(),
    });

  beforeAll(async () => {
    server = await startProcess();
    work = await tempDir('custody-podman-');
    expect(await podman('login', '--tls-verify=false', '-u', testAdmin.username, '-p', testAdmin.password, server.host)).toMatch(/Login Succeeded/);
    const auths = (JSON.parse(await readFile(authFile(), 'utf8')) as { auths: Record<string, { auth: string }> }).auths;
    expect(Buffer.from(auths[server.host]?.auth ?? '', 'base64').toString()).toBe(`${testAdmin.username}:${testAdmin.password}`);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('buildah builds and pushes an image; podman pulls it and pushes it on', async () => {
    const file = path.join(work, 'hello.txt');
    await writeFile(file, 'hello from buildah\n');
    const ctr = (await buildah('from', 'scratch')).trim();
    await buildah('copy', ctr, file, '/hello.txt');
    await buildah('config', '--cmd', '/hello', '--label', 'org.example=custody', ctr);
    await buildah('commit', ctr, 'localhost/custody-test:v1');
    const digestFile = path.join(work, 'digest');
    await buildah('push', '--tls-verify=false', '--digestfile', digestFile, 'localhost/custody-test:v1', `docker://${server.host}/interop/built:v1`);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    const head = await request(server.url, '/v2/interop/built/manifests/v1', {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(head.headers['docker-content-digest']).toBe(pushed);

    await podman('pull', '--tls-verify=false', `${server.host}/interop/built:v1`);
    const inspected = JSON.parse(await podman('image', 'inspect', `${server.host}/interop/built:v1`)) as { Digest: string; Labels: Record<string, string> }[];
    expect(inspected[0]?.Digest).toBe(pushed);
    expect(inspected[0]?.Labels['org.example']).toBe('custody');

    await podman('push', '--tls-verify=false', `${server.host}/interop/built:v1`, `${server.host}/interop/repushed:v2`);
    expect((await request(server.url, '/v2/interop/repushed/tags/list')).json()).toEqual({ name: 'interop/repushed', tags: ['v2'] });
    await podman('pull', '--tls-verify=false', `${server.host}/interop/repushed:v2`);

    // Both clients took tokens from /token and pushed with them as admin (the log is asynchronous).
    type Logged = { msg?: string; method: string; url: string; status: number; actor?: string };
    const log = () =>
      server
        .output()
        .split('\n')
        .slice(0, -1)
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Logged)
        .filter((e) => e.msg === 'request');
    await vi.waitFor(
      () => {
        for (const repo of ['built', 'repushed']) {
          expect(log()).toContainEqual(
            expect.objectContaining({ method: 'PUT', url: `/v2/interop/${repo}/manifests/${repo === 'built' ? 'v1' : 'v2'}`, status: 201, actor: 'admin' }),
          );
          expect(log().some((e) => e.url.startsWith('/token?') && e.status === 200 && decodeURIComponent(e.url).includes(`repository:interop/${repo}:`))).toBe(
            true,
          );
        }
      },
      { timeout: 5000 },
    );
  });
});
