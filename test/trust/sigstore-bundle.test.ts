import { beforeAll, describe, expect, it } from 'vitest';
import { verifySigstoreBundle } from '../../src/trust/sigstore/index.ts';
import type { SigstoreTrust } from '../../src/trust/verdict.ts';
import {
  bundleBytes,
  digestOf,
  dsseBundle,
  ecKeys,
  fulcioIdentity,
  keySigner,
  messageBundle,
  mockSigstore,
  rekorWitness,
  spkiPem,
  statementFor,
  tsaWitness,
  type MockSigstore,
} from './sigstore-fixtures.ts';

const ALICE = 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main';
const BOB = 'bob@example.com';
const ISSUER = 'https://token.actions.githubusercontent.com';
const V01 = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
const V02 = 'application/vnd.dev.sigstore.bundle+json;version=0.2';
const V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

const manifest = new TextEncoder().encode('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}');
const subject = { digest: digestOf(manifest) };
const other = { digest: digestOf('another artifact') };

let sig: MockSigstore;
const trusting = (identities: SigstoreTrust['identities'], root: object = sig.root): SigstoreTrust => ({ publicKeys: [], identities, trustedRoot: root });
const alice = () => trusting([{ identity: ALICE, issuer: ISSUER }]);

beforeAll(async () => {
  sig = await mockSigstore();
});

describe('DSSE bundles (keyless)', () => {
  it('verifies an in-toto statement about the subject, signed by a trusted identity, and returns the payload', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest));
    expect(bundle.mediaType).toBe(V03);
    const v = await verifySigstoreBundle({ bundle: bundleBytes(bundle), subject }, alice());
    expect(v.reason).toMatch(/trusted identity/);
    expect(v.code).toBe('verified');
    expect(v.verified).toBe(true);
    expect(v.signer).toBe(`${ALICE} (issuer ${ISSUER})`);
    expect(v.details).toMatchObject({ mediaType: V03, bundleVersion: '0.3', content: 'DSSE envelope', predicateType: 'https://slsa.dev/provenance/v1' });
    expect(v.details?.logIndex).toBeTypeOf('number');
    expect(v.details?.integratedTime).toBeTypeOf('string');
    expect(v.details?.certificateNotAfter).toBeTypeOf('string');
    expect(v.signed?.payloadType).toBe('application/vnd.in-toto+json');
    expect(JSON.parse(new TextDecoder().decode(v.signed?.payload))).toMatchObject({ subject: [{ digest: { sha256: subject.digest.slice(7) } }] });
  });
});

describe('keyless identities', () => {
  it('names the signer and the identities the namespace trusts when the signer is not one of them', async () => {
    const id = await fulcioIdentity(sig.ca, BOB, 'https://issuer.example');
    const bundle = await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest));
    const v = await verifySigstoreBundle({ bundle: bundleBytes(bundle), subject }, alice());
    expect(v.verified).toBe(false);
    expect(v.signer).toBe(`${BOB} (issuer https://issuer.example)`);
    expect(v.reason).toBe(`signed by ${BOB} (issuer https://issuer.example), but the namespace trusts only ${ALICE} (issuer ${ISSUER})`);
    expect(v.signed).toBeUndefined();
  });

  it('needs the issuer to match too, and reads the legacy issuer extension (1.3.6.1.4.1.57264.1.1)', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, 'https://evil.example', true);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)));
    const v = await verifySigstoreBundle({ bundle, subject }, alice());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/^signed by .* \(issuer https:\/\/evil\.example\), but the namespace trusts only/);
    expect(v.code).toBe('untrusted_signer');
    const trusted = await verifySigstoreBundle({ bundle, subject }, trusting([{ identity: ALICE, issuer: 'https://evil.example' }]));
    expect(trusted.verified).toBe(true);
  });

  it('matches identityPattern and issuerPattern as anchored regular expressions', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)));
    const pattern = (identityPattern: string, issuerPattern: string) =>
      verifySigstoreBundle({ bundle, subject }, trusting([{ identityPattern, issuerPattern }]));
    expect((await pattern('https://github\\.com/acme/.+@refs/heads/main', 'https://token\\.actions\\.githubusercontent\\.com')).verified).toBe(true);
    expect((await pattern('https://github\\.com/acme/.*', '.*')).verified).toBe(true);
    // anchored: a pattern matching only part of the SAN or issuer does not match
    const partial = await pattern('github\\.com/acme', '.*');
    expect(partial.verified).toBe(false);
    expect(partial.reason).toContain('trusts only /^github\\.com/acme$/ (issuer /^.*$/)');
    expect(partial.code).toBe('untrusted_signer');
    expect((await pattern('.*', 'token\\.actions')).verified).toBe(false);
    // an entry with an identity but no issuer constraint never matches
    const noIssuer = await verifySigstoreBundle({ bundle, subject }, trusting([{ identity: ALICE }]));
    expect(noIssuer.verified).toBe(false);
    expect(noIssuer.reason).toContain('incomplete entry');
    expect(noIssuer.code).toBe('untrusted_signer');
  });

  it('says so when the namespace trusts no keyless identity', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)));
    const v = await verifySigstoreBundle({ bundle, subject }, trusting([]));
    expect(v).toMatchObject({
      verified: false,
      code: 'untrusted_signer',
      reason: `signed by ${ALICE} (issuer ${ISSUER}), but the namespace trusts no keyless identity`,
    });
  });
});

