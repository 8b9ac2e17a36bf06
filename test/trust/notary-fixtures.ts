/**
 * Test PKI and envelope builders for Notary Project signatures: a root CA and a code-signing leaf
 * made with @peculiar/x509, and JWS / COSE_Sign1 envelopes signed with node:crypto, built by hand
 * (not with the code under test) so that tampered twins can be made freely.
 */
import 'reflect-metadata';
import { KeyObject, sign, constants, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { Encoder, Tag } from 'cbor-x/decode';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export type Alg = 'ES256' | 'PS256';
const DAY = 86_400_000;
export const daysFromNow = (days: number): Date => new Date(Date.now() + days * DAY);

const keyParams = (alg: Alg): RsaHashedKeyGenParams | EcKeyGenParams =>
  alg === 'ES256'
    ? { name: 'ECDSA', namedCurve: 'P-256' }
    : { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
const signingAlgorithm = (alg: Alg) => (alg === 'ES256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' });

async function keys(alg: Alg): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(keyParams(alg), true, ['sign', 'verify'])) as CryptoKeyPair;
}

export interface Issued {
  cert: x509.X509Certificate;
  der: Uint8Array;
  pem: string;
  keys: CryptoKeyPair;
}

let serial = 1;
const nextSerial = () => (serial++).toString(16).padStart(2, '0');

export async function makeRoot(opts: { name?: string; alg?: Alg } = {}): Promise<Issued> {
  const alg = opts.alg ?? 'ES256';
  const k = await keys(alg);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: opts.name ?? 'CN=Acme Root CA, O=Acme, C=US',
    notBefore: daysFromNow(-30),
    notAfter: daysFromNow(3650),
    keys: k,
    signingAlgorithm: signingAlgorithm(alg),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(k.publicKey),
    ],
  });
  return { cert, der: new Uint8Array(cert.rawData), pem: cert.toString('pem'), keys: k };
}

export interface LeafOptions {
  name?: string;
  alg?: Alg;
  keyUsage?: number;
  /** extended key usages; null leaves the extension out */
  eku?: string[] | null;
  notBefore?: Date;
  notAfter?: Date;
  extraExtensions?: x509.Extension[];
}

export const CODE_SIGNING = '1.3.6.1.5.5.7.3.3';

export async function makeLeaf(issuer: Issued, opts: LeafOptions = {}): Promise<Issued> {
  const k = await keys(opts.alg ?? 'ES256');
  const issuerAlg: Alg = issuer.keys.privateKey.algorithm.name === 'ECDSA' ? 'ES256' : 'PS256';
  const extensions: x509.Extension[] = [
    new x509.KeyUsagesExtension(opts.keyUsage ?? x509.KeyUsageFlags.digitalSignature, true),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
    ...(opts.extraExtensions ?? []),
  ];
  if (opts.eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension(opts.eku ?? [CODE_SIGNING]));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: nextSerial(),
    subject: opts.name ?? 'CN=alice, O=Example',
    issuer: issuer.cert.subject,
    notBefore: opts.notBefore ?? daysFromNow(-10),
    notAfter: opts.notAfter ?? daysFromNow(365),
    publicKey: k.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(issuerAlg),
    extensions,
  });
  return { cert, der: new Uint8Array(cert.rawData), pem: cert.toString('pem'), keys: k };
}

