/** cosign's legacy formats: simple-signing signatures and bare DSSE attestations, with keys and keyless. */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyCosignSignature, verifyDsseEnvelope } from '../../src/trust/sigstore/index.ts';
import type { SigstoreTrust } from '../../src/trust/verdict.ts';
import {
  b64,
  digestOf,
  ecKeys,
  fulcioIdentity,
  hashedrekordBody,
  intotoBody,
  logEntry,
  mockSigstore,
  sha256hex,
  simpleSigningPayload,
  spkiPem,
  statementFor,
  timestampOver,
  type MockSigstore,
} from './sigstore-fixtures.ts';

const SIG = 'dev.cosignproject.cosign/signature';
const CERT = 'dev.sigstore.cosign/certificate';
const CHAIN = 'dev.sigstore.cosign/chain';
const BUNDLE = 'dev.sigstore.cosign/bundle';
const TSA = 'dev.sigstore.cosign/rfc3161timestamp';
const ALICE = 'alice@example.com';
const ISSUER = 'https://issuer.example';
const IN_TOTO = 'application/vnd.in-toto+json';

const subject = { digest: digestOf('the manifest'), mediaType: 'application/vnd.oci.image.manifest.v1+json' };
const other = { digest: digestOf('another manifest') };

let sig: MockSigstore;
beforeAll(async () => {
  sig = await mockSigstore();
});

const signWith = (key: KeyObject, data: Uint8Array): Buffer => sign(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, key);
const keyTrust = (pem: string, root?: object): SigstoreTrust => ({ publicKeys: [{ name: 'release', pem }], identities: [], trustedRoot: root });

/** cosign's dev.sigstore.cosign/bundle annotation for an entry logged in the mock Rekor. */
async function rekorBundle(body: object, tlog = sig.tlog): Promise<string> {
  const e = await logEntry(tlog, body);
  return JSON.stringify({
    SignedEntryTimestamp: e.verification.signedEntryTimestamp,
    Payload: { body: e.body, integratedTime: e.integratedTime, logIndex: e.logIndex, logID: e.logID },
  });
}

