/**
 * Notary Project signature verification (specs/trust-store-trust-policy.md, "Signature
 * Verification"): integrity, authenticity, expiry and authentic timestamp, each enforced or logged
 * as the trust policy's level says. Revocation is not checked (see README.md).
 */
import type { Finding, NotaryTrust, SubjectRef, Verdict, VerdictCode } from '../verdict.ts';
import { algorithmFor, chainProblem, leadsTo, parseCertificate, parsePemCertificates, validityProblem, type Cert } from './certs.ts';
import { readCose } from './cose.ts';
import { dnMatches, formatDn, parseDn, subjectOf } from './dn.ts';
import { EnvelopeError, payloadSchema, type Envelope } from './envelope.ts';
import { readJws } from './jws.ts';
import { actionsOf, parseTrustPolicy, selectPolicy, type Check, type TrustPolicy } from './policy.ts';

export interface NotaryInput {
  envelope: Uint8Array;
  envelopeType: 'application/jose+json' | 'application/cose';
  subject: SubjectRef;
  repository: string;
}

/** A check that failed and is enforced: the verdict is `verified: false` with this reason and code. */
class Enforced extends Error {
  readonly code: VerdictCode;

  constructor(code: VerdictCode, message: string) {
    super(message);
    this.code = code;
  }
}

const iso = (d: Date | undefined) => d?.toISOString();

function readEnvelope(input: NotaryInput): Envelope {
  if (input.envelopeType === 'application/jose+json') return readJws(input.envelope);
  if (input.envelopeType === 'application/cose') return readCose(input.envelope);
  throw new EnvelopeError(`unsupported envelope type ${String(input.envelopeType)}`, 'unsupported');
}

function parseChain(certificates: readonly Uint8Array[]): Cert[] {
  return certificates.map((der, i) => {
    try {
      return parseCertificate(der);
    } catch {
      throw new EnvelopeError(`certificate ${i} of the envelope's chain cannot be parsed`);
    }
  });
}

/** Integrity: the signature, the algorithm's fit to the key, and the payload's fit to the subject. */
async function checkIntegrity(env: Envelope, leaf: Cert, subject: SubjectRef): Promise<void> {
  const fit = algorithmFor(leaf.node.publicKey);
  if ('refused' in fit) throw new Enforced('certificate_invalid', `signing certificate ${leaf.name} has ${fit.refused}`);
  const expected = fit.alg;
  if (env.alg !== expected)
    throw new Enforced('malformed', `the envelope's algorithm ${env.alg} does not fit the signing certificate's key, which calls for ${expected}`);
  let valid: boolean;
  try {
    valid = await env.verify(leaf.node.publicKey);
  } catch (err) {
    throw err instanceof EnvelopeError ? new Enforced(err.code, err.message) : new Enforced('malformed', 'the signature is malformed');
  }
  if (!valid)
    throw new Enforced('bad_signature', `the signature does not verify with the key of ${leaf.name}: the envelope was altered or signed with another key`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(env.payload));
  } catch {
    throw new Enforced('malformed', 'the signed payload is not JSON');
  }
  const parsed = payloadSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Enforced('malformed', `the signed payload is not a Notary payload (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'})`);
  }
  const target = parsed.data.targetArtifact;
  if (target.digest !== subject.digest) throw new Enforced('subject_mismatch', `payload is for ${target.digest}, not this artifact ${subject.digest}`);
  if (subject.mediaType !== undefined && target.mediaType !== subject.mediaType) {
    throw new Enforced('subject_mismatch', `payload is for media type ${target.mediaType}, not this artifact's ${subject.mediaType}`);
  }
  if (subject.size !== undefined && target.size !== subject.size) {
    throw new Enforced('subject_mismatch', `payload is for an artifact of ${target.size} bytes, not this artifact of ${subject.size} bytes`);
  }
}

/** Authenticity: certificate requirements, the trust store, the trusted identities. */
function authenticityProblems(env: Envelope, chain: Cert[], policy: TrustPolicy, trust: NotaryTrust): Finding[] {
  const leaf = chain[0];
  const structural = chainProblem(chain);
  if (structural) return [{ code: 'certificate_invalid', reason: structural }];
  if (!leaf) return [{ code: 'malformed', reason: 'the envelope holds no certificates' }];
  const problems: Finding[] = [];
  if (env.signingScheme === 'notary.x509' && env.signingTime) {
    const p = validityProblem(chain, env.signingTime);
    if (p) problems.push({ code: 'expired', reason: `${p}, so it was not valid at the signing time ${env.signingTime.toISOString()}` });
  }
  const type = env.signingScheme === 'notary.x509' ? 'ca' : 'signingAuthority';
  const refs = (policy.trustStores ?? []).filter((r) => r.startsWith(`${type}:`));
  if (!refs.length) {
    problems.push({
      code: 'untrusted_signer',
      reason: `trust policy ${policy.name} names no ${type} trust store, which signing scheme ${env.signingScheme} needs`,
    });
  } else {
    const missing: string[] = [];
    const anchors: Uint8Array[] = [];
    for (const ref of refs) {
      const name = ref.slice(type.length + 1);
      const store = trust.trustStores.find((s) => s.type === type && s.name === name);
      if (!store) missing.push(ref);
      for (const pem of store?.certificates ?? []) {
        try {
          anchors.push(...parsePemCertificates(pem));
        } catch {
          // an unreadable trust store entry confers no trust
        }
      }
    }
    if (!leadsTo(chain, anchors)) {
      const names = refs.length === 1 ? `trust store ${refs[0]}` : `any of the trust stores ${refs.join(', ')}`;
      const note = missing.length ? ` (not configured: ${missing.join(', ')})` : '';
      problems.push({ code: 'untrusted_signer', reason: `certificate chain does not lead to ${names}${note}` });
    }
  }
  const identities = policy.trustedIdentities ?? [];
  if (!identities.includes('*')) {
    const wanted = identities.map((id) => parseDn(id.replace(/^x509\.subject:/, '')));
    const subject = subjectOf(leaf.x509);
    if (!wanted.some((w) => dnMatches(w, subject))) {
      problems.push({
        code: 'untrusted_signer',
        reason: `signed by ${leaf.name}, but trust policy ${policy.name} trusts only ${wanted.map(formatDn).join(' or ')}`,
      });
    }
  }
  return problems;
}

