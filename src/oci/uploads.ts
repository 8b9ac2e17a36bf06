/**
 * Blob uploads: monolithic (POST ?digest=, or POST then PUT with the body), chunked (PATCH …
 * PUT), cross-repository mounts, status and cancel.
 *
 * The BlobStore has no append, so every PATCH is stored as its own part object under
 * uploads/<id>/ and recorded in the MetaStore; PUT joins the parts into blobs/<alg>/…, checking
 * the digest on the way, and only then links the blob to the repository. A single part whose
 * sha256 matches (the usual PATCH-then-PUT) is moved into place without copying a byte, and a
 * blob the store holds already is not written again (storedAlready).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Upload, UploadPart } from '../meta/metastore.ts';
import { BlobNotFoundError, deleteKeys } from '../storage/blobstore.ts';
import type { Handler, Match, RegistryContext } from './context.ts';
import { blobKey, hashing, parseDigest, type Digest } from './digest.ts';
import { OciError } from './errors.ts';
import { checkName } from './names.ts';
import { checkBlobQuota, checkMountQuota, isQuotaDenial, type Stored } from './quota-gate.ts';

export const startUpload: Handler = async (ctx, req, reply, m) => {
  const mount = m.query.get('mount');
  const from = m.query.get('from');
  if (mount !== null && from !== null) {
    const digest = parseDigest(mount);
    const stored = await checkMountQuota(ctx, m.name, checkName(from), digest.value);
    // Otherwise (no such blob in `from`, or collected meanwhile) the spec says: start an upload.
    if ((await ctx.meta.linkExistingBlob(m.name, checkName(from), digest.value)) !== undefined) {
      await stored();
      return blobCreated(reply, m.name, digest);
    }
  }
  const digestParam = m.query.get('digest');
  if (digestParam !== null && mount === null) {
    const digest = parseDigest(digestParam);
    m.bytes = (await storeVerified(ctx, m.name, digest, req.raw, declaredLength(req))).size;
    return blobCreated(reply, m.name, digest);
  }
  const id = randomUUID();
  await ctx.meta.createUpload(id, m.name);
  await uploadAccepted(reply.code(202), m.name, id, 0);
};

export const uploadStatus: Handler = async (ctx, _req, reply, m) => {
  const upload = await loadUpload(ctx, m);
  await uploadAccepted(reply.code(204), m.name, upload.id, upload.offset);
};

export const patchUpload: Handler = async (ctx, req, reply, m) => {
  const upload = await loadUpload(ctx, m);
  const part = await appendChunk(ctx, upload, req, reply);
  await uploadAccepted(reply.code(202), m.name, upload.id, upload.offset + (part?.size ?? 0));
};

export const finishUpload: Handler = async (ctx, req, reply, m) => {
  const digestParam = m.query.get('digest');
  if (!digestParam) throw new OciError('DIGEST_INVALID', 'the digest query parameter is required to finish an upload');
  const digest = parseDigest(digestParam);
  const upload = await loadUpload(ctx, m);
  let ended: boolean;
  let left: string[] | undefined;
  try {
    if (hasBody(req) && upload.offset === 0) {
      // POST then PUT with the whole blob: stream straight to its place.
      left = await partKeys(ctx, upload);
      const stored = await storeVerified(ctx, m.name, digest, req.raw, declaredLength(req), left.length === 0 ? upload.id : undefined);
      m.bytes = stored.size;
      ended = stored.uploadEnded;
    } else {
      const last = hasBody(req) ? await appendChunk(ctx, upload, req, reply) : undefined;
      if (last) upload.parts.push(last);
      const { size, stored } = await assemble(ctx, upload.parts, digest, (total) => checkBlobQuota(ctx, m.name, digest.value, total));
      left = await partKeys(ctx, upload);
      ended = await link(ctx, m.name, digest, size, left.length === 0 ? upload.id : undefined);
      await stored();
      m.bytes = size;
    }
  } catch (err) {
    // A finish that fails leaves nothing behind: the client starts a new upload.
    if ((err instanceof OciError && err.code === 'DIGEST_INVALID') || isQuotaDenial(err)) await discardUpload(ctx, upload);
    // Parts vanish when a concurrent request finished or cancelled the same upload.
    if (err instanceof BlobNotFoundError) throw new OciError('BLOB_UPLOAD_UNKNOWN', `upload ${upload.id} was finished or cancelled by another request`);
    throw err;
  }
  if (!ended) await discardUpload(ctx, upload, left);
  await blobCreated(reply, m.name, digest);
};

/**
 * What is left of an upload in the BlobStore, listed once before its blob is linked. Nothing
 * (its single part was moved into place, or it had none): its record goes in the statement that
 * links the blob; a PATCH racing the PUT finds no record to add its part to, and removes it.
 * Otherwise discardUpload removes these keys, then the record.
 */
