/** Discovery: /v2/, tag lists and the catalog with paging, and the referrers API. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descriptorOf, imageManifest, pushBlob, putManifest, request, sha256, types } from './helpers/http.ts';
import { startInjected } from './helpers/server.ts';

const server = await startInjected();
afterAll(() => server.stop());
const base = server.url;

describe('api base and health', () => {
  it('answers /v2/ with the API version header', async () => {
    for (const path of ['/v2/', '/v2']) {
      const r = await request(base, path);
      expect(r.status).toBe(200);
      expect(r.headers['docker-distribution-api-version']).toBe('registry/2.0');
      expect(r.headers['x-request-id']).toBeTruthy();
    }
  });

  it('answers /healthz and /readyz', async () => {
    expect((await request(base, '/healthz')).status).toBe(200);
    expect((await request(base, '/readyz')).json()).toEqual({ status: 'ready' });
  });

  it('answers unknown paths and methods with OCI errors', async () => {
    const unknown = await request(base, '/v2/x/y/nothing-here');
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toMatchObject({ errors: [{ code: 'NAME_UNKNOWN' }] });
    const method = await request(base, '/v2/x/tags/list', { method: 'DELETE' });
    expect(method.status).toBe(405);
    expect(method.json()).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
  });
});

describe('tags and catalog', () => {
  beforeAll(async () => {
    const { body } = await imageManifest(base, 'd/tags');
    for (const tag of ['v3', 'v1', 'latest', 'v2', 'V0']) await putManifest(base, 'd/tags', tag, body);
    for (const repo of ['d/z', 'd/a']) await imageManifest(base, repo);
  });

  it('lists tags in lexical order', async () => {
    const r = await request(base, '/v2/d/tags/tags/list');
    expect(r.json()).toEqual({ name: 'd/tags', tags: ['V0', 'latest', 'v1', 'v2', 'v3'] });
    expect(r.headers.link).toBeUndefined();
  });

  it('pages tags with n, last and Link', async () => {
    const first = await request(base, '/v2/d/tags/tags/list?n=2');
    expect(first.json()).toEqual({ name: 'd/tags', tags: ['V0', 'latest'] });
    expect(first.headers.link).toBe('</v2/d/tags/tags/list?n=2&last=latest>; rel="next"');
    const second = await request(base, '/v2/d/tags/tags/list?n=2&last=latest');
    expect(second.json<{ tags: string[] }>().tags).toEqual(['v1', 'v2']);
    const third = await request(base, '/v2/d/tags/tags/list?n=2&last=v2');
    expect(third.json<{ tags: string[] }>().tags).toEqual(['v3']);
    expect(third.headers.link).toBeUndefined();
    expect((await request(base, '/v2/d/tags/tags/list?n=0')).json<{ tags: string[] }>().tags).toEqual([]);
    expect((await request(base, '/v2/d/tags/tags/list?n=-1')).json()).toMatchObject({ errors: [{ code: 'PAGINATION_NUMBER_INVALID' }] });
  });

  it('answers NAME_UNKNOWN for the tags of an unknown repository', async () => {
    const r = await request(base, '/v2/d/nobody/tags/list');
    expect(r.status).toBe(404);
    expect(r.json()).toMatchObject({ errors: [{ code: 'NAME_UNKNOWN' }] });
  });

  it('pages the catalog', async () => {
    const all = (await request(base, '/v2/_catalog')).json<{ repositories: string[] }>().repositories;
    expect(all).toEqual([...all].sort());
    expect(all).toEqual(expect.arrayContaining(['d/a', 'd/tags', 'd/z']));
    const page = await request(base, '/v2/_catalog?n=1&last=d/a');
    expect(page.json()).toEqual({ repositories: ['d/tags'] });
    expect(page.headers.link).toBe('</v2/_catalog?n=1&last=d%2Ftags>; rel="next"');
  });
});

describe('referrers', () => {
  let subject: { body: string; digest: string };
  const sigType = 'application/vnd.dev.cosign.artifact.sig.v1+json';
  const sbomType = 'application/vnd.cyclonedx+json';

  async function pushReferrer(
    artifactType: string,
    annotations?: Record<string, string>,
  ): Promise<{ body: string; digest: string; put: Awaited<ReturnType<typeof request>> }> {
    const empty = await pushBlob(base, 'd/refs', '{}');
    const layer = await pushBlob(base, 'd/refs', `payload for ${artifactType} ${Math.random()}`);
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      artifactType,
      config: { mediaType: types.empty, digest: empty, size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: layer, size: 1 }],
      subject: descriptorOf(subject.body, types.manifest),
      ...(annotations && { annotations }),
    });
    const put = await putManifest(base, 'd/refs', sha256(body), body);
    return { body, digest: sha256(body), put };
  }

  beforeAll(async () => {
    subject = await imageManifest(base, 'd/refs');
    await putManifest(base, 'd/refs', 'v1', subject.body);
  });

  it('answers an empty index for a subject without referrers', async () => {
    const r = await request(base, `/v2/d/refs/referrers/${sha256('lonely')}`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(types.index);
    expect(r.json()).toEqual({ schemaVersion: 2, mediaType: types.index, manifests: [] });
  });

  it('sets OCI-Subject on push and lists referrers with artifactType and annotations', async () => {
    const sig = await pushReferrer(sigType, { 'org.opencontainers.image.created': '2026-11-24T00:00:00Z' });
    expect(sig.put.status).toBe(201);
    expect(sig.put.headers['oci-subject']).toBe(subject.digest);
    const sbom = await pushReferrer(sbomType);
    const r = await request(base, `/v2/d/refs/referrers/${subject.digest}`);
    const manifests = r.json<{ manifests: Record<string, unknown>[] }>().manifests;
    expect(manifests).toEqual(
      expect.arrayContaining([
        {
          mediaType: types.manifest,
          digest: sig.digest,
          size: Buffer.byteLength(sig.body),
          artifactType: sigType,
          annotations: { 'org.opencontainers.image.created': '2026-11-24T00:00:00Z' },
        },
        { mediaType: types.manifest, digest: sbom.digest, size: Buffer.byteLength(sbom.body), artifactType: sbomType },
      ]),
    );
    expect(r.headers['oci-filters-applied']).toBeUndefined();
  });

  it('filters by artifactType and says so', async () => {
    const r = await request(base, `/v2/d/refs/referrers/${subject.digest}?artifactType=${encodeURIComponent(sbomType)}`);
    expect(r.headers['oci-filters-applied']).toBe('artifactType');
    const manifests = r.json<{ manifests: { artifactType: string }[] }>().manifests;
    expect(manifests.length).toBeGreaterThan(0);
    expect(manifests.every((m) => m.artifactType === sbomType)).toBe(true);
  });

  it('accepts a referrer whose subject is not in the registry', async () => {
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.empty, digest: await pushBlob(base, 'd/refs', '{}'), size: 2 },
      layers: [],
      subject: { mediaType: types.manifest, digest: sha256('not pushed'), size: 10 },
    });
    const put = await putManifest(base, 'd/refs', sha256(body), body);
    expect(put.status).toBe(201);
    expect(put.headers['oci-subject']).toBe(sha256('not pushed'));
    const list = (await request(base, `/v2/d/refs/referrers/${sha256('not pushed')}`)).json<{ manifests: { artifactType: string }[] }>();
    expect(list.manifests).toEqual([{ mediaType: types.manifest, digest: sha256(body), size: Buffer.byteLength(body), artifactType: types.empty }]);
  });

  it('merges the fallback tag index of clients without referrers support', async () => {
    const legacy = await imageManifest(base, 'd/refs', ['legacy signature']);
    await putManifest(base, 'd/refs', legacy.digest, legacy.body);
    const fallback = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.index,
      manifests: [descriptorOf(legacy.body, types.manifest, { artifactType: 'application/x-legacy' })],
    });
    const tag = subject.digest.replace(':', '-');
    expect((await putManifest(base, 'd/refs', tag, fallback, types.index)).status).toBe(201);
    const r = await request(base, `/v2/d/refs/referrers/${subject.digest}`);
    const digests = r.json<{ manifests: { digest: string }[] }>().manifests.map((m) => m.digest);
    expect(digests).toContain(legacy.digest);
    expect(new Set(digests).size).toBe(digests.length);
    const filtered = await request(base, `/v2/d/refs/referrers/${subject.digest}?artifactType=application/x-legacy`);
    expect(filtered.json<{ manifests: { digest: string }[] }>().manifests.map((m) => m.digest)).toEqual([legacy.digest]);
  });

  it('refuses an invalid subject digest', async () => {
    expect((await request(base, '/v2/d/refs/referrers/sha256:nope')).status).toBe(400);
  });
});
