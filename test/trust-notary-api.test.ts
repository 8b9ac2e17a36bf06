/** Notary Project signatures (JWS and COSE) pushed as referrers, judged against a namespace's trust policy. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descriptorOf, imageManifest, putManifest, request, types, type Descriptor } from './helpers/http.ts';
import { startInjected, type InProcessServer } from './helpers/server.ts';
import { pushReferrer, putTrust, settledArtifact } from './helpers/signing.ts';
import { coseEnvelope, jwsEnvelope, makeLeaf, makeRoot, policy, policyDocument, type Issued } from './trust/notary-fixtures.ts';

const pushNotary = (base: string, repo: string, subject: Descriptor, envelope: Uint8Array, mediaType: 'application/jose+json' | 'application/cose') =>
  pushReferrer(base, repo, subject, { mediaType, bytes: Buffer.from(envelope) }, 'application/vnd.cncf.notary.signature', {
    annotations: { 'io.cncf.notary.x509chain.thumbprint#S256': '[]' },
  });

describe('Notary signatures over the API', () => {
  let server: InProcessServer;
  let root: Issued;
  let alice: Issued;
  let mallory: Issued;

  beforeAll(async () => {
    server = await startInjected();
    root = await makeRoot();
    alice = await makeLeaf(root);
    mallory = await makeLeaf(root, { name: 'CN=mallory, O=Example' });
    const trust = {
      notary: {
        trustStores: [{ type: 'ca', name: 'acme', certificates: [root.pem] }],
        trustPolicy: policyDocument(policy({ scopes: ['registry.example.com/acme/app'] })),
      },
    };
    const put = await putTrust(server.url, 'acme', trust);
    expect(put.status).toBe(200);
  });
  afterAll(async () => server.stop());

  it('verifies JWS and COSE signatures from a trusted identity and explains the others', async () => {
    const { body } = await imageManifest(server.url, 'acme/app', ['notary layer']);
    expect((await putManifest(server.url, 'acme/app', 'v1', body)).status).toBe(201);
    const subject = descriptorOf(body, types.manifest);
    const payload = { targetArtifact: subject };
    const jws = await pushNotary(server.url, 'acme/app', subject, jwsEnvelope({ leaf: alice, chain: [alice.der, root.der], payload }), 'application/jose+json');
    const cose = await pushNotary(server.url, 'acme/app', subject, coseEnvelope({ leaf: alice, chain: [alice.der, root.der], payload }), 'application/cose');
    const untrusted = await pushNotary(
      server.url,
      'acme/app',
      subject,
      jwsEnvelope({ leaf: mallory, chain: [mallory.der, root.der], payload }),
      'application/jose+json',
    );
    const tampered = await pushNotary(
      server.url,
      'acme/app',
      subject,
      coseEnvelope({ leaf: alice, chain: [alice.der, root.der], payload, swappedPayload: { targetArtifact: { ...subject, size: subject.size + 1 } } }),
      'application/cose',
    );

    const view = await settledArtifact(server.url, 'acme/app', subject.digest);
    const find = (digest: string) => view.referrers.find((r) => r.digest === digest);
    expect(find(jws)).toMatchObject({ kind: 'signature', format: 'notary-jws', verified: true, signer: 'CN=alice,O=Example' });
    expect(find(cose)).toMatchObject({ kind: 'signature', format: 'notary-cose', verified: true, signer: 'CN=alice,O=Example' });
    expect(find(untrusted)).toMatchObject({ verified: false, code: 'untrusted_signer' });
    expect(find(untrusted)?.reason).toMatch(/CN=mallory.*trusts only.*CN=alice/);
    expect(find(tampered)).toMatchObject({ verified: false });
    expect(view.summary).toMatchObject({ signatures: 4, verifiedSignatures: 2 });

    // the /v2 referrers API lists the same signatures
    const referrers = await request(server.url, `/v2/acme/app/referrers/${subject.digest}?artifactType=application/vnd.cncf.notary.signature`);
    expect(
      referrers
        .json<{ manifests: { digest: string }[] }>()
        .manifests.map((m) => m.digest)
        .sort(),
    ).toEqual([jws, cose, untrusted, tampered].sort());
  });

  it('a repository no trust policy covers gets no trust', async () => {
    const { body } = await imageManifest(server.url, 'acme/other', ['other layer']);
    expect((await putManifest(server.url, 'acme/other', 'v1', body)).status).toBe(201);
    const subject = descriptorOf(body, types.manifest);
    await pushNotary(
      server.url,
      'acme/other',
      subject,
      jwsEnvelope({ leaf: alice, chain: [alice.der, root.der], payload: { targetArtifact: subject } }),
      'application/jose+json',
    );
    const view = await settledArtifact(server.url, 'acme/other', subject.digest);
    expect(view.referrers[0]).toMatchObject({ verified: false, code: 'no_trust_configured' });
    expect(view.referrers[0]?.reason).toMatch(/no trust policy covers repository acme\/other/);
  });
});
