/**
 * Which pushed manifests are signatures, attestations or SBOMs, and what they are about. Two
 * ways in: an OCI 1.1 referrer (a manifest with a `subject`), and cosign's legacy tags
 * (`sha256-<hex>.sig`, `.att`, `.sbom`) whose name is the subject. Cheap and synchronous: it
 * runs on the push path; verifying is left to the worker.
 */
import { z } from 'zod';
import type { ArtifactKind } from '../meta/trust.ts';
import { isSigstoreBundle, sbomFormat, trustTypes } from './mediatypes.ts';
import type { SubjectRef } from './verdict.ts';

export const layerSchema = z.looseObject({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const artifactManifestSchema = z.looseObject({
  artifactType: z.string().optional(),
  config: z.looseObject({ mediaType: z.string() }).optional(),
  layers: z.array(layerSchema).optional(),
  subject: z.looseObject({ mediaType: z.string(), digest: z.string(), size: z.number().int().nonnegative() }).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export type Layer = z.infer<typeof layerSchema>;
export type ArtifactManifest = z.infer<typeof artifactManifestSchema>;

export interface Classified {
  subject: SubjectRef;
  kind: ArtifactKind;
  format: string;
  /** 'referrer', or the legacy tag */
  via: string;
}

/** cosign's legacy tags: `<alg>-<hex>.sig|att|sbom` name their subject `<alg>:<hex>`. */
export const legacyTag = /^(sha256|sha512)-([a-f0-9]{64}|[a-f0-9]{128})\.(sig|att|sbom)$/;

/** A manifest's JSON, when it parses as an image manifest; undefined otherwise. */
export function readArtifactManifest(content: Uint8Array): ArtifactManifest | undefined {
  try {
    const parsed = artifactManifestSchema.safeParse(JSON.parse(Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function classify(content: Uint8Array, tag?: string): Classified | undefined {
  const legacy = tag === undefined ? null : legacyTag.exec(tag);
  // Most pushes are plain images: skip parsing unless a subject or a legacy tag says otherwise.
  if (!legacy && !mentionsSubject(content)) return undefined;
  const manifest = readArtifactManifest(content);
  if (!manifest) return undefined;
  const found = formatOf(manifest, legacy?.[3]);
  if (!found) return undefined;
  if (legacy) return { ...found, subject: { digest: `${legacy[1]}:${legacy[2]}` }, via: `tag:${tag}` };
  if (!manifest.subject) return undefined;
  return { ...found, subject: { digest: manifest.subject.digest, mediaType: manifest.subject.mediaType, size: manifest.subject.size }, via: 'referrer' };
}

/** What the layers (and the artifact type) say the artifact is. */
function formatOf(m: ArtifactManifest, legacySuffix?: string): { kind: ArtifactKind; format: string } | undefined {
  const layers = m.layers ?? [];
  const artifactType = m.artifactType ?? m.config?.mediaType ?? '';
  const has = (test: (t: string) => boolean) => layers.some((l) => test(l.mediaType));
  if (has((t) => t === trustTypes.cosignSimpleSigning)) return { kind: 'signature', format: 'cosign' };
  // A bundle may be a signature or an attestation: the worker refines the kind once it has read it.
  if (has(isSigstoreBundle) || isSigstoreBundle(artifactType)) return { kind: legacySuffix === 'att' ? 'attestation' : 'signature', format: 'sigstore-bundle' };
  if (artifactType === trustTypes.notarySignature) {
    if (has((t) => t === trustTypes.jws)) return { kind: 'signature', format: 'notary-jws' };
    if (has((t) => t === trustTypes.cose)) return { kind: 'signature', format: 'notary-cose' };
  }
  if (has((t) => t === trustTypes.dsse)) return { kind: 'attestation', format: 'dsse' };
  const sbom = sbomFormat(artifactType) ?? layers.map((l) => sbomFormat(l.mediaType)).find(Boolean);
  if (sbom) return { kind: 'sbom', format: sbom };
  return undefined;
}

// "subject" appears in every manifest that has one; a byte search saves a JSON parse per image push.
const subjectKey = Buffer.from('"subject"');
function mentionsSubject(content: Uint8Array): boolean {
  return Buffer.from(content.buffer, content.byteOffset, content.byteLength).includes(subjectKey);
}
