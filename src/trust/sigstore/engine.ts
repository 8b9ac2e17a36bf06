/**
 * One signed entity (a signature, its key or certificate, its Rekor entries and timestamps), checked
 * the same way whatever format it came in: against the namespace's keys, or keyless against the
 * trusted root and the namespace's identities. Keyless certificates are judged at the signing time
 * a Rekor inclusion promise or an RFC 3161 timestamp proves, never at `now`.
 */
import { createPublicKey } from 'node:crypto';
import { RFC3161Timestamp, type X509Certificate } from '@sigstore/core';
import { Verifier, type SignedEntity, type Signer, type TrustMaterial } from '@sigstore/verify';
import type { Finding, SigstoreTrust, Verdict, VerdictCode } from '../verdict.ts';
import { explain, TAMPERED } from './explain.ts';
import { describeSigner, findIdentity, untrustedReason } from './identity.ts';
import { readKeys } from './keys.ts';
import { emptyMaterial, loadTrustedRoot } from './root.ts';

export type Facts = Record<string, unknown>;

/** Clock skew allowed between a proof of signing time and `now`. */
const SKEW_MS = 5 * 60_000;

export function verifyEntity(entity: SignedEntity, trust: SigstoreTrust, now: Date, known: Facts): Verdict {
  const unreadable = entity.timestamps.find((ts) => ts.$case === 'timestamp-authority' && Number.isNaN(tsaTime(ts.timestamp).getTime()));
  if (unreadable) {
    // @sigstore/core reads genTime only as YYYYMMDDhhmmss[.fff]Z: a DER fraction with trailing zeros cut (".12") fails.
    return fail('timestamp_invalid', 'the RFC 3161 timestamp cannot be read (its time is not in the form YYYYMMDDhhmmss[.fff]Z)', known);
  }
  const times = signingTimes(entity);
  const facts: Facts = { ...known, ...tlogFacts(entity), ...(times.length > 0 ? { signingTime: times.map((t) => t.toISOString()) } : {}) };
  const future = times.find((t) => t.getTime() > now.getTime() + SKEW_MS);
  if (future) return fail('timestamp_invalid', `the signature claims to be made at ${future.toISOString()}, after now (${now.toISOString()})`, facts);
  return entity.key.$case === 'public-key' ? keyed(entity, trust, facts) : keyless(entity, entity.key.certificate, trust, times, facts);
}

