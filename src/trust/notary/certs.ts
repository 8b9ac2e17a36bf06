/**
 * The certificate chain of a Notary Project signature: parsing, the specification's certificate
 * requirements, chaining to a trust store, and validity at a point in time.
 */
import 'reflect-metadata';
import { X509Certificate as NodeCertificate, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { formatDn, subjectOf } from './dn.ts';
import type { Algorithm } from './envelope.ts';

export interface Cert {
  der: Uint8Array;
  node: NodeCertificate;
  x509: x509.X509Certificate;
  /** subject DN, compact (`CN=alice,O=Example`) */
  name: string;
}

const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  anyExtendedKeyUsage: '2.5.29.37.0',
  codeSigning: '1.3.6.1.5.5.7.3.3',
};
/** extensions whose criticality this verifier honours; any other critical extension fails */
const UNDERSTOOD = new Set([OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName]);
const FORBIDDEN_LEAF_EKU: Record<string, string> = {
  [OID.anyExtendedKeyUsage]: 'anyExtendedKeyUsage',
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
};
const F = x509.KeyUsageFlags;
const FORBIDDEN_LEAF_KU: [number, string][] = [
  [F.keyEncipherment, 'keyEncipherment'],
  [F.dataEncipherment, 'dataEncipherment'],
  [F.keyAgreement, 'keyAgreement'],
  [F.keyCertSign, 'keyCertSign'],
  [F.cRLSign, 'cRLSign'],
  [F.encipherOnly, 'encipherOnly'],
  [F.decipherOnly, 'decipherOnly'],
];

export function parseCertificate(der: Uint8Array): Cert {
  const node = new NodeCertificate(der);
  const cert = new x509.X509Certificate(Uint8Array.from(der));
  return { der, node, x509: cert, name: formatDn(subjectOf(cert)) };
}

/** Certificates of a trust store entry: one or more PEM blocks (a bare base64 DER is accepted too). */
export function parsePemCertificates(text: string): Uint8Array[] {
  const blocks = [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => m[1] ?? '');
  const bodies = blocks.length ? blocks : [text];
  return bodies.map((b) => new Uint8Array(new NodeCertificate(Buffer.from(b.replace(/\s+/g, ''), 'base64')).raw));
}

/** The only algorithm a signing key may use (Notary Project "Algorithm Selection"), or why none. */
export function algorithmFor(key: KeyObject): { alg: Algorithm } | { refused: string } {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') {
    const bits = details.modulusLength;
    if (bits === 2048) return { alg: 'PS256' };
    if (bits === 3072) return { alg: 'PS384' };
    if (bits === 4096) return { alg: 'PS512' };
    return { refused: `an RSA key of ${String(bits)} bits (only 2048, 3072 and 4096 are allowed)` };
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = details.namedCurve;
    if (curve === 'prime256v1') return { alg: 'ES256' };
    if (curve === 'secp384r1') return { alg: 'ES384' };
    if (curve === 'secp521r1') return { alg: 'ES512' };
    return { refused: `an EC key on curve ${String(curve)} (only P-256, P-384 and P-521 are allowed)` };
  }
  return { refused: `a ${String(key.asymmetricKeyType)} key (only RSA and ECDSA are allowed)` };
}

function keyProblem(cert: Cert): string | undefined {
  const key = cert.node.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') {
    return (details.modulusLength ?? 0) >= 2048 ? undefined : `certificate ${cert.name} has an RSA key shorter than 2048 bits`;
  }
  if (key.asymmetricKeyType === 'ec' && ['prime256v1', 'secp384r1', 'secp521r1'].includes(details.namedCurve ?? '')) return undefined;
  const algorithm = algorithmFor(key);
  return `certificate ${cert.name} has ${'refused' in algorithm ? algorithm.refused : algorithm.alg}`;
}

function signatureAlgorithmProblem(cert: Cert): string | undefined {
  let hash: string | undefined;
  try {
    const alg = cert.x509.signatureAlgorithm as { hash?: { name?: string } };
    hash = alg.hash?.name;
  } catch {
    return `certificate ${cert.name} is signed with an unsupported algorithm`;
  }
  if (hash && /^(SHA-?1|MD5)$/i.test(hash)) return `certificate ${cert.name} is signed with ${hash}, which is not allowed`;
  return undefined;
}