function authenticTimestampProblem(env: Envelope, chain: Cert[], now: Date): string | undefined {
  if (env.signingScheme === 'notary.x509.signingAuthority') {
    const at = env.authenticSigningTime ?? now;
    const p = validityProblem(chain, at);
    return p && `${p}, so it was not valid at the authentic signing time ${at.toISOString()}`;
  }
  const p = validityProblem(chain, now);
  if (!p) return undefined;
  const why = env.hasTimestampSignature ? 'the timestamp countersignature is not verified by Custody' : 'the signature has no timestamp countersignature';
  return `${p}, and ${why}, so every certificate must be valid now`;
}

async function run(input: NotaryInput, trust: NotaryTrust, now: Date): Promise<Verdict> {
  const details: Record<string, unknown> = { envelopeType: input.envelopeType };
  if (trust.trustPolicy === undefined) return { verified: false, code: 'no_trust_configured', reason: 'no Notary trust policy is configured', details };
  let policy: TrustPolicy | undefined;
  try {
    policy = selectPolicy(parseTrustPolicy(trust.trustPolicy), input.repository);
  } catch (err) {
    return { verified: false, code: 'trust_invalid', reason: `invalid trust policy: ${(err as Error).message}`, details };
  }
  if (!policy) return { verified: false, code: 'no_trust_configured', reason: `no trust policy covers repository ${input.repository}`, details };
  const level = policy.signatureVerification.level;
  Object.assign(details, { trustPolicy: policy.name, level });
  if (level === 'skip') return { verified: false, code: 'policy_skipped', reason: `trust policy ${policy.name} skips verification`, details };
  const actions = actionsOf(policy);
  const logged: string[] = [];
  const fail = (check: Check, { code, reason }: Finding) => {
    if (actions[check] === 'enforce') throw new Enforced(code, reason);
    if (actions[check] === 'log') logged.push(`${reason} (logged, not enforced)`);
  };

  let signer: string | undefined;
  try {
    const env = readEnvelope(input);
    Object.assign(details, {
      signingScheme: env.signingScheme,
      signingTime: iso(env.signingTime),
      authenticSigningTime: iso(env.authenticSigningTime),
      expiry: iso(env.expiry),
    });
    const chain = parseChain(env.certificates);
    const leaf = chain[0];
    if (!leaf) throw new EnvelopeError('the envelope holds no certificates');
    details.certificateNotAfter = leaf.x509.notAfter.toISOString();
    await checkIntegrity(env, leaf, input.subject);
    signer = leaf.name;
    for (const p of authenticityProblems(env, chain, policy, trust)) fail('authenticity', p);
    if (env.expiry && now >= env.expiry) fail('expiry', { code: 'expired', reason: `signature expired at ${env.expiry.toISOString()}` });
    const stamp = authenticTimestampProblem(env, chain, now);
    if (stamp) fail('authenticTimestamp', { code: 'expired', reason: stamp });
    if (env.hasTimestampSignature) details.timestampSignature = 'present, not verified (RFC 3161 countersignatures are not supported)';
  } catch (err) {
    if (err instanceof Enforced || err instanceof EnvelopeError) {
      return {
        verified: false,
        ...(signer ? { signer } : {}),
        code: err.code,
        reason: err.message,
        details: { ...details, ...(logged.length ? { logged } : {}) },
      };
    }
    throw err;
  }
  details.revocation = actions.revocation === 'skip' ? 'skipped by trust policy' : 'not checked';
  if (logged.length) details.logged = logged;
  const reason = logged.length
    ? `verified (${level}): ${logged.join('; ')}`
    : `verified (${level}): signed by ${signer ?? 'an unknown signer'}, trusted by trust policy ${policy.name}`;
  return { verified: true, ...(signer ? { signer } : {}), code: logged.length ? 'verified_with_warnings' : 'verified', reason, details };
}

/** Never throws: malformed, tampered or untrusted signatures are `verified: false` with a reason. */
export async function verifyNotarySignature(input: NotaryInput, trust: NotaryTrust, now: Date = new Date()): Promise<Verdict> {
  try {
    return await run(input, trust, now);
  } catch (err) {
    return {
      verified: false,
      code: 'verification_error',
      reason: `the Notary signature could not be verified: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}
