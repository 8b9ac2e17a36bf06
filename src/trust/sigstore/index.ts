/**
 * Sigstore and cosign signature verification, offline, against the keys, identities and trusted
 * root a namespace is configured with. Every function answers a Verdict and never throws.
 */
import type { SignedPayload, SigstoreTrust, SubjectRef, Verdict } from '../verdict.ts';
import { verifySigstoreBundle as bundle } from './bundle.ts';
import { verifyCosignSignature as cosign } from './cosign.ts';
import { verifyDsseEnvelope as dsse } from './dsse.ts';

export async function verifyCosignSignature(
  input: { payload: Uint8Array; annotations: Record<string, string>; subject: SubjectRef },
  trust: SigstoreTrust,
  now?: Date,
): Promise<Verdict> {
  return guard(() => cosign(input, trust, now));
}

export async function verifySigstoreBundle(
  input: { bundle: Uint8Array; subject: SubjectRef; subjectContent?: Uint8Array },
  trust: SigstoreTrust,
  now?: Date,
): Promise<Verdict & { signed?: SignedPayload }> {
  return guard(() => bundle(input, trust, now));
}

export async function verifyDsseEnvelope(
  input: { envelope: Uint8Array; annotations: Record<string, string>; subject: SubjectRef },
  trust: SigstoreTrust,
  now?: Date,
): Promise<Verdict & { signed?: SignedPayload }> {
  return guard(() => dsse(input, trust, now));
}

/** The last line of "never throws": an unexpected error is a verdict, not an exception. */
async function guard<T extends Verdict>(run: () => Promise<T>): Promise<T | Verdict> {
  try {
    return await run();
  } catch (err) {
    return { verified: false, code: 'verification_error', reason: `the signature could not be verified (${err instanceof Error ? err.message : String(err)})` };
  }
}
