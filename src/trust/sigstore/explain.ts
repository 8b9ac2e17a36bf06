/** Turns @sigstore/verify's errors into sentences an operator can act on. */
import type { X509Certificate } from '@sigstore/core';
import { VerificationError } from '@sigstore/verify';
import type { Finding } from '../verdict.ts';

export const TAMPERED = 'signature does not match the payload (tampered, or signed by a different key)';
export const NO_SIGNING_TIME =
  'keyless signature without proof of its signing time: it has neither a Rekor entry with an inclusion promise ' +
  'nor an RFC 3161 timestamp, so its short-lived certificate cannot be judged';

export function explain(err: unknown, cert: X509Certificate | undefined, times: readonly Date[]): Finding {
  if (!(err instanceof VerificationError))
    return { code: 'verification_error', reason: `the signature could not be verified (${err instanceof Error ? err.message : String(err)})` };
  switch (err.code) {
    case 'SIGNATURE_ERROR':
      return { code: 'bad_signature', reason: TAMPERED };
    case 'TIMESTAMP_ERROR':
      if (err.message.startsWith('expected')) return { code: 'timestamp_invalid', reason: NO_SIGNING_TIME };
      if (err.message.includes('duplicate')) return { code: 'timestamp_invalid', reason: 'the signature carries the same proof of signing time twice' };
      return {
        code: 'timestamp_invalid',
        reason: 'the RFC 3161 timestamp is not signed by a timestamp authority in the trusted root, or does not cover this signature',
      };
    case 'CERTIFICATE_ERROR':
      return certificateReason(err, cert, times);
    case 'TLOG_INCLUSION_PROMISE_ERROR':
      return { code: 'timestamp_invalid', reason: "the Rekor entry's signed entry timestamp is not signed by a transparency log in the trusted root" };
    case 'TLOG_BODY_ERROR':
      return {
        code: 'timestamp_invalid',
        reason:
          `the Rekor entry records a different signature or payload (${err.message}): ` +
          'the payload was tampered with, or the entry belongs to another signature',
      };
    case 'TLOG_INCLUSION_PROOF_ERROR':
    case 'TLOG_MISSING_INCLUSION_ERROR':
    case 'TLOG_ERROR':
      return { code: 'timestamp_invalid', reason: `the Rekor entry cannot be verified against the trusted root's transparency logs (${err.message})` };
    default:
      return { code: 'verification_error', reason: `the signature could not be verified (${err.message})` };
  }
}

function certificateReason(err: VerificationError, cert: X509Certificate | undefined, times: readonly Date[]): Finding {
  if (err.message.includes('SCT'))
    return { code: 'certificate_invalid', reason: `the certificate has no valid SCT from a certificate transparency log in the trusted root (${err.message})` };
  if (cert) {
    const late = times.find((t) => t > cert.notAfter);
    if (late)
      return {
        code: 'expired',
        reason: `certificate expired before the signing time (valid until ${cert.notAfter.toISOString()}, signed at ${late.toISOString()})`,
      };
    const early = times.find((t) => t < cert.notBefore);
    if (early)
      return {
        code: 'expired',
        reason: `certificate was not yet valid at the signing time (valid from ${cert.notBefore.toISOString()}, signed at ${early.toISOString()})`,
      };
  }
  const cause: unknown = err.cause;
  if (cause === undefined)
    return { code: 'expired', reason: `no Fulcio CA in the trusted root was valid at the signing time (${times.map((t) => t.toISOString()).join(', ')})` };
  if (cause instanceof Error && cause.message.includes('expired'))
    return { code: 'expired', reason: 'a CA certificate of the chain was not valid at the signing time' };
  // a CA the namespace's trusted root does not hold: like a signer it does not trust
  return { code: 'untrusted_signer', reason: 'the certificate does not chain to a Fulcio CA in the trusted root (issued by another CA)' };
}
