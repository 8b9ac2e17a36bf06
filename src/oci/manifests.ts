/** GET, HEAD, PUT and DELETE of manifests, by tag or by digest. */
import type { IncomingMessage } from 'node:http';
import type { ManifestRecord } from '../meta/metastore.ts';
import type { Handler, RegistryContext } from './context.ts';
import { digestOf, isDigest, parseDigest } from './digest.ts';
import { OciError } from './errors.ts';
import { parseManifest } from './manifest-parse.ts';
import { isTag } from '../reference.ts';
import { checkTag } from './names.ts';
import { askPolicy } from './policy-gate.ts';
import { checkManifestQuota } from './quota-gate.ts';

export const getManifest: Handler = async (ctx, req, reply, m) => {
  const byDigest = isDigest(m.ref);
  const record = await findManifest(ctx, m.name, m.ref);
  if (!byDigest && !accepts(req.headers.accept, record.mediaType)) {
    // By digest the bytes are what was asked for; by tag, a client that cannot read this kind
    // of manifest is told so instead of being handed something it would misread.
    throw new OciError('MANIFEST_UNKNOWN', `${m.name}:${m.ref} is a ${record.mediaType}, which the Accept header does not include`);
  }
  await askPolicy(ctx, req, 'pull', m, record, byDigest ? undefined : m.ref);
  ctx.pulls?.record(m.name, record.digest);
  reply.code(200).header('content-type', record.mediaType).header('docker-content-digest', record.digest).header('etag', `"${record.digest}"`);
  reply.header('content-length', record.content.byteLength);
  await reply.send(req.method === 'HEAD' ? undefined : Buffer.from(record.content.buffer, record.content.byteOffset, record.content.byteLength));
};

export const putManifest: Handler = async (ctx, req, reply, m) => {
  const reference = isDigest(m.ref) ? parseDigest(m.ref) : undefined;
  const tag = reference ? undefined : checkTag(m.ref);
  const content = await readManifestBody(req.raw, ctx.limits.manifestBytes);
  const digest = digestOf(content, reference?.algorithm);
  if (reference && reference.value !== digest) {
    throw new OciError('DIGEST_INVALID', `the manifest's digest is ${digest}, not ${reference.value}`);
  }
  const parsed = parseManifest(content, req.headers['content-type']);
  await askPolicy(ctx, req, 'push', m, { digest, mediaType: parsed.mediaType, content }, tag);
  const stored = await checkManifestQuota(ctx, m.name, digest, content.byteLength);
  const result = await ctx.meta.putManifest({ repo: m.name, digest, content, tag, ...parsed });
  if (!result.ok) {
    throw new OciError('MANIFEST_BLOB_UNKNOWN', `the manifest references ${result.missing}, which is not in repository ${m.name}`, {
      detail: { digest: result.missing },
    });
  }
  await stored();
  m.bytes = content.byteLength;
  await ctx.events?.manifestPushed({ repo: m.name, digest, mediaType: parsed.mediaType, content, ...(tag ? { tag } : {}) });
  if (parsed.subject) reply.header('oci-subject', parsed.subject);
  await reply.code(201).header('location', `/v2/${m.name}/manifests/${digest}`).header('docker-content-digest', digest).header('content-length', 0).send();
};

export const deleteManifest: Handler = async (ctx, req, reply, m) => {
  const byDigest = isDigest(m.ref);
  if (ctx.policy) await askPolicy(ctx, req, 'delete', m, await findManifest(ctx, m.name, m.ref), byDigest ? undefined : m.ref);
  // A reference that is no valid tag names no manifest (see findManifest).
  const deleted = byDigest ? await ctx.meta.deleteManifest(m.name, parseDigest(m.ref).value) : isTag(m.ref) && (await ctx.meta.deleteTag(m.name, m.ref));
  if (!deleted) throw new OciError('MANIFEST_UNKNOWN', `no manifest ${m.ref.slice(0, 200)} in repository ${m.name}`);
  await (byDigest ? ctx.events?.manifestDeleted({ repo: m.name, digest: m.ref }) : ctx.events?.tagDeleted({ repo: m.name, tag: m.ref }));
  await reply.code(202).header('content-length', 0).send();
};

/**
 * A reference that is neither a digest nor a valid tag names no manifest: 404, as the spec says
 * for a manifest that is not there (its conformance suite reads `.INVALID_MANIFEST_NAME`). Only a
 * PUT answers TAG_INVALID, since there the client meant to create the tag.
 */
export async function findManifest(ctx: RegistryContext, name: string, ref: string): Promise<ManifestRecord> {
  const record = isDigest(ref)
    ? await ctx.meta.getManifest(name, parseDigest(ref).value)
    : isTag(ref)
      ? await ctx.meta.getTaggedManifest(name, ref)
      : undefined;
  if (!record) throw new OciError('MANIFEST_UNKNOWN', `no manifest ${ref.slice(0, 200)} in repository ${name}`);
  return record;
}

/** Does an Accept header admit this media type? No header, or a wildcard, admits everything. */
function accepts(header: string | undefined, mediaType: string): boolean {
  if (!header) return true;
  for (const entry of header.split(',')) {
    const type = entry.split(';')[0]?.trim().toLowerCase();
    if (type === mediaType || type === '*/*' || type === 'application/*' || type === '') return true;
  }
  return false;
}

/** Reads a manifest body, refusing (413) one over the limit without reading it all. */
async function readManifestBody(body: IncomingMessage, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new OciError('MANIFEST_INVALID', `manifest is larger than the ${limit}-byte limit`, { status: 413 });
  if (Number(body.headers['content-length'] ?? 0) > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
