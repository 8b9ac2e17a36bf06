/**
 * Judging one artifact: read its manifest and layers, hand them to the verifier for its format,
 * and say what it found. Several layers (cosign appends one signature per `cosign sign` to the
 * same `.sig` manifest) make one verdict: verified when any layer verifies.
 */
import type { ManifestRecord, MetaStore } from '../meta/metastore.ts';
import type { ArtifactKind, TrustArtifact } from '../meta/trust.ts';
import { blobKey, parseDigest } from '../oci/digest.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { readArtifactManifest, type Layer } from './classify.ts';
import { isSigstoreBundle, trustTypes, sbomFormat } from './mediatypes.ts';
import type { DocumentReader, StatementSummary } from './reader/index.ts';
import type { NamespaceTrust, SignedPayload, SubjectRef, Verdict, VerdictCode } from './verdict.ts';
import type * as VerifiersModule from './verifiers.ts';
import type { SbomDocument } from './verifiers.ts';

type Verifiers = typeof VerifiersModule;
let verifiers: Promise<Verifiers> | undefined;
const loadVerifiers = (): Promise<Verifiers> => (verifiers ??= import('./verifiers.ts'));

export interface Judgement {
  kind: ArtifactKind;
  /** null for an SBOM: there is nothing to verify */
  verified: boolean | null;
  signer?: string;
  /** what the reason is about (docs/trust.md lists every code) */
  code: VerdictCode;
  reason: string;
  details?: Record<string, unknown>;
  sbom?: SbomDocument;
}

export interface EvaluateDeps {
  meta: MetaStore;
  blobs: BlobStore;
  /** parses SBOMs and in-toto statements, the large ones off the event loop */
  reader: DocumentReader;
}

/** Signatures and envelopes are small; SBOMs and attestations carrying them are not. */
const maxSignatureBytes = 1024 * 1024;
const maxDocumentBytes = 64 * 1024 * 1024;

/** cosign's payload for `cosign sign` in bundle form: a statement that is a signature, not an attestation. */
const cosignSignPredicate = 'https://sigstore.dev/cosign/sign/v1';

export async function evaluate(artifact: TrustArtifact, trust: NamespaceTrust, deps: EvaluateDeps): Promise<Judgement> {
  const { verifyCosignSignature, verifyDsseEnvelope, verifyNotarySignature, verifySigstoreBundle, ...v } = await loadVerifiers();
  const record = await deps.meta.getManifest(artifact.repo, artifact.digest);
  const manifest = record && readArtifactManifest(record.content);
  if (!record || !manifest)
    return { kind: artifact.kind, verified: false, code: 'artifact_missing', reason: `manifest ${artifact.digest} is no longer in ${artifact.repo}` };
  const stored = await deps.meta.getManifest(artifact.repo, artifact.subject);
  // the subject as the signature should name it: the descriptor in the store when we have it
  const subject: SubjectRef = stored
    ? { digest: artifact.subject, mediaType: stored.mediaType, size: stored.content.byteLength }
    : { digest: artifact.subject };
  const layers = manifest.layers ?? [];
  const read = (layer: Layer, limit: number) => readBlob(deps.blobs, layer, limit);
  switch (artifact.format) {
    case 'cosign':
      return combine(
        'signature',
        layers.filter((l) => l.mediaType === trustTypes.cosignSimpleSigning),
        async (l) => verifyCosignSignature({ payload: await read(l, maxSignatureBytes), annotations: l.annotations ?? {}, subject }, trust.sigstore),
      );
    case 'sigstore-bundle': {
      const subjectContent = stored?.content;
      const bundles = layers.filter((l) => isSigstoreBundle(l.mediaType));
      return combineSigned(v, deps.reader, artifact.kind, bundles, async (l) =>
        verifySigstoreBundle({ bundle: await read(l, maxDocumentBytes), subject, ...(subjectContent ? { subjectContent } : {}) }, trust.sigstore),
      );
    }
    case 'dsse':
      return combineSigned(
        v,
        deps.reader,
        artifact.kind,
        layers.filter((l) => l.mediaType === trustTypes.dsse),
        async (l) => verifyDsseEnvelope({ envelope: await read(l, maxDocumentBytes), annotations: l.annotations ?? {}, subject }, trust.sigstore),
      );
    case 'notary-jws':
    case 'notary-cose': {
      const envelopeType = artifact.format === 'notary-jws' ? trustTypes.jws : trustTypes.cose;
      return combine(
        'signature',
        layers.filter((l) => l.mediaType === envelopeType),
        async (l) => verifyNotarySignature({ envelope: await read(l, maxSignatureBytes), envelopeType, subject, repository: artifact.repo }, trust.notary),
      );
    }
    case 'cyclonedx':
    case 'spdx':
      return readSbom(v, deps.reader, layers, read, record);
    default:
      return { kind: artifact.kind, verified: false, code: 'unsupported', reason: `unknown artifact format ${artifact.format}` };
  }
}

