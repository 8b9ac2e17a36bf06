/**
 * Parsing and validating manifests of every supported media type. The parse says what the
 * manifest references, so the store can refuse it while a reference is missing.
 */
import { maxJsonDepth, nestsDeeperThan } from '../json-limits.ts';
import { z } from 'zod';
import { parseDigest } from './digest.ts';
import { OciError } from './errors.ts';
import { imageManifestTypes, indexTypes, isForeignLayer, mediaTypes } from './mediatypes.ts';

const annotations = z.record(z.string(), z.string());

const descriptor = z.looseObject({
  mediaType: z.string().min(1),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: annotations.optional(),
  artifactType: z.string().optional(),
});

const imageManifest = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptor,
  layers: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});

const imageIndex = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});

export interface ParsedManifest {
  mediaType: string;
  blobs: string[];
  manifests: string[];
  subject?: string;
  /** what the referrers API shows: artifactType, else the config's media type */
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** Manifest media types that a client may send as Content-Type and get back. */
export const manifestTypes: ReadonlySet<string> = new Set([...imageManifestTypes, ...indexTypes]);

export function parseManifest(content: Uint8Array, contentType: string | undefined): ParsedManifest {
  // Real manifests nest a few levels; megabytes of `[[[…` would hold the event loop for seconds.
  if (nestsDeeperThan(content)) throw new OciError('MANIFEST_INVALID', `manifest nests too deeply (more than ${maxJsonDepth} levels of objects and arrays)`);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('utf8'));
  } catch (err) {
    throw new OciError('MANIFEST_INVALID', `manifest is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new OciError('MANIFEST_INVALID', 'manifest must be a JSON object');
  }
  const mediaType = resolveMediaType(json as Record<string, unknown>, contentType);
  if (imageManifestTypes.has(mediaType)) return parseImageManifest(json, mediaType);
  return parseIndex(json, mediaType);
}

function resolveMediaType(json: Record<string, unknown>, contentType: string | undefined): string {
  const header = contentType?.split(';')[0]?.trim().toLowerCase();
  const declared = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  const known = (t: string | undefined) => t !== undefined && manifestTypes.has(t);
  for (const t of [header, declared]) {
    if (t === mediaTypes.dockerSchema1 || t === mediaTypes.dockerSchema1Signed || json.schemaVersion === 1) {
      throw new OciError('MANIFEST_INVALID', 'Docker schema 1 manifests are not supported: push schema 2 or OCI manifests');
    }
  }
  if (known(header) && declared !== undefined && declared !== header) {
    throw new OciError('MANIFEST_INVALID', `manifest mediaType ${JSON.stringify(declared)} does not match Content-Type ${JSON.stringify(header)}`);
  }
  if (known(header)) return header as string;
  if (known(declared)) return declared as string;
  if (declared !== undefined) throw new OciError('MANIFEST_INVALID', `unsupported manifest media type ${JSON.stringify(declared)}`);
  if (header !== undefined && header !== 'application/json' && header !== 'application/octet-stream') {
    throw new OciError('MANIFEST_INVALID', `unsupported manifest media type ${JSON.stringify(header)}`);
  }
  // An OCI manifest may leave out mediaType; tell an index from an image manifest by its fields.
  return Array.isArray(json.manifests) ? mediaTypes.ociIndex : mediaTypes.ociManifest;
}

function parseImageManifest(json: unknown, mediaType: string): ParsedManifest {
  const m = check(imageManifest, json, mediaType);
  if (mediaType === mediaTypes.dockerManifest && m.mediaType !== mediaType) {
    throw new OciError('MANIFEST_INVALID', 'a Docker schema 2 manifest must carry its mediaType');
  }
  const layers = m.layers.filter((l) => !isForeignLayer(l.mediaType, l.urls));
  return {
    mediaType,
    blobs: [digestIn(m.config.digest, 'config'), ...layers.map((l, i) => digestIn(l.digest, `layers[${i}]`))],
    manifests: [],
    subject: m.subject && digestIn(m.subject.digest, 'subject'),
    artifactType: m.artifactType ?? m.config.mediaType,
    annotations: m.annotations,
  };
}

function parseIndex(json: unknown, mediaType: string): ParsedManifest {
  const m = check(imageIndex, json, mediaType);
  if (mediaType === mediaTypes.dockerManifestList && m.mediaType !== mediaType) {
    throw new OciError('MANIFEST_INVALID', 'a Docker manifest list must carry its mediaType');
  }
  return {
    mediaType,
    blobs: [],
    manifests: m.manifests.map((d, i) => digestIn(d.digest, `manifests[${i}]`)),
    subject: m.subject && digestIn(m.subject.digest, 'subject'),
    artifactType: m.artifactType,
    annotations: m.annotations,
  };
}

function check<T>(schema: z.ZodType<T>, json: unknown, mediaType: string): T {
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'manifest';
    throw new OciError('MANIFEST_INVALID', `invalid ${mediaType}: ${where}: ${issue?.message ?? 'invalid'}`, { detail: result.error.issues.slice(0, 10) });
  }
  return result.data;
}

function digestIn(value: string, where: string): string {
  try {
    return parseDigest(value).value;
  } catch (err) {
    throw new OciError('MANIFEST_INVALID', `${where}: ${(err as Error).message}`);
  }
}