async function partKeys(ctx: RegistryContext, upload: Upload): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of ctx.blobs.list(partsPrefix(upload.id))) keys.push(key);
  return keys;
}

export const cancelUpload: Handler = async (ctx, _req, reply, m) => {
  await discardUpload(ctx, await loadUpload(ctx, m));
  await reply.code(204).send();
};

/**
 * Removes every object under an upload's prefix, then its record. The objects are the parts it
 * records (one already moved into place is gone already) and any part no record names, left by a
 * PATCH whose process died between writing it and recording it (the client then sends that chunk
 * again, to another replica). The record goes last: a process that dies before it leaves the
 * upload to expiry, which removes what is left; the other way round, the parts had no record left
 * to find them by. (A PATCH that records a part while the upload ends, on another connection, can
 * still leave that part behind: a client racing its own PUT.)
 */
export async function discardUpload(ctx: RegistryContext, upload: Upload, listed?: string[]): Promise<void> {
  const keys = new Set(upload.parts.map((p) => p.key));
  for (const key of listed ?? (await partKeys(ctx, upload))) keys.add(key);
  await deleteKeys(ctx.blobs, [...keys]);
  await ctx.meta.deleteUpload(upload.id);
}

/** Where an upload's parts are kept, one object each. */
const partsPrefix = (id: string) => `uploads/${id}/`;

/**
 * Streams a blob to its place, verifying its digest before it becomes visible, and links it; its
 * size. The namespace's quota judges a body of `declared` length before a byte of it is read, one
 * of unknown length once all of it is written and before it becomes visible.
 */
async function storeVerified(
  ctx: RegistryContext,
  repo: string,
  digest: Digest,
  body: AsyncIterable<Uint8Array>,
  declared?: number,
  endUpload?: string,
): Promise<{ size: number; uploadEnded: boolean }> {
  let stored = declared === undefined ? undefined : await checkBlobQuota(ctx, repo, digest.value, declared);
  const { stream, hash } = hashing(body, digest.algorithm);
  const verified = async (written: number) => {
    checkDigest(digest, hash.digest('hex'));
    if (written !== declared) stored = await checkBlobQuota(ctx, repo, digest.value, written);
  };
  let size: number;
  if (await storedAlready(ctx, digest, declared)) {
    size = await drained(stream);
    await verified(size);
  } else {
    ({ size } = await ctx.blobs.write(blobKey(digest), stream, { beforeCommit: verified }));
  }
  const uploadEnded = await link(ctx, repo, digest, size, endUpload);
  await stored?.();
  return { size, uploadEnded };
}

/**
 * Touches the blob (src/meta/metastore.ts: touchBlob), and answers whether its bytes are stored
 * already: a blob linked before whose object is there at its size. A push of a layer the
 * registry has (the base layers every CI build sends again) then writes nothing: its body is
 * only hashed, to check the digest it claims. Rewriting would cost a write or copy per push, and
 * on a store whose overwrite is not atomic a reader could catch the object missing. A row whose
 * bytes a crashed sweep took is written again.
 */
async function storedAlready(ctx: RegistryContext, digest: Digest, size?: number): Promise<boolean> {
  const { linkedSize } = await ctx.meta.touchBlob(digest.value);
  if (linkedSize === 0 || (size !== undefined && size !== linkedSize)) return false;
  return (await ctx.blobs.stat(blobKey(digest)))?.size === linkedSize;
}

/** Reads a stream to its end, keeping nothing; the bytes it had. */
async function drained(stream: AsyncIterable<Uint8Array>): Promise<number> {
  let size = 0;
  for await (const chunk of stream) size += chunk.byteLength;
  return size;
}

/**
 * Links a blob whose bytes were just written; whether `endUpload`'s record went with the link. If
 * the GC swept its row during a write that outlasted the grace period, the bytes may have gone
 * with it: linkBlob then makes the row again (held for another grace period) without a link, one
 * look at the store settles it, and a blob whose bytes are gone is not acknowledged. Nothing is
 * unlinked: a link made meanwhile is another upload's, and acknowledged.
 */
async function link(ctx: RegistryContext, repo: string, digest: Digest, size: number, endUpload?: string): Promise<boolean> {
  const afterTouch = { afterTouch: true };
  const linked = await ctx.meta.linkBlob(repo, digest.value, size, endUpload === undefined ? afterTouch : { ...afterTouch, endUpload });
  if (!linked.collected) return linked.uploadEnded === true;
  if ((await ctx.blobs.stat(blobKey(digest)))?.size === size && !(await ctx.meta.linkBlob(repo, digest.value, size, afterTouch)).collected) return false;
  throw new OciError('BLOB_UPLOAD_INVALID', `blob ${digest.value} was garbage-collected while it was being uploaded; upload it again`);
}

/**
 * Joins an upload's parts into the blob; returns its size. `admit` (the quota) judges the size
 * before anything is moved or written, and what it returns is called once the blob is linked.
 */
