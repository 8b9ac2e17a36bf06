/**
 * Signing and reading metadata files. A file is stored exactly as it is served; what a client
 * checks (length and hashes in snapshot and timestamp) is computed from those bytes.
 */
import { createHash } from 'node:crypto';
import { Metadata, MetadataKind, MetaFile, type Root, type Signature, type Snapshot, type Targets, type Timestamp } from '@tufjs/models';
import type { TufMetadataRecord, TufRole } from '../../meta/tuf.ts';

export type RoleTypes = { root: Root; targets: Targets; snapshot: Snapshot; timestamp: Timestamp };

/** A published version: the stored file and its parsed form. */
export interface Published<R extends TufRole> {
  record: TufMetadataRecord;
  metadata: Metadata<RoleTypes[R]>;
}

/** `expires` as TUF writes it (whole seconds, UTC) and the same time in ms. */
export function expiry(now: number, seconds: number): { iso: string; ms: number } {
  const ms = Math.floor(now / 1000) * 1000 + seconds * 1000;
  return { iso: new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'), ms };
}

/** Signs metadata with each signer and makes the record to store. */
export function seal<R extends TufRole>(
  namespace: string,
  role: R,
  signed: RoleTypes[R],
  signers: ((data: Buffer) => Signature)[],
  times: { createdAt: number; expiresAt: number },
): Published<R> {
  const metadata = new Metadata<RoleTypes[R]>(signed);
  for (const s of signers) metadata.sign(s);
  const record: TufMetadataRecord = { namespace, role, version: signed.version, json: JSON.stringify(metadata.toJSON()), ...times };
  return { record, metadata };
}

const kinds = { root: MetadataKind.Root, targets: MetadataKind.Targets, snapshot: MetadataKind.Snapshot, timestamp: MetadataKind.Timestamp } as const;

export function parsePublished<R extends TufRole>(role: R, record: TufMetadataRecord): Published<R> {
  // The overloads of fromJSON are per kind; the record's role says which one this is.
  const metadata = Metadata.fromJSON(kinds[role] as MetadataKind.Root, JSON.parse(record.json) as Record<string, never>) as unknown as Metadata<RoleTypes[R]>;
  return { record, metadata };
}

/** What snapshot says of targets.json, and timestamp of snapshot.json: version, length, sha256. */
export function metaFileOf(record: TufMetadataRecord): MetaFile {
  const bytes = Buffer.from(record.json);
  return new MetaFile({ version: record.version, length: bytes.byteLength, hashes: { sha256: createHash('sha256').update(bytes).digest('hex') } });
}

/** Less than half of its lifetime left: time to sign a new version. */
export const stale = (record: TufMetadataRecord, now: number): boolean => record.expiresAt - now < (record.expiresAt - record.createdAt) / 2;
