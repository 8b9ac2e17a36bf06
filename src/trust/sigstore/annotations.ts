/**
 * cosign's legacy layer annotations: the signature, the Fulcio certificate (keyless), the Rekor
 * bundle (an inclusion promise for one log entry) and an RFC 3161 timestamp, turned into the key,
 * Rekor entries and timestamps of a signed entity.
 */
import type { TransparencyLogEntry } from '@sigstore/bundle';
import { RFC3161Timestamp, X509Certificate } from '@sigstore/core';
import type { SignedEntity } from '@sigstore/verify';
import { z } from 'zod';
import { jsonTooCostly } from '../../json-limits.ts';
import type { Finding } from '../verdict.ts';

export const COSIGN_SIGNATURE = 'dev.cosignproject.cosign/signature';
export const COSIGN_CERTIFICATE = 'dev.sigstore.cosign/certificate';
export const COSIGN_CHAIN = 'dev.sigstore.cosign/chain';
export const COSIGN_BUNDLE = 'dev.sigstore.cosign/bundle';
export const COSIGN_TIMESTAMP = 'dev.sigstore.cosign/rfc3161timestamp';

export interface LegacyMaterial {
  key: SignedEntity['key'];
  tlogEntries: TransparencyLogEntry[];
  timestamps: SignedEntity['timestamps'];
}

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');
const rekorBundleSchema = z.object({
  SignedEntryTimestamp: base64.min(1),
  Payload: z.object({
    body: base64.min(1),
    integratedTime: z.number().int().positive(),
    logIndex: z.number().int().nonnegative(),
    logID: z.string().regex(/^[0-9a-fA-F]+$/),
  }),
});
const bodySchema = z.object({ kind: z.string(), apiVersion: z.string() });
const timestampSchema = z.object({ SignedRFC3161Timestamp: base64.min(1) });

export type Read<T> = { ok: true; value: T } | ({ ok: false } & Finding);

/** The verification material in the annotations; `tsaOverSignature` says whether a timestamp there covers the signature bytes. */
export function readLegacyMaterial(annotations: Record<string, string>, tsaOverSignature: boolean): Read<LegacyMaterial> {
  let key: SignedEntity['key'] = { $case: 'public-key', hint: '' };
  const pem = annotations[COSIGN_CERTIFICATE];
  if (pem !== undefined && pem.trim() !== '') {
    try {
      key = { $case: 'certificate', certificate: X509Certificate.parse(pem) };
    } catch {
      return { ok: false, code: 'malformed', reason: `the ${COSIGN_CERTIFICATE} annotation is not a PEM certificate` };
    }
  }
  const tlogEntries: TransparencyLogEntry[] = [];
  const timestamps: SignedEntity['timestamps'] = [];
  const bundle = annotations[COSIGN_BUNDLE];
  if (bundle !== undefined && bundle.trim() !== '') {
    const entry = readRekorBundle(bundle);
    if (!entry.ok) return entry;
    tlogEntries.push(entry.value);
    timestamps.push({ $case: 'transparency-log', tlogEntry: entry.value });
  }
  const ts = annotations[COSIGN_TIMESTAMP];
  if (ts !== undefined && ts.trim() !== '') {
    if (!tsaOverSignature) {
      // On attestations cosign timestamps the envelope, not the signature: not checked here. A key
      // needs no signing time and a Rekor bundle proves it; otherwise the timestamp cannot stand in.
      if (tlogEntries.length > 0 || key.$case === 'public-key') return { ok: true, value: { key, tlogEntries, timestamps } };
      return {
        ok: false,
        code: 'unsupported',
        reason: 'RFC 3161 timestamps on legacy cosign attestations are not supported: the attestation needs a Rekor bundle',
      };
    }
    const parsed = readTimestamp(ts);
    if (!parsed.ok) return parsed;
    timestamps.push({ $case: 'timestamp-authority', timestamp: parsed.value });
  }
  return { ok: true, value: { key, tlogEntries, timestamps } };
}

function readRekorBundle(text: string): Read<TransparencyLogEntry> {
  const parsed = rekorBundleSchema.safeParse(parseJSON(text));
  const invalid = {
    ok: false as const,
    code: 'malformed' as const,
    reason: `the ${COSIGN_BUNDLE} annotation is not a Rekor bundle ({"SignedEntryTimestamp", "Payload": {body, integratedTime, logIndex, logID}})`,
  };
  if (!parsed.success) return invalid;
  const { SignedEntryTimestamp, Payload } = parsed.data;
  const body = Buffer.from(Payload.body, 'base64');
  const kind = bodySchema.safeParse(parseJSON(body.toString('utf8')));
  if (!kind.success) return invalid;
  return {
    ok: true,
    value: {
      logIndex: String(Payload.logIndex),
      logId: { keyId: Buffer.from(Payload.logID, 'hex') },
      kindVersion: { kind: kind.data.kind, version: kind.data.apiVersion },
      integratedTime: String(Payload.integratedTime),
      inclusionPromise: { signedEntryTimestamp: Buffer.from(SignedEntryTimestamp, 'base64') },
      inclusionProof: undefined,
      canonicalizedBody: body,
    },
  };
}

function readTimestamp(text: string): Read<RFC3161Timestamp> {
  const parsed = timestampSchema.safeParse(parseJSON(text));
  if (parsed.success) {
    try {
      return { ok: true, value: RFC3161Timestamp.parse(Buffer.from(parsed.data.SignedRFC3161Timestamp, 'base64')) };
    } catch {
      // reported below
    }
  }
  return { ok: false, code: 'malformed', reason: `the ${COSIGN_TIMESTAMP} annotation is not an RFC 3161 timestamp ({"SignedRFC3161Timestamp": base64})` };
}

/** Undefined when the text is not JSON, or is shaped as no envelope or bundle is (see src/json-limits.ts). */
export function parseJSON(text: string): unknown {
  if (jsonTooCostly(text)) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
