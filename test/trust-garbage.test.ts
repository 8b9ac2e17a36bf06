/**
 * Garbage in signatures, attestations and SBOMs: every push is still accepted as the spec says
 * (the registry stores what clients send), nothing answers 5xx, and each gets a verdict that
 * says what is wrong instead of staying pending or failing the worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descriptorOf, imageManifest, putManifest, request, types } from './helpers/http.ts';
import { startInjected, type InProcessServer } from './helpers/server.ts';
import { newKey, pushReferrer, putTrust, settledArtifact } from './helpers/signing.ts';

describe('garbage signatures, attestations and SBOMs', () => {
  let server: InProcessServer;
  beforeAll(async () => {
    server = await startInjected();
    const put = await putTrust(server.url, 'junk', { sigstore: { publicKeys: [{ name: 'k', pem: newKey().pem }] } });
    expect(put.status).toBe(200);
  });
  afterAll(async () => server.stop());

  it('gets a failed verdict with a reason for each, and the server keeps serving', async () => {
    const { body } = await imageManifest(server.url, 'junk/app', ['junk layer']);
    expect((await putManifest(server.url, 'junk/app', 'v1', body)).status).toBe(201);
    const subject = descriptorOf(body, types.manifest);
    const random = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919) % 256));
    // the code each gets: the namespace trusts one cosign key and has no Notary trust policy, which is looked at first
    const cases: [string, { mediaType: string; bytes: Buffer; annotations?: Record<string, string> }, string, string][] = [
      [
        'cosign payload that is not JSON',
        { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', bytes: random, annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } },
        'application/vnd.dev.cosign.artifact.sig.v1+json',
        'bad_signature',
      ],
      [
        'cosign signature that is not base64',
        {
          mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
          bytes: Buffer.from('{}'),
          annotations: { 'dev.cosignproject.cosign/signature': '%%%' },
        },
        'application/vnd.dev.cosign.artifact.sig.v1+json',
        'malformed',
      ],
      [
        'cosign layer without a signature',
        { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', bytes: Buffer.from('{"critical":{}}') },
        'application/vnd.dev.cosign.artifact.sig.v1+json',
        'no_signature',
      ],
      [
        'Sigstore bundle that is not JSON',
        { mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', bytes: random },
        'application/vnd.dev.sigstore.bundle.v0.3+json',
        'malformed',
      ],
      [
        'Sigstore bundle of the wrong shape',
        {
          mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
          bytes: Buffer.from('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":7}'),
        },
        'application/vnd.dev.sigstore.bundle.v0.3+json',
        'malformed',
      ],
      ['DSSE envelope that is not JSON', { mediaType: 'application/vnd.dsse.envelope.v1+json', bytes: random }, 'application/vnd.in-toto+json', 'malformed'],
      [
        'DSSE envelope with an empty signature list',
        {
          mediaType: 'application/vnd.dsse.envelope.v1+json',
          bytes: Buffer.from('{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'),
        },
        'application/vnd.in-toto+json',
        'no_signature',
      ],
      ['Notary JWS that is not JSON', { mediaType: 'application/jose+json', bytes: random }, 'application/vnd.cncf.notary.signature', 'no_trust_configured'],
      ['Notary COSE that is not CBOR', { mediaType: 'application/cose', bytes: random }, 'application/vnd.cncf.notary.signature', 'no_trust_configured'],
      [
        'Notary COSE of a deep CBOR nest',
        { mediaType: 'application/cose', bytes: Buffer.alloc(100_000, 0x81) },
        'application/vnd.cncf.notary.signature',
        'no_trust_configured',
      ],
      ['CycloneDX that is not JSON', { mediaType: 'application/vnd.cyclonedx+json', bytes: random }, 'application/vnd.cyclonedx+json', 'sbom_unreadable'],
      [
        'SPDX of an unknown version',
        { mediaType: 'application/spdx+json', bytes: Buffer.from('{"spdxVersion":"SPDX-9.9","packages":[]}') },
        'application/spdx+json',
        'sbom_unreadable',
      ],
    ];
    const pushed = new Map<string, [string, string]>();
    for (const [name, layer, artifactType, code] of cases) pushed.set(await pushReferrer(server.url, 'junk/app', subject, layer, artifactType), [name, code]);

    const view = await settledArtifact(server.url, 'junk/app', subject.digest);
    expect(view.referrers).toHaveLength(cases.length);
    for (const r of view.referrers) {
      const [name, code] = pushed.get(r.digest) ?? [];
      expect(r.status, name).toBe('done');
      expect(r, name).toMatchObject({ code });
      expect(r.verified, name).not.toBe(true);
      expect(r.reason.length, name).toBeGreaterThan(5);
      expect(r.reason, name).not.toMatch(/undefined|\[object/);
    }
    expect((await request(server.url, '/v2/junk/app/manifests/v1')).status).toBe(200);
  });

  it('keeps a DSSE envelope an attestation whatever its verdict, and says when it carries no signature', async () => {
    const { body } = await imageManifest(server.url, 'junk/dsse', ['dsse layer']);
    expect((await putManifest(server.url, 'junk/dsse', 'v1', body)).status).toBe(201);
    const subject = descriptorOf(body, types.manifest);
    const dsse = 'application/vnd.dsse.envelope.v1+json';
    const unsigned = await pushReferrer(
      server.url,
      'junk/dsse',
      subject,
      { mediaType: dsse, bytes: Buffer.from('{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}') },
      dsse,
    );
    const badlySigned = await pushReferrer(
      server.url,
      'junk/dsse',
      subject,
      { mediaType: dsse, bytes: Buffer.from('{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AAAA"}]}') },
      dsse,
    );
    const view = await settledArtifact(server.url, 'junk/dsse', subject.digest);
    const byDigest = new Map(view.referrers.map((r) => [r.digest, r]));
    expect(byDigest.get(unsigned)).toMatchObject({
      kind: 'attestation',
      verified: false,
      code: 'no_signature',
      reason: 'the DSSE envelope carries no signature',
    });
    expect(byDigest.get(badlySigned)).toMatchObject({ kind: 'attestation', verified: false });
  });

  it('a legacy signature tag on a manifest that is not a signature is only a tag', async () => {
    const { body } = await imageManifest(server.url, 'junk/legacy', ['legacy layer']);
    const subject = descriptorOf(body, types.manifest);
    expect((await putManifest(server.url, 'junk/legacy', 'v1', body)).status).toBe(201);
    const tag = `${subject.digest.replace(':', '-')}.sig`;
    const other = await imageManifest(server.url, 'junk/legacy', ['not a signature']);
    expect((await putManifest(server.url, 'junk/legacy', tag, other.body)).status).toBe(201);
    expect((await settledArtifact(server.url, 'junk/legacy', subject.digest)).referrers).toEqual([]);
  });

  it('a signature whose layer is over the size read for verification fails with that reason', async () => {
    const { body } = await imageManifest(server.url, 'junk/big', ['big layer']);
    const subject = descriptorOf(body, types.manifest);
    expect((await putManifest(server.url, 'junk/big', 'v1', body)).status).toBe(201);
    const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
    await pushReferrer(
      server.url,
      'junk/big',
      subject,
      { mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', bytes: big, annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } },
      'application/vnd.dev.cosign.artifact.sig.v1+json',
    );
    const view = await settledArtifact(server.url, 'junk/big', subject.digest);
    expect(view.referrers[0]).toMatchObject({ verified: false, code: 'limit_exceeded' });
    expect(view.referrers[0]?.reason).toMatch(/more than the 1048576 bytes/);
  });
});