type Read = (layer: Layer, limit: number) => Promise<Uint8Array>;

async function combine(kind: ArtifactKind, layers: Layer[], verify: (l: Layer) => Promise<Verdict>): Promise<Judgement> {
  if (layers.length === 0) return { kind, verified: false, code: 'no_signature', reason: 'the manifest has no signature layer' };
  const verdicts: Verdict[] = [];
  for (const layer of layers) verdicts.push(await guarded(() => verify(layer)));
  const chosen = verdicts.find((v) => v.verified) ?? verdicts[0]!;
  const details =
    verdicts.length === 1
      ? chosen.details
      : { ...chosen.details, layers: verdicts.map(({ verified, signer, code, reason }) => ({ verified, signer, code, reason })) };
  return {
    kind,
    verified: chosen.verified,
    ...(chosen.signer ? { signer: chosen.signer } : {}),
    code: chosen.code,
    reason: chosen.reason,
    ...(details ? { details } : {}),
  };
}

/**
 * Bundles and DSSE envelopes: the statement a verified one carries says whether it is a signature
 * or an attestation. Until then, and when it fails, it keeps the kind it was classified with, so
 * a verdict never turns an attestation into a signature.
 */
async function combineSigned(
  v: Pick<Verifiers, 'StatementError' | 'attestationKind'>,
  reader: DocumentReader,
  classified: ArtifactKind,
  layers: Layer[],
  verify: (l: Layer) => Promise<Verdict & { signed?: SignedPayload }>,
): Promise<Judgement> {
  let statement: StatementSummary | undefined;
  let statementProblem: string | undefined;
  const judged = await combine(classified, layers, async (l) => {
    const signed = await verify(l);
    if (signed.signed && !statement) {
      try {
        statement = await reader.statement(signed.signed);
      } catch (err) {
        if (!(err instanceof v.StatementError)) throw err;
        statementProblem = err.message;
      }
    }
    return signed;
  });
  if (!statement) return statementProblem ? { ...judged, details: { ...judged.details, statement: statementProblem } } : judged;
  const s = statement;
  const isSignature = s.predicateType === cosignSignPredicate;
  const facts = {
    predicateType: s.predicateType,
    attestation: v.attestationKind(s.predicateType),
    ...(s.provenance ? { provenance: s.provenance } : {}),
    ...(s.sbom ? { sbom: { format: s.sbom.format, specVersion: s.sbom.specVersion, components: s.sbom.components.length } } : {}),
    ...(s.sbomError ? { sbomError: s.sbomError } : {}),
  };
  return { ...judged, kind: isSignature ? 'signature' : 'attestation', details: { ...judged.details, ...facts }, ...(s.sbom ? { sbom: s.sbom } : {}) };
}

async function readSbom(v: Pick<Verifiers, 'SbomError'>, reader: DocumentReader, layers: Layer[], read: Read, record: ManifestRecord): Promise<Judgement> {
  const layer = layers.find((l) => sbomFormat(l.mediaType)) ?? (layers.length === 1 && sbomFormat(record.artifactType ?? '') ? layers[0] : undefined);
  if (!layer) return { kind: 'sbom', verified: null, code: 'sbom_unreadable', reason: 'the manifest has no SBOM layer' };
  try {
    const sbom = await reader.sbom(await read(layer, maxDocumentBytes), layer.mediaType);
    return {
      kind: 'sbom',
      verified: null,
      code: 'sbom_read',
      reason: `${sbom.format} ${sbom.specVersion} SBOM with ${sbom.components.length} components`,
      details: { format: sbom.format, specVersion: sbom.specVersion, components: sbom.components.length },
      sbom,
    };
  } catch (err) {
    if (err instanceof v.SbomError || err instanceof TooLarge)
      return { kind: 'sbom', verified: null, code: 'sbom_unreadable', reason: `the SBOM cannot be read: ${err.message}` };
    throw err;
  }
}

/** A verifier that throws anyway (it should not) becomes a failed verdict, not a stuck artifact. */
async function guarded(run: () => Promise<Verdict>): Promise<Verdict> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof TooLarge) return { verified: false, code: 'limit_exceeded', reason: err.message };
    return { verified: false, code: 'verification_error', reason: `verification failed: ${(err as Error).message}` };
  }
}

class TooLarge extends Error {}

async function readBlob(blobs: BlobStore, layer: Layer, limit: number): Promise<Uint8Array> {
  if (layer.size > limit) throw new TooLarge(`layer ${layer.digest} is ${layer.size} bytes, more than the ${limit} bytes read for verification`);
  const stream = await blobs.read(blobKey(parseDigest(layer.digest)));
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      stream.destroy();
      throw new TooLarge(`layer ${layer.digest} is larger than the ${limit} bytes read for verification`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
