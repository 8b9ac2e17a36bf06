/**
 * In-toto statements (v0.1 and v1) from a verified DSSE payload: the subjects, the predicate, and
 * what Custody reads from the two predicates it understands, SLSA provenance and SBOMs.
 *
 * Decisions:
 * - A statement that is not a well-formed in-toto statement is a StatementError. Its predicate is
 *   read leniently: a provenance field of the wrong type is left out, and an SBOM predicate that
 *   cannot be read leaves `sbom` undefined with the reason in `sbomError`. The signature and the
 *   subjects stand on their own, so the attestation is still recorded and shown.
 * - Source repositories are given as a plain URL: a `git+` prefix, an `@refs/…` or `@<commit>`
 *   suffix, a trailing `.git` and `/` are removed (`git+https://github.com/o/r@refs/heads/main`
 *   → `https://github.com/o/r`); the ref is not kept. Builder ids are kept as written (their
 *   `@refs/…` names the workflow version that built). Digests are `<algorithm>:<value>`, with the
 *   algorithm named as the provenance names it (`sha1`, `gitCommit`, …).
 */
import { z } from 'zod';
import { jsonTooCostly } from '../json-limits.ts';
import { parseSbom, SbomError, type SbomDocument } from './sbom/index.ts';
import type { SignedPayload } from './verdict.ts';

export interface Provenance {
  builderId?: string;
  sourceRepository?: string;
  sourceDigest?: string;
  buildType?: string;
}

export interface Statement {
  /** the statement's `_type` */
  type: string;
  predicateType: string;
  /** name is "" when the statement leaves it out (in-toto v1 allows that) */
  subjects: { name: string; digest: Record<string, string> }[];
  predicate: unknown;
  provenance?: Provenance;
  sbom?: SbomDocument;
  /** why an SBOM predicate could not be read, when it could not */
  sbomError?: string;
}

export class StatementError extends Error {
  override name = 'StatementError';
}

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const STATEMENT_TYPES = ['https://in-toto.io/Statement/v0.1', 'https://in-toto.io/Statement/v1'];

const StatementShape = z.object({
  subject: z
    .array(z.object({ name: z.string().optional(), digest: z.record(z.string(), z.string()).refine((d) => Object.keys(d).length > 0, 'digest is empty') }))
    .min(1, 'a statement needs at least one subject'),
  predicateType: z.string().min(1),
  predicate: z.unknown().optional(),
});

const decoder = new TextDecoder('utf-8', { fatal: true });

export function parseStatement(signed: SignedPayload): Statement {
  if (signed.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new StatementError(`payloadType is ${JSON.stringify(signed.payloadType)}, expected ${IN_TOTO_PAYLOAD_TYPE}`);
  }
  let json: unknown;
  try {
    const text = decoder.decode(signed.payload);
    // the SBOM a predicate carries is JSON.parse'd here, with the statement: refuse what would cost too much first
    const costly = jsonTooCostly(text);
    if (costly) throw new StatementError(`the payload ${costly}`);
    json = JSON.parse(text);
  } catch (e) {
    if (e instanceof StatementError) throw e;
    throw new StatementError(`the payload is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new StatementError('the payload is not a JSON object');
  const type: unknown = '_type' in json ? json._type : undefined;
  if (typeof type !== 'string' || !STATEMENT_TYPES.includes(type)) {
    throw new StatementError(
      `not an in-toto statement: _type is ${type === undefined ? 'missing' : JSON.stringify(type)}, expected ${STATEMENT_TYPES.join(' or ')}`,
    );
  }
  const parsed = StatementShape.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = (issue?.path ?? [])
      .map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`))
      .join('')
      .replace(/^\./, '');
    throw new StatementError(`invalid in-toto statement: ${path}: ${issue?.message ?? 'invalid'}`);
  }
  const { subject, predicateType, predicate } = parsed.data;
  const statement: Statement = {
    type,
    predicateType,
    subjects: subject.map((s) => ({ name: s.name ?? '', digest: s.digest })),
    predicate,
  };
  const kind = attestationKind(predicateType);
  if (kind === 'provenance') statement.provenance = readProvenance(predicateType, predicate);
  if (kind === 'sbom') readSbom(statement, predicateType, predicate);
  return statement;
}

const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/** Whether one of the subjects has this OCI digest ("sha256:<hex>", "sha512:<hex>"); hex case is ignored. */
export function statementCovers(statement: Statement, digest: string): boolean {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon).toLowerCase();
  const hex = digest.slice(colon + 1).toLowerCase();
  const length = HEX_LENGTH[algorithm];
  if (colon < 0 || length === undefined || hex.length !== length || !/^[0-9a-f]+$/.test(hex)) return false;
  return statement.subjects.some((s) => Object.entries(s.digest).some(([alg, value]) => alg.toLowerCase() === algorithm && value.toLowerCase() === hex));
}

/**
 * SLSA provenance (any version), SBOMs (CycloneDX, SPDX, with or without a version suffix), and
 * vulnerability reports: cosign's vuln predicate, in-toto's vulns predicate and OpenVEX.
 */