describe('cosign simple signing with a key', () => {
  const keys = ecKeys();
  const trust = keyTrust(spkiPem(keys.publicKey));
  const payload = simpleSigningPayload(subject.digest);
  const annotations = { [SIG]: b64(signWith(keys.privateKey, payload)) };

  it('verifies with the matching public key, without any Rekor bundle', async () => {
    const v = await verifyCosignSignature({ payload, annotations, subject }, trust);
    expect(v).toMatchObject({ verified: true, signer: 'key:release', code: 'verified', reason: 'signed with the configured key release' });
    expect(v.details).toMatchObject({ format: 'cosign simple signing', dockerReference: 'registry.example/app' });
  });

  it('refuses a changed payload', async () => {
    const changed = new TextEncoder().encode(new TextDecoder().decode(payload).replace('registry.example/app', 'registry.example/evil'));
    const v = await verifyCosignSignature({ payload: changed, annotations, subject }, trust);
    expect(v).toMatchObject({
      verified: false,
      code: 'bad_signature',
      reason: 'signature does not match the payload (tampered, or signed by a different key)',
    });
  });

  it('refuses a signature made by another key', async () => {
    const stranger = ecKeys();
    const v = await verifyCosignSignature({ payload, annotations: { [SIG]: b64(signWith(stranger.privateKey, payload)) }, subject }, trust);
    expect(v).toMatchObject({
      verified: false,
      code: 'bad_signature',
      reason: 'signature does not match the payload (tampered, or signed by a different key)',
    });
    expect(v.details?.triedKeys).toEqual(['release']);
  });

  it('refuses a valid signature over another artifact', async () => {
    const theirs = simpleSigningPayload(other.digest);
    const v = await verifyCosignSignature({ payload: theirs, annotations: { [SIG]: b64(signWith(keys.privateKey, theirs)) }, subject }, trust);
    expect(v).toMatchObject({
      verified: false,
      signer: 'key:release',
      code: 'subject_mismatch',
      reason: `signature covers ${other.digest}, not this artifact ${subject.digest}`,
    });
  });

  it('picks the matching key among several, and supports P-384, Ed25519 and RSA keys', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const ed = generateKeyPairSync('ed25519');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const all: SigstoreTrust = {
      publicKeys: [
        { name: 'p256', pem: spkiPem(keys.publicKey) },
        { name: 'p384', pem: spkiPem(p384.publicKey) },
        { name: 'ed25519', pem: spkiPem(ed.publicKey) },
        { name: 'rsa', pem: spkiPem(rsa.publicKey) },
        { name: 'broken', pem: 'not a key' },
      ],
      identities: [],
    };
    for (const [name, k] of [
      ['p256', keys],
      ['p384', p384],
      ['ed25519', ed],
      ['rsa', rsa],
    ] as const) {
      const v = await verifyCosignSignature({ payload, annotations: { [SIG]: b64(signWith(k.privateKey, payload)) }, subject }, all);
      expect(v, name).toMatchObject({ verified: true, signer: `key:${name}`, details: { unreadableKeys: ['broken'] } });
    }
  });

  it('says when the namespace trusts no signer at all', async () => {
    const v = await verifyCosignSignature({ payload, annotations, subject }, { publicKeys: [], identities: [] });
    expect(v).toMatchObject({ verified: false, code: 'no_trust_configured', reason: 'no configured key or keyless identity: the namespace trusts no signer' });
  });

  it('verifies the Rekor bundle of a key-signed signature too', async () => {
    const signature = signWith(keys.privateKey, payload);
    const bundle = await rekorBundle(hashedrekordBody(sha256hex(payload), signature, spkiPem(keys.publicKey)));
    const withRekor = { [SIG]: b64(signature), [BUNDLE]: bundle };
    const v = await verifyCosignSignature({ payload, annotations: withRekor, subject }, keyTrust(spkiPem(keys.publicKey), sig.root));
    expect(v).toMatchObject({
      verified: true,
      signer: 'key:release',
      code: 'verified',
      reason: 'signed with the configured key release, and its Rekor entry verifies',
    });
    expect(v.details).toMatchObject({ rekorEntryKind: 'hashedrekord/0.0.1' });
    expect(v.details?.logIndex).toBeTypeOf('number');
    // an entry for another signature does not vouch for this one
    const otherEntry = await rekorBundle(hashedrekordBody(sha256hex('x'), Buffer.from('not it'), spkiPem(keys.publicKey)));
    const wrong = await verifyCosignSignature(
      { payload, annotations: { ...withRekor, [BUNDLE]: otherEntry }, subject },
      keyTrust(spkiPem(keys.publicKey), sig.root),
    );
    expect(wrong.verified).toBe(false);
    expect(wrong.reason).toMatch(/^the Rekor entry records a different signature or payload/);
    expect(wrong.code).toBe('timestamp_invalid');
    // without a trusted root the Rekor bundle cannot be checked
    const noRoot = await verifyCosignSignature({ payload, annotations: withRekor, subject }, keyTrust(spkiPem(keys.publicKey)));
    expect(noRoot.verified).toBe(false);
    expect(noRoot.reason).toMatch(/no Sigstore trusted root is configured/);
    expect(noRoot.code).toBe('no_trust_configured');
  });

  it('answers malformed input with a verdict', async () => {
    const cases: Record<string, string>[] = [
      {},
      { [SIG]: '!!!' },
      { [SIG]: annotations[SIG] ?? '', [CERT]: 'not a pem' },
      { [SIG]: annotations[SIG] ?? '', [BUNDLE]: '{"SignedEntryTimestamp":1}' },
      { [SIG]: annotations[SIG] ?? '', [TSA]: 'nope' },
    ];
    for (const a of cases) {
      const v = await verifyCosignSignature({ payload, annotations: a, subject }, trust);
      expect(v.verified, JSON.stringify(a)).toBe(false);
      expect(v.reason).toBeTypeOf('string');
    }
    const notPayload = new TextEncoder().encode('{"hello":"world"}');
    const v = await verifyCosignSignature({ payload: notPayload, annotations: { [SIG]: b64(signWith(keys.privateKey, notPayload)) }, subject }, trust);
    expect(v.reason).toMatch(/not a cosign simple-signing document/);
    expect(v.code).toBe('malformed');
  });
});