export const SUBJECT = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${'a'.repeat(64)}`,
  size: 1234,
};

export interface EnvelopeOptions {
  leaf: Issued;
  chain: Uint8Array[];
  alg?: Alg;
  /** the payload that is signed */
  payload?: unknown;
  /** a payload put in the envelope in place of the signed one (a tampered twin) */
  swappedPayload?: unknown;
  signingScheme?: string;
  signingTime?: Date;
  /** for the notary.x509.signingAuthority scheme (listed in crit by default) */
  authenticSigningTime?: Date;
  expiry?: Date;
  /** extra protected attributes, and the crit list (defaults to what the attributes need) */
  extra?: Record<string, unknown>;
  crit?: string[];
  contentType?: string;
  /** attach an (opaque, fake) RFC 3161 timestamp countersignature */
  timestampSignature?: boolean;
}

const payloadOf = (payload: unknown) => Buffer.from(JSON.stringify(payload ?? { targetArtifact: SUBJECT }));

function defaultCrit(o: EnvelopeOptions): string[] {
  const optional = [...(o.authenticSigningTime ? ['io.cncf.notary.authenticSigningTime'] : []), ...(o.expiry ? ['io.cncf.notary.expiry'] : [])];
  return o.crit ?? ['io.cncf.notary.signingScheme', ...optional];
}

function rawSign(o: EnvelopeOptions, data: Uint8Array): Buffer {
  const key = KeyObject.from(o.leaf.keys.privateKey);
  return (o.alg ?? 'ES256') === 'ES256'
    ? sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' })
    : sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
}

const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d+Z$/, 'Z');

export function jwsEnvelope(o: EnvelopeOptions): Uint8Array {
  const header: Record<string, unknown> = {
    alg: o.alg ?? 'ES256',
    cty: o.contentType ?? 'application/vnd.cncf.notary.payload.v1+json',
    'io.cncf.notary.signingScheme': o.signingScheme ?? 'notary.x509',
    ...(o.authenticSigningTime
      ? { 'io.cncf.notary.authenticSigningTime': rfc3339(o.authenticSigningTime) }
      : { 'io.cncf.notary.signingTime': rfc3339(o.signingTime ?? daysFromNow(-1)) }),
    ...(o.expiry ? { 'io.cncf.notary.expiry': rfc3339(o.expiry) } : {}),
    ...o.extra,
    crit: defaultCrit(o),
  };
  const protectedB64 = Buffer.from(JSON.stringify(header)).toString('base64url');
  const signedPayload = payloadOf(o.payload).toString('base64url');
  const signature = rawSign(o, Buffer.from(`${protectedB64}.${signedPayload}`)).toString('base64url');
  const payload = o.swappedPayload === undefined ? signedPayload : payloadOf(o.swappedPayload).toString('base64url');
  return Buffer.from(
    JSON.stringify({
      payload,
      protected: protectedB64,
      header: {
        x5c: o.chain.map((c) => Buffer.from(c).toString('base64')),
        'io.cncf.notary.signingAgent': 'notation/1.3.0',
        ...(o.timestampSignature ? { 'io.cncf.notary.timestampSignature': Buffer.from('not a real token').toString('base64') } : {}),
      },
      signature,
    }),
  );
}

const cbor = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false });
const COSE_ALG: Record<Alg, number> = { ES256: -7, PS256: -37 };
/** COSE dates carry whole seconds (CBOR tag 1 with an integer). */
const seconds = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);

export function coseEnvelope(o: EnvelopeOptions): Uint8Array {
  const headers = new Map<unknown, unknown>([
    [1, COSE_ALG[o.alg ?? 'ES256']],
    [2, defaultCrit(o)],
    [3, o.contentType ?? 'application/vnd.cncf.notary.payload.v1+json'],
    ['io.cncf.notary.signingScheme', o.signingScheme ?? 'notary.x509'],
  ]);
  if (o.authenticSigningTime) headers.set('io.cncf.notary.authenticSigningTime', seconds(o.authenticSigningTime));
  else headers.set('io.cncf.notary.signingTime', seconds(o.signingTime ?? daysFromNow(-1)));
  if (o.expiry) headers.set('io.cncf.notary.expiry', seconds(o.expiry));
  for (const [k, v] of Object.entries(o.extra ?? {})) headers.set(k, v);
  const protectedBytes = cbor.encode(headers);
  const signedPayload = payloadOf(o.payload);
  const toBeSigned = cbor.encode(['Signature1', protectedBytes, Buffer.alloc(0), signedPayload]);
  const signature = rawSign(o, toBeSigned);
  const payload = o.swappedPayload === undefined ? signedPayload : payloadOf(o.swappedPayload);
  const unprotected = new Map<unknown, unknown>([
    [33, o.chain.map((c) => Buffer.from(c))],
    ['io.cncf.notary.signingAgent', 'notation/1.3.0'],
  ]);
  if (o.timestampSignature) unprotected.set('io.cncf.notary.timestampSignature', Buffer.from('not a real token'));
  return cbor.encode(new Tag([protectedBytes, unprotected, payload, signature], 18));
}

export interface PolicyOptions {
  name?: string;
  scopes?: string[];
  level?: 'strict' | 'permissive' | 'audit' | 'skip';
  override?: Record<string, string>;
  trustStores?: string[];
  identities?: string[];
}

export function policy(o: PolicyOptions = {}): Record<string, unknown> {
  const level = o.level ?? 'strict';
  return {
    name: o.name ?? 'acme-images',
    registryScopes: o.scopes ?? ['registry.example.com/acme/app'],
    signatureVerification: { level, ...(o.override ? { override: o.override } : {}) },
    ...(level === 'skip' ? {} : { trustStores: o.trustStores ?? ['ca:acme'], trustedIdentities: o.identities ?? ['x509.subject: CN=alice, O=Example'] }),
  };
}

export const policyDocument = (...policies: Record<string, unknown>[]) => ({ version: '1.0', trustPolicies: policies });