describe('keyless trust: root, chain, signing time', () => {
  it('refuses keyless signatures when no trusted root is configured', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)));
    const v = await verifySigstoreBundle({ bundle, subject }, { publicKeys: [], identities: [{ identity: ALICE, issuer: ISSUER }] });
    expect(v).toMatchObject({
      verified: false,
      code: 'no_trust_configured',
      reason: 'keyless signature, but no Sigstore trusted root is configured for this namespace',
    });
  });

  it('refuses a certificate from a CA that is not in the trusted root', async () => {
    const elsewhere = await mockSigstore();
    const id = await fulcioIdentity(elsewhere.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)));
    const v = await verifySigstoreBundle({ bundle, subject }, alice());
    expect(v.verified).toBe(false);
    expect(v.reason).toBe('the certificate does not chain to a Fulcio CA in the trusted root (issued by another CA)');
    expect(v.code).toBe('untrusted_signer');
  });

  it('refuses a Rekor entry from a log that is not in the trusted root', async () => {
    const elsewhere = await mockSigstore();
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(elsewhere.tlog)], statementFor(subject.digest)));
    const v = await verifySigstoreBundle({ bundle, subject }, alice());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/Rekor entry's signed entry timestamp is not signed by a transparency log in the trusted root/);
    expect(v.code).toBe('timestamp_invalid');
  });

  it('judges the certificate at the signing time Rekor proves: a certificate expired by then is refused, whatever `now` is', async () => {
    const hourAgo = new Date(Date.now() - 3_600_000);
    const past = await mockSigstore({ ca: hourAgo });
    const id = await fulcioIdentity(past.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(past.tlog)], statementFor(subject.digest)));
    const trust = trusting([{ identity: ALICE, issuer: ISSUER }], past.root);
    for (const now of [undefined, new Date(Date.now() + 86_400_000)]) {
      const v = await verifySigstoreBundle({ bundle, subject }, trust, now);
      expect(v.verified).toBe(false);
      expect(v.reason).toMatch(/^certificate expired before the signing time \(valid until .*, signed at .*\)$/);
      expect(v.code).toBe('expired');
      expect(v.details?.certificateNotAfter).toBeTypeOf('string');
    }
  });

  it('accepts a certificate long expired at `now` when it was valid at the signing time', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)));
    const nextWeek = new Date(Date.now() + 7 * 86_400_000);
    expect((await verifySigstoreBundle({ bundle, subject }, alice(), nextWeek)).verified).toBe(true);
  });

  it('refuses a keyless signature with no proof of its signing time', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [], statementFor(subject.digest)));
    const v = await verifySigstoreBundle({ bundle, subject }, alice());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/^keyless signature without proof of its signing time/);
    expect(v.code).toBe('timestamp_invalid');
  });

  it('accepts an RFC 3161 timestamp from a trusted TSA as the proof of signing time, and refuses one from another TSA', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const good = bundleBytes(await dsseBundle(id.signer, [tsaWitness(sig)], statementFor(subject.digest)));
    const v = await verifySigstoreBundle({ bundle: good, subject }, alice());
    expect(v.reason).toMatch(/trusted identity/);
    expect(v.code).toBe('verified');
    expect(v.verified).toBe(true);
    expect(v.details?.logIndex).toBeUndefined();
    expect(v.details?.signingTime).toHaveLength(1);
    const elsewhere = await mockSigstore();
    const bad = bundleBytes(await dsseBundle(id.signer, [tsaWitness(elsewhere)], statementFor(subject.digest)));
    const w = await verifySigstoreBundle({ bundle: bad, subject }, alice());
    expect(w.verified).toBe(false);
    expect(w.reason).toMatch(/RFC 3161 timestamp is not signed by a timestamp authority in the trusted root/);
    expect(w.code).toBe('timestamp_invalid');
  });

  it('refuses a proof of signing time that lies in the future of `now`', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)));
    const yesterday = new Date(Date.now() - 86_400_000);
    const v = await verifySigstoreBundle({ bundle, subject }, alice(), yesterday);
    expect(v).toMatchObject({ verified: false });
    expect(v.reason).toMatch(/claims to be made at .* after now/);
    expect(v.code).toBe('timestamp_invalid');
  });

  it('reports a trusted root that is not a trusted_root.json', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)));
    const v = await verifySigstoreBundle({ bundle, subject }, trusting([{ identity: ALICE, issuer: ISSUER }], { tlogs: 'nope' }));
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/^the configured Sigstore trusted root is not a valid trusted_root.json \(tlogs: /);
    expect(v.code).toBe('trust_invalid');
  });
});

