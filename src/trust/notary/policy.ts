/**
 * notation's trustpolicy.json (version 1.0): parsing with clear errors, choosing the policy for a
 * repository, and what each verification level does with each check.
 *
 * Scopes: Custody does not know which host name a client used to reach it, so a registry scope
 * `registry.example.com/ns/repo` matches the repository `ns/repo` (the part after the first `/`).
 */
import { z } from 'zod';
import { parseDn, type DnAttribute } from './dn.ts';

export const levels = ['strict', 'permissive', 'audit', 'skip'] as const;
export type Level = (typeof levels)[number];
export type Check = 'integrity' | 'authenticity' | 'authenticTimestamp' | 'expiry' | 'revocation';
export type Action = 'enforce' | 'log' | 'skip';

const storeRef = z.string().regex(/^(ca|signingAuthority|tsa):[A-Za-z0-9_.-]+$/, {
  error: 'must be "ca:NAME", "signingAuthority:NAME" or "tsa:NAME" (NAME of letters, digits, ".", "_", "-")',
});
const enforceOrLog = z.enum(['enforce', 'log']);

const policySchema = z.strictObject({
  name: z.string().min(1, { error: 'must be a non-empty string' }),
  registryScopes: z.array(z.string()).min(1, { error: 'must list at least one scope' }),
  signatureVerification: z.strictObject({
    level: z.enum(levels),
    override: z
      .strictObject({
        authenticity: enforceOrLog.optional(),
        authenticTimestamp: enforceOrLog.optional(),
        expiry: enforceOrLog.optional(),
        revocation: z.enum(['enforce', 'log', 'skip']).optional(),
      })
      .optional(),
    /** accepted for compatibility with newer notation documents; Custody verifies no timestamps */
    verifyTimestamp: z.enum(['always', 'afterCertExpiry']).optional(),
  }),
  trustStores: z.array(storeRef).optional(),
  trustedIdentities: z.array(z.string()).optional(),
});

const documentSchema = z.strictObject({
  version: z.literal('1.0', { error: 'must be "1.0"' }),
  trustPolicies: z.array(policySchema).min(1, { error: 'must hold at least one trust policy' }),
});

export type TrustPolicy = z.infer<typeof policySchema>;
export type TrustPolicyDocument = z.infer<typeof documentSchema>;

function pathOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out ? '.' : ''}${String(key)}`;
  return out || 'document';
}

/** The part of a scope that Custody compares with a repository name. */
const repositoryOf = (scope: string): string => scope.slice(scope.indexOf('/') + 1);

function checkPolicy(p: TrustPolicy, at: string): void {
  const scopes = p.registryScopes;
  if (scopes.includes('*') && scopes.length > 1) throw new Error(`${at}.registryScopes: "*" must be the only scope of its policy`);
  for (const [j, scope] of scopes.entries()) {
    if (scope === '*') continue;
    const slash = scope.indexOf('/');
    if (scope.includes('*')) throw new Error(`${at}.registryScopes[${j}]: "${scope}" may not contain "*" (use "*" alone for all repositories)`);
    if (slash <= 0 || slash === scope.length - 1 || /\s/.test(scope)) {
      throw new Error(`${at}.registryScopes[${j}]: "${scope}" is not a fully qualified repository such as registry.example.com/ns/repo`);
    }
  }
  const level = p.signatureVerification.level;
  const stores = p.trustStores ?? [];
  const identities = p.trustedIdentities ?? [];
  if (level === 'skip') {
    if (scopes.includes('*')) throw new Error(`${at}: a policy at level "skip" must name repositories, not "*"`);
    if (p.signatureVerification.override) throw new Error(`${at}.signatureVerification.override: level "skip" cannot be overridden`);
    if (stores.length || identities.length) throw new Error(`${at}: a policy at level "skip" must not name trust stores or trusted identities`);
    return;
  }
  if (!stores.length) throw new Error(`${at}.trustStores: must name at least one trust store`);
  if (new Set(stores).size !== stores.length) throw new Error(`${at}.trustStores: names a trust store twice`);
  if (!identities.length) throw new Error(`${at}.trustedIdentities: must list at least one identity, or "*"`);
  if (identities.includes('*')) {
    if (identities.length > 1) throw new Error(`${at}.trustedIdentities: "*" must be the only identity`);
    return;
  }
  const parsed: DnAttribute[][] = [];
  for (const [j, identity] of identities.entries()) {
    const m = /^x509\.subject:(.*)$/s.exec(identity);
    if (!m?.[1]) throw new Error(`${at}.trustedIdentities[${j}]: "${identity}" must be "*" or start with "x509.subject:"`);
    try {
      parsed.push(parseDn(m[1]));
    } catch (err) {
      throw new Error(`${at}.trustedIdentities[${j}]: ${(err as Error).message}`, { cause: err });
    }
  }
  const subset = (a: DnAttribute[], b: DnAttribute[]) => a.every((x) => b.some((y) => y.type === x.type && y.value === x.value));
  for (let a = 0; a < parsed.length; a++) {
    for (let b = a + 1; b < parsed.length; b++) {
      const x = parsed[a] ?? [];
      const y = parsed[b] ?? [];
      if (subset(x, y) || subset(y, x)) throw new Error(`${at}.trustedIdentities: entries ${a} and ${b} overlap (one certificate would match both)`);
    }
  }
}

/** Parses a trustpolicy.json document; throws an Error naming the first bad field. */
export function parseTrustPolicy(doc: unknown): TrustPolicyDocument {
  const result = documentSchema.safeParse(doc);
  if (!result.success) {
    const issue = result.error.issues[0];
    if (!issue || (issue.path.length === 0 && issue.code === 'invalid_type')) throw new Error('the document must be a JSON object');
    const message = issue.code === 'invalid_type' && /received undefined$/.test(issue.message) ? 'is required' : issue.message;
    throw new Error(`${pathOf(issue.path)}: ${message}`);
  }
  const policies = result.data.trustPolicies;
  const seenNames = new Map<string, number>();
  const seenRepos = new Map<string, string>();
  let global: string | undefined;
  for (const [i, p] of policies.entries()) {
    const at = `trustPolicies[${i}]`;
    if (seenNames.has(p.name)) throw new Error(`${at}.name: "${p.name}" is already the name of trustPolicies[${seenNames.get(p.name)}]`);
    seenNames.set(p.name, i);
    checkPolicy(p, at);
    for (const scope of p.registryScopes) {
      if (scope === '*') {
        if (global !== undefined) throw new Error(`${at}.registryScopes: only one policy may use "*", and "${global}" already does`);
        global = p.name;
        continue;
      }
      const repo = repositoryOf(scope);
      const other = seenRepos.get(repo);
      if (other !== undefined) {
        throw new Error(
          `${at}.registryScopes: "${scope}" covers repository ${repo}, which policy "${other}" already covers (Custody ignores the registry host name)`,
        );
      }
      seenRepos.set(repo, p.name);
    }
  }
  return result.data;
}

/** The policy for a repository: an exact scope first, then the global `*` policy. */
export function selectPolicy(doc: TrustPolicyDocument, repository: string): TrustPolicy | undefined {
  const exact = doc.trustPolicies.find((p) => p.registryScopes.some((s) => s !== '*' && repositoryOf(s) === repository));
  return exact ?? doc.trustPolicies.find((p) => p.registryScopes.includes('*'));
}

const table: Record<Exclude<Level, 'skip'>, Record<Check, Action>> = {
  strict: { integrity: 'enforce', authenticity: 'enforce', authenticTimestamp: 'enforce', expiry: 'enforce', revocation: 'enforce' },
  permissive: { integrity: 'enforce', authenticity: 'enforce', authenticTimestamp: 'log', expiry: 'log', revocation: 'log' },
  audit: { integrity: 'enforce', authenticity: 'log', authenticTimestamp: 'log', expiry: 'log', revocation: 'log' },
};

/** What the policy does when a check fails: the level's default, changed by `override`. */
export function actionsOf(policy: TrustPolicy): Record<Check, Action> {
  const { level, override } = policy.signatureVerification;
  if (level === 'skip') throw new Error('a skip policy performs no checks');
  return { ...table[level], ...override, integrity: 'enforce' };
}
