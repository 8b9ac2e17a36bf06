/**
 * TUF per namespace, end to end: images pushed over HTTP, tags marked signed, and tuf-js
 * (the reference client) refreshing, looking targets up and downloading manifests it verifies.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExpiredMetadataError } from 'tuf-js/dist/error.js';
import { request, type Reply } from './helpers/http.ts';
import { startInjected } from './helpers/server.ts';
import { pushImage, startTufServer, tufClient, type Client, type TufServer } from './helpers/tuf.ts';

let server: TufServer;
let client: Client;
const images: Record<string, { digest: string; body: string }> = {};

const hex = (digest: string) => digest.slice('sha256:'.length);
const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;

beforeAll(async () => {
  server = await startTufServer({}, { listen: false });
  images.app1 = await pushImage(server.url, 'team/app', '1.0', 'app one');
  images.app2 = await pushImage(server.url, 'team/app', '2.0', 'app two');
  images.web = await pushImage(server.url, 'team/web', 'latest', 'web');
  images.base = await pushImage(server.url, 'team', 'base', 'base');
  images.other = await pushImage(server.url, 'other/app', '1.0', 'other');
  server.signed.sign('team/app', '1.0');
  server.signed.sign('team/app', '2.0');
  server.signed.sign('team', 'base');
  server.signed.sign('other/app', '1.0');
  client = await tufClient(server, 'team');
});
afterAll(() => server?.stop());

describe('a tuf-js client', () => {
  it('refreshes, finds each signed tag with its manifest digest, and verifies the manifest bytes', async () => {
    const updater = client.updater();
    await updater.refresh();
    const info = await updater.getTargetInfo('team/app:1.0');
    expect(info?.hashes).toEqual({ sha256: hex(images.app1!.digest) });
    expect(info?.length).toBe(Buffer.byteLength(images.app1!.body));
    expect(info?.custom).toEqual({ mediaType: 'application/vnd.oci.image.manifest.v1+json', repository: 'team/app', tag: '1.0' });
    const file = await updater.downloadTarget(info!);
    expect(await readFile(file, 'utf8')).toBe(images.app1!.body);

    expect((await updater.getTargetInfo('team/app:2.0'))?.hashes.sha256).toBe(hex(images.app2!.digest));
    // A repository named like the namespace: its target has no directory.
    const base = await updater.getTargetInfo('team:base');
    expect(await readFile(await updater.downloadTarget(base!), 'utf8')).toBe(images.base!.body);
    // Unsigned tags and other namespaces' tags are not targets here.
    expect(await updater.getTargetInfo('team/web:latest')).toBeUndefined();
    expect(await updater.getTargetInfo('other/app:1.0')).toBeUndefined();
  });

  it('sees a tag move to another signed manifest', async () => {
    images.app1b = await pushImage(server.url, 'team/app', '1.0', 'app one, rebuilt');
    const updater = client.updater();
    await updater.refresh();
    const info = await updater.getTargetInfo('team/app:1.0');
    expect(info?.hashes.sha256).toBe(hex(images.app1b.digest));
    expect(await readFile(await updater.downloadTarget(info!), 'utf8')).toBe(images.app1b.body);
  });

  it('loses a target when its tag is no longer signed, and gains one when a tag is', async () => {
    server.signed.unsign('team/app', '2.0');
    server.signed.sign('team/web', 'latest');
    const updater = client.updater();
    await updater.refresh();
    expect(await updater.getTargetInfo('team/app:2.0')).toBeUndefined();
    expect((await updater.getTargetInfo('team/web:latest'))?.hashes.sha256).toBe(hex(images.web!.digest));
  });
});

describe('the repository', () => {
  it('publishes a new targets, snapshot and timestamp only when the signed tags change', async () => {
    const before = await timestamp();
    expect((await timestamp()).version).toBe(before.version);
    server.signed.unsign('team/web', 'latest');
    const after = await timestamp();
    expect(after.version).toBe(before.version + 1);
    expect(after.snapshot).toBe(before.snapshot + 1);
  });

  it('serves every version with consistent-snapshot names, and JSON 404s for what it does not have', async () => {
    const ts = await timestamp();
    const snapshot = await request(server.url, `/tuf/team/${ts.snapshot}.snapshot.json`);
    expect(snapshot.status).toBe(200);
    expect(snapshot.headers['content-type']).toMatch(/^application\/json/);
    const targetsVersion = snapshot.json<{ signed: { meta: Record<string, { version: number }> } }>().signed.meta['targets.json']!.version;
    const targets = await request(server.url, `/tuf/team/${targetsVersion}.targets.json`);
    expect(Object.keys(targets.json<{ signed: { targets: object } }>().signed.targets).sort()).toEqual(['team/app:1.0', 'team:base']);
    const root = await request(server.url, '/tuf/team/1.root.json');
    expect(root.json<{ signed: { consistent_snapshot: boolean } }>().signed.consistent_snapshot).toBe(true);

    for (const path of [
      '/tuf/team/2.root.json',
      '/tuf/team/999.targets.json',
      '/tuf/team/snapshot.json',
      '/tuf/team/targets.json',
      '/tuf/team/x.json',
      '/tuf/team/0.root.json',
      '/tuf/nope/root.json',
      '/tuf/nope/timestamp.json',
    ]) {
      const r = await request(server.url, path);
      expect(r.status, path).toBe(404);
      expect(errorOf(r).code, path).toBe('NOT_FOUND');
    }
  });

  it('serves target files only for manifests of the namespace', async () => {
    const ok = await request(server.url, `/tuf/team/targets/team/${hex(images.app2!.digest)}.app:2.0`);
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toBe(images.app2!.body);
    for (const path of [
      `/tuf/team/targets/other/${hex(images.other!.digest)}.app:1.0`,
      `/tuf/other/targets/team/${hex(images.app2!.digest)}.app:2.0`,
      `/tuf/team/targets/team/${hex(images.web!.digest)}.app:1.0`,
      `/tuf/team/targets/team/${'0'.repeat(64)}.app:1.0`,
      `/tuf/team/targets/team/${hex(images.app2!.digest)}.app`,
      `/tuf/team/targets/team/${hex(images.app2!.digest).slice(1)}.app:2.0`,
      '/tuf/team/targets/',
    ]) {
      const r = await request(server.url, path);
      expect(r.status, path).toBe(path.endsWith('/') ? 400 : 404);
    }
  });
});

describe('the repository, asked over a socket', () => {
  // A listening server: these paths must reach it as written, and inject() would fold `..` first.
  let raw: TufServer;
  beforeAll(async () => {
    raw = await startTufServer();
    await pushImage(raw.url, 'team/app', '1.0', 'raw paths');
  });
  afterAll(() => raw?.stop());

  it('answers bad namespaces and path tricks with 400 or 404, never 5xx', async () => {
    const server = raw;
    const cases: [string, number][] = [
      ['/tuf/Team/root.json', 400],
      ['/tuf/team/../other/root.json', 400],
      ['/tuf/team/%2e%2e/root.json', 400],
      ['/tuf/team%2Fx/root.json', 400],
      ['/tuf/team/targets/team%2F..%2F/x', 400],
      ['/tuf//root.json', 400],
      ['/tuf/team//root.json', 400],
      [`/tuf/${'a'.repeat(300)}/root.json`, 400],
      ['/tuf/team/99999999999999999999.root.json', 404],
      ['/tuf/team/-1.root.json', 404],
      ['/tuf/team/targets/team/../../../etc/passwd', 400],
      ['/tuf/team/root.json/x', 404],
    ];
    for (const [path, status] of cases) {
      const r = await request(server.url, path);
      expect(r.status, path).toBe(status);
      expect(errorOf(r).message.length, path).toBeGreaterThan(0);
    }
    // fastify refuses a malformed URL before routing, in the registry's (OCI) error shape
    const malformed = await request(server.url, '/tuf/%zz/root.json');
    expect(malformed.status).toBe(400);
    expect(malformed.json()).toBeTypeOf('object');
    const post = await request(server.url, '/tuf/team/root.json', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(post.status).toBe(404);
    const head = await request(server.url, '/tuf/team/root.json', { method: 'HEAD' });
    expect(head.status).toBe(200);
  });
});

describe('the server as built', () => {
  it('publishes the tags meta.trust reports as signed (none, for an image without signatures)', async () => {
    const plain = await startInjected();
    try {
      await pushImage(plain.url, 'team/app', '1.0', 'unsigned');
      const c = await tufClient(plain, 'team');
      const updater = c.updater();
      await updater.refresh();
      expect(await updater.getTargetInfo('team/app:1.0')).toBeUndefined();
      const status = await request(plain.url, '/api/v1/namespaces/team/tuf');
      expect(status.json()).toMatchObject({ namespace: 'team', targets: 0 });
    } finally {
      await plain.stop();
    }
  });
});

describe('expiry', () => {
  it('re-signs a timestamp past half its lifetime, and a client sees its expiry error when nobody does', async () => {
    // A server whose clock is two days behind signs a timestamp (1 day) that is already expired.
    const late = await startTufServer({}, { listen: false });
    try {
      await pushImage(late.url, 'team/app', '1.0', 'late');
      late.signed.sign('team/app', '1.0');
      late.clock.offset = -2 * 86_400_000;
      const c = await tufClient(late, 'team');
      await expect(c.updater().refresh()).rejects.toThrow(ExpiredMetadataError);
      await expect(c.updater().refresh()).rejects.toThrow(/timestamp.json is expired/);

      // With the clock right, the same timestamp has less than half its life left: a new one.
      late.clock.offset = 0;
      const updater = c.updater();
      await updater.refresh();
      expect(await updater.getTargetInfo('team/app:1.0')).toBeDefined();
    } finally {
      await late.stop();
    }
  });

  it('re-signs in the background, with no client asking, and publishes newly signed tags', async () => {
    // The refresher's interval is a fake one the test moves, like the clock: no second waited.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    // a 4 s timestamp: the refresher runs every second
    const idle = await startTufServer({ tuf: { timestampExpirySeconds: 4 } }, { listen: false });
    try {
      const { digest } = await pushImage(idle.url, 'team/app', '1.0', 'idle');
      const first = await timestamp(idle);
      idle.clock.offset = 3_000;
      // One tick of the interval, then the refresh it started (its own database and signing work) until done.
      const tickUntil = async (done: () => Promise<boolean>) => {
        await vi.advanceTimersByTimeAsync(1_000);
        const deadline = Date.now() + 5_000;
        while (!(await done())) {
          if (Date.now() > deadline) throw new Error('the background refresh did not happen');
          await new Promise((r) => setTimeout(r, 5));
        }
      };
      const latest = () => idle.meta.tuf.latestVersions('team');
      expect((await latest()).timestamp).toBe(first.version);
      await tickUntil(async () => ((await latest()).timestamp ?? 0) > first.version);
      // a tag signed meanwhile reaches targets without a request
      const targetsBefore = (await latest()).targets ?? 0;
      idle.signed.sign('team/app', '1.0');
      await tickUntil(async () => ((await latest()).targets ?? 0) > targetsBefore);
      const version = (await idle.meta.tuf.latestVersions('team')).targets ?? 0;
      const targets = JSON.parse((await idle.meta.tuf.getVersion('team', 'targets', version))?.json ?? '{}') as {
        signed: { targets: Record<string, { hashes: { sha256: string } }> };
      };
      expect(targets.signed.targets['team/app:1.0']?.hashes.sha256).toBe(digest.slice('sha256:'.length));
    } finally {
      await idle.stop();
      vi.useRealTimers();
    }
  });

  it('keeps timestamp and snapshot fresh on their own schedules', async () => {
    const short = await startTufServer({ tuf: { timestampExpirySeconds: 20, snapshotExpirySeconds: 100 } }, { listen: false });
    try {
      await pushImage(short.url, 'team/app', '1.0', 'short');
      const first = await timestamp(short);
      short.clock.offset = 4_000;
      expect(await timestamp(short)).toEqual(first);
      short.clock.offset = 12_000;
      const second = await timestamp(short);
      expect(second).toEqual({ version: first.version + 1, snapshot: first.snapshot, expires: expect.any(String) as string });
      short.clock.offset = 60_000;
      const third = await timestamp(short);
      expect(third.snapshot).toBe(first.snapshot + 1);
      const c = await tufClient(short, 'team');
      await c.updater().refresh();
    } finally {
      await short.stop();
    }
  });
});

async function timestamp(s: { url: string } = server): Promise<{ version: number; snapshot: number; expires: string }> {
  const r = await request(s.url, '/tuf/team/timestamp.json');
  expect(r.status, r.body.toString()).toBe(200);
  const { signed } = r.json<{ signed: { version: number; expires: string; meta: Record<string, { version: number }> } }>();
  return { version: signed.version, snapshot: signed.meta['snapshot.json']!.version, expires: signed.expires };
}
