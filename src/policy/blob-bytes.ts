/**
 * Up to `limit` bytes of a blob named by its digest, read for a decision (an image config, a Wasm
 * component's import section, an OPA bundle), never more than the limit held at once. Undefined
 * when the digest is malformed or the bytes are not stored: a pull can race a delete, and a
 * bundle's layer can be gone while its manifest stays.
 */
import { blobKeyOf, type BlobStore } from '../storage/blobstore.ts';

export async function readBlobBytes(blobs: BlobStore, digest: string, limit: number): Promise<Uint8Array | undefined> {
  const m = /^([a-z0-9]+):([a-f0-9]{32,128})$/.exec(digest);
  if (!m?.[1] || !m[2]) return undefined;
  try {
    const stream = await blobs.read(blobKeyOf(m[1], m[2]), { start: 0, end: limit - 1 });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
    stream.destroy();
    return Buffer.concat(chunks).subarray(0, limit);
  } catch {
    return undefined;
  }
}
