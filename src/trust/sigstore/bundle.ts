/**
 * A Sigstore bundle (v0.1, v0.2, v0.3): a message signature over the subject's bytes, or a DSSE
 * envelope whose in-toto statement names the subject. Parsed and validated by @sigstore/bundle.
 */
import { bundleFromJSON, ValidationError, type Bundle } from '@sigstore/bundle';
import { dsse } from '@sigstore/core';
import { toSignedEntity, type SignedEntity } from '@sigstore/verify';
import type { SignedPayload, SigstoreTrust, SubjectRef, Verdict } from '../verdict.ts';
import { parseJSON } from './annotations.ts';
import { sha256, type SignatureContent } from './content.ts';
import { withStatement } from './dsse.ts';
import { verifyEntity, type Facts } from './engine.ts';
import { verifyWithKey } from './keys.ts';
import { parseDigest } from './statement.ts';
import { z } from 'zod';

const VERSIONS: Record<string, string> = {
  'application/vnd.dev.sigstore.bundle+json;version=0.1': '0.1',
  'application/vnd.dev.sigstore.bundle+json;version=0.2': '0.2',
  'application/vnd.dev.sigstore.bundle+json;version=0.3': '0.3',
  'application/vnd.dev.sigstore.bundle.v0.3+json': '0.3',
};
/** Sigstore's HashAlgorithm enum, by number. */
const HASHES = ['sha256', 'sha256', 'sha384', 'sha512', 'sha3-256', 'sha3-384'];

const shape = z.object({
  mediaType: z.string(),
  verificationMaterial: z.looseObject({}),
  messageSignature: z.looseObject({}).optional(),
  dsseEnvelope: z.looseObject({}).optional(),
});

export async function verifySigstoreBundle(
  input: { bundle: Uint8Array; subject: SubjectRef; subjectContent?: Uint8Array },
  trust: SigstoreTrust,
  now: Date = new Date(),
): Promise<Verdict & { signed?: SignedPayload }> {
  const json = parseJSON(Buffer.from(input.bundle).toString('utf8'));
  const pre = shape.safeParse(json);
  if (!pre.success)
    return {
      verified: false,
      code: 'malformed',
      reason: 'not a Sigstore bundle (it needs mediaType, verificationMaterial and a messageSignature or dsseEnvelope)',
    };
  const version = VERSIONS[pre.data.mediaType];
  const facts: Facts = { format: 'Sigstore bundle', mediaType: pre.data.mediaType, bundleVersion: version };
  if (!version) return { verified: false, code: 'unsupported', reason: `unsupported Sigstore bundle media type ${pre.data.mediaType}`, details: facts };
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (err) {
    const fields = err instanceof ValidationError ? `: ${err.fields.join(', ')}` : '';
    return { verified: false, code: 'malformed', reason: `not a valid v${version} Sigstore bundle${fields}`, details: facts };
  }
  if (bundle.content.$case === 'dsseEnvelope') {
    const env = bundle.content.dsseEnvelope;
    facts.content = 'DSSE envelope';
    facts.payloadType = env.payloadType;
    const entity = withContent(toSignedEntity(bundle), dsse.preAuthEncoding(env.payloadType, env.payload));
    const verdict = verifyEntity(entity, trust, now, facts);
    return verdict.verified ? withStatement(verdict, env.payloadType, env.payload, input.subject.digest) : verdict;
  }
  facts.content = 'message signature';
  const { messageDigest } = bundle.content.messageSignature;
  const signed = `${HASHES[messageDigest.algorithm] ?? 'unknown'}:${messageDigest.digest.toString('hex')}`;
  const want = parseDigest(input.subject.digest);
  if (!want || `${want.algorithm}:${want.hex}` !== signed)
    return { verified: false, code: 'subject_mismatch', reason: `the bundle signs ${signed}, not this artifact ${input.subject.digest}`, details: facts };
  if (!input.subjectContent) {
    return {
      verified: false,
      code: 'subject_missing',
      reason: "the bundle signs the artifact's bytes directly, and they were not supplied, so the signature cannot be checked",
      details: facts,
    };
  }
  if (want.algorithm !== 'sha256' || sha256(input.subjectContent).toString('hex') !== want.hex) {
    return { verified: false, code: 'subject_mismatch', reason: `the supplied subject content does not hash to ${input.subject.digest}`, details: facts };
  }
  const artifact = Buffer.from(input.subjectContent);
  return verifyEntity(withContent(toSignedEntity(bundle, artifact), artifact), trust, now, facts);
}

/** The library's content, with a signature check that also knows Ed25519 (which signs the bytes, not a digest). */
function withContent(entity: SignedEntity, signedBytes: Buffer): SignedEntity {
  const base = entity.signature;
  const signature: SignatureContent = {
    signature: base.signature,
    compareSignature: (s) => base.compareSignature(s),
    compareDigest: (d) => base.compareDigest(d),
    compareSignedDigest: (d) => base.compareSignedDigest(d),
    verifySignature: (key) => verifyWithKey(key, signedBytes, base.signature),
  };
  return { ...entity, signature };
}
