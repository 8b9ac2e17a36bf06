/** What ties a signed payload to the artifact: digests in cosign payloads and in-toto statements. */
import { z } from 'zod';
import { IN_TOTO_PAYLOAD_TYPE } from '../intoto.ts';
import { jsonTooCostly } from '../../json-limits.ts';
import type { Finding } from '../verdict.ts';

export interface Digest {
  algorithm: string;
  hex: string;
}

/** "sha256:ab…" → { algorithm: "sha256", hex: "ab…" }; undefined when it is not a digest. */
export function parseDigest(digest: string): Digest | undefined {
  const m = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-fA-F0-9]{32,})$/.exec(digest);
  return m?.[1] && m[2] ? { algorithm: m[1], hex: m[2].toLowerCase() } : undefined;
}

const statementSchema = z.object({
  _type: z.string().startsWith('https://in-toto.io/Statement/'),
  subject: z.array(z.object({ name: z.string().optional(), digest: z.record(z.string(), z.string()) })).min(1),
  predicateType: z.string(),
});

/**
 * The predicate type when the statement names the subject; otherwise why it does not. A light
 * check, not intoto.ts's parseStatement: that one also parses SBOM predicates (up to 64 MiB), and
 * the worker parses the verified payload with it once, afterwards.
 */
export function checkStatement(payloadType: string, payload: Uint8Array, subject: string): Finding | { predicateType: string } {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    return {
      code: 'unsupported',
      reason: `the signed payload is of type ${payloadType || '(none)'}, not an in-toto statement, so nothing ties it to this artifact`,
    };
  }
  const text = Buffer.from(payload).toString('utf8');
  // an SBOM predicate is the bulk of the payload and the sender's choice: its shape could stall the loop here
  const costly = jsonTooCostly(text);
  if (costly) return { code: 'limit_exceeded', reason: `the signed payload ${costly}` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { code: 'malformed', reason: 'the signed payload claims to be an in-toto statement but is not JSON' };
  }
  const parsed = statementSchema.safeParse(json);
  if (!parsed.success)
    return { code: 'malformed', reason: 'the signed payload is not a valid in-toto statement (it needs _type, subject with digests, predicateType)' };
  const want = parseDigest(subject);
  if (!want) return { code: 'subject_mismatch', reason: `the subject digest ${subject} is not a valid digest` };
  const named = parsed.data.subject.some((s) => s.digest[want.algorithm]?.toLowerCase() === want.hex);
  if (named) return { predicateType: parsed.data.predicateType };
  const listed = parsed.data.subject.flatMap((s) => Object.entries(s.digest).map(([a, h]) => `${a}:${h}`));
  return { code: 'subject_mismatch', reason: `the in-toto statement covers ${listed.join(', ')}, not this artifact ${subject}` };
}
