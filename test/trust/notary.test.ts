import 'reflect-metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import * as x509 from '@peculiar/x509';
import type { NotaryTrust } from '../../src/trust/verdict.ts';
import { isNativeAccelerationEnabled } from 'cbor-x/decode';
import { verifyNotarySignature } from '../../src/trust/notary/index.ts';
import {
  coseEnvelope,
  daysFromNow,
  jwsEnvelope,
  makeLeaf,
  makeRoot,
  policy,
  policyDocument,
  SUBJECT,
  type Alg,
  type EnvelopeOptions,
  type Issued,
  type PolicyOptions,
} from './notary-fixtures.ts';

const REPO = 'acme/app';
let root: Issued;
let otherRoot: Issued;
const leaves = {} as Record<Alg, Issued>;

beforeAll(async () => {
  root = await makeRoot();
  otherRoot = await makeRoot({ name: 'CN=Mallory Root CA, O=Mallory' });
  leaves.ES256 = await makeLeaf(root, { alg: 'ES256' });
  leaves.PS256 = await makeLeaf(root, { alg: 'PS256' });
});

const trustWith = (...policies: PolicyOptions[]): NotaryTrust => ({
  trustStores: [{ type: 'ca', name: 'acme', certificates: [root.pem] }],
  trustPolicy: policyDocument(...(policies.length ? policies : [{}]).map(policy)),
});

const formats = [
  { format: 'JWS', build: jwsEnvelope, envelopeType: 'application/jose+json' },
  { format: 'COSE', build: coseEnvelope, envelopeType: 'application/cose' },
] as const;

