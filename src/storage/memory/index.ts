/** An in-memory BlobStore, for tests and throwaway registries. */
import { Readable, type Writable } from 'node:stream';
import { BlobNotFoundError, checkKey, type BlobStat, type BlobStore, type ByteRange, type WriteOptions } from '../blobstore.ts';
import { writeOut } from '../write-out.ts';

export class MemoryBlobStore implements BlobStore {
  private readonly objects = new Map<string, Buffer>();

  async stat(key: string): Promise<BlobStat | undefined> {
    const data = this.objects.get(checkKey(key));
    return data ? { size: data.length } : undefined;
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const data = this.objects.get(checkKey(key));
    if (!data) throw new BlobNotFoundError(key);
    return Readable.from([range ? data.subarray(range.start, range.end + 1) : data]);
  }

  async openCopy(key: string, range?: ByteRange): Promise<(out: Writable) => Promise<void>> {
    const data = this.objects.get(checkKey(key));
    if (!data) throw new BlobNotFoundError(key);
    return (out) => writeOut(out, range ? data.subarray(range.start, range.end + 1) : data);
  }

  async write(key: string, body: Readable | AsyncIterable<Uint8Array>, options: WriteOptions = {}): Promise<BlobStat> {
    checkKey(key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(Buffer.from(chunk as Uint8Array));
    const data = Buffer.concat(chunks);
    await options.beforeCommit?.(data.length);
    this.objects.set(key, data);
    return { size: data.length };
  }

  async move(from: string, to: string): Promise<void> {
    const data = this.objects.get(checkKey(from));
    if (!data) throw new BlobNotFoundError(from);
    this.objects.set(checkKey(to), data);
    this.objects.delete(from);
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(checkKey(key));
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (const key of keys) checkKey(key);
    for (const key of keys) this.objects.delete(key);
  }

  async *list(prefix: string): AsyncIterable<string> {
    for (const key of [...this.objects.keys()]) if (key.startsWith(prefix)) yield key;
  }

  async ping(): Promise<void> {}
}
