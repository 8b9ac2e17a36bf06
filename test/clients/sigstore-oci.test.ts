/**
 * @sigstore/oci (the library behind npm's and sigstore-js's OCI attachments) attaches a Sigstore
 * bundle attestation to an image through Custody's token flow; the referrers API and the artifact
 * API show it, verified, with its provenance.
 */
import { attachArtifactToImage } from '@sigstore/oci';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descriptorOf, imageManifest, putManifest, request, testAdmin, types } from '../helpers/http.ts';
import { startInProcess, type InProcessServer } from '../helpers/server.ts';
import { putTrust, settledArtifact } from '../helpers/signing.ts';
import { bundleBytes, dsseBundle, ecKeys, keySigner, spkiPem } from '../trust/sigstore-fixtures.ts';

const bundleType = 'application/vnd.dev.sigstore.bundle.v0.3+json';

describe('@sigstore/oci attaches an attestation', () => {
  let server: InProcessServer;
  beforeAll(async () => {
    server = await startInProcess();
  });
  afterAll(async () => server.stop());

  it('shows up in the referrers API and, verified, in the artifact API', async () => {
    const keys = ecKeys();
    const trust = { sigstore: { publicKeys: [{ name: 'ci', pem: spkiPem(keys.publicKey) }] } };
    expect((await putTrust(server.url, 'attested', trust)).status).toBe(200);
    const { body } = await imageManifest(server.url, 'attested/app', ['attested layer']);
    expect((await putManifest(server.url, 'attested/app', 'v1', body)).status).toBe(201);
    const image = descriptorOf(body, types.manifest);

    const statement = {
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: `${server.host}/attested/app`, digest: { sha256: image.digest.split(':')[1] } }],
      predicateType: 'https://slsa.dev/provenance/v1',
      predicate: {
        buildDefinition: { buildType: 'https://example.com/build/v1', externalParameters: { source: 'git+https://github.com/acme/app@refs/heads/main' } },
        runDetails: { builder: { id: 'https://ci.example.com/builder' } },
      },
    };
    const bundle = bundleBytes(await dsseBundle(keySigner(keys.privateKey, keys.publicKey), [], statement));
    const attached = await attachArtifactToImage({
      imageName: `${server.host}/attested/app`,
      imageDigest: image.digest,
      artifact: Buffer.from(bundle),
      mediaType: bundleType,
      annotations: { 'dev.sigstore.bundle.predicateType': 'https://slsa.dev/provenance/v1' },
      credentials: { username: testAdmin.username, password: testAdmin.password },
    });
    expect(attached.digest).toMatch(/^sha256:/);

    const referrers = await request(server.url, `/v2/attested/app/referrers/${image.digest}`);
    expect(referrers.json<{ manifests: { digest: string; artifactType: string }[] }>().manifests).toEqual([
      expect.objectContaining({ digest: attached.digest, artifactType: bundleType }),
    ]);

    const view = await settledArtifact(server.url, 'attested/app', image.digest);
    expect(view.referrers).toEqual([
      expect.objectContaining({
        digest: attached.digest,
        kind: 'attestation',
        format: 'sigstore-bundle',
        verified: true,
        signer: 'key:ci',
        details: expect.objectContaining({
          predicateType: 'https://slsa.dev/provenance/v1',
          provenance: expect.objectContaining({ builderId: 'https://ci.example.com/builder' }),
        }),
      }),
    ]);
    expect(view.summary).toMatchObject({ attestations: 1, signatures: 0 });
  });
});