describe('DSSE bundle content', () => {
  it('refuses a tampered payload', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest));
    const tampered = bundleBytes(bundle, (json) => {
      const env = json.dsseEnvelope as { payload: string };
      env.payload = Buffer.from(JSON.stringify(statementFor(other.digest))).toString('base64');
    });
    const v = await verifySigstoreBundle({ bundle: tampered, subject: other }, alice());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/^signature does not match the payload \(tampered/);
    expect(v.code).toBe('bad_signature');
  });

  it('refuses a statement about another artifact', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(other.digest)));
    const v = await verifySigstoreBundle({ bundle, subject }, alice());
    expect(v.verified).toBe(false);
    expect(v.reason).toBe(`the in-toto statement covers ${other.digest}, not this artifact ${subject.digest}`);
    expect(v.code).toBe('subject_mismatch');
    expect(v.signed).toBeUndefined();
  });

  it('refuses a DSSE payload that is not an in-toto statement', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const b = await new (await import('@sigstore/sign')).DSSEBundleBuilder({ signer: id.signer, witnesses: [rekorWitness(sig.tlog)] }).create({
      data: Buffer.from('hello'),
      type: 'text/plain',
    });
    const v = await verifySigstoreBundle({ bundle: bundleBytes(b), subject }, alice());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/of type text\/plain, not an in-toto statement/);
    expect(v.code).toBe('unsupported');
  });
});