function keyed(entity: SignedEntity, trust: SigstoreTrust, facts: Facts): Verdict {
  if (trust.publicKeys.length === 0) {
    return trust.identities.length === 0
      ? fail('no_trust_configured', 'no configured key or keyless identity: the namespace trusts no signer', facts)
      : fail('untrusted_signer', 'signed with a key, but the namespace trusts only keyless identities', facts);
  }
  const { keys, unreadable } = readKeys(trust.publicKeys);
  if (unreadable.length > 0) facts.unreadableKeys = unreadable;
  const match = keys.find((k) => entity.signature.verifySignature(k.key));
  if (!match) return fail('bad_signature', TAMPERED, { ...facts, triedKeys: keys.map((k) => k.name) });
  let material = emptyMaterial();
  if (entity.tlogEntries.length > 0 || entity.timestamps.length > 0) {
    if (trust.trustedRoot === undefined || trust.trustedRoot === null) {
      return fail(
        'no_trust_configured',
        `signed with the configured key ${match.name}, but its Rekor entry or timestamp cannot be checked: ` +
          'no Sigstore trusted root is configured for this namespace',
        facts,
      );
    }
    const root = loadTrustedRoot(trust.trustedRoot);
    if (!root.ok) return fail('trust_invalid', root.reason, facts);
    material = root.material;
  }
  const withKey: TrustMaterial = { ...material, publicKey: () => ({ publicKey: match.key, validFor: () => true }) };
  try {
    new Verifier(withKey, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(entity);
  } catch (err) {
    return failWith(explain(err, undefined, []), facts);
  }
  const logged = entity.tlogEntries.length > 0 ? ', and its Rekor entry verifies' : '';
  return { verified: true, signer: `key:${match.name}`, code: 'verified', reason: `signed with the configured key ${match.name}${logged}`, details: facts };
}

function keyless(entity: SignedEntity, cert: X509Certificate, trust: SigstoreTrust, times: Date[], facts: Facts): Verdict {
  facts.certificateNotBefore = cert.notBefore.toISOString();
  facts.certificateNotAfter = cert.notAfter.toISOString();
  if (trust.trustedRoot === undefined || trust.trustedRoot === null) {
    return fail('no_trust_configured', 'keyless signature, but no Sigstore trusted root is configured for this namespace', facts);
  }
  const root = loadTrustedRoot(trust.trustedRoot);
  if (!root.ok) return fail('trust_invalid', root.reason, facts);
  const certKey = createPublicKey({ key: cert.publicKey, format: 'der', type: 'spki' });
  if (!entity.signature.verifySignature(certKey)) {
    return fail('bad_signature', "signature does not match the payload (tampered, or not made with the certificate's key)", facts);
  }
  // Rekor entries first, without the certificate: a forged integrated time must be reported as such,
  // not as a certificate that was not valid at that time (the Verifier judges the chain first).
  try {
    const logsOnly: SignedEntity = { ...entity, key: { $case: 'public-key', hint: '' }, timestamps: [] };
    const material: TrustMaterial = { ...root.material, publicKey: () => ({ publicKey: certKey, validFor: () => true }) };
    new Verifier(material, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(logsOnly);
  } catch (err) {
    return failWith(explain(err, undefined, []), facts);
  }
  const ctlogThreshold = root.material.ctlogs.length > 0 ? 1 : 0;
  let identity: Signer['identity'];
  try {
    identity = new Verifier(root.material, { tlogThreshold: 0, ctlogThreshold, timestampThreshold: 1 }).verify(entity).identity;
  } catch (err) {
    return failWith(explain(err, cert, times), facts);
  }
  const signer = { san: identity?.subjectAlternativeName, issuer: identity?.extensions?.issuer };
  const who = describeSigner(signer);
  if (!findIdentity(trust.identities, signer))
    return { verified: false, signer: who, code: 'untrusted_signer', reason: untrustedReason(trust.identities, signer), details: facts };
  return {
    verified: true,
    signer: who,
    code: 'verified',
    reason: `signed by ${who}, a trusted identity, with a certificate valid at the proven signing time`,
    details: facts,
  };
}

function fail(code: VerdictCode, reason: string, details: Facts): Verdict {
  return { verified: false, code, reason, details };
}

function failWith({ code, reason }: Finding, details: Facts): Verdict {
  return fail(code, reason, details);
}

/** The signing times the entity claims (checked later by the Verifier). */
function signingTimes(entity: SignedEntity): Date[] {
  const out: Date[] = [];
  for (const ts of entity.timestamps) {
    if (ts.$case === 'transparency-log') {
      if (ts.tlogEntry.inclusionPromise) out.push(new Date(Number(ts.tlogEntry.integratedTime) * 1000));
    } else {
      out.push(tsaTime(ts.timestamp));
    }
  }
  return out.filter((t) => !Number.isNaN(t.getTime()));
}

function tsaTime(ts: RFC3161Timestamp): Date {
  try {
    return ts.signingTime;
  } catch {
    return new Date(Number.NaN);
  }
}

function tlogFacts(entity: SignedEntity): Facts {
  const entry = entity.tlogEntries[0];
  if (!entry) return {};
  const facts: Facts = { logIndex: Number(entry.logIndex), rekorEntryKind: `${entry.kindVersion.kind}/${entry.kindVersion.version}` };
  if (entry.integratedTime && entry.integratedTime !== '0') facts.integratedTime = new Date(Number(entry.integratedTime) * 1000).toISOString();
  if (entity.tlogEntries.length > 1) facts.rekorEntries = entity.tlogEntries.length;
  return facts;
}
