/**
 * Keyless Sigstore over HTTP: a namespace trusts a CI identity and a trusted root (sent through
 * the API), a cosign-style signature bundle (DSSE, `https://sigstore.dev/cosign/sign/v1`) made with
 * a Fulcio certificate and a Rekor entry from @sigstore/mock is pushed as a referrer, and the
 * verdict names the identity; the same bundle from another identity is refused with both names.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descriptorOf, imageManifest, putManifest, request, types, type Descriptor } from './helpers/http.ts';
import { startInjected, type InProcessServer } from './helpers/server.ts';
import { pushReferrer, putTrust, settledArtifact } from './helpers/signing.ts';
import { bundleBytes, dsseBundle, fulcioIdentity, mockSigstore, rekorWitness, statementFor, type MockSigstore } from './trust/sigstore-fixtures.ts';

const CI = 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0';
const ISSUER = 'https://token.actions.githubusercontent.com';
const bundleType = 'application/vnd.dev.sigstore.bundle.v0.3+json';

const pushBundle = (base: string, repo: string, subject: Descriptor, bundle: Uint8Array) =>
  pushReferrer(base, repo, subject, { mediaType: bundleType, bytes: Buffer.from(bundle) }, bundleType);

describe('keyless Sigstore signatures over the API', () => {
  let server: InProcessServer;
  let sigstore: MockSigstore;
  beforeAll(async () => {
    server = await startInjected();
    sigstore = await mockSigstore();
    const trust = {
      sigstore: {
        identities: [{ identityPattern: 'https://github\\.com/acme/.+/\\.github/workflows/release\\.yml@refs/tags/v.*', issuer: ISSUER }],
        trustedRoot: sigstore.root,
      },
    };
    const put = await putTrust(server.url, 'keyless', trust);
    expect(put.status, put.body.toString()).toBe(200);
    expect(put.json<{ sigstore: { trustedRoot: { certificateAuthorities: number; tlogs: number } } }>().sigstore.trustedRoot).toMatchObject({
      certificateAuthorities: 1,
      tlogs: 1,
    });
  });
  afterAll(async () => server.stop());

  it('verifies the trusted CI identity and names an untrusted one', async () => {
    const { body } = await imageManifest(server.url, 'keyless/app', ['keyless layer']);
    expect((await putManifest(server.url, 'keyless/app', 'v1.0.0', body)).status).toBe(201);
    const image = descriptorOf(body, types.manifest);
    const statement = statementFor(image.digest, 'https://sigstore.dev/cosign/sign/v1');

    const ci = await fulcioIdentity(sigstore.ca, CI, ISSUER);
    const good = await pushBundle(server.url, 'keyless/app', image, bundleBytes(await dsseBundle(ci.signer, [rekorWitness(sigstore.tlog)], statement)));
    const mallory = await fulcioIdentity(sigstore.ca, 'mallory@example.com', 'https://accounts.example.com');
    const bad = await pushBundle(server.url, 'keyless/app', image, bundleBytes(await dsseBundle(mallory.signer, [rekorWitness(sigstore.tlog)], statement)));

    const view = await settledArtifact(server.url, 'keyless/app', image.digest);
    const find = (digest: string) => view.referrers.find((r) => r.digest === digest);
    expect(find(good)).toMatchObject({ kind: 'signature', format: 'sigstore-bundle', verified: true, signer: `${CI} (issuer ${ISSUER})` });
    expect(find(bad)).toMatchObject({ kind: 'signature', verified: false, signer: 'mallory@example.com (issuer https://accounts.example.com)' });
    expect(find(bad)?.reason).toMatch(/signed by mallory@example\.com .*but the namespace trusts only/);
    expect(view.summary).toMatchObject({ signatures: 2, verifiedSignatures: 1 });

    // the tag has a verified signature, so the namespace's TUF targets map it to its digest
    type Signed = { signed: { meta: Record<string, { version: number }>; targets: Record<string, { hashes: { sha256: string } }> } };
    const get = async (file: string) => (await request(server.url, `/tuf/keyless/${file}`)).json<Signed>();
    const snapshot = await get(`${(await get('timestamp.json')).signed.meta['snapshot.json']?.version}.snapshot.json`);
    const targets = await get(`${snapshot.signed.meta['targets.json']?.version}.targets.json`);
    expect(targets.signed.targets['keyless/app:v1.0.0']?.hashes.sha256).toBe(image.digest.slice('sha256:'.length));
  });

  // Before identity patterns were RE2, judging this signature held the event loop for hours:
  // V8 backtracks (a+)+b over 10 000 a's in ~2^10000 steps, and every tenant waited.
  it('judges a crafted identity against (a+)+b while the server goes on answering', async () => {
    const trust = { sigstore: { identities: [{ identityPattern: '(a+)+b', issuerPattern: '(a+)+b' }], trustedRoot: sigstore.root } };
    const put = await putTrust(server.url, 'redos', trust);
    expect(put.status, put.body.toString()).toBe(200);
    const { body } = await imageManifest(server.url, 'redos/app', ['redos layer']);
    expect((await putManifest(server.url, 'redos/app', 'v1', body)).status).toBe(201);
    const image = descriptorOf(body, types.manifest);
    const crafted = await fulcioIdentity(sigstore.ca, 'a'.repeat(10_000), 'a'.repeat(10_000));
    const signature = await pushBundle(
      server.url,
      'redos/app',
      image,
      bundleBytes(await dsseBundle(crafted.signer, [rekorWitness(sigstore.tlog)], statementFor(image.digest, 'https://sigstore.dev/cosign/sign/v1'))),
    );

    // a health check before every look at the artifact, until the worker has judged it
    let view;
    do {
      expect((await request(server.url, '/healthz', { auth: false })).status).toBe(200);
      view = await settledArtifact(server.url, 'redos/app', image.digest, 0).catch(() => undefined);
    } while (view === undefined);
    const judged = view.referrers.find((r) => r.digest === signature);
    expect(judged).toMatchObject({ kind: 'signature', verified: false, signer: `${'a'.repeat(10_000)} (issuer ${'a'.repeat(10_000)})` });
    expect(judged?.reason).toMatch(/, but the namespace trusts only \/\^\(a\+\)\+b\$\/ \(issuer \/\^\(a\+\)\+b\$\/\)$/);
  });
});
