/** Opens the BlobStore that a storage URL names: a filesystem path, `file://…` or `memory://`. */
import path from 'node:path';
import type { BlobStore } from './blobstore.ts';
import { FsBlobStore } from './fs/index.ts';
import { MemoryBlobStore } from './memory/index.ts';

export async function openBlobStore(url: string, options: { fsync: boolean }): Promise<BlobStore> {
  if (url === 'memory://') return new MemoryBlobStore();
  if (url.startsWith('s3://')) {
    throw new Error('the S3 storage driver is not built yet: use a filesystem path or memory://');
  }
  const root = url.startsWith('file://') ? new URL(url).pathname : url;
  if (url.includes('://') && !url.startsWith('file://')) throw new Error(`unsupported storage URL: ${url}`);
  return FsBlobStore.open({ root: path.resolve(root), fsync: options.fsync });
}
