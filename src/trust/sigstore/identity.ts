/** Keyless identities: how a certificate's signer is named, and whether the namespace trusts it. */
import type { KeylessIdentity } from '../verdict.ts';

export interface CertSigner {
  san: string | undefined;
  issuer: string | undefined;
}

export function describeSigner({ san, issuer }: CertSigner): string {
  return `${san ?? 'a certificate with no subject alternative name'} (issuer ${issuer ?? 'unknown'})`;
}

/** The first configured identity that matches both the SAN and the OIDC issuer, if any. */
export function findIdentity(identities: readonly KeylessIdentity[], signer: CertSigner): KeylessIdentity | undefined {
  return identities.find((id) => matches(id.identity, id.identityPattern, signer.san) && matches(id.issuer, id.issuerPattern, signer.issuer));
}

/** "bob@example.com (issuer https://…)" or "/^.*@example\.com$/ (issuer …)", for reasons. */
export function describeIdentity(id: KeylessIdentity): string {
  const who = id.identity ?? (id.identityPattern !== undefined ? `/^${id.identityPattern}$/` : 'any identity (incomplete entry, never matches)');
  const from = id.issuer ?? (id.issuerPattern !== undefined ? `/^${id.issuerPattern}$/` : 'any issuer (incomplete entry, never matches)');
  return `${who} (issuer ${from})`;
}

export function untrustedReason(identities: readonly KeylessIdentity[], signer: CertSigner): string {
  const who = `signed by ${describeSigner(signer)}`;
  if (identities.length === 0) return `${who}, but the namespace trusts no keyless identity`;
  return `${who}, but the namespace trusts only ${identities.map(describeIdentity).join('; ')}`;
}

/** An entry must constrain both identity and issuer: an exact string wins over a pattern. */
function matches(exact: string | undefined, pattern: string | undefined, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (exact !== undefined) return exact === value;
  if (pattern === undefined) return false;
  try {
    return new RegExp(`^(?:${pattern})$`, 'u').test(value);
  } catch {
    return false;
  }
}
