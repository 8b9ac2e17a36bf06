/**
 * Real Sigstore material made in the tests: a mock Fulcio CA (with a CT log), Rekor and a TSA from
 * @sigstore/mock, keys from node:crypto, bundles from @sigstore/sign's builders, and a
 * trusted_root.json built from the mocks' public keys and certificates.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bundleToJSON, envelopeToJSON, type Bundle } from '@sigstore/bundle';
import { initializeCA, initializeCTLog, initializeTLog, initializeTSA } from '@sigstore/mock';
import { DSSEBundleBuilder, MessageSignatureBundleBuilder, type Signer, type Witness } from '@sigstore/sign';
import type { SigstoreTrust } from '../../src/trust/verdict.ts';

type CA = Awaited<ReturnType<typeof initializeCA>>;
type TLog = Awaited<ReturnType<typeof initializeTLog>>;
type TSA = Awaited<ReturnType<typeof initializeTSA>>;
type Content = Parameters<Witness['testify']>[0];

export const ISSUER_V2_OID = '1.3.6.1.4.1.57264.1.8';
export const ISSUER_V1_OID = '1.3.6.1.4.1.57264.1.1';
const LONG_AGO = '2000-01-01T00:00:00Z';
const SHA256_OID = '2.16.840.1.101.3.4.2.1';

export const b64 = (data: ArrayBufferView | string): string =>
  (typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString('base64');
export const sha256hex = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');
export const digestOf = (data: Uint8Array | string): string => `sha256:${sha256hex(data)}`;
export const ecKeys = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
export const spkiPem = (key: KeyObject): string => key.export({ format: 'pem', type: 'spki' }).toString();
const spkiDer = (key: KeyObject): Buffer => key.export({ format: 'der', type: 'spki' });
const certPem = (der: Uint8Array): string => `-----BEGIN CERTIFICATE-----\n${b64(der).replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;

export interface MockSigstore {
  ca: CA;
  tlog: TLog;
  tsa: TSA;
  /** the TSA's clock: the mock reads this Date each time it stamps (see timestampOver) */
  tsaClock: Date;
  /** a trusted_root.json (parsed) naming this CA, CT log, Rekor and TSA */
  root: Record<string, unknown>;
}

export async function mockSigstore(clocks: { ca?: Date; tlog?: Date; tsa?: Date } = {}): Promise<MockSigstore> {
  const ctKeys = ecKeys();
  const tlogKeys = ecKeys();
  const ctlog = await initializeCTLog(ctKeys);
  const ca = await initializeCA(ecKeys(), ctlog, clocks.ca);
  const tlog = await initializeTLog('https://rekor.mock.example', tlogKeys, clocks.tlog);
  const tsaClock = clocks.tsa ?? new Date();
  const tsa = await initializeTSA(ecKeys(), tsaClock);
  const log = (key: KeyObject, url: string) => ({
    baseUrl: url,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: b64(spkiDer(key)), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: LONG_AGO } },
    logId: { keyId: b64(createHash('sha256').update(spkiDer(key)).digest()) },
  });
  const root = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [log(tlogKeys.publicKey, 'https://rekor.mock.example')],
    certificateAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
        uri: 'https://fulcio.mock.example',
        certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
        validFor: { start: LONG_AGO },
      },
    ],
    ctlogs: [log(ctKeys.publicKey, 'https://ctfe.mock.example')],
    timestampAuthorities: [
      {
        subject: { organization: 'sigstore.mock', commonName: 'tsa' },
        certChain: { certificates: [{ rawBytes: b64(tsa.intCertificate) }, { rawBytes: b64(tsa.rootCertificate) }] },
        validFor: { start: LONG_AGO },
      },
    ],
  };
  return { ca, tlog, tsa, tsaClock, root };
}

/** A Fulcio-style signer: a fresh key, a certificate for `san` with the OIDC issuer extension. */
export async function fulcioIdentity(ca: CA, san: string, issuer: string, legacyIssuer = false) {
  const keys = ecKeys();
  const der = await ca.issueCertificate({
    publicKey: new Uint8Array(spkiDer(keys.publicKey)),
    subjectAltName: san,
    extensions: [legacyIssuer ? { oid: ISSUER_V1_OID, value: issuer, legacy: true } : { oid: ISSUER_V2_OID, value: issuer }],
  });
  const pem = certPem(new Uint8Array(der.buffer, der.byteOffset, der.byteLength));
  const signer: Signer = { sign: async (data) => ({ signature: sign('sha256', data, keys.privateKey), key: { $case: 'x509Certificate', certificate: pem } }) };
  return { keys, pem, signer };
}

/** A signer with a plain key (cosign key pair). */
export function keySigner(privateKey: KeyObject, publicKey: KeyObject, hint = ''): Signer {
  const alg = publicKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return { sign: async (data) => ({ signature: sign(alg, data, privateKey), key: { $case: 'publicKey', publicKey: spkiPem(publicKey), hint } }) };
}

interface RekorResponseEntry {
  body: string;
  integratedTime: number;
  logID: string;
  logIndex: number;
  verification: {
    signedEntryTimestamp: string;
    inclusionProof: { logIndex: number; treeSize: number; rootHash: string; hashes: string[]; checkpoint: string };
  };
}

/** Logs an entry body in the mock Rekor, as Rekor's API answers it. */
export async function logEntry(tlog: TLog, body: object): Promise<RekorResponseEntry> {
  const answer: Record<string, RekorResponseEntry> = await tlog.log(body);
  const entry = Object.values(answer)[0];
  if (!entry) throw new Error('mock Rekor answered no entry');
  return entry;
}

