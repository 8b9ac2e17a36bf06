/**
 * cosign's legacy attestation: a layer application/vnd.dsse.envelope.v1+json holding a bare DSSE
 * envelope, with the certificate and Rekor bundle as annotations. Each envelope signature is tried;
 * the first that verifies decides, and its in-toto statement must name the subject.
 */
import type { SignedPayload, SigstoreTrust, SubjectRef, Verdict } from '../verdict.ts';
import { parseJSON, readLegacyMaterial } from './annotations.ts';
import { dsseContent } from './content.ts';
import { verifyEntity } from './engine.ts';
import { checkStatement } from './statement.ts';
import { z } from 'zod';

const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'expected base64');
const envelopeSchema = z.object({
  payloadType: z.string(),
  payload: base64,
  signatures: z.array(z.object({ keyid: z.string().optional(), sig: base64.min(1) })),
});

const FORMAT = { format: 'cosign DSSE attestation' };

export async function verifyDsseEnvelope(
  input: { envelope: Uint8Array; annotations: Record<string, string>; subject: SubjectRef },
  trust: SigstoreTrust,
  now: Date = new Date(),
): Promise<Verdict & { signed?: SignedPayload }> {
  const parsed = envelopeSchema.safeParse(parseJSON(Buffer.from(input.envelope).toString('utf8')));
  if (!parsed.success)
    return { verified: false, code: 'malformed', reason: 'the layer is not a DSSE envelope ({payloadType, payload, signatures: [{sig}]})', details: FORMAT };
  if (parsed.data.signatures.length === 0) return { verified: false, code: 'no_signature', reason: 'the DSSE envelope carries no signature', details: FORMAT };
  const material = readLegacyMaterial(input.annotations, false);
  if (!material.ok) return { verified: false, code: material.code, reason: material.reason, details: FORMAT };
  const { payloadType, signatures } = parsed.data;
  const payload = Buffer.from(parsed.data.payload, 'base64');
  const details = { ...FORMAT, payloadType, signatures: signatures.length };
  let first: Verdict | undefined;
  for (const { sig } of signatures) {
    const content = dsseContent(payloadType, payload, Buffer.from(sig, 'base64'));
    const verdict = verifyEntity({ signature: content, ...material.value }, trust, now, details);
    if (verdict.verified) return withStatement(verdict, payloadType, payload, input.subject.digest);
    first ??= verdict;
  }
  return first as Verdict;
}

/** A verified envelope still has to name the subject; only then is its payload handed out as signed. */
export function withStatement(verdict: Verdict, payloadType: string, payload: Buffer, subject: string): Verdict & { signed?: SignedPayload } {
  const statement = checkStatement(payloadType, payload, subject);
  if ('reason' in statement) return { ...verdict, verified: false, code: statement.code, reason: statement.reason };
  const signed = { payloadType, payload: new Uint8Array(payload) };
  return { ...verdict, details: { ...verdict.details, predicateType: statement.predicateType }, signed };
}