async function assemble(
  ctx: RegistryContext,
  parts: UploadPart[],
  digest: Digest,
  admit: (size: number) => Promise<Stored>,
): Promise<{ size: number; stored: Stored }> {
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only && digest.algorithm === 'sha256') {
    checkDigest(digest, only.sha256);
    const stored = await admit(only.size);
    // stored already: the part stays where it is, and goes with the upload
    if (!(await storedAlready(ctx, digest, only.size))) await ctx.blobs.move(only.key, blobKey(digest));
    return { size: only.size, stored };
  }
  async function* joined(): AsyncIterable<Uint8Array> {
    for (const part of parts) yield* await ctx.blobs.read(part.key);
  }
  const total = parts.reduce((sum, p) => sum + p.size, 0);
  const stored = await admit(total);
  const { stream, hash } = hashing(joined(), digest.algorithm);
  const check = () => checkDigest(digest, hash.digest('hex'));
  if (await storedAlready(ctx, digest, total)) {
    const size = await drained(stream);
    check();
    return { size, stored };
  }
  const { size } = await ctx.blobs.write(blobKey(digest), stream, { beforeCommit: check });
  return { size, stored };
}

function checkDigest(expected: Digest, actualHex: string): void {
  if (actualHex !== expected.hex) {
    throw new OciError('DIGEST_INVALID', `the uploaded content has digest ${expected.algorithm}:${actualHex}, not ${expected.value}`);
  }
}

/** Stores the request body as the upload's next part; returns it, or nothing for an empty body. */
async function appendChunk(ctx: RegistryContext, upload: Upload, req: FastifyRequest, reply: FastifyReply): Promise<UploadPart | undefined> {
  const range = parseContentRange(req.headers['content-range']);
  if (range && range.start !== upload.offset) {
    reply.header('location', uploadLocation(upload.repo, upload.id)).header('range', rangeHeader(upload.offset));
    throw new OciError('RANGE_INVALID', `chunk starts at ${range.start}, but the upload is at offset ${upload.offset}`);
  }
  const expected = range ? range.end - range.start + 1 : undefined;
  const key = `${partsPrefix(upload.id)}${upload.offset}-${randomBytes(6).toString('hex')}`;
  const { stream, hash } = hashing(req.raw, 'sha256');
  const { size } = await ctx.blobs.write(key, stream, {
    // a part becomes a blob only by the PUT's move, which makes its name durable
    staging: true,
    beforeCommit: (written) => {
      if (expected !== undefined && written !== expected) {
        throw new OciError('SIZE_INVALID', `Content-Range announces ${expected} bytes, but the chunk has ${written}`);
      }
    },
  });
  if (size === 0) {
    await ctx.blobs.delete(key);
    return undefined;
  }
  const part = { start: upload.offset, size, sha256: hash.digest('hex'), key };
  if (!(await ctx.meta.appendUploadPart(upload.id, part))) {
    await ctx.blobs.delete(key);
    throw new OciError('RANGE_INVALID', `another chunk was written at offset ${upload.offset} first`);
  }
  return part;
}

function parseContentRange(header: string | undefined): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m || Number(m[2]) < Number(m[1])) throw new OciError('RANGE_INVALID', `invalid Content-Range ${JSON.stringify(header.slice(0, 100))}`);
  return { start: Number(m[1]), end: Number(m[2]) };
}

async function loadUpload(ctx: RegistryContext, m: Match): Promise<Upload> {
  const upload = /^[0-9a-f-]{36}$/.test(m.ref) ? await ctx.meta.getUpload(m.ref) : undefined;
  if (!upload || upload.repo !== m.name) throw new OciError('BLOB_UPLOAD_UNKNOWN', `no upload ${m.ref.slice(0, 100)} in repository ${m.name}`);
  return upload;
}

/** The body's length when the request announces it (no Transfer-Encoding). */
function declaredLength(req: FastifyRequest): number | undefined {
  const length = req.headers['content-length'];
  if (length === undefined || req.headers['transfer-encoding'] !== undefined) return undefined;
  const n = Number(length);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function hasBody(req: FastifyRequest): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return req.headers['transfer-encoding'] !== undefined;
}

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

/** The Range header of an upload: the bytes received so far ("0-0" when none, as distribution). */
function rangeHeader(offset: number): string {
  return `0-${Math.max(offset - 1, 0)}`;
}

async function uploadAccepted(reply: FastifyReply, name: string, id: string, offset: number): Promise<void> {
  await reply
    .header('location', uploadLocation(name, id))
    .header('range', rangeHeader(offset))
    .header('docker-upload-uuid', id)
    .header('content-length', 0)
    .send();
}

async function blobCreated(reply: FastifyReply, name: string, digest: Digest): Promise<void> {
  await reply
    .code(201)
    .header('location', `/v2/${name}/blobs/${digest.value}`)
    .header('docker-content-digest', digest.value)
    .header('content-length', 0)
    .send();
}