function keyUsageOf(cert: Cert): { flags: number; critical: boolean } | undefined {
  const ext = cert.x509.getExtension(x509.KeyUsagesExtension);
  return ext ? { flags: ext.usages, critical: ext.critical } : undefined;
}

function leafProblem(cert: Cert): string | undefined {
  const bc = cert.x509.getExtension(x509.BasicConstraintsExtension);
  if (bc?.ca) return `signing certificate ${cert.name} is a CA certificate`;
  const ku = keyUsageOf(cert);
  if (!ku || !(ku.flags & F.digitalSignature)) return `signing certificate ${cert.name} lacks the digitalSignature key usage`;
  if (!ku.critical) return `signing certificate ${cert.name} has a key usage extension that is not marked critical`;
  const bad = FORBIDDEN_LEAF_KU.filter(([flag]) => ku.flags & flag).map(([, name]) => name);
  if (bad.length) return `signing certificate ${cert.name} has key usages not allowed for code signing: ${bad.join(', ')}`;
  const eku = cert.x509.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku) {
    const usages = eku.usages.map(String);
    const forbidden = usages.filter((u) => u in FORBIDDEN_LEAF_EKU).map((u) => FORBIDDEN_LEAF_EKU[u]);
    if (forbidden.length) return `signing certificate ${cert.name} has extended key usages not allowed for code signing: ${forbidden.join(', ')}`;
    if (!usages.includes(OID.codeSigning)) return `signing certificate ${cert.name} lacks the codeSigning extended key usage`;
  }
  return undefined;
}

function caProblem(cert: Cert, intermediatesBelow: number): string | undefined {
  const bc = cert.x509.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca || !bc.critical) return `CA certificate ${cert.name} lacks a critical basicConstraints extension with cA set`;
  if (bc.pathLength !== undefined && intermediatesBelow > bc.pathLength) {
    return `CA certificate ${cert.name} allows a path length of ${bc.pathLength}, but ${intermediatesBelow} intermediate certificates follow it`;
  }
  const ku = keyUsageOf(cert);
  if (!ku || !ku.critical || !(ku.flags & F.keyCertSign)) return `CA certificate ${cert.name} lacks a critical key usage extension with keyCertSign`;
  return undefined;
}

/**
 * The certificate requirements of the Notary Project signature specification, and that each
 * certificate is issued and signed by the next; the last one must be a self-signed root.
 */
export function chainProblem(chain: readonly Cert[]): string | undefined {
  for (const [i, cert] of chain.entries()) {
    const critical = cert.x509.extensions.find((e) => e.critical && !UNDERSTOOD.has(e.type));
    if (critical) return `certificate ${cert.name} has an unsupported critical extension ${critical.type}`;
    const problem = keyProblem(cert) ?? signatureAlgorithmProblem(cert) ?? (i === 0 ? leafProblem(cert) : caProblem(cert, i - 1));
    if (problem) return problem;
    const issuer = chain[i + 1];
    if (issuer === undefined) {
      // the root: self-issued and self-signed (OpenSSL's checkIssued would also demand keyCertSign,
      // which a lone root acting as the signing certificate must not have)
      if (cert.node.subject !== cert.node.issuer || !cert.node.verify(cert.node.publicKey)) {
        return `certificate chain does not end with a self-signed root certificate (${cert.name} is issued by ${formatIssuer(cert)})`;
      }
    } else if (!cert.node.checkIssued(issuer.node) || !cert.node.verify(issuer.node.publicKey)) {
      return `certificate chain is broken: ${cert.name} is not issued by ${issuer.name}`;
    }
  }
  return chain.length ? undefined : 'the envelope holds no certificates';
}

function formatIssuer(cert: Cert): string {
  return cert.x509.issuer.replace(/, /g, ',');
}

/** The first certificate not valid at `at`, described; undefined when all are. */
export function validityProblem(chain: readonly Cert[], at: Date): string | undefined {
  for (const cert of chain) {
    if (at < cert.x509.notBefore) return `certificate ${cert.name} is not valid before ${cert.x509.notBefore.toISOString()}`;
    if (at > cert.x509.notAfter) return `certificate ${cert.name} expired at ${cert.x509.notAfter.toISOString()}`;
  }
  return undefined;
}

/** True when a certificate of the chain is one of the trust store's certificates. */
export function leadsTo(chain: readonly Cert[], anchors: readonly Uint8Array[]): boolean {
  return chain.some((c) => anchors.some((a) => Buffer.from(a).equals(c.der)));
}
