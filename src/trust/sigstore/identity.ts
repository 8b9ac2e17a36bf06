/**
 * Keyless identities: how a certificate's signer is named, and whether the namespace trusts it.
 * Patterns are RE2 (re2js), not JavaScript regular expressions: a namespace admin writes them and
 * the signer picks the string they are matched against, so matching must take time linear in
 * that string whatever the pattern (`(a+)+b` against 40 `a`s would hold V8's backtracking engine,
 * and with it every tenant's requests, for hours). See docs/decisions.md.
 */
import { RE2JS } from 're2js';
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
  const compiled = identityPattern(pattern);
  return compiled.ok && compiled.re.matches(value);
}

export type CompiledPattern = { ok: true; re: RE2JS } | { ok: false; error: string };

/** Compiled patterns by their text, so each is compiled once, not per signature judged. */
const compiledPatterns = new Map<string, CompiledPattern>();
const compiledPatternsKept = 512;

/**
 * An identity or issuer pattern compiled with RE2, or why RE2 refuses it (backreferences,
 * lookaround and other syntax that needs backtracking). `matches()` on the result is anchored at
 * both ends: the whole SAN or issuer must match. The trust document's schema checks patterns with
 * this same function, so what is accepted is what is matched.
 */
export function identityPattern(pattern: string): CompiledPattern {
  let compiled = compiledPatterns.get(pattern);
  if (compiled !== undefined) {
    // most recently used last, so the least recently used is the one dropped
    compiledPatterns.delete(pattern);
  } else {
    try {
      compiled = { ok: true, re: RE2JS.compile(pattern) };
    } catch (err) {
      compiled = { ok: false, error: (err as Error).message };
    }
    if (compiledPatterns.size >= compiledPatternsKept) compiledPatterns.delete(compiledPatterns.keys().next().value as string);
  }
  compiledPatterns.set(pattern, compiled);
  return compiled;
}