describe('cosign simple signing, keyless', () => {
  const payload = simpleSigningPayload(subject.digest);
  const trust = (): SigstoreTrust => ({ publicKeys: [], identities: [{ identity: ALICE, issuer: ISSUER }], trustedRoot: sig.root });

  async function keyless(san = ALICE) {
    const id = await fulcioIdentity(sig.ca, san, ISSUER);
    const signature = signWith(id.keys.privateKey, payload);
    const bundle = await rekorBundle(hashedrekordBody(sha256hex(payload), signature, id.pem));
    return { id, signature, annotations: { [SIG]: b64(signature), [CERT]: id.pem, [CHAIN]: '', [BUNDLE]: bundle } };
  }

  it('verifies a certificate and Rekor bundle against the trusted root and the identity', async () => {
    const { annotations } = await keyless();
    const v = await verifyCosignSignature({ payload, annotations, subject }, trust());
    expect(v).toMatchObject({ verified: true, signer: `${ALICE} (issuer ${ISSUER})` });
    expect(v.details).toMatchObject({ rekorEntryKind: 'hashedrekord/0.0.1' });
    expect(v.details?.integratedTime).toBeTypeOf('string');
  });

  it('refuses a Rekor bundle whose signed entry timestamp does not verify (integrated time changed)', async () => {
    const { annotations } = await keyless();
    const rekor = JSON.parse(annotations[BUNDLE]) as { Payload: { integratedTime: number } };
    rekor.Payload.integratedTime -= 60;
    const v = await verifyCosignSignature({ payload, annotations: { ...annotations, [BUNDLE]: JSON.stringify(rekor) }, subject }, trust());
    expect(v.verified).toBe(false);
    expect(v.reason).toBe("the Rekor entry's signed entry timestamp is not signed by a transparency log in the trusted root");
    expect(v.code).toBe('timestamp_invalid');
  });

  it('refuses it without the Rekor bundle: nothing proves the signing time', async () => {
    const { annotations } = await keyless();
    const { [BUNDLE]: _dropped, ...withoutRekor } = annotations;
    const v = await verifyCosignSignature({ payload, annotations: withoutRekor, subject }, trust());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/^keyless signature without proof of its signing time/);
    expect(v.code).toBe('timestamp_invalid');
  });

  it('accepts an RFC 3161 timestamp over the signature instead of a Rekor bundle', async () => {
    const { annotations, signature } = await keyless();
    const { [BUNDLE]: _dropped, ...rest } = annotations;
    const ts = JSON.stringify({ SignedRFC3161Timestamp: b64(await timestampOver(sig, signature)) });
    const v = await verifyCosignSignature({ payload, annotations: { ...rest, [TSA]: ts }, subject }, trust());
    expect(v).toMatchObject({ verified: true, signer: `${ALICE} (issuer ${ISSUER})` });
    // a DER time fraction of fewer than three digits (120 ms → ".12") is beyond @sigstore/core's reader
    const odd = JSON.stringify({ SignedRFC3161Timestamp: b64(await timestampOver(sig, signature, new Date(Math.floor(Date.now() / 1000) * 1000 + 120))) });
    const w = await verifyCosignSignature({ payload, annotations: { ...rest, [TSA]: odd }, subject }, trust());
    expect(w).toMatchObject({
      verified: false,
      code: 'timestamp_invalid',
      reason: 'the RFC 3161 timestamp cannot be read (its time is not in the form YYYYMMDDhhmmss[.fff]Z)',
    });
  });

  it('refuses another identity, and keyless without a trusted root', async () => {
    const { annotations } = await keyless('mallory@example.com');
    const v = await verifyCosignSignature({ payload, annotations, subject }, trust());
    expect(v).toMatchObject({
      verified: false,
      code: 'untrusted_signer',
      reason: `signed by mallory@example.com (issuer ${ISSUER}), but the namespace trusts only ${ALICE} (issuer ${ISSUER})`,
    });
    const noRoot = await verifyCosignSignature({ payload, annotations, subject }, { ...trust(), trustedRoot: undefined });
    expect(noRoot).toMatchObject({
      verified: false,
      code: 'no_trust_configured',
      reason: 'keyless signature, but no Sigstore trusted root is configured for this namespace',
    });
  });

  it('refuses a tampered payload', async () => {
    const { annotations } = await keyless();
    const changed = simpleSigningPayload(other.digest);
    const v = await verifyCosignSignature({ payload: changed, annotations, subject: other }, trust());
    expect(v.verified).toBe(false);
    expect(v.reason).toMatch(/^signature does not match the payload \(tampered/);
    expect(v.code).toBe('bad_signature');
  });
});

