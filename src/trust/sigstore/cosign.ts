/**
 * cosign's legacy "simple signing" signature: a layer application/vnd.dev.cosign.simplesigning.v1+json
 * whose bytes are the payload, signed as-is; the signature and its key material are annotations.
 */
import type { SubjectRef, SigstoreTrust, Verdict } from '../verdict.ts';
import { COSIGN_SIGNATURE, readLegacyMaterial, parseJSON } from './annotations.ts';
import { messageContent } from './content.ts';
import { verifyEntity } from './engine.ts';
import { parseDigest } from './statement.ts';
import { z } from 'zod';

const payloadSchema = z.object({
  critical: z.object({
    image: z.object({ 'docker-manifest-digest': z.string() }),
    type: z.string().optional(),
    identity: z.object({ 'docker-reference': z.string().optional() }).optional(),
  }),
});

const FORMAT = { format: 'cosign simple signing' };

export async function verifyCosignSignature(
  input: { payload: Uint8Array; annotations: Record<string, string>; subject: SubjectRef },
  trust: SigstoreTrust,
  now: Date = new Date(),
): Promise<Verdict> {
  const b64 = input.annotations[COSIGN_SIGNATURE];
  if (b64 === undefined || b64.trim() === '')
    return { verified: false, code: 'no_signature', reason: `the layer has no ${COSIGN_SIGNATURE} annotation: it is not signed`, details: FORMAT };
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64.trim()))
    return { verified: false, code: 'malformed', reason: `the ${COSIGN_SIGNATURE} annotation is not base64`, details: FORMAT };
  const material = readLegacyMaterial(input.annotations, true);
  if (!material.ok) return { verified: false, code: material.code, reason: material.reason, details: FORMAT };
  const { key, tlogEntries, timestamps } = material.value;
  const content = messageContent(input.payload, Buffer.from(b64.trim(), 'base64'));
  const verdict = verifyEntity({ signature: content, key, tlogEntries, timestamps }, trust, now, { ...FORMAT });
  if (!verdict.verified) return verdict;
  const covered = coveredDigest(input.payload);
  if (!covered.ok) return { ...verdict, verified: false, code: 'malformed', reason: covered.reason };
  const details = { ...verdict.details, dockerReference: covered.reference };
  const want = parseDigest(input.subject.digest);
  const got = parseDigest(covered.digest);
  if (!want || !got || want.algorithm !== got.algorithm || want.hex !== got.hex) {
    return {
      ...verdict,
      verified: false,
      code: 'subject_mismatch',
      reason: `signature covers ${covered.digest}, not this artifact ${input.subject.digest}`,
      details,
    };
  }
  return { ...verdict, details };
}

function coveredDigest(payload: Uint8Array): { ok: true; digest: string; reference: string | undefined } | { ok: false; reason: string } {
  const parsed = payloadSchema.safeParse(parseJSON(Buffer.from(payload).toString('utf8')));
  if (!parsed.success) return { ok: false, reason: 'the signed payload is not a cosign simple-signing document (no critical.image["docker-manifest-digest"])' };
  return { ok: true, digest: parsed.data.critical.image['docker-manifest-digest'], reference: parsed.data.critical.identity?.['docker-reference'] };
}
