/** Opens the BlobStore that a storage URL names: a filesystem path, `file://…`, `memory://` or `s3://bucket/prefix?…` (src/storage/s3/url.ts). */
import path from 'node:path';
import type { BlobStore } from './blobstore.ts';
import { FsBlobStore } from './fs/index.ts';
import { MemoryBlobStore } from './memory/index.ts';

export interface OpenOptions {
  /** flush objects to disk before a write resolves */
  fsync: boolean;
  /**
   * The upload expiry (config `uploads.expireAfterSeconds`): temporary files older than this are
   * leftovers of a crash, and removed when the store opens; younger ones may belong to another
   * server on the same storage. Default 24 h.
   */
  uploadExpirySeconds?: number;
}

export async function openBlobStore(url: string, options: OpenOptions): Promise<BlobStore> {
  if (url === 'memory://') return new MemoryBlobStore();
  if (url.startsWith('s3://')) {
    // loaded only here: the AWS SDK is large, and a registry on a filesystem never needs it
    const [{ S3BlobStore }, { parseS3Url }] = await Promise.all([import('./s3/index.ts'), import('./s3/url.ts')]);
    return S3BlobStore.open({
      location: parseS3Url(url),
      ...(options.uploadExpirySeconds !== undefined ? { abandonedUploadAfterMs: options.uploadExpirySeconds * 1000 } : {}),
    });
  }
  const root = url.startsWith('file://') ? new URL(url).pathname : url;
  if (url.includes('://') && !url.startsWith('file://')) throw new Error(`unsupported storage URL: ${url}`);
  return FsBlobStore.open({
    root: path.resolve(root),
    fsync: options.fsync,
    ...(options.uploadExpirySeconds !== undefined ? { staleTempAfterMs: options.uploadExpirySeconds * 1000 } : {}),
  });
}
