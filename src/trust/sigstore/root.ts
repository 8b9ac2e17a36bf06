/**
 * The operator's Sigstore trusted_root.json, parsed with a schema and turned into the trust
 * material @sigstore/verify checks against (Fulcio CAs, Rekor and CT log keys, TSAs). Nothing
 * is fetched: the root is what the namespace was configured with.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { X509Certificate } from '@sigstore/core';
import type { TrustMaterial } from '@sigstore/verify';
import { z } from 'zod';

type CertAuthority = TrustMaterial['certificateAuthorities'][number];
type TLogAuthority = TrustMaterial['tlogs'][number];

const BEGINNING = new Date(0);
const END = new Date(8_640_000_000_000_000);

const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'expected base64');
const validFor = z.object({ start: z.iso.datetime({ offset: true }).optional(), end: z.iso.datetime({ offset: true }).optional() }).optional();
const logSchema = z.object({
  baseUrl: z.string().default(''),
  publicKey: z.object({ rawBytes: base64, keyDetails: z.string().optional(), validFor }),
  logId: z.object({ keyId: base64 }),
  checkpointKeyId: z.object({ keyId: base64 }).optional(),
});
const caSchema = z.object({
  certChain: z.object({ certificates: z.array(z.object({ rawBytes: base64 })).min(1) }),
  validFor,
});
const rootSchema = z.object({
  mediaType: z.string().startsWith('application/vnd.dev.sigstore.trustedroot').optional(),
  tlogs: z.array(logSchema).default([]),
  certificateAuthorities: z.array(caSchema).default([]),
  ctlogs: z.array(logSchema).default([]),
  timestampAuthorities: z.array(caSchema).default([]),
});

export type RootResult = { ok: true; material: TrustMaterial } | { ok: false; reason: string };

const cache = new WeakMap<object, RootResult>();

/** Trust material for a configured root, or why it cannot be used. Results are cached per root object. */
export function loadTrustedRoot(root: unknown): RootResult {
  if (typeof root === 'object' && root !== null) {
    const hit = cache.get(root);
    if (hit) return hit;
    const result = parseRoot(root);
    cache.set(root, result);
    return result;
  }
  return parseRoot(root);
}

/** Material with no CAs, logs or TSAs: enough for key-signed signatures that carry no Rekor entry. */
export function emptyMaterial(): TrustMaterial {
  return { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [], publicKey: noKey };
}

function noKey(hint: string): never {
  throw new Error(`no public key for hint ${hint}`);
}

function parseRoot(root: unknown): RootResult {
  const parsed = rootSchema.safeParse(root);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? issue.path.join('.') || 'the document' : 'the document';
    return { ok: false, reason: `the configured Sigstore trusted root is not a valid trusted_root.json (${where}: ${issue?.message ?? 'invalid'})` };
  }
  try {
    const r = parsed.data;
    return {
      ok: true,
      material: {
        certificateAuthorities: r.certificateAuthorities.map(toCA),
        timestampAuthorities: r.timestampAuthorities.map(toCA),
        tlogs: r.tlogs.map(toLog),
        ctlogs: r.ctlogs.map(toLog),
        publicKey: noKey,
      },
    };
  } catch (err) {
    return { ok: false, reason: `the configured Sigstore trusted root holds a certificate or key that cannot be read (${(err as Error).message})` };
  }
}

function window(v: z.infer<typeof validFor>): { start: Date; end: Date } {
  return { start: v?.start ? new Date(v.start) : BEGINNING, end: v?.end ? new Date(v.end) : END };
}

function toCA(ca: z.infer<typeof caSchema>): CertAuthority {
  return {
    certChain: ca.certChain.certificates.map((c) => X509Certificate.parse(Buffer.from(c.rawBytes, 'base64'))),
    validFor: window(ca.validFor),
  };
}

function toLog(log: z.infer<typeof logSchema>): TLogAuthority {
  return {
    baseURL: log.baseUrl,
    logID: Buffer.from((log.checkpointKeyId ?? log.logId).keyId, 'base64'),
    publicKey: readKey(Buffer.from(log.publicKey.rawBytes, 'base64'), log.publicKey.keyDetails),
    validFor: window(log.publicKey.validFor),
  };
}

function readKey(der: Buffer, details: string | undefined): KeyObject {
  if (details?.startsWith('PKCS1_')) return createPublicKey({ key: der, format: 'der', type: 'pkcs1' });
  try {
    return createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    return createPublicKey({ key: der, format: 'der', type: 'pkcs1' });
  }
}
