/**
 * The trust document a namespace admin sends to PUT /api/v1/namespaces/<ns>/trust: the
 * NamespaceTrust shape with everything inline (PEM texts, the trusted root and the trust policy
 * as JSON). Checked whole before it is stored, so a bad key is refused, not discovered later.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { parseTrustPolicy } from './notary/policy.ts';
import { identityPattern } from './sigstore/identity.ts';
import type { KeylessIdentity, NamespaceTrust } from './verdict.ts';

const pemKey = z.string().refine((pem) => {
  try {
    createPublicKey(pem);
    return pem.includes('-----BEGIN PUBLIC KEY-----');
  } catch {
    return false;
  }
}, 'not a PEM public key (-----BEGIN PUBLIC KEY-----)');

const pemCertificate = z.string().refine((pem) => {
  try {
    new X509Certificate(pem);
    return true;
  } catch {
    return false;
  }
}, 'not a PEM certificate');

/** Identity and issuer patterns are RE2, compiled as the matcher compiles them (sigstore/identity.ts). */
const re2Pattern = z
  .string()
  .min(1)
  .superRefine((p, ctx) => {
    const compiled = identityPattern(p);
    if (!compiled.ok)
      ctx.addIssue({
        code: 'custom',
        message: `not a regular expression in RE2 syntax, which identity patterns must use (no backreferences or lookaround): ${compiled.error}`,
      });
  });

/**
 * A document stored before patterns had to be RE2 may hold one RE2 refuses: it still loads, and
 * that entry never matches (the matcher cannot compile it), instead of failing the whole namespace.
 */
const storedPattern = z.string().min(1);

const identityOf = (pattern: z.ZodType<string>) =>
  z
    .strictObject({
      identity: z.string().min(1).optional(),
      identityPattern: pattern.optional(),
      issuer: z.string().min(1).optional(),
      issuerPattern: pattern.optional(),
    })
    .refine((i) => (i.identity === undefined) !== (i.identityPattern === undefined), 'give exactly one of identity and identityPattern')
    .refine(
      (i) => (i.issuer === undefined) !== (i.issuerPattern === undefined),
      'give exactly one of issuer and issuerPattern: an identity means nothing without its OIDC issuer',
    );

const notTrustedRoot = 'not a Sigstore trusted_root.json (its mediaType must be application/vnd.dev.sigstore.trustedroot…)';
const trustedRoot = z.looseObject(
  { mediaType: z.string({ error: notTrustedRoot }).startsWith('application/vnd.dev.sigstore.trustedroot', notTrustedRoot) },
  { error: notTrustedRoot },
);

const trustPolicy = z.unknown().transform((doc, ctx) => {
  try {
    parseTrustPolicy(doc);
    return doc;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `trust policy: ${(err as Error).message}` });
    return z.NEVER;
  }
});

const documentSchema = (pattern: z.ZodType<string>) =>
  z.strictObject({
    sigstore: z
      .strictObject({
        publicKeys: z.array(z.strictObject({ name: z.string().min(1).max(128), pem: pemKey })).default([]),
        identities: z.array(identityOf(pattern)).default([]),
        trustedRoot: trustedRoot.optional(),
      })
      .default({ publicKeys: [], identities: [] }),
    notary: z
      .strictObject({
        trustStores: z
          .array(
            z.strictObject({ type: z.enum(['ca', 'signingAuthority', 'tsa']), name: z.string().min(1).max(128), certificates: z.array(pemCertificate).min(1) }),
          )
          .default([]),
        trustPolicy: trustPolicy.optional(),
      })
      .default({ trustStores: [] }),
  });

/** What PUT /trust and the config file's trust must satisfy. */
export const trustDocumentSchema = documentSchema(re2Pattern);
const storedDocumentSchema = documentSchema(storedPattern);

/**
 * A checked document as the verifiers take it. Throws zod's error for a bad one. `stored`: one
 * accepted earlier, read back from the database (see storedPattern).
 */
export function toNamespaceTrust(document: unknown, options: { stored?: boolean } = {}): NamespaceTrust {
  const d = (options.stored ? storedDocumentSchema : trustDocumentSchema).parse(document);
  const identities: KeylessIdentity[] = d.sigstore.identities.map((i) => ({ ...i }));
  return {
    sigstore: { publicKeys: d.sigstore.publicKeys, identities, ...(d.sigstore.trustedRoot ? { trustedRoot: d.sigstore.trustedRoot } : {}) },
    notary: { trustStores: d.notary.trustStores, ...(d.notary.trustPolicy !== undefined ? { trustPolicy: d.notary.trustPolicy } : {}) },
  };
}
