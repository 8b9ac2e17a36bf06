/**
 * Hostile input: path tricks in names, odd methods and headers, random bytes. Each gets a 4xx
 * in the OCI error form, never a 5xx, and the registry keeps serving what it stored.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageManifest, putManifest, request, sha256 } from './helpers/http.ts';
import { startInProcess, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let base: string;
let stored: { body: string; digest: string };
beforeAll(async () => {
  server = await startInProcess();
  base = server.url;
  stored = await imageManifest(base, 'safe/image');
  await putManifest(base, 'safe/image', 'v1', stored.body);
});
afterAll(() => server.stop());

function expectOciError(r: { status: number; json(): unknown }, status: number, code?: string): void {
  expect(r.status).toBe(status);
  expect(r.json()).toMatchObject({ errors: [code ? { code } : { code: expect.any(String) }] });
}

describe('repository names', () => {
  const bad = [
    'safe/../image',
    '../safe/image',
    'safe/./image',
    'safe%2F..%2Fimage',
    '..%2fsafe',
    'safe%2F%2Fimage',
    'safe%2Fimage%2F',
    'Safe%2FImage',
    'Safe/Image',
    'safe//image',
    'safe/image/',
    '-safe/image',
    'safe/image-',
    `${'a'.repeat(256)}`,
    'safe/im age',
    'safe/%2e%2e/image',
    'safe/image%00',
  ];
  for (const name of bad) {
    it(`refuses ${JSON.stringify(name.slice(0, 40))} with NAME_INVALID`, async () => {
      for (const path of [`/v2/${name}/tags/list`, `/v2/${name}/manifests/v1`, `/v2/${name}/blobs/${stored.digest}`]) {
        const r = await request(base, path.replace(/ /g, '%20'));
        expectOciError(r, 400, 'NAME_INVALID');
      }
      const push = await request(base, `/v2/${name.replace(/ /g, '%20')}/blobs/uploads/`, { method: 'POST' });
      expectOciError(push, 400, 'NAME_INVALID');
    });
  }

  it('reads an escaped slash in a name as a slash, as the reference registry does', async () => {
    for (const name of ['safe%2Fimage', 'safe%2fimage']) {
      const r = await request(base, `/v2/${name}/manifests/v1`);
      expect(r.status, name).toBe(200);
      expect(r.headers['docker-content-digest']).toBe(stored.digest);
      const push = await request(base, `/v2/${name}/blobs/uploads/`, { method: 'POST' });
      expect(push.status).toBe(202);
      expect(push.headers.location).toMatch(/^\/v2\/safe\/image\/blobs\/uploads\//);
    }
  });

  it('accepts nested names at the length limit', async () => {
    const name = `${'n'.repeat(100)}/${'e'.repeat(100)}/${'s'.repeat(53)}`;
    expect(name.length).toBe(255);
    const { body } = await imageManifest(base, name);
    expect((await putManifest(base, name, 'v1', body)).status).toBe(201);
  });

  it('refuses a mount from an invalid source name', async () => {
    const r = await request(base, `/v2/safe/image/blobs/uploads/?mount=${stored.digest}&from=../etc`, { method: 'POST' });
    expectOciError(r, 400, 'NAME_INVALID');
  });
});

describe('manifests', () => {
  it('refuses a manifest that nests too deeply, without holding the server', async () => {
    const deep = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"y"},"junk":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`;
    const r = await putManifest(base, 'safe/image', 'deep', deep);
    expectOciError(r, 400, 'MANIFEST_INVALID');
    expect(r.json<{ errors: { message: string }[] }>().errors[0]?.message).toMatch(/nests too deeply/);
    expect((await request(base, '/v2/safe/image/manifests/v1')).status).toBe(200);
  });
});

describe('references and uploads', () => {
  it('refuses references with an escaped slash', async () => {
    expectOciError(await request(base, '/v2/safe/image/manifests/v1%2F..%2Fx'), 400, 'NAME_INVALID');
  });

  it('answers BLOB_UPLOAD_UNKNOWN for made-up upload ids', async () => {
    for (const id of ['nope', '00000000-0000-0000-0000-000000000000', '..', 'x'.repeat(500)]) {
      expectOciError(await request(base, `/v2/safe/image/blobs/uploads/${id}`, { method: 'PATCH', body: 'x' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    }
  });

  it('refuses a malformed Content-Range', async () => {
    const start = await request(base, '/v2/safe/image/blobs/uploads/', { method: 'POST' });
    const r = await request(base, start.headers.location as string, { method: 'PATCH', body: 'abc', headers: { 'content-range': 'bytes=banana' } });
    expectOciError(r, 416, 'RANGE_INVALID');
  });
});

describe('random input', () => {
  it('never answers 5xx and keeps what is stored', async () => {
    const paths = [
      '/v2/safe/image/manifests/v1',
      '/v2/safe/image/blobs/uploads/',
      `/v2/safe/image/blobs/${stored.digest}`,
      '/v2/safe/image/tags/list',
      '/v2/_catalog',
      `/v2/safe/image/referrers/${stored.digest}`,
    ];
    const methods = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'];
    const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
    const noise = () => randomBytes(8).toString('base64url');
    for (let i = 0; i < 300; i++) {
      let path = pick(paths);
      if (Math.random() < 0.3) path = path.replace('safe/image', noise().toLowerCase());
      if (Math.random() < 0.3) path += `?digest=${pick([noise(), sha256(noise()), 'sha512:' + noise()])}&n=${pick(['-1', 'x', '5'])}`;
      const method = pick(methods);
      // Deletes and manifest pushes would legitimately change what is stored; keep them off it.
      if ((method === 'DELETE' || method === 'PUT') && path.includes('safe/image')) continue;
      const r = await request(base, path, {
        method,
        body: ['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(method) ? undefined : randomBytes(Math.floor(Math.random() * 4096)),
        headers: {
          'content-type': pick(['application/vnd.oci.image.manifest.v1+json', 'application/json', 'application/octet-stream', 'text/plain']),
          ...(Math.random() < 0.3 ? { 'content-range': pick(['0-10', '5-1', 'x']) } : {}),
        },
      });
      expect(r.status, `${method} ${path}`).toBeLessThan(500);
      if (r.status >= 400 && method !== 'HEAD') expect(() => r.json(), `${method} ${path}`).not.toThrow();
    }
    const still = await request(base, '/v2/safe/image/manifests/v1');
    expect(still.status).toBe(200);
    expect(still.body.toString()).toBe(stored.body);
  });

  it('answers a malformed URL with a 400', async () => {
    const r = await request(base, '/v2/safe/image/manifests/%E0%A4%A');
    expect(r.status).toBe(400);
  });
});