describe.each(formats)('$format envelopes', ({ build, envelopeType }) => {
  const verify = (o: Partial<EnvelopeOptions> & { alg?: Alg }, trust: NotaryTrust, subject = SUBJECT, repository = REPO) => {
    const leaf = o.leaf ?? leaves[o.alg ?? 'ES256'];
    const envelope = build({ leaf, chain: [leaf.der, root.der], ...o });
    return verifyNotarySignature({ envelope, envelopeType, subject, repository }, trust);
  };

  it.each(['ES256', 'PS256'] as const)('verifies a %s signature under a matching strict policy', async (alg) => {
    const v = await verify({ alg }, trustWith());
    expect(v).toMatchObject({ verified: true, signer: 'CN=alice,O=Example' });
    expect(v.reason).toBe('verified (strict): signed by CN=alice,O=Example, trusted by trust policy acme-images');
    expect(v.code).toBe('verified');
    expect(v.details).toMatchObject({
      envelopeType,
      signingScheme: 'notary.x509',
      trustPolicy: 'acme-images',
      level: 'strict',
      revocation: 'not checked',
      certificateNotAfter: leaves[alg].cert.notAfter.toISOString(),
    });
    expect(typeof v.details?.signingTime).toBe('string');
  });

  it('fails when the payload was changed after signing', async () => {
    const v = await verify({ swappedPayload: { targetArtifact: { ...SUBJECT, size: 99 } } }, trustWith());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/signature does not verify with the key of CN=alice,O=Example/);
    expect(v.code).toBe('bad_signature');
    expect(v.signer).toBeUndefined();
  });

  it('fails when the payload is for another artifact', async () => {
    const other = `sha256:${'b'.repeat(64)}`;
    const v = await verify({}, trustWith(), { ...SUBJECT, digest: other });
    expect(v).toMatchObject({ verified: false, code: 'subject_mismatch', reason: `payload is for ${SUBJECT.digest}, not this artifact ${other}` });
  });

  it('fails when the payload media type or size differ from the subject', async () => {
    expect((await verify({}, trustWith(), { ...SUBJECT, size: 1 })).reason).toMatch(/of 1234 bytes, not this artifact of 1 bytes/);
    expect((await verify({}, trustWith(), { ...SUBJECT, mediaType: 'application/x' })).reason).toMatch(/not this artifact's application\/x/);
  });

  it('fails when the chain comes from another CA', async () => {
    const stranger = await makeLeaf(otherRoot);
    const v = await verify({ leaf: stranger, chain: [stranger.der, otherRoot.der] }, trustWith());
    expect(v).toMatchObject({
      verified: false,
      code: 'untrusted_signer',
      reason: 'certificate chain does not lead to trust store ca:acme',
      signer: 'CN=alice,O=Example',
    });
  });

  it('fails when the chain is forged onto the trusted root', async () => {
    const stranger = await makeLeaf(otherRoot);
    const v = await verify({ leaf: stranger, chain: [stranger.der, root.der] }, trustWith());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/certificate chain is broken: CN=alice,O=Example is not issued by CN=Acme Root CA,O=Acme,C=US/);
    expect(v.code).toBe('certificate_invalid');
  });

  it('fails when the signing certificate lacks digitalSignature', async () => {
    const leaf = await makeLeaf(root, { keyUsage: x509.KeyUsageFlags.nonRepudiation });
    const v = await verify({ leaf, chain: [leaf.der, root.der] }, trustWith());
    expect(v).toMatchObject({
      verified: false,
      code: 'certificate_invalid',
      reason: 'signing certificate CN=alice,O=Example lacks the digitalSignature key usage',
    });
  });

  it('fails when the signing certificate is not for code signing', async () => {
    const leaf = await makeLeaf(root, { eku: ['1.3.6.1.5.5.7.3.1'] });
    const v = await verify({ leaf, chain: [leaf.der, root.der] }, trustWith());
    expect(v.reason).toBe('signing certificate CN=alice,O=Example has extended key usages not allowed for code signing: serverAuth');
    expect(v.code).toBe('certificate_invalid');
  });

  it('accepts a signing certificate without an extended key usage extension', async () => {
    const leaf = await makeLeaf(root, { eku: null });
    expect((await verify({ leaf, chain: [leaf.der, root.der] }, trustWith())).verified).toBe(true);
  });

  it('fails on an unknown critical certificate extension', async () => {
    const leaf = await makeLeaf(root, { extraExtensions: [new x509.Extension('1.2.3.4.5', true, new Uint8Array([5, 0]))] });
    const v = await verify({ leaf, chain: [leaf.der, root.der] }, trustWith());
    expect(v.reason).toBe('certificate CN=alice,O=Example has an unsupported critical extension 1.2.3.4.5');
    expect(v.code).toBe('certificate_invalid');
  });

  it('fails in strict, and logs in permissive, an expired signing certificate', async () => {
    const leaf = await makeLeaf(root, { notBefore: daysFromNow(-10), notAfter: daysFromNow(-1) });
    const o = { leaf, chain: [leaf.der, root.der], signingTime: daysFromNow(-5) };
    const strict = await verify(o, trustWith());
    expect(strict.verified).toBe(false);
    expect(strict.reason).toMatch(
      /^certificate CN=alice,O=Example expired at .*, and the signature has no timestamp countersignature, so every certificate must be valid now$/,
    );
    expect(strict.code).toBe('expired');
    const permissive = await verify(o, trustWith({ level: 'permissive' }));
    expect(permissive.verified).toBe(true);
    expect(permissive.reason).toMatch(/^verified \(permissive\): certificate CN=alice,O=Example expired at .* \(logged, not enforced\)$/);
    expect(permissive.code).toBe('verified_with_warnings');
  });

  it('does not let an unverified timestamp countersignature rescue an expired certificate', async () => {
    const leaf = await makeLeaf(root, { notBefore: daysFromNow(-10), notAfter: daysFromNow(-1) });
    const v = await verify({ leaf, chain: [leaf.der, root.der], signingTime: daysFromNow(-5), timestampSignature: true }, trustWith());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/the timestamp countersignature is not verified by Custody, so every certificate must be valid now$/);
    expect(v.code).toBe('expired');
    const fresh = await verify({ timestampSignature: true }, trustWith());
    expect(fresh.verified).toBe(true);
    expect(fresh.details?.timestampSignature).toMatch(/not verified/);
  });

  it('fails when the certificate was not valid at the claimed signing time', async () => {
    const v = await verify({ signingTime: daysFromNow(-20) }, trustWith({ level: 'permissive' }));
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/is not valid before .*, so it was not valid at the signing time/);
    expect(v.code).toBe('expired');
  });

  it('fails in strict, and logs in permissive, an expired signature', async () => {
    const expiry = daysFromNow(-1);
    const strict = await verify({ expiry }, trustWith());
    expect(strict.verified).toBe(false);
    expect(strict.reason).toMatch(/^signature expired at \d{4}-/);
    expect(strict.code).toBe('expired');
    expect(strict.details?.expiry).toBe(strict.reason.replace('signature expired at ', ''));
    const permissive = await verify({ expiry }, trustWith({ level: 'permissive' }));
    expect(permissive.verified).toBe(true);
    expect(permissive.reason).toMatch(/^verified \(permissive\): signature expired at .* \(logged, not enforced\)$/);
    expect(permissive.code).toBe('verified_with_warnings');
  });

  it('follows an override of the level', async () => {
    const v = await verify({ expiry: daysFromNow(-1) }, trustWith({ override: { expiry: 'log', revocation: 'skip' } }));
    expect(v.verified).toBe(true);
    expect(v.details?.revocation).toBe('skipped by trust policy');
  });

  it('accepts a signature whose expiry is in the future', async () => {
    const v = await verify({ expiry: daysFromNow(30) }, trustWith());
    expect(v.verified).toBe(true);
    expect(typeof v.details?.expiry).toBe('string');
  });

  it('fails when the signer is not a trusted identity', async () => {
    const mallory = await makeLeaf(root, { name: 'CN=mallory, O=Example' });
    const v = await verify({ leaf: mallory, chain: [mallory.der, root.der] }, trustWith());
    expect(v).toMatchObject({
      verified: false,
      signer: 'CN=mallory,O=Example',
      code: 'untrusted_signer',
      reason: 'signed by CN=mallory,O=Example, but trust policy acme-images trusts only CN=alice,O=Example',
    });
  });

  it('matches identities on a subset of the subject, and "*" trusts anyone the CA vouches for', async () => {
    expect((await verify({}, trustWith({ identities: ['x509.subject: O=Example'] }))).verified).toBe(true);
    expect((await verify({}, trustWith({ identities: ['*'] }))).verified).toBe(true);
    expect((await verify({}, trustWith({ identities: ['x509.subject: O=Other', 'x509.subject: CN=alice'] }))).verified).toBe(true);
  });

  it('audit level logs an untrusted identity and still verifies', async () => {
    const mallory = await makeLeaf(root, { name: 'CN=mallory, O=Example' });
    const v = await verify({ leaf: mallory, chain: [mallory.der, root.der] }, trustWith({ level: 'audit' }));
    expect(v.verified).toBe(true);
    expect(v.reason).toBe(
      'verified (audit): signed by CN=mallory,O=Example, but trust policy acme-images trusts only CN=alice,O=Example (logged, not enforced)',
    );
    expect(v.code).toBe('verified_with_warnings');
  });

  it('audit level still enforces integrity', async () => {
    const v = await verify({ swappedPayload: { targetArtifact: { ...SUBJECT, size: 1 } } }, trustWith({ level: 'audit' }));
    expect(v.verified).toBe(false);
  });

  it('fails on an unknown critical header', async () => {
    const v = await verify(
      { extra: { 'io.cncf.notary.foo': 'bar' }, crit: ['io.cncf.notary.signingScheme', 'io.cncf.notary.foo'] },
      trustWith({ level: 'audit' }),
    );
    expect(v).toMatchObject({ verified: false, code: 'unsupported', reason: 'unsupported critical header io.cncf.notary.foo' });
  });

  it('fails when expiry is present but not critical', async () => {
    const v = await verify({ expiry: daysFromNow(5), crit: ['io.cncf.notary.signingScheme'] }, trustWith());
    expect(v.reason).toBe('header io.cncf.notary.expiry must be listed in crit');
    expect(v.code).toBe('malformed');
  });

  it('fails on an unknown signing scheme or content type', async () => {
    expect(await verify({ signingScheme: 'notary.other' }, trustWith())).toMatchObject({
      code: 'unsupported',
      reason: 'unsupported signing scheme "notary.other"',
    });
    expect((await verify({ contentType: 'application/json' }, trustWith())).reason).toMatch(/^unsupported payload content type "application\/json"/);
  });

  it('fails when the algorithm does not fit the key', async () => {
    const v = await verify({ alg: 'PS256', leaf: leaves.ES256 }, trustWith());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/does not fit the signing certificate's key, which calls for ES256/);
    expect(v.code).toBe('malformed');
  });

  it('refuses to verify under a skip policy', async () => {
    const v = await verify({}, trustWith({ level: 'skip', name: 'legacy' }));
    expect(v).toMatchObject({ verified: false, code: 'policy_skipped', reason: 'trust policy legacy skips verification' });
  });

  it('fails when no policy covers the repository', async () => {
    const v = await verify({}, trustWith(), SUBJECT, 'other/repo');
    expect(v).toMatchObject({ verified: false, code: 'no_trust_configured', reason: 'no trust policy covers repository other/repo' });
  });

  it('fails when a byte of the signature is flipped', async () => {
    const leaf = leaves.ES256;
    const envelope = build({ leaf, chain: [leaf.der, root.der] });
    const text = Buffer.from(envelope);
    // JWS: change one character of the base64url signature; COSE: the last byte is the signature's
    const tampered =
      envelopeType === 'application/jose+json'
        ? Buffer.from(text.toString().replace(/"signature":"(.)/, (_m, c: string) => `"signature":"${c === 'A' ? 'B' : 'A'}`))
        : Buffer.concat([text.subarray(0, -1), Buffer.of((text.at(-1) ?? 0) ^ 1)]);
    const v = await verifyNotarySignature({ envelope: tampered, envelopeType, subject: SUBJECT, repository: REPO }, trustWith());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/signature does not verify/);
    expect(v.code).toBe('bad_signature');
  });

  it('verifies the signingAuthority scheme against a signingAuthority store and the authentic signing time', async () => {
    const trust: NotaryTrust = {
      trustStores: [{ type: 'signingAuthority', name: 'sa', certificates: [root.pem] }],
      trustPolicy: policyDocument(policy({ trustStores: ['signingAuthority:sa'] })),
    };
    const o = { signingScheme: 'notary.x509.signingAuthority', authenticSigningTime: daysFromNow(-1) };
    const v = await verify(o, trust);
    expect(v).toMatchObject({ verified: true, details: { signingScheme: 'notary.x509.signingAuthority' } });
    expect(typeof v.details?.authenticSigningTime).toBe('string');
    // a CA store does not vouch for a signing authority
    expect((await verify(o, trustWith())).reason).toMatch(/names no signingAuthority trust store/);
    // the certificate must be valid at the authentic signing time
    const late = await verify({ ...o, authenticSigningTime: daysFromNow(-20) }, trust);
    expect(late.reason).toMatch(/not valid before .*, so it was not valid at the authentic signing time/);
    expect(late.code).toBe('expired');
  });

  it('requires the signing time of notary.x509', async () => {
    const v = await verify({ signingScheme: 'notary.x509', authenticSigningTime: daysFromNow(-1) }, trustWith());
    expect(v.reason).toBe('signing scheme notary.x509 requires io.cncf.notary.signingTime');
    expect(v.code).toBe('malformed');
  });

  it('never throws on garbage', async () => {
    for (const bytes of [
      new Uint8Array(0),
      new TextEncoder().encode('{"payload":1}'),
      new Uint8Array([0xd2, 0x84, 1, 2, 3, 4]),
      new Uint8Array([0xff, 0xfe]),
    ]) {
      const v = await verifyNotarySignature({ envelope: bytes, envelopeType, subject: SUBJECT, repository: REPO }, trustWith());
      expect(v.verified).toBe(false);
      expect(v.reason).toMatch(/malformed|not a COSE|not CBOR|four items/);
      expect(v.code).toBe('malformed');
    }
  });
});

describe('trust policy selection', () => {
  const sign = () => jwsEnvelope({ leaf: leaves.ES256, chain: [leaves.ES256.der, root.der] });
  const run = (trust: NotaryTrust, repository = REPO) =>
    verifyNotarySignature({ envelope: sign(), envelopeType: 'application/jose+json', subject: SUBJECT, repository }, trust);

  it('matches a scope by the part after its host name', async () => {
    const v = await run(trustWith({ scopes: ['localhost:5000/acme/app'] }));
    expect(v.details?.trustPolicy).toBe('acme-images');
    expect((await run(trustWith({ scopes: ['acme/app/more'] }))).reason).toBe('no trust policy covers repository acme/app');
  });

  it('prefers an exact scope over "*"', async () => {
    const trust = trustWith({ name: 'global', scopes: ['*'], identities: ['x509.subject: CN=bob'] }, { name: 'exact', scopes: ['r.example/acme/app'] });
    const exact = await run(trust);
    expect(exact).toMatchObject({ verified: true, details: { trustPolicy: 'exact' } });
    const global = await run(trust, 'acme/other');
    expect(global).toMatchObject({ verified: false, details: { trustPolicy: 'global' } });
    expect(global.reason).toMatch(/trusts only CN=bob/);
    expect(global.code).toBe('untrusted_signer');
  });

  it('refuses a missing or invalid policy document', async () => {
    expect(await run({ trustStores: [] })).toMatchObject({ verified: false, code: 'no_trust_configured', reason: 'no Notary trust policy is configured' });
    const invalid = await run({ trustStores: [], trustPolicy: { version: '2.0' } });
    expect(invalid.reason).toMatch(/^invalid trust policy: version/);
    expect(invalid.code).toBe('trust_invalid');
  });

  it('names a trust store the policy refers to that is not configured', async () => {
    const v = await run({ ...trustWith({ trustStores: ['ca:nowhere'] }) });
    expect(v.reason).toBe('certificate chain does not lead to trust store ca:nowhere (not configured: ca:nowhere)');
    expect(v.code).toBe('untrusted_signer');
  });

  it('finds the anchor in any of several stores, each a PEM bundle', async () => {
    const trust: NotaryTrust = {
      trustStores: [
        { type: 'ca', name: 'a', certificates: [otherRoot.pem] },
        { type: 'ca', name: 'b', certificates: [`${otherRoot.pem}\n${root.pem}`] },
        { type: 'tsa', name: 'acme', certificates: [root.pem] },
      ],
      trustPolicy: policyDocument(policy({ trustStores: ['ca:a', 'ca:b'] })),
    };
    expect((await run(trust)).verified).toBe(true);
    const tsaOnly = { ...trust, trustPolicy: policyDocument(policy({ trustStores: ['tsa:acme'] })) };
    expect(await run(tsaOnly)).toMatchObject({
      code: 'untrusted_signer',
      reason: 'trust policy acme-images names no ca trust store, which signing scheme notary.x509 needs',
    });
  });
});

describe('COSE decoding', () => {
  it('runs on cbor-x in pure JavaScript (the native cbor-extract add-on is never loaded)', async () => {
    const leaf = leaves.ES256;
    const envelope = coseEnvelope({ leaf, chain: [leaf.der, root.der] });
    const v = await verifyNotarySignature({ envelope, envelopeType: 'application/cose', subject: SUBJECT, repository: REPO }, trustWith());
    expect(v.verified).toBe(true);
    expect(isNativeAccelerationEnabled).toBe(false);
  });
});