export function attestationKind(predicateType: string): 'provenance' | 'sbom' | 'vuln' | 'other' {
  if (/^https:\/\/slsa\.dev\/provenance\/v\d+(\.\d+)*$/.test(predicateType)) return 'provenance';
  if (/^https:\/\/cyclonedx\.org\/bom(\/v1\.\d+)?$/.test(predicateType)) return 'sbom';
  if (/^https:\/\/spdx\.dev\/Document(\/v\d+(\.\d+)*)?$/.test(predicateType)) return 'sbom';
  if (predicateType === 'https://cosign.sigstore.dev/attestation/vuln/v1') return 'vuln';
  if (/^https:\/\/in-toto\.io\/attestation\/vulns\/v\d+(\.\d+)*$/.test(predicateType)) return 'vuln';
  if (/^https:\/\/openvex\.dev\/ns(\/v\d+(\.\d+)*)?$/.test(predicateType)) return 'vuln';
  return 'other';
}

function readSbom(statement: Statement, predicateType: string, predicate: unknown): void {
  const mediaType = predicateType.startsWith('https://cyclonedx.org/') ? 'application/vnd.cyclonedx+json' : 'application/spdx+json';
  // some tools put the document in as a JSON string rather than as JSON
  const input = typeof predicate === 'string' ? new TextEncoder().encode(predicate) : predicate;
  try {
    statement.sbom = parseSbom(input, mediaType);
  } catch (e) {
    statement.sbomError = e instanceof SbomError ? e.message : String(e);
  }
}

// ---- SLSA provenance: every field optional, a field of the wrong type reads as absent ----

const lenient = <T extends z.ZodType>(schema: T) => schema.optional().catch(undefined);
const str = lenient(z.string());
const digestSet = lenient(z.record(z.string(), z.string()));
const resource = lenient(z.object({ uri: str, digest: digestSet }));

const ProvenanceV01V02 = z.object({
  builder: lenient(z.object({ id: str })),
  buildType: str,
  recipe: lenient(z.object({ type: str, definedInMaterial: lenient(z.number().int().nonnegative()) })),
  invocation: lenient(z.object({ configSource: resource })),
  materials: lenient(z.array(resource)),
});

const ProvenanceV1 = z.object({
  buildDefinition: lenient(
    z.object({
      buildType: str,
      externalParameters: lenient(
        z.object({
          workflow: lenient(z.object({ repository: str })),
          source: lenient(z.union([z.string(), z.object({ uri: str, digest: digestSet })])),
        }),
      ),
      resolvedDependencies: lenient(z.array(resource)),
    }),
  ),
  runDetails: lenient(z.object({ builder: lenient(z.object({ id: str })) })),
});

type Resource = z.infer<typeof resource>;

function readProvenance(predicateType: string, predicate: unknown): Provenance {
  if (/\/v0\.\d+$/.test(predicateType)) {
    const p = ProvenanceV01V02.safeParse(predicate);
    if (!p.success) return {};
    const { builder, buildType, recipe, invocation, materials } = p.data;
    // v0.2: the config source, else the first material; v0.1: the material the recipe names
    const source = invocation?.configSource?.uri ? invocation.configSource : materials?.[recipe?.definedInMaterial ?? 0];
    return build(builder?.id, buildType ?? recipe?.type, source?.uri, source?.digest);
  }
  const p = ProvenanceV1.safeParse(predicate);
  if (!p.success) return {};
  const def = p.data.buildDefinition;
  const deps = (def?.resolvedDependencies ?? []).filter((d): d is NonNullable<Resource> => d !== undefined);
  const params = def?.externalParameters;
  const declared = params?.workflow?.repository ?? (typeof params?.source === 'string' ? params.source : params?.source?.uri);
  let uri = declared;
  let digest = typeof params?.source === 'object' ? params.source.digest : undefined;
  if (uri === undefined) {
    uri = deps[0]?.uri;
    digest = deps[0]?.digest;
  } else if (digest === undefined) {
    // the resolved dependency that is the declared source carries the commit
    const repo = sourceRepository(uri);
    digest = deps.find((d) => d.uri !== undefined && sourceRepository(d.uri) === repo)?.digest;
  }
  return build(p.data.runDetails?.builder?.id, def?.buildType, uri, digest);
}

function build(builderId?: string, buildType?: string, uri?: string, digest?: Record<string, string>): Provenance {
  const repo = uri ? sourceRepository(uri) : undefined;
  const d = digest ? pickDigest(digest) : undefined;
  return {
    ...(builderId ? { builderId } : {}),
    ...(repo ? { sourceRepository: repo } : {}),
    ...(d ? { sourceDigest: d } : {}),
    ...(buildType ? { buildType } : {}),
  };
}

/** `git+https://github.com/o/r.git@refs/heads/main` → `https://github.com/o/r` */
export function sourceRepository(uri: string): string {
  return uri
    .trim()
    .replace(/^git\+/, '')
    .replace(/@refs\/.*$/, '')
    .replace(/@(?:[0-9a-f]{40}|[0-9a-f]{64})$/i, '')
    .replace(/\/+$/, '')
    .replace(/\.git$/, '');
}

const DIGEST_PREFERENCE = ['sha1', 'gitCommit', 'sha256', 'sha512'];

function pickDigest(digest: Record<string, string>): string | undefined {
  const alg = DIGEST_PREFERENCE.find((a) => digest[a]) ?? Object.keys(digest).find((a) => digest[a]);
  return alg ? `${alg}:${digest[alg]}` : undefined;
}