describe('cosign DSSE attestations', () => {
  const keys = ecKeys();
  const trust = keyTrust(spkiPem(keys.publicKey));

  function envelope(statement: object, key: KeyObject = keys.privateKey) {
    const payload = Buffer.from(JSON.stringify(statement));
    const pae = Buffer.concat([Buffer.from(`DSSEv1 ${IN_TOTO.length} ${IN_TOTO} ${payload.length} `), payload]);
    const signature = signWith(key, pae);
    const bytes = new TextEncoder().encode(JSON.stringify({ payloadType: IN_TOTO, payload: b64(payload), signatures: [{ keyid: '', sig: b64(signature) }] }));
    return { bytes, payload, signature };
  }

  it('verifies a key-signed in-toto statement naming the subject and returns it', async () => {
    const { bytes, payload } = envelope(statementFor(subject.digest));
    const v = await verifyDsseEnvelope({ envelope: bytes, annotations: { [SIG]: '' }, subject }, trust);
    expect(v).toMatchObject({
      verified: true,
      signer: 'key:release',
      details: { format: 'cosign DSSE attestation', predicateType: 'https://slsa.dev/provenance/v1' },
    });
    expect(v.signed?.payloadType).toBe(IN_TOTO);
    expect(Buffer.from(v.signed?.payload ?? new Uint8Array()).equals(payload)).toBe(true);
  });

  it('refuses a statement that names another digest', async () => {
    const { bytes } = envelope(statementFor(other.digest));
    const v = await verifyDsseEnvelope({ envelope: bytes, annotations: {}, subject }, trust);
    expect(v).toMatchObject({
      verified: false,
      code: 'subject_mismatch',
      reason: `the in-toto statement covers ${other.digest}, not this artifact ${subject.digest}`,
    });
    expect(v.signed).toBeUndefined();
  });

  it('refuses a tampered payload and a signature by another key', async () => {
    const { bytes } = envelope(statementFor(subject.digest));
    const json = JSON.parse(new TextDecoder().decode(bytes)) as { payload: string };
    json.payload = b64(JSON.stringify(statementFor(subject.digest, 'https://example.com/other-predicate')));
    const tampered = await verifyDsseEnvelope({ envelope: new TextEncoder().encode(JSON.stringify(json)), annotations: {}, subject }, trust);
    expect(tampered).toMatchObject({
      verified: false,
      code: 'bad_signature',
      reason: 'signature does not match the payload (tampered, or signed by a different key)',
    });
    const stranger = envelope(statementFor(subject.digest), ecKeys().privateKey);
    expect((await verifyDsseEnvelope({ envelope: stranger.bytes, annotations: {}, subject }, trust)).verified).toBe(false);
  });

  it('verifies a keyless attestation with its certificate and Rekor (intoto) bundle', async () => {
    const id = await fulcioIdentity(sig.ca, ALICE, ISSUER);
    const { bytes, payload, signature } = envelope(statementFor(subject.digest), id.keys.privateKey);
    const annotations = { [SIG]: '', [CERT]: id.pem, [BUNDLE]: await rekorBundle(intotoBody(IN_TOTO, payload, signature, id.pem)) };
    const keyless: SigstoreTrust = { publicKeys: [], identities: [{ identity: ALICE, issuer: ISSUER }], trustedRoot: sig.root };
    const v = await verifyDsseEnvelope({ envelope: bytes, annotations, subject }, keyless);
    expect(v).toMatchObject({ verified: true, signer: `${ALICE} (issuer ${ISSUER})`, details: { rekorEntryKind: 'intoto/0.0.2' } });
    expect(v.signed?.payloadType).toBe(IN_TOTO);
    const { [BUNDLE]: _dropped, ...withoutRekor } = annotations;
    const w = await verifyDsseEnvelope({ envelope: bytes, annotations: withoutRekor, subject }, keyless);
    expect(w.reason).toMatch(/^keyless signature without proof of its signing time/);
    expect(w.code).toBe('timestamp_invalid');
    // a timestamp annotation is not checked on attestations: beside a Rekor bundle it is ignored, alone it is refused
    const ts = JSON.stringify({ SignedRFC3161Timestamp: b64(await timestampOver(sig, bytes)) });
    expect((await verifyDsseEnvelope({ envelope: bytes, annotations: { ...annotations, [TSA]: ts }, subject }, keyless)).verified).toBe(true);
    const alone = await verifyDsseEnvelope({ envelope: bytes, annotations: { ...withoutRekor, [TSA]: ts }, subject }, keyless);
    expect(alone).toMatchObject({
      verified: false,
      code: 'unsupported',
      reason: 'RFC 3161 timestamps on legacy cosign attestations are not supported: the attestation needs a Rekor bundle',
    });
  });

  it('answers malformed envelopes with a verdict', async () => {
    for (const junk of ['', '{}', 'null']) {
      const v = await verifyDsseEnvelope({ envelope: new TextEncoder().encode(junk), annotations: {}, subject }, trust);
      expect(v.verified).toBe(false);
      expect(v.reason).toMatch(/not a DSSE envelope/);
      expect(v.code).toBe('malformed');
    }
    const unsigned = await verifyDsseEnvelope(
      { envelope: new TextEncoder().encode('{"payloadType":"x","payload":"","signatures":[]}'), annotations: {}, subject },
      trust,
    );
    expect(unsigned).toMatchObject({ verified: false, code: 'no_signature', reason: 'the DSSE envelope carries no signature' });
  });
});
