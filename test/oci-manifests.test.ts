/** Manifests: push, pull with content negotiation, validation and delete. */
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { descriptorOf, imageManifest, pushBlob, putManifest, request, sha256, types } from './helpers/http.ts';
import { startInjected } from './helpers/server.ts';

const server = await startInjected();
afterAll(() => server.stop());
const base = server.url;

const docker = {
  manifest: 'application/vnd.docker.distribution.manifest.v2+json',
  list: 'application/vnd.docker.distribution.manifest.list.v2+json',
  config: 'application/vnd.docker.container.image.v1+json',
  layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
};

describe('push and pull', () => {
  it('pushes by tag and pulls by tag and digest', async () => {
    const { body, digest } = await imageManifest(base, 'm/image');
    const put = await putManifest(base, 'm/image', 'v1', body);
    expect(put.status).toBe(201);
    expect(put.headers.location).toBe(`/v2/m/image/manifests/${digest}`);
    expect(put.headers['docker-content-digest']).toBe(digest);
    for (const ref of ['v1', digest]) {
      const get = await request(base, `/v2/m/image/manifests/${ref}`, { headers: { accept: types.manifest } });
      expect(get.status).toBe(200);
      expect(get.body.toString()).toBe(body);
      expect(get.headers['content-type']).toBe(types.manifest);
      expect(get.headers['docker-content-digest']).toBe(digest);
      const head = await request(base, `/v2/m/image/manifests/${ref}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    }
  });

  it('pushes by digest, with sha256 and sha512', async () => {
    const { body, digest } = await imageManifest(base, 'm/bydigest');
    expect((await putManifest(base, 'm/bydigest', digest, body)).status).toBe(201);
    const sha512 = `sha512:${createHash('sha512').update(body).digest('hex')}`;
    const r = await putManifest(base, 'm/bydigest', sha512, body);
    expect(r.status).toBe(201);
    expect(r.headers['docker-content-digest']).toBe(sha512);
    expect((await request(base, `/v2/m/bydigest/manifests/${sha512}`)).body.toString()).toBe(body);
  });

  it('negotiates on Accept when pulling by tag', async () => {
    const { body } = await imageManifest(base, 'm/accept');
    await putManifest(base, 'm/accept', 'latest', body);
    const refused = await request(base, '/v2/m/accept/manifests/latest', { headers: { accept: docker.manifest } });
    expect(refused.status).toBe(404);
    expect(refused.json()).toMatchObject({ errors: [{ code: 'MANIFEST_UNKNOWN' }] });
    expect((await request(base, '/v2/m/accept/manifests/latest', { headers: { accept: `${docker.manifest}, ${types.manifest};q=0.5` } })).status).toBe(200);
    expect((await request(base, '/v2/m/accept/manifests/latest', { headers: { accept: '*/*' } })).status).toBe(200);
  });

  it('stores Docker schema 2 manifests and manifest lists', async () => {
    const config = '{"architecture":"arm64","os":"linux"}';
    const configDigest = await pushBlob(base, 'm/docker', config);
    const layerDigest = await pushBlob(base, 'm/docker', 'docker layer');
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: docker.manifest,
      config: { mediaType: docker.config, digest: configDigest, size: config.length },
      layers: [{ mediaType: docker.layer, digest: layerDigest, size: 12 }],
    });
    expect((await putManifest(base, 'm/docker', 'arm64', manifest, docker.manifest)).status).toBe(201);
    const list = JSON.stringify({
      schemaVersion: 2,
      mediaType: docker.list,
      manifests: [descriptorOf(manifest, docker.manifest, { platform: { architecture: 'arm64', os: 'linux' } })],
    });
    expect((await putManifest(base, 'm/docker', 'multi', list, docker.list)).status).toBe(201);
    const get = await request(base, '/v2/m/docker/manifests/multi', { headers: { accept: docker.list } });
    expect(get.headers['content-type']).toBe(docker.list);
    expect(get.body.toString()).toBe(list);
  });

  it('stores an OCI index whose children are present', async () => {
    const a = await imageManifest(base, 'm/index', ['amd64 layer']);
    const b = await imageManifest(base, 'm/index', ['arm64 layer']);
    await putManifest(base, 'm/index', a.digest, a.body);
    await putManifest(base, 'm/index', b.digest, b.body);
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.index,
      manifests: [descriptorOf(a.body, types.manifest), descriptorOf(b.body, types.manifest)],
    });
    expect((await putManifest(base, 'm/index', 'multi', index, types.index)).status).toBe(201);
  });

  it('stores a Helm chart and a Wasm module like any artifact', async () => {
    const chartConfig = '{"name":"demo","version":"0.1.0"}';
    const cfg = await pushBlob(base, 'm/charts/demo', chartConfig);
    const chart = await pushBlob(base, 'm/charts/demo', 'fake chart tgz');
    const helm = JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: cfg, size: chartConfig.length },
      layers: [{ mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip', digest: chart, size: 14 }],
    });
    expect((await putManifest(base, 'm/charts/demo', '0.1.0', helm)).status).toBe(201);
    const wasmCfg = await pushBlob(base, 'm/wasm', '{}');
    const wasm = await pushBlob(base, 'm/wasm', '\0asm\x01\0\0\0');
    const module = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: 'application/vnd.wasm.config.v0+json', digest: wasmCfg, size: 2 },
      layers: [{ mediaType: 'application/wasm', digest: wasm, size: 8 }],
    });
    expect((await putManifest(base, 'm/wasm', 'v1', module)).status).toBe(201);
  });
});

describe('validation', () => {
  it('refuses a manifest whose blobs are missing', async () => {
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.config, digest: sha256('no config'), size: 9 },
      layers: [],
    });
    const r = await putManifest(base, 'm/missing', 'v1', body);
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', detail: { digest: sha256('no config') } }] });
    expect((await request(base, '/v2/m/missing/manifests/v1')).status).toBe(404);
  });

  it('refuses a manifest whose layer lives only in another repository', async () => {
    const { body } = await imageManifest(base, 'm/elsewhere');
    expect((await putManifest(base, 'm/here', 'v1', body)).json()).toMatchObject({ errors: [{ code: 'MANIFEST_BLOB_UNKNOWN' }] });
  });

  it('refuses an index whose child manifests are missing', async () => {
    const index = JSON.stringify({ schemaVersion: 2, mediaType: types.index, manifests: [{ mediaType: types.manifest, digest: sha256('absent'), size: 6 }] });
    const r = await putManifest(base, 'm/badindex', 'v1', index, types.index);
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ errors: [{ code: 'MANIFEST_BLOB_UNKNOWN' }] });
  });

  const invalid: [string, string, string?][] = [
    ['not JSON', '{"schemaVersion": 2,'],
    ['a JSON array', '[]'],
    ['schema version 1', '{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}'],
    ['no config', JSON.stringify({ schemaVersion: 2, mediaType: types.manifest, layers: [] })],
    [
      'a bad layer digest',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: types.manifest,
        config: { mediaType: types.config, digest: sha256('c'), size: 1 },
        layers: [{ mediaType: types.layer, digest: 'sha256:zzz', size: 1 }],
      }),
    ],
    [
      'a negative size',
      JSON.stringify({ schemaVersion: 2, mediaType: types.manifest, config: { mediaType: types.config, digest: sha256('c'), size: -1 }, layers: [] }),
    ],
    ['a mediaType that differs from Content-Type', JSON.stringify({ schemaVersion: 2, mediaType: types.index, manifests: [] }), types.manifest],
    ['an unknown media type', JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-unknown', layers: [] })],
    [
      'a Docker manifest without mediaType',
      JSON.stringify({ schemaVersion: 2, config: { mediaType: docker.config, digest: sha256('c'), size: 1 }, layers: [] }),
      docker.manifest,
    ],
    ['random bytes', '\u0000\u00ff\u00fe garbage'],
  ];
  for (const [what, body, contentType] of invalid) {
    it(`refuses ${what} with MANIFEST_INVALID`, async () => {
      const r = await putManifest(base, 'm/invalid', 'v1', body, contentType ?? types.manifest);
      expect(r.status).toBe(400);
      expect(r.json()).toMatchObject({ errors: [{ code: 'MANIFEST_INVALID' }] });
    });
  }

  it('refuses a manifest whose digest differs from the reference', async () => {
    const { body } = await imageManifest(base, 'm/wrongdigest');
    const r = await putManifest(base, 'm/wrongdigest', sha256('something else'), body);
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ errors: [{ code: 'DIGEST_INVALID' }] });
  });

  it('refuses a manifest over 4 MiB with 413, announced or streamed', async () => {
    const big = JSON.stringify({ schemaVersion: 2, mediaType: types.manifest, annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } });
    const r = await putManifest(base, 'm/big', 'v1', big);
    expect(r.status).toBe(413);
    expect(r.json()).toMatchObject({ errors: [{ code: 'MANIFEST_INVALID' }] });
    const streamed = await request(base, '/v2/m/big/manifests/v2', {
      method: 'PUT',
      body: big,
      headers: { 'content-type': types.manifest, 'transfer-encoding': 'chunked' },
    });
    expect(streamed.status).toBe(413);
    expect((await request(base, '/v2/m/big/manifests/v1')).status).toBe(404);
  });

  it('refuses invalid tags', async () => {
    const { body } = await imageManifest(base, 'm/tags');
    for (const tag of ['-leading-dash', '.dot', 'a'.repeat(129), 'has%20space']) {
      const r = await putManifest(base, 'm/tags', tag, body);
      expect(r.status, tag).toBe(400);
    }
  });
});

describe('delete', () => {
  it('deletes a tag, leaving the manifest', async () => {
    const { body, digest } = await imageManifest(base, 'm/deltag');
    await putManifest(base, 'm/deltag', 'a', body);
    await putManifest(base, 'm/deltag', 'b', body);
    expect((await request(base, '/v2/m/deltag/manifests/a', { method: 'DELETE' })).status).toBe(202);
    expect((await request(base, '/v2/m/deltag/manifests/a')).status).toBe(404);
    expect((await request(base, '/v2/m/deltag/manifests/b')).status).toBe(200);
    expect((await request(base, `/v2/m/deltag/manifests/${digest}`)).status).toBe(200);
    expect((await request(base, '/v2/m/deltag/manifests/a', { method: 'DELETE' })).status).toBe(404);
  });

  it('deletes a manifest by digest, with its tags', async () => {
    const { body, digest } = await imageManifest(base, 'm/deldigest');
    await putManifest(base, 'm/deldigest', 'v1', body);
    expect((await request(base, `/v2/m/deldigest/manifests/${digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await request(base, `/v2/m/deldigest/manifests/${digest}`)).status).toBe(404);
    const tag = await request(base, '/v2/m/deldigest/manifests/v1');
    expect(tag.status).toBe(404);
    expect(tag.json()).toMatchObject({ errors: [{ code: 'MANIFEST_UNKNOWN' }] });
  });
});

describe('references that are no tag', () => {
  it('answers 404 MANIFEST_UNKNOWN to GET, HEAD and DELETE, and 400 TAG_INVALID to PUT', async () => {
    const { body } = await imageManifest(base, 'm/invalid-ref');
    for (const ref of ['.INVALID_MANIFEST_NAME', '-x', 'a'.repeat(129)]) {
      for (const method of ['GET', 'HEAD', 'DELETE']) {
        const r = await request(base, `/v2/m/invalid-ref/manifests/${ref}`, { method });
        expect(r.status, `${method} ${ref.slice(0, 20)}`).toBe(404);
        if (method !== 'HEAD') expect(r.json<{ errors: { code: string }[] }>().errors[0]?.code).toBe('MANIFEST_UNKNOWN');
      }
      const put = await putManifest(base, 'm/invalid-ref', ref, body);
      expect(put.status).toBe(400);
      expect(put.json<{ errors: { code: string }[] }>().errors[0]?.code).toBe('TAG_INVALID');
    }
  });
});