describe('message signature bundles', () => {
  it('verifies a signature over the subject manifest bytes (v0.2 from the builder, and as v0.1 and v0.3)', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = await messageBundle(id.signer, [rekorWitness(sig.tlog)], manifest);
    expect(bundle.mediaType).toBe(V02);
    const v02 = await verifySigstoreBundle({ bundle: bundleBytes(bundle), subject, subjectContent: manifest }, alice());
    expect(v02).toMatchObject({ verified: true, signer: `${ALICE} (issuer ${ISSUER})`, details: { bundleVersion: '0.2', content: 'message signature' } });
    expect(v02.signed).toBeUndefined();
    const v01 = await verifySigstoreBundle({ bundle: bundleBytes(bundle, (j) => (j.mediaType = V01)), subject, subjectContent: manifest }, alice());
    expect(v01).toMatchObject({ verified: true, details: { mediaType: V01, bundleVersion: '0.1' } });
    const asV03 = bundleBytes(bundle, (j) => {
      j.mediaType = V03;
      const vm = j.verificationMaterial as { x509CertificateChain?: { certificates: unknown[] }; certificate?: unknown };
      vm.certificate = vm.x509CertificateChain?.certificates[0];
      delete vm.x509CertificateChain;
    });
    const v03 = await verifySigstoreBundle({ bundle: asV03, subject, subjectContent: manifest }, alice());
    expect(v03).toMatchObject({ verified: true, details: { mediaType: V03, bundleVersion: '0.3' } });
  });

  it('refuses a message signature over another artifact', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await messageBundle(id.signer, [rekorWitness(sig.tlog)], manifest));
    const v = await verifySigstoreBundle({ bundle, subject: other }, alice());
    expect(v).toMatchObject({ verified: false, code: 'subject_mismatch', reason: `the bundle signs ${subject.digest}, not this artifact ${other.digest}` });
  });

  it('needs the subject bytes to check a message signature, and they must match the digest', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const bundle = bundleBytes(await messageBundle(id.signer, [rekorWitness(sig.tlog)], manifest));
    const without = await verifySigstoreBundle({ bundle, subject }, alice());
    expect(without.verified).toBe(false);
    expect(without.reason).toMatch(/were not supplied/);
    expect(without.code).toBe('subject_missing');
    const wrong = await verifySigstoreBundle({ bundle, subject, subjectContent: new TextEncoder().encode('not the manifest') }, alice());
    expect(wrong).toMatchObject({ verified: false, code: 'subject_mismatch', reason: `the supplied subject content does not hash to ${subject.digest}` });
  });

  it('verifies key-signed bundles with the configured key, with and without Rekor, and refuses other keys', async () => {
    const keys = ecKeys();
    const trust: SigstoreTrust = { publicKeys: [{ name: 'release', pem: spkiPem(keys.publicKey) }], identities: [], trustedRoot: sig.root };
    const signer = keySigner(keys.privateKey, keys.publicKey, 'some-hint');
    const logged = bundleBytes(await messageBundle(signer, [rekorWitness(sig.tlog)], manifest));
    expect(await verifySigstoreBundle({ bundle: logged, subject, subjectContent: manifest }, trust)).toMatchObject({ verified: true, signer: 'key:release' });
    const bare = bundleBytes(await messageBundle(signer, [], manifest));
    const noRoot = { ...trust, trustedRoot: undefined };
    expect(await verifySigstoreBundle({ bundle: bare, subject, subjectContent: manifest }, noRoot)).toMatchObject({ verified: true, signer: 'key:release' });
    const loggedNoRoot = await verifySigstoreBundle({ bundle: logged, subject, subjectContent: manifest }, noRoot);
    expect(loggedNoRoot.verified).toBe(false);
    expect(loggedNoRoot.reason).toMatch(/no Sigstore trusted root is configured/);
    expect(loggedNoRoot.code).toBe('no_trust_configured');
    const stranger = ecKeys();
    const strangers = bundleBytes(await messageBundle(keySigner(stranger.privateKey, stranger.publicKey), [], manifest));
    expect(await verifySigstoreBundle({ bundle: strangers, subject, subjectContent: manifest }, trust)).toMatchObject({
      verified: false,
      code: 'bad_signature',
      reason: 'signature does not match the payload (tampered, or signed by a different key)',
    });
  });
});

describe('malformed bundles', () => {
  it('answers a verdict, never throws', async () => {
    const trust = alice();
    const bytes = (s: string) => new TextEncoder().encode(s);
    for (const junk of ['', 'not json', '{}', '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}', '[1,2]', 'null']) {
      const v = await verifySigstoreBundle({ bundle: bytes(junk), subject }, trust);
      expect(v.verified, junk).toBe(false);
      expect(v.reason).toBeTypeOf('string');
    }
    const unknown = await verifySigstoreBundle(
      { bundle: bytes('{"mediaType":"application/x-other","verificationMaterial":{},"messageSignature":{}}'), subject },
      trust,
    );
    expect(unknown.reason).toBe('unsupported Sigstore bundle media type application/x-other');
    expect(unknown.code).toBe('unsupported');
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const broken = bundleBytes(await dsseBundle(id.signer, [rekorWitness(sig.tlog)], statementFor(subject.digest)), (j) => {
      (j.verificationMaterial as Record<string, unknown>).tlogEntries = [{ logIndex: 'x' }];
    });
    const v = await verifySigstoreBundle({ bundle: broken, subject }, trust);
    expect(v.verified).toBe(false);
  });
});
