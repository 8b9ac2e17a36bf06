/** GET, HEAD and DELETE of blobs. */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import { BlobNotFoundError, type ByteRange } from '../storage/blobstore.ts';
import type { Handler, Match, RegistryContext } from './context.ts';
import { blobKey, parseDigest, type Digest } from './digest.ts';
import { OciError } from './errors.ts';

export const getBlob: Handler = (ctx, req, reply, m) => sendBlob(ctx, req.method === 'HEAD', req.headers.range, reply, m, parseDigest(m.ref));

export const deleteBlob: Handler = async (ctx, _req, reply, m) => {
  const digest = parseDigest(m.ref);
  // Only the repository's link goes; the bytes stay until garbage collection finds them unused.
  if (!(await ctx.meta.unlinkBlob(m.name, digest.value))) throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is not in repository ${m.name}`);
  await reply.code(202).header('content-length', 0).send();
};

/** How long a redirect's URL is valid (distribution's default too): a client follows it at once, or asks again. */
const redirectExpirySeconds = 20 * 60;

async function sendBlob(
  ctx: RegistryContext,
  head: boolean,
  rangeHeader: string | undefined,
  reply: Parameters<Handler>[2],
  m: Match,
  digest: Digest,
): Promise<void> {
  const name = m.name;
  const size = await ctx.meta.blobInRepo(name, digest.value);
  if (size === undefined) throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is not in repository ${name}`);
  reply.header('docker-content-digest', digest.value).header('etag', `"${digest.value}"`).header('accept-ranges', 'bytes');
  if (!head && rangeHeader === undefined && size > 0 && ctx.redirect === true && ctx.blobs.readUrl) {
    // The bytes come from the storage itself: Custody sends none (the pull's event counts 0 bytes).
    // Not cached: the URL expires, the blob does not.
    const location = await ctx.blobs.readUrl(blobKey(digest), redirectExpirySeconds);
    return void (await reply.code(307).header('location', location).header('cache-control', 'no-store').header('content-length', 0).send());
  }
  reply.header('content-type', 'application/octet-stream').header('cache-control', 'max-age=31536000, immutable');
  const range = rangeHeader === undefined ? undefined : parseRange(rangeHeader, size);
  if (range === 'unsatisfiable') {
    reply.header('content-range', `bytes */${size}`);
    throw new OciError('RANGE_INVALID', `range ${rangeHeader} is outside the blob's ${size} bytes`);
  }
  if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`);
  const length = range ? range.end - range.start + 1 : size;
  reply.header('content-length', length);
  if (head || length === 0) return void (await reply.send());
  try {
    await sendCopy(ctx, reply, await ctx.blobs.openCopy(blobKey(digest), range ?? { start: 0, end: size - 1 }), m);
  } catch (err) {
    if (!(err instanceof BlobNotFoundError)) throw err;
    ctx.log.error({ digest: digest.value, repo: name }, 'blob is linked but its bytes are missing from storage');
    throw new OciError('BLOB_UNKNOWN', `blob ${digest.value} is missing from storage`);
  }
}

/**
 * Writes the blob to the socket with the driver's own copy, past fastify's send (which would
 * want a stream of fresh buffers). Once the status
 * line is out an error can only cut the connection, which tells the client that the body is short.
 * The bytes that went out are counted in `m.bytes` as the socket takes them (see countWrites).
 */
async function sendCopy(ctx: RegistryContext, reply: Parameters<Handler>[2], copy: (out: Writable) => Promise<void>, m: Match): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  countWrites(res, m);
  res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
  try {
    await copy(res);
    res.end();
  } catch (err) {
    const clientLeft = res.destroyed || res.socket?.destroyed !== false;
    res.destroy();
    if (clientLeft) return;
    ctx.log.error({ err }, 'sending a blob failed midway; the connection was cut');
  }
}

/**
 * Counts in `m.bytes` the body bytes whose writes completed: what was handed to the connection.
 * A client that goes away gets its last write cancelled, which is not counted; a count of bytes
 * given to write() (or the socket's bytesWritten) would include it, up to a chunk (1 MiB) more
 * than went out.
 */
function countWrites(res: ServerResponse, m: Match): void {
  const write = res.write.bind(res) as (chunk: Uint8Array, callback: (err?: Error | null) => void) => boolean;
  m.bytes = 0;
  res.write = ((chunk: Uint8Array, encodingOrCallback?: unknown, callback?: unknown) => {
    const done = (typeof encodingOrCallback === 'function' ? encodingOrCallback : callback) as ((err?: Error | null) => void) | undefined;
    return write(chunk, (err) => {
      if (!err) m.bytes = (m.bytes ?? 0) + chunk.byteLength;
      done?.(err);
    });
  }) as ServerResponse['write'];
}

/**
 * One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`). A header that is malformed or asks for
 * several ranges is ignored, as HTTP allows, and the whole blob is sent.
 */
export function parseRange(header: string, size: number): ByteRange | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}
