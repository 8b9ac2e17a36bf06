/**
 * Trust end to end over HTTP: signatures, attestations and SBOMs pushed as referrers or under
 * cosign's legacy tags get verdicts from the trust the namespace configured (through /api/v1 or
 * the config file), are judged again when it changes, and show in the artifact API.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { basic, descriptorOf, imageManifest, putManifest, request, types } from './helpers/http.ts';
import { startInjected, tempDir } from './helpers/server.ts';
import { newKey, pushAttestation, pushCosignSignature, pushSbom, putTrust, settledArtifact, type ReferrerView } from './helpers/signing.ts';

async function pushImage(base: string, repo: string, tag: string, layer = `layer of ${repo}:${tag}`) {
  const { body } = await imageManifest(base, repo, [layer]);
  expect((await putManifest(base, repo, tag, body)).status).toBe(201);
  return descriptorOf(body, types.manifest);
}

const byKind = (referrers: ReferrerView[], kind: string) => referrers.filter((r) => r.kind === kind);

describe('trust over the API', () => {
  let server: AccountsServer;
  const release = newKey();
  const stranger = newKey();

  beforeAll(async () => {
    server = await startWithAccounts({}, {}, { listen: false });
  });
  afterAll(async () => server.stop());

  it('judges a cosign signature against the namespace trust, and again when the trust changes', async () => {
    const image = await pushImage(server.url, 'team/app', '1.0');
    const sig = await pushCosignSignature(server.url, 'team/app', image, release);
    expect(sig.reply.headers['oci-subject']).toBe(image.digest);

    let view = await settledArtifact(server.url, 'team/app', image.digest);
    expect(view.tags).toEqual(['1.0']);
    expect(view.referrers).toHaveLength(1);
    expect(view.referrers[0]).toMatchObject({
      digest: sig.digest,
      kind: 'signature',
      format: 'cosign',
      via: 'referrer',
      status: 'done',
      verified: false,
      code: 'no_trust_configured',
    });
    expect(view.referrers[0]?.reason).toMatch(/key|trust/i);

    const put = await putTrust(server.url, 'team', { sigstore: { publicKeys: [{ name: 'release', pem: release.pem }] } });
    expect(put.status).toBe(200);
    expect(put.json<{ source: string; reevaluating: number; updatedAt: string }>()).toMatchObject({
      source: 'api',
      reevaluating: 1,
      updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    view = await settledArtifact(server.url, 'team/app', image.digest);
    expect(view.referrers[0]).toMatchObject({ verified: true, signer: 'key:release', code: 'verified', reason: 'signed with the configured key release' });
    expect(view.summary).toMatchObject({ signatures: 1, verifiedSignatures: 1 });

    // signed by someone the namespace does not trust
    const other = await pushImage(server.url, 'team/app', '2.0');
    await pushCosignSignature(server.url, 'team/app', other, stranger);
    const otherView = await settledArtifact(server.url, 'team/app', other.digest);
    // a key the namespace does not hold: Custody cannot tell that from a tampered payload
    expect(otherView.referrers[0]).toMatchObject({ kind: 'signature', verified: false, code: 'bad_signature' });
    expect(otherView.summary.verifiedSignatures).toBe(0);

    // the trust is taken away: judged again, no longer verified
    const del = await request(server.url, '/api/v1/namespaces/team/trust', { method: 'DELETE' });
    expect(del.json<{ source: string; updatedAt: string | null }>()).toMatchObject({ source: 'none', updatedAt: null });
    view = await settledArtifact(server.url, 'team/app', image.digest);
    expect(view.referrers[0]).toMatchObject({ verified: false });
  });

  it("links cosign's legacy .sig tag to its subject, and forgets it when the tag goes", async () => {
    expect((await putTrust(server.url, 'legacy', { sigstore: { publicKeys: [{ name: 'release', pem: release.pem }] } })).status).toBe(200);
    const image = await pushImage(server.url, 'legacy/app', 'v1');
    const sig = await pushCosignSignature(server.url, 'legacy/app', image, release, { legacy: true });
    const view = await settledArtifact(server.url, 'legacy/app', image.digest);
    expect(view.referrers).toEqual([
      expect.objectContaining({
        digest: sig.digest,
        kind: 'signature',
        via: `tag:${image.digest.replace(':', '-')}.sig`,
        verified: true,
        signer: 'key:release',
      }),
    ]);
    const gone = await request(server.url, `/v2/legacy/app/manifests/${image.digest.replace(':', '-')}.sig`, { method: 'DELETE' });
    expect(gone.status).toBe(202);
    expect((await settledArtifact(server.url, 'legacy/app', image.digest)).referrers).toEqual([]);
  });

  it("links cosign's legacy .att and .sbom tags as attestation and SBOM", async () => {
    expect((await putTrust(server.url, 'legacy2', { sigstore: { publicKeys: [{ name: 'ci', pem: release.pem }] } })).status).toBe(200);
    const image = await pushImage(server.url, 'legacy2/app', 'v1');
    const att = await pushAttestation(
      server.url,
      'legacy2/app',
      image,
      release,
      'https://slsa.dev/provenance/v0.2',
      { builder: { id: 'https://ci.example/builder' }, buildType: 'https://ci.example/type' },
      { legacy: true },
    );
    const sbom = await pushSbom(server.url, 'legacy2/app', image, [{ name: 'openssl', version: '3.0.15', purl: 'pkg:deb/debian/openssl@3.0.15' }], {
      legacy: true,
    });
    const view = await settledArtifact(server.url, 'legacy2/app', image.digest);
    const hex = image.digest.replace(':', '-');
    expect(byKind(view.referrers, 'attestation')).toEqual([
      expect.objectContaining({
        digest: att,
        via: `tag:${hex}.att`,
        verified: true,
        signer: 'key:ci',
        details: expect.objectContaining({ provenance: expect.objectContaining({ builderId: 'https://ci.example/builder' }) }),
      }),
    ]);
    expect(byKind(view.referrers, 'sbom')).toEqual([expect.objectContaining({ digest: sbom, via: `tag:${hex}.sbom`, format: 'cyclonedx' })]);
    const components = await request(server.url, `/api/v1/repositories/legacy2/app/artifacts/${image.digest}/components`);
    expect(components.json<{ sboms: { components: { name: string }[] }[] }>().sboms[0]?.components.map((c) => c.name)).toEqual(['openssl']);
  });

  it('a signature over another image does not count for this one', async () => {
    expect((await putTrust(server.url, 'swap', { sigstore: { publicKeys: [{ name: 'release', pem: release.pem }] } })).status).toBe(200);
    const a = await pushImage(server.url, 'swap/app', 'a');
    const b = await pushImage(server.url, 'swap/app', 'b');
    // a valid signature of b's digest, attached to a
    await pushCosignSignature(server.url, 'swap/app', a, release, {
      payload: JSON.stringify({
        critical: { identity: { 'docker-reference': 'x' }, image: { 'docker-manifest-digest': b.digest }, type: 'cosign container image signature' },
        optional: null,
      }),
    });
    const view = await settledArtifact(server.url, 'swap/app', a.digest);
    expect(view.referrers[0]).toMatchObject({ verified: false, code: 'subject_mismatch' });
    expect(view.referrers[0]?.reason).toContain(b.digest);
  });

  it('parses SBOMs into components and shows attestations with their provenance', async () => {
    expect((await putTrust(server.url, 'built', { sigstore: { publicKeys: [{ name: 'ci', pem: release.pem }] } })).status).toBe(200);
    const image = await pushImage(server.url, 'built/svc', 'v1');
    const sbom = await pushSbom(server.url, 'built/svc', image, [
      { name: 'lodash', version: '4.17.21', purl: 'pkg:npm/lodash@4.17.21', license: 'MIT' },
      { name: 'zlib', version: '1.3.1', purl: 'pkg:deb/debian/zlib@1.3.1' },
    ]);
    const provenance = {
      buildDefinition: {
        buildType: 'https://actions.github.io/buildtypes/workflow/v1',
        externalParameters: { workflow: { repository: 'https://github.com/acme/svc', ref: 'refs/heads/main', path: '.github/workflows/build.yml' } },
      },
      runDetails: { builder: { id: 'https://github.com/actions/runner/github-hosted' } },
    };
    const att = await pushAttestation(server.url, 'built/svc', image, release, 'https://slsa.dev/provenance/v1', provenance);

    const view = await settledArtifact(server.url, 'built/svc', image.digest);
    expect(byKind(view.referrers, 'sbom')).toEqual([
      expect.objectContaining({ digest: sbom, format: 'cyclonedx', verified: null, code: 'sbom_read', reason: 'cyclonedx 1.6 SBOM with 2 components' }),
    ]);
    const attestation = byKind(view.referrers, 'attestation')[0];
    expect(attestation).toMatchObject({ digest: att, format: 'dsse', verified: true, signer: 'key:ci', code: 'verified' });
    expect(attestation?.details).toMatchObject({
      predicateType: 'https://slsa.dev/provenance/v1',
      provenance: { builderId: 'https://github.com/actions/runner/github-hosted', sourceRepository: expect.stringContaining('github.com/acme/svc') },
    });

    // an SBOM can also arrive as a signed in-toto attestation
    const bom = {
      bomFormat: 'CycloneDX',
      specVersion: '1.5',
      version: 1,
      components: [{ type: 'library', name: 'express', version: '4.21.2', purl: 'pkg:npm/express@4.21.2', licenses: [{ expression: 'MIT' }] }],
    };
    const sbomAttestation = await pushAttestation(server.url, 'built/svc', image, release, 'https://cyclonedx.org/bom', bom);
    const withAttestation = await settledArtifact(server.url, 'built/svc', image.digest);
    expect(withAttestation.referrers.find((r) => r.digest === sbomAttestation)).toMatchObject({
      kind: 'attestation',
      verified: true,
      details: expect.objectContaining({ attestation: 'sbom', sbom: { format: 'cyclonedx', specVersion: '1.5', components: 1 } }),
    });

    const components = await request(server.url, `/api/v1/repositories/built/svc/artifacts/${image.digest}/components`);
    expect(components.status).toBe(200);
    const all = components.json<{
      sboms: { digest: string; format: string; components: { name: string; version?: string; purl?: string; licenses: string[] }[] }[];
    }>().sboms;
    expect(all.find((s) => s.digest === sbomAttestation)?.components).toEqual([expect.objectContaining({ name: 'express', licenses: ['MIT'] })]);
    const sboms = all.filter((s) => s.digest === sbom);
    expect(sboms).toHaveLength(1);
    expect(sboms[0]?.components).toEqual([
      expect.objectContaining({ name: 'lodash', version: '4.17.21', purl: 'pkg:npm/lodash@4.17.21', licenses: ['MIT'] }),
      expect.objectContaining({ name: 'zlib', version: '1.3.1', purl: 'pkg:deb/debian/zlib@1.3.1', licenses: [] }),
    ]);
  });

  it('refuses bad trust documents with a clear 400, and non-admins with 403', async () => {
    const bad = [
      [{ sigstore: { publicKeys: [{ name: 'k', pem: 'not a key' }] } }, /PEM public key/],
      [{ sigstore: { identities: [{ identity: 'a@example.com' }] } }, /issuer/],
      [{ sigstore: { identities: [{ identityPattern: '(', issuer: 'https://x' }] } }, /regular expression/],
      [{ sigstore: { trustedRoot: { hello: 1 } } }, /trusted_root/],
      [{ notary: { trustStores: [{ type: 'ca', name: 'acme', certificates: ['nope'] }] } }, /certificate/],
      [{ notary: { trustPolicy: { version: '9' } } }, /trust policy/],
      [{ surprise: true }, /surprise|unrecognized/i],
    ] as const;
    for (const [doc, message] of bad) {
      const r = await putTrust(server.url, 'team', doc);
      expect(r.status, JSON.stringify(doc)).toBe(400);
      expect(r.json<{ error: { message: string } }>().error.message).toMatch(message);
    }
    const notJson = await request(server.url, '/api/v1/namespaces/team/trust', {
      method: 'PUT',
      body: '{"sigstore":',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.status).toBe(400);
    await createUser(server.accounts, 'dev', 'dev-password', { team: 'writer' });
    const refused = await putTrust(server.url, 'team', {}, basic('dev', 'dev-password'));
    expect(refused.status).toBe(403);
    expect((await request(server.url, '/api/v1/namespaces/team/trust', { headers: { authorization: basic('dev', 'dev-password') } })).status).toBe(403);
    // but a writer may read artifacts
    expect(
      (
        await request(server.url, `/api/v1/repositories/team/app/artifacts/sha256:${'0'.repeat(64)}`, {
          headers: { authorization: basic('dev', 'dev-password') },
        })
      ).status,
    ).toBe(404);
    expect((await request(server.url, `/api/v1/repositories/team/app/artifacts/sha256:${'0'.repeat(64)}`, { auth: false })).status).toBe(401);
  });

  it('answers 404 for unknown artifacts and 400 for bad names or digests', async () => {
    expect((await request(server.url, `/api/v1/repositories/team/app/artifacts/sha256:${'0'.repeat(64)}`)).status).toBe(404);
    expect((await request(server.url, '/api/v1/repositories/team/app/artifacts/sha256:nothex')).status).toBe(400);
    expect((await request(server.url, `/api/v1/repositories/Team/..%2Fapp/artifacts/sha256:${'0'.repeat(64)}`)).status).toBe(400);
    expect((await request(server.url, '/api/v1/repositories/team/app')).status).toBe(404);
  });
});

describe('trust from the config file', () => {
  it('verifies with keys the file names, and does nothing when trust is disabled', async () => {
    const dir = await tempDir();
    const key = newKey();
    await writeFile(path.join(dir, 'release.pem'), key.pem);
    const server = await startInjected({
      config: { trust: { namespaces: { shop: { sigstore: { publicKeys: [{ name: 'release', pem: path.join(dir, 'release.pem') }] } } } } },
    });
    try {
      const image = await pushImage(server.url, 'shop/web', '1');
      await pushCosignSignature(server.url, 'shop/web', image, key);
      const view = await settledArtifact(server.url, 'shop/web', image.digest);
      expect(view.referrers[0]).toMatchObject({ verified: true, signer: 'key:release' });
      const trust = await request(server.url, '/api/v1/namespaces/shop/trust');
      expect(trust.json<{ source: string }>().source).toBe('config');
    } finally {
      await server.stop();
    }

    const off = await startInjected({ config: { trust: { enabled: false } } });
    try {
      const image = await pushImage(off.url, 'shop/web', '1');
      await pushCosignSignature(off.url, 'shop/web', image, key);
      const view = await settledArtifact(off.url, 'shop/web', image.digest);
      expect(view.referrers[0]).toMatchObject({ kind: 'other', status: 'none' });
    } finally {
      await off.stop();
    }
  });

  it('refuses to start with a trust file it cannot read', async () => {
    await expect(
      startInjected({ config: { trust: { namespaces: { shop: { sigstore: { publicKeys: [{ name: 'k', pem: '/nonexistent/key.pem' }] } } } } } }),
    ).rejects.toThrow(/trust\.namespaces\.shop.*cannot read \/nonexistent\/key\.pem/);
    const dir = await tempDir();
    await writeFile(path.join(dir, 'trusted_root.json'), '{"mediaType": ');
    await expect(startInjected({ config: { trust: { sigstoreTrustedRoot: path.join(dir, 'trusted_root.json') } } })).rejects.toThrow(
      /trust\.sigstoreTrustedRoot: .*trusted_root\.json is not JSON/,
    );
    await writeFile(path.join(dir, 'bad.pem'), 'not a key');
    await expect(
      startInjected({ config: { trust: { namespaces: { shop: { sigstore: { publicKeys: [{ name: 'k', pem: path.join(dir, 'bad.pem') }] } } } } } }),
    ).rejects.toThrow(/trust\.namespaces\.shop is not valid: sigstore\.publicKeys\.0\.pem: not a PEM public key/);
  });
});
