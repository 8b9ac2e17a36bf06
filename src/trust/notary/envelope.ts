/**
 * What the JWS and COSE readers hand to the verifier: the same signed attributes whatever the
 * envelope, and a function that checks the signature with the signing certificate's key.
 */
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';

export const PAYLOAD_MEDIA_TYPE = 'application/vnd.cncf.notary.payload.v1+json';
export const SCHEMES = ['notary.x509', 'notary.x509.signingAuthority'] as const;
export type SigningScheme = (typeof SCHEMES)[number];

export const ALGORITHMS = ['PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

/** The critical attributes this verifier understands and processes. */
export const KNOWN_CRITICAL = ['io.cncf.notary.signingScheme', 'io.cncf.notary.expiry', 'io.cncf.notary.authenticSigningTime'] as const;

export interface Envelope {
  alg: Algorithm;
  contentType: string;
  signingScheme: SigningScheme;
  /** claimed by the signer (notary.x509): not authenticated */
  signingTime?: Date;
  /** set by a signing authority (notary.x509.signingAuthority) */
  authenticSigningTime?: Date;
  expiry?: Date;
  /** DER certificates, signing certificate first */
  certificates: Uint8Array[];
  payload: Uint8Array;
  /** an RFC 3161 countersignature is attached (Custody does not verify it) */
  hasTimestampSignature: boolean;
  /** true when the signature verifies with `key` */
  verify(key: KeyObject): Promise<boolean>;
}

/** A problem with the envelope itself: the verdict is always `verified: false`, `malformed` unless Custody just does not support what it uses. */
export class EnvelopeError extends Error {
  readonly code: 'malformed' | 'unsupported';

  constructor(message: string, code: 'malformed' | 'unsupported' = 'malformed') {
    super(message);
    this.code = code;
  }
}

export const payloadSchema = z.object({
  targetArtifact: z.object({
    mediaType: z.string().min(1),
    digest: z.string().min(1),
    size: z.number().int().nonnegative(),
    annotations: z.record(z.string(), z.string()).optional(),
    artifactType: z.string().optional(),
  }),
});
export type NotaryPayload = z.infer<typeof payloadSchema>;

/** Checks the signed attributes shared by both envelope formats; throws EnvelopeError. */
export function checkAttributes(attrs: {
  contentType: unknown;
  signingScheme: unknown;
  signingTime?: Date;
  authenticSigningTime?: Date;
  critical: readonly unknown[];
  present: (name: string) => boolean;
}): { contentType: string; signingScheme: SigningScheme } {
  for (const name of attrs.critical) {
    if (typeof name !== 'string' || !(KNOWN_CRITICAL as readonly string[]).includes(name)) {
      throw new EnvelopeError(`unsupported critical header ${String(name)}`, 'unsupported');
    }
    if (!attrs.present(name)) throw new EnvelopeError(`critical header ${name} is listed in crit but missing`);
  }
  for (const name of KNOWN_CRITICAL) {
    if (attrs.present(name) && !attrs.critical.includes(name)) throw new EnvelopeError(`header ${name} must be listed in crit`);
  }
  if (attrs.contentType !== PAYLOAD_MEDIA_TYPE) {
    throw new EnvelopeError(`unsupported payload content type ${JSON.stringify(attrs.contentType)} (expected ${PAYLOAD_MEDIA_TYPE})`, 'unsupported');
  }
  const scheme = attrs.signingScheme;
  if (typeof scheme !== 'string' || !(SCHEMES as readonly string[]).includes(scheme)) {
    throw new EnvelopeError(`unsupported signing scheme ${JSON.stringify(scheme)}`, 'unsupported');
  }
  const signingScheme = scheme as SigningScheme;
  if (signingScheme === 'notary.x509') {
    if (!attrs.signingTime) throw new EnvelopeError('signing scheme notary.x509 requires io.cncf.notary.signingTime');
    if (attrs.present('io.cncf.notary.authenticSigningTime')) {
      throw new EnvelopeError('io.cncf.notary.authenticSigningTime is only valid with signing scheme notary.x509.signingAuthority');
    }
  } else if (!attrs.authenticSigningTime) {
    throw new EnvelopeError('signing scheme notary.x509.signingAuthority requires io.cncf.notary.authenticSigningTime');
  }
  return { contentType: PAYLOAD_MEDIA_TYPE, signingScheme };
}
