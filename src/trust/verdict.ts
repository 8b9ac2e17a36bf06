/**
 * What every verifier in src/trust answers, and the trust an operator configures per namespace.
 * Verifiers are pure: bytes and trust in, a verdict out. They never throw on bad input: a
 * malformed, tampered or untrusted signature is a verdict with `verified: false`, a reason
 * a person can act on ("signed by X, but the namespace trusts only Y") and a code a program can
 * branch on (`untrusted_signer`).
 */

/**
 * What a verdict's reason is about, for clients to branch on; the sentence in `reason` says it for
 * a person. docs/trust.md has a table of every code (test/trust/reason-codes.test.ts keeps the two
 * in step). Adding a code is adding a row there; clients should treat one they do not know as
 * they would `verification_error`.
 */
export const reasonCodes = [
  'verified',
  'verified_with_warnings',
  'sbom_read',
  'pending',
  'untrusted_signer',
  'no_trust_configured',
  'trust_invalid',
  'policy_skipped',
  'bad_signature',
  'no_signature',
  'subject_mismatch',
  'subject_missing',
  'artifact_missing',
  'certificate_invalid',
  'expired',
  'timestamp_invalid',
  'malformed',
  'unsupported',
  'limit_exceeded',
  'sbom_unreadable',
  'verification_error',
] as const;
export type ReasonCode = (typeof reasonCodes)[number];
/** What a verifier answers: every code but `pending`, which only the artifact API shows. */
export type VerdictCode = Exclude<ReasonCode, 'pending'>;

/** A reason with its code: what a check that fails (or passes) hands up to the verdict. */
export interface Finding {
  code: VerdictCode;
  reason: string;
}

export interface Verdict {
  verified: boolean;
  /** who signed: a key's name or id, or a certificate's identity and issuer; absent when unknown */
  signer?: string;
  /** what the reason is about, for a client to branch on */
  code: VerdictCode;
  /** one sentence: why it is (or is not) trusted */
  reason: string;
  /** format-specific facts worth showing (Rekor log index, certificate expiry, trust policy name, …) */
  details?: Record<string, unknown>;
}

/** A DSSE payload whose signature was checked (an in-toto statement, usually). */
export interface SignedPayload {
  payloadType: string;
  payload: Uint8Array;
}

/** The descriptor a signature claims to cover. */
export interface SubjectRef {
  digest: string;
  mediaType?: string;
  size?: number;
}

/** A Sigstore keyless identity: exact strings, or regular expressions (anchored by the verifier). */
export interface KeylessIdentity {
  identity?: string;
  identityPattern?: string;
  issuer?: string;
  issuerPattern?: string;
}

export interface SigstoreTrust {
  /** cosign public keys (PEM, SPKI): ECDSA P-256/P-384, Ed25519 or RSA */
  publicKeys: { name: string; pem: string }[];
  /** accepted keyless signers; each must match a certificate's SAN and OIDC issuer */
  identities: KeylessIdentity[];
  /** a Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys, TSAs); needed for keyless */
  trustedRoot?: unknown;
}

export interface NotaryTrust {
  /** notation trust stores: `<type>:<name>` in a trust policy refers to one of these */
  trustStores: { type: 'ca' | 'signingAuthority' | 'tsa'; name: string; certificates: string[] }[];
  /** a notation trustpolicy.json document (version 1.0) */
  trustPolicy?: unknown;
}

export interface NamespaceTrust {
  sigstore: SigstoreTrust;
  notary: NotaryTrust;
}

export const noTrust = (): NamespaceTrust => ({ sigstore: { publicKeys: [], identities: [] }, notary: { trustStores: [] } });
