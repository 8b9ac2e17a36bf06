/**
 * BlobStore: the small driver interface under the registry core.
 *
 * It is shaped after object stores (S3): whole-object writes, ranged reads, no append and no
 * atomic rename. Everything a registry needs (content addressing, digests, uploads in chunks)
 * lives one layer up, in src/oci. Keys are slash-separated paths of [a-z0-9._-] segments.
 */
import type { Readable, Writable } from 'node:stream';

export interface BlobStat {
  size: number;
}

export interface ByteRange {
  /** first byte, inclusive */
  start: number;
  /** last byte, inclusive */
  end: number;
}

export interface WriteOptions {
  /**
   * Called after every byte is written and before the object becomes visible. Throwing here
   * aborts the write: nothing is left under the key (an earlier object there stays untouched).
   */
  beforeCommit?: (size: number) => void | Promise<void>;
  /**
   * An intermediate object (an upload's part) that only becomes a blob by a later move(): its
   * bytes are made durable, but its name need not survive power loss, so a driver may skip the
   * directory sync a rename would otherwise cost. move() makes the final name durable.
   */
  staging?: boolean;
}

export interface BlobStore {
  /** The object's size, or undefined when there is none. */
  stat(key: string): Promise<BlobStat | undefined>;
  /** A stream of the object (or of a range of it); rejects with BlobNotFoundError. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /**
   * Serving an object: opens it (rejecting with BlobNotFoundError before anything is written) and
   * returns a function that writes it, or a range of it, into `out` without ending `out`, and
   * resolves once `out` has taken every byte. Unlike read(), the driver may reuse its buffers.
   */
  openCopy(key: string, range?: ByteRange): Promise<(out: Writable) => Promise<void>>;
  /** Writes a whole object; it becomes visible atomically, only when the write succeeds. */
  write(key: string, body: Readable | AsyncIterable<Uint8Array>, options?: WriteOptions): Promise<BlobStat>;
  /** Moves an object to another key (a copy and a delete where the backend has no rename). */
  move(from: string, to: string): Promise<void>;
  /** Deletes an object; deleting a missing object is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Deletes several objects, in as few requests as the backend allows (S3: DeleteObjects, 1000
   * keys each); missing objects are not an error. When it rejects, some of the keys may be gone
   * and others not: deleting them again is safe. Optional: deleteKeys() falls back to delete().
   */
  deleteMany?(keys: string[]): Promise<void>;
  /**
   * A URL from which a client can GET the object itself, without this server, for `expiresInSeconds`
   * (S3: a presigned GetObject). Optional: a driver without one is always served by the registry.
   */
  readUrl?(key: string, expiresInSeconds: number): Promise<string>;
  /** Every key below a prefix, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
  /** Answers whether the backend can be used (for /readyz). */
  ping(): Promise<void>;
}

/**
 * Deletes `keys` with the store's deleteMany, or, for a store without one, with delete() calls,
 * `concurrency` at a time.
 */
export async function deleteKeys(store: BlobStore, keys: string[], concurrency = 2): Promise<void> {
  if (keys.length === 0) return;
  if (store.deleteMany) return store.deleteMany(keys);
  await deleteEach(store, keys, concurrency);
}

/** delete() for each key, `concurrency` at a time: a driver's deleteMany where there is no batch request. */
export async function deleteEach(store: Pick<BlobStore, 'delete'>, keys: string[], concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < keys.length) await store.delete(keys[next++] as string);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
}

/** Where a blob's bytes live in a BlobStore: the one layout every part that reads blobs by digest uses. */
export function blobKeyOf(algorithm: string, hex: string): string {
  return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}`;
}

export class BlobNotFoundError extends Error {
  readonly key: string;

  constructor(key: string) {
    super(`no object at ${key}`);
    this.key = key;
    this.name = 'BlobNotFoundError';
  }
}

const keyPattern = /^[a-z0-9._-]+(\/[a-z0-9._-]+)*$/i;

/** Refuses keys that could escape the store's root (`..`, absolute paths, odd characters). */
export function checkKey(key: string): string {
  if (!keyPattern.test(key) || key.split('/').some((s) => s === '.' || s === '..')) {
    throw new Error(`invalid blob store key: ${JSON.stringify(key)}`);
  }
  return key;
}

/**
 * The backend cannot serve the request now (unreachable, throttling, refusing our credentials,
 * a missing bucket), after the driver's own retries. The HTTP layer answers 503 with
 * `Retry-After: retryAfterSeconds`; nothing was made visible by the failed operation.
 */
export class StorageUnavailableError extends Error {
  readonly retryAfterSeconds: number;

  constructor(message: string, options: { retryAfterSeconds: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.name = 'StorageUnavailableError';
  }
}
