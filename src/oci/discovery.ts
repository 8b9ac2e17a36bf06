/** Discovery: the API base, tag lists, the catalog and the referrers API. */
import type { Handler } from './context.ts';
import { parseDigest } from './digest.ts';
import { OciError } from './errors.ts';
import { parseManifest } from './manifest-parse.ts';
import { mediaTypes } from './mediatypes.ts';
import { parsePage, sendPage } from './paging.ts';

export const apiBase: Handler = async (_ctx, _req, reply) => {
  await reply.code(200).header('content-type', 'application/json').send('{}');
};

export const listTags: Handler = async (ctx, _req, reply, m) => {
  const page = parsePage(m.query);
  if (!(await ctx.meta.repositoryExists(m.name))) throw new OciError('NAME_UNKNOWN', `repository ${m.name} is not known to the registry`);
  await sendPage(
    reply,
    `/v2/${m.name}/tags/list`,
    page,
    (p) => ctx.meta.listTags(m.name, p),
    (tags) => ({ name: m.name, tags }),
  );
};

export const catalog: Handler = async (ctx, _req, reply, m) => {
  const page = parsePage(m.query);
  await sendPage(
    reply,
    '/v2/_catalog',
    page,
    (p) => ctx.meta.listRepositories(p),
    (repositories) => ({ repositories }),
  );
};

interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export const referrers: Handler = async (ctx, _req, reply, m) => {
  const subject = parseDigest(m.ref);
  const wanted = m.query.getAll('artifactType').filter((t) => t !== '');
  const found: ReferrerDescriptor[] = (await ctx.meta.listReferrers(m.name, subject.value)).map((r) => ({
    mediaType: r.mediaType,
    digest: r.digest,
    size: r.content.byteLength,
    ...(r.artifactType !== undefined && { artifactType: r.artifactType }),
    ...(r.annotations !== undefined && { annotations: r.annotations }),
  }));
  for (const entry of await fallbackIndex(ctx, m.name, `${subject.algorithm}-${subject.hex}`)) {
    if (!found.some((f) => f.digest === entry.digest)) found.push(entry);
  }
  const manifests = wanted.length ? found.filter((f) => f.artifactType !== undefined && wanted.includes(f.artifactType)) : found;
  if (wanted.length) reply.header('oci-filters-applied', 'artifactType');
  await reply
    .code(200)
    .header('content-type', mediaTypes.ociIndex)
    // A Buffer, so that fastify adds no charset to the media type.
    .send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests })));
};

/**
 * Clients that found no referrers API keep an index of referrers under the tag
 * `<alg>-<hex>` of the subject; its entries are referrers too.
 */
async function fallbackIndex(ctx: Parameters<Handler>[0], repo: string, tag: string): Promise<ReferrerDescriptor[]> {
  const digest = await ctx.meta.resolveTag(repo, tag);
  const record = digest === undefined ? undefined : await ctx.meta.getManifest(repo, digest);
  if (!record || record.mediaType !== mediaTypes.ociIndex) return [];
  try {
    parseManifest(record.content, record.mediaType);
  } catch {
    return [];
  }
  const index = JSON.parse(Buffer.from(record.content).toString('utf8')) as { manifests: ReferrerDescriptor[] };
  return index.manifests.map(({ mediaType, digest: d, size, artifactType, annotations }) => ({ mediaType, digest: d, size, artifactType, annotations }));
}
