/**
 * Keyless identity patterns are matched with RE2 (re2js): a pattern that makes a backtracking
 * engine take exponential time, such as `(a+)+b`, is accepted and matched in time linear in the
 * SAN; syntax that needs backtracking (backreferences, lookaround) is refused when the trust is
 * set. Before the fix the first test never finished (V8's backtracking needs ~2^n steps).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openMetaStore } from '../../src/meta/open.ts';
import { TrustResolver } from '../../src/trust/config.ts';
import { toNamespaceTrust, trustDocumentSchema } from '../../src/trust/document.ts';
import { findIdentity, identityPattern } from '../../src/trust/sigstore/identity.ts';

const ISSUER = 'https://issuer.example';

describe('keyless identity patterns (RE2)', () => {
  // The timeout is only a guard: a backtracking engine would never get here, a linear one at once.
  it('matches (a+)+b against 100 000 a (no b) without backtracking', { timeout: 30_000 }, () => {
    const trust = toNamespaceTrust({ sigstore: { identities: [{ identityPattern: '(a+)+b', issuerPattern: '(a+)+b' }] } });
    const identities = trust.sigstore.identities;
    expect(findIdentity(identities, { san: 'a'.repeat(100_000), issuer: ISSUER })).toBeUndefined();
    expect(findIdentity(identities, { san: 'a'.repeat(10_000), issuer: 'a'.repeat(10_000) })).toBeUndefined();
    expect(findIdentity(identities, { san: `${'a'.repeat(100_000)}b`, issuer: `${'a'.repeat(10_000)}b` })).toBe(identities[0]);
  });

  it('anchors patterns at both ends, as before', () => {
    const match = (identityPattern: string, san: string) => findIdentity([{ identityPattern, issuer: ISSUER }], { san, issuer: ISSUER }) !== undefined;
    expect(
      match(
        'https://github\\.com/acme/.+/\\.github/workflows/release\\.yml@refs/tags/v.*',
        'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0',
      ),
    ).toBe(true);
    expect(match('.*@example\\.com', 'alice@example.com')).toBe(true);
    expect(match('.*@example\\.com', 'alice@example.com.evil')).toBe(false);
    expect(match('github\\.com/acme', 'https://github.com/acme/app')).toBe(false);
    expect(match('a|ab', 'ab')).toBe(true);
    expect(match('a|ab', 'abc')).toBe(false);
    expect(match('.+', 'line\nbreak')).toBe(false);
  });

  it('compiles each pattern once', () => {
    const first = identityPattern('https://ci\\.example/.+');
    expect(first.ok).toBe(true);
    expect(identityPattern('https://ci\\.example/.+')).toBe(first);
  });

  it('refuses, naming the field, what RE2 cannot match in linear time', () => {
    const refused = [
      [{ identityPattern: '(a)\\1', issuer: ISSUER }, 'sigstore.identities.0.identityPattern', /invalid escape sequence/],
      [{ identity: 'alice@example.com', issuerPattern: 'https://(?=x).*' }, 'sigstore.identities.0.issuerPattern', /unsupported Perl syntax/],
      [{ identityPattern: '(?<!x)a', issuer: ISSUER }, 'sigstore.identities.0.identityPattern', /invalid named capture/],
      [{ identityPattern: '(', issuer: ISSUER }, 'sigstore.identities.0.identityPattern', /missing closing \)/],
    ] as const;
    for (const [entry, field, detail] of refused) {
      const result = trustDocumentSchema.safeParse({ sigstore: { identities: [entry] } });
      expect(result.success, JSON.stringify(entry)).toBe(false);
      const issue = result.error?.issues[0];
      expect(issue?.path.join('.')).toBe(field);
      expect(issue?.message).toMatch(/RE2 syntax/);
      expect(issue?.message).toMatch(detail);
    }
  });
});

describe('trust stored before patterns had to be RE2', () => {
  it('still loads, and the entry RE2 refuses never matches', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'custody-legacy-trust-'));
    const meta = await openMetaStore(path.join(dir, 'custody.db'));
    try {
      const legacy = {
        sigstore: {
          identities: [
            { identityPattern: '(?=alice).*@example\\.com', issuer: ISSUER },
            { identity: 'bob@example.com', issuer: ISSUER },
          ],
        },
      };
      expect(() => trustDocumentSchema.parse(legacy)).toThrow(/RE2/);
      await meta.trust.putNamespaceTrust('legacy', legacy);
      const resolved = await new TrustResolver(meta.trust, { namespaces: new Map() }).resolve('legacy');
      expect(resolved.source).toBe('api');
      const identities = resolved.trust.sigstore.identities;
      expect(findIdentity(identities, { san: 'alice@example.com', issuer: ISSUER })).toBeUndefined();
      expect(findIdentity(identities, { san: 'bob@example.com', issuer: ISSUER })).toBe(identities[1]);
    } finally {
      await meta.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