/** The Rekor entry bodies, in the form Rekor stores them. */
export function hashedrekordBody(payloadDigestHex: string, signature: Uint8Array, publicKeyOrCertPem: string): object {
  return {
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: payloadDigestHex } },
      signature: { content: b64(signature), publicKey: { content: b64(publicKeyOrCertPem) } },
    },
  };
}

export function dsseBody(envelopeJSON: string, payload: Uint8Array, signature: Uint8Array, publicKeyOrCertPem: string): object {
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256hex(envelopeJSON) },
      payloadHash: { algorithm: 'sha256', value: sha256hex(payload) },
      signatures: [{ signature: b64(signature), verifier: b64(publicKeyOrCertPem) }],
    },
  };
}

export function intotoBody(payloadType: string, payload: Uint8Array, signature: Uint8Array, publicKeyOrCertPem: string): object {
  return {
    apiVersion: '0.0.2',
    kind: 'intoto',
    spec: {
      content: {
        envelope: { payloadType, signatures: [{ sig: b64(b64(signature)), publicKey: b64(publicKeyOrCertPem) }] },
        payloadHash: { algorithm: 'sha256', value: sha256hex(payload) },
      },
    },
  };
}

/** A Rekor witness for the builders, calling the mock log directly (no HTTP). */
export function rekorWitness(tlog: TLog): Witness {
  return {
    testify: async (content: Content, key: string) => {
      const body =
        content.$case === 'messageSignature'
          ? hashedrekordBody(content.messageSignature.messageDigest?.digest.toString('hex') ?? '', content.messageSignature.signature, key)
          : dsseBody(
              JSON.stringify(envelopeToJSON(content.dsseEnvelope)),
              content.dsseEnvelope.payload,
              content.dsseEnvelope.signatures[0]?.sig ?? Buffer.alloc(0),
              key,
            );
      const e = await logEntry(tlog, body);
      const proof = e.verification.inclusionProof;
      const decoded: { kind: string; apiVersion: string } = JSON.parse(Buffer.from(e.body, 'base64').toString('utf8'));
      return {
        tlogEntries: [
          {
            logIndex: String(e.logIndex),
            logId: { keyId: Buffer.from(e.logID, 'hex') },
            kindVersion: { kind: decoded.kind, version: decoded.apiVersion },
            integratedTime: String(e.integratedTime),
            inclusionPromise: { signedEntryTimestamp: Buffer.from(e.verification.signedEntryTimestamp, 'base64') },
            inclusionProof: {
              logIndex: String(proof.logIndex),
              treeSize: String(proof.treeSize),
              rootHash: Buffer.from(proof.rootHash, 'hex'),
              hashes: proof.hashes.map((h) => Buffer.from(h, 'hex')),
              checkpoint: { envelope: proof.checkpoint },
            },
            canonicalizedBody: Buffer.from(e.body, 'base64'),
          },
        ],
      };
    },
  };
}

/**
 * RFC 3161 timestamp over `data` (a signature's bytes) from the mock TSA, stamped at the current whole
 * second: the mock writes DER GeneralizedTime (".12" for 120 ms), which @sigstore/core 4 cannot read
 * unless the fraction has three digits or none, so a real clock would fail one stamp in ten.
 */
export async function timestampOver(mock: Pick<MockSigstore, 'tsa' | 'tsaClock'>, data: Uint8Array, at?: Date): Promise<Buffer> {
  const { tsa, tsaClock } = mock;
  tsaClock.setTime(at?.getTime() ?? Math.floor(Date.now() / 1000) * 1000);
  const der = await tsa.timestamp({
    artifactHash: createHash('sha256').update(data).digest(),
    hashAlgorithmOID: SHA256_OID,
    nonce: 42,
    policyOID: '1.2.3.4',
    certReq: true,
  });
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength);
}

export function tsaWitness(tsa: Pick<MockSigstore, 'tsa' | 'tsaClock'>): Witness {
  return {
    testify: async (content: Content) => {
      const sig = content.$case === 'messageSignature' ? content.messageSignature.signature : (content.dsseEnvelope.signatures[0]?.sig ?? Buffer.alloc(0));
      return { rfc3161Timestamps: [{ signedTimestamp: await timestampOver(tsa, sig) }] };
    },
  };
}

export async function messageBundle(signer: Signer, witnesses: Witness[], artifact: Uint8Array): Promise<Bundle> {
  return new MessageSignatureBundleBuilder({ signer, witnesses }).create({ data: Buffer.from(artifact) });
}

export async function dsseBundle(signer: Signer, witnesses: Witness[], statement: object): Promise<Bundle> {
  return new DSSEBundleBuilder({ signer, witnesses }).create({ data: Buffer.from(JSON.stringify(statement)), type: 'application/vnd.in-toto+json' });
}

/** A bundle as bytes, optionally with its JSON changed (another media type, a tampered field). */
export function bundleBytes(bundle: Bundle, edit?: (json: Record<string, unknown>) => void): Uint8Array {
  const json = JSON.parse(JSON.stringify(bundleToJSON(bundle))) as Record<string, unknown>;
  edit?.(json);
  return new TextEncoder().encode(JSON.stringify(json));
}

export function statementFor(digest: string, predicateType = 'https://slsa.dev/provenance/v1'): object {
  const [alg, hex] = digest.split(':');
  return {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: 'registry.example/app', digest: { [alg ?? 'sha256']: hex } }],
    predicateType,
    predicate: { builder: { id: 'https://ci.example' } },
  };
}

export function simpleSigningPayload(digest: string): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': 'registry.example/app' },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

export const noKeys = (root?: object, identities: SigstoreTrust['identities'] = []): SigstoreTrust => ({ publicKeys: [], identities, trustedRoot: root });
