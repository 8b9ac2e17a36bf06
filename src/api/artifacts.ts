/**
 * /api/v1/repositories/<name>/artifacts/<digest>: an artifact with what names it as subject
 * (signatures with their verdicts, attestations, SBOMs, other referrers), and
 * …/artifacts/<digest>/components: the components of the SBOMs attached to it. Readable by
 * whoever may pull the repository. Shapes: docs/trust.md.
 */
import type { FastifyInstance } from 'fastify';
import type { ManifestRecord } from '../meta/metastore.ts';
import type { TrustArtifact } from '../meta/trust.ts';
import { parseDigest } from '../oci/digest.ts';
import { OciError } from '../oci/errors.ts';
import { checkName } from '../oci/names.ts';
import { authorize, iso, type ApiContext } from './context.ts';
import { invalid, notFound } from './errors.ts';

type Wild = { Params: { '*': string } };

export function registerArtifacts(api: FastifyInstance, ctx: ApiContext): void {
  api.get<Wild>('/repositories/*', async (req, reply) => {
    const { repo, digest, view } = route(req.params['*']);
    await authorize(ctx, req, reply, [{ type: 'repository', name: repo, actions: ['pull'] }]);
    const record = await ctx.meta.getManifest(repo, digest);
    if (!record) throw notFound(`no manifest ${digest} in repository ${repo}`);
    return view === 'components' ? components(ctx, record) : artifact(ctx, record);
  });
}

/** `<name>/artifacts/<digest>[/components]`: names have slashes, so the path is split here. */
function route(path: string): { repo: string; digest: string; view: 'artifact' | 'components' } {
  const m = /^(.+)\/artifacts\/([^/]+)(\/components)?$/.exec(path);
  if (!m) throw notFound(`no route GET /api/v1/repositories/${path.slice(0, 300)}; use /repositories/<name>/artifacts/<digest>[/components]`);
  try {
    return { repo: checkName(m[1]!), digest: parseDigest(m[2]!).value, view: m[3] ? 'components' : 'artifact' };
  } catch (err) {
    if (err instanceof OciError) throw invalid(err.message);
    throw err;
  }
}

async function artifact(ctx: ApiContext, record: ManifestRecord) {
  const { repo, digest } = record;
  const [tags, own, named, referrers] = await Promise.all([
    ctx.meta.trust.tagsOf(repo, digest),
    ctx.meta.trust.getArtifact(repo, digest),
    ctx.meta.trust.artifactsFor(repo, digest),
    ctx.meta.listReferrers(repo, digest),
  ]);
  const byDigest = new Map(named.map((a) => [a.digest, a]));
  const entries = referrers.map((r) => referrerView(r, byDigest.get(r.digest)));
  // cosign's legacy tags: linked by tag name, not by a subject field
  for (const a of named) {
    if (referrers.some((r) => r.digest === a.digest)) continue;
    const r = await ctx.meta.getManifest(repo, a.digest);
    if (r) entries.push(referrerView(r, a));
  }
  const count = (kind: string) => entries.filter((e) => e.kind === kind).length;
  return {
    repository: repo,
    digest,
    mediaType: record.mediaType,
    artifactType: record.artifactType ?? null,
    size: record.content.byteLength,
    tags,
    subject: record.subject ?? null,
    annotations: record.annotations ?? {},
    ...(own ? { trust: trustView(own) } : {}),
    summary: {
      signatures: count('signature'),
      verifiedSignatures: entries.filter((e) => e.kind === 'signature' && e.verified === true).length,
      attestations: count('attestation'),
      sboms: count('sbom'),
      pending: entries.filter((e) => e.status === 'pending').length,
    },
    referrers: entries,
  };
}

function referrerView(r: ManifestRecord, a: TrustArtifact | undefined) {
  const base = { digest: r.digest, mediaType: r.mediaType, artifactType: r.artifactType ?? null, size: r.content.byteLength, annotations: r.annotations ?? {} };
  if (!a) return { ...base, kind: 'other' as const, format: r.artifactType ?? null, via: 'referrer', status: 'none' as const, verified: null };
  return { ...base, ...trustView(a) };
}

function trustView(a: TrustArtifact) {
  return {
    kind: a.kind,
    format: a.format,
    via: a.via,
    status: a.status,
    verified: a.status === 'pending' ? null : a.verified,
    signer: a.signer,
    // null for a verdict stored before codes existed, until it is judged again
    code: a.status === 'pending' ? 'pending' : a.code,
    reason: a.status === 'pending' ? 'not verified yet' : a.reason,
    details: a.details ?? {},
    checkedAt: iso(a.checkedAt),
  };
}

async function components(ctx: ApiContext, record: ManifestRecord) {
  const { repo, digest } = record;
  const candidates = [...(await ctx.meta.trust.artifactsFor(repo, digest)), ...[await ctx.meta.trust.getArtifact(repo, digest)].filter((a) => a !== undefined)];
  const sboms = [];
  for (const a of candidates) {
    const sbom = await ctx.meta.trust.getSbom(repo, a.digest);
    if (sbom)
      sboms.push({ digest: a.digest, kind: a.kind, format: sbom.format, specVersion: sbom.specVersion, name: sbom.name ?? null, components: sbom.components });
  }
  return { repository: repo, digest, pending: candidates.filter((a) => a.status === 'pending' && a.kind !== 'signature').length, sboms };
}
