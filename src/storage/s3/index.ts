/**
 * The S3 BlobStore (see README.md in this directory for the layout and the commit rule).
 *
 * Every object is written with a multipart upload straight to its own key, or, when it fits in one
 * part, with one PutObject sent only after the whole body has arrived. S3 shows a multipart object
 * only once CompleteMultipartUpload succeeds, so `beforeCommit` runs between the last part and
 * the completion: a refused digest, a body that breaks off or an S3 error aborts the upload and
 * leaves nothing (an earlier object under the key stays as it was).
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobNotFoundError, checkKey, StorageUnavailableError, type BlobStat, type BlobStore, type ByteRange, type WriteOptions } from '../blobstore.ts';
import { isNotFound, unavailable } from './errors.ts';
import { PartBuffers, release, splitParts, type Part } from './parts.ts';
import { streamed } from '../streamed.ts';
import type { S3Location } from './url.ts';
import { Slots } from '../../slots.ts';

export interface S3BlobStoreOptions {
  location: S3Location;
  /** bytes per uploaded part (default: the URL's partSizeMiB, else 5 MiB; AWS S3 refuses parts under 5 MiB but the last) */
  partSize?: number;
  /** parts uploaded at once per write (default 4) */
  partConcurrency?: number;
  /**
   * parts uploaded at once by all of this store's writes together (default: the URL's
   * partsInFlight, else 2): what bounds memory when several large pushes run at once, each
   * holding these and the one part it is filling
   */
  partsInFlight?: number;
  /** a request whose socket is silent this long is abandoned, and retried (default 30 s) */
  requestTimeoutMs?: number;
  /** one operation, retries included, gives up after this long (default 5 min) */
  deadlineMs?: number;
  /** attempts per request, with the SDK's standard retry strategy (backoff, throttling) (default 4) */
  maxAttempts?: number;
  /** multipart uploads started longer ago than this are leftovers, aborted when the store opens (default 24 h) */
  abandonedUploadAfterMs?: number;
  /** objects larger than this are moved with a multipart copy (default and S3's limit: 5 GiB) */
  maxSingleCopy?: number;
  /** keys per DeleteObjects request (default and S3's limit: 1000) */
  deleteBatch?: number;
  /** default: the SDK's chain (AWS_* environment variables, profiles, instance roles) */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export class S3BlobStore implements BlobStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partBuffers: PartBuffers;
  private readonly partConcurrency: number;
  private readonly partSlots: Slots;
  private readonly deadlineMs: number;
  private readonly abandonedAfterMs: number;
  private readonly maxSingleCopy: number;
  private readonly deleteBatch: number;

  constructor(options: S3BlobStoreOptions) {
    const { location } = options;
    this.bucket = location.bucket;
    this.prefix = location.prefix;
    this.partBuffers = new PartBuffers(options.partSize ?? location.partSize ?? 5 * MiB);
    this.partConcurrency = options.partConcurrency ?? 4;
    this.partSlots = new Slots(Math.max(1, options.partsInFlight ?? location.partsInFlight ?? 2));
    this.deadlineMs = options.deadlineMs ?? 5 * 60_000;
    this.abandonedAfterMs = options.abandonedUploadAfterMs ?? 24 * 3600_000;
    this.maxSingleCopy = options.maxSingleCopy ?? 5 * GiB;
    this.deleteBatch = Math.min(1000, Math.max(1, options.deleteBatch ?? 1000));
    this.client = new S3Client({
      region: location.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(location.endpoint !== undefined ? { endpoint: location.endpoint } : {}),
      forcePathStyle: location.forcePathStyle,
      maxAttempts: options.maxAttempts ?? 4,
      retryMode: 'standard',
      // S3-compatible servers do not all take the newer checksum trailers; the registry checks
      // every blob's digest itself.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 5000, requestTimeout: options.requestTimeoutMs ?? 30_000 },
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
    });
  }

  /** Opens the store: the bucket must answer, and multipart uploads abandoned by a crash are aborted. */
  static async open(options: S3BlobStoreOptions): Promise<S3BlobStore> {
    const store = new S3BlobStore(options);
    try {
      await store.ping();
      await store.abortAbandonedUploads();
    } catch (err) {
      store.close();
      throw err;
    }
    return store;
  }

  close(): void {
    this.client.destroy();
  }

  private objectKey(key: string): string {
    return this.prefix + checkKey(key);
  }

  /** One SDK call, bounded by the deadline; an error of S3 becomes a StorageUnavailableError (or, given `key`, a BlobNotFoundError). */
  private async send<T>(what: string, call: (options: { abortSignal?: AbortSignal }) => Promise<T>, key?: string, deadline = true): Promise<T> {
    try {
      return await call(deadline ? { abortSignal: AbortSignal.timeout(this.deadlineMs) } : {});
    } catch (err) {
      if (key !== undefined && isNotFound(err)) throw new BlobNotFoundError(key);
      throw unavailable(err, what, this.bucket);
    }
  }

  async stat(key: string): Promise<BlobStat | undefined> {
    try {
      const head = await this.send(`stat ${key}`, (o) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), o), key);
      return { size: head.ContentLength ?? 0 };
    } catch (err) {
      if (err instanceof BlobNotFoundError) return undefined;
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    // No deadline on the call: it would cut the body off while the caller reads it. The socket's
    // inactivity timeout still ends a stalled transfer.
    const out = await this.send(
      `read ${key}`,
      (o) =>
        this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
          o,
        ),
      key,
      false,
    );
    if (out.Body instanceof Readable) return out.Body;
    if (out.Body === undefined) return Readable.from([]);
    throw new Error('the S3 SDK answered a body that is not a Node stream');
  }

  async openCopy(key: string, range?: ByteRange): Promise<(out: Writable) => Promise<void>> {
    const body = await this.read(key, range);
    // each chunk is a buffer the socket allocated, dead once written: the pacer hears of them
    return (out) => pipeline(body, reportingStreamed, out, { end: false });
  }

  async write(key: string, body: Readable | AsyncIterable<Uint8Array>, options: WriteOptions = {}): Promise<BlobStat> {
    const end = this.partBuffers.begin();
    try {
      return await this.writeParts(key, splitParts(body, this.partBuffers), options);
    } finally {
      end();
    }
  }

  private async writeParts(key: string, parts: AsyncGenerator<Part>, options: WriteOptions): Promise<BlobStat> {
    const target = this.objectKey(key);
    const first = await parts.next();
    if (first.done === true) throw new Error('splitParts yields at least one part');
    if (first.value.last) {
      const bytes = first.value.bytes;
      await options.beforeCommit?.(bytes.length);
      await this.send(`write ${key}`, (o) =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: target, Body: bytes, ContentLength: bytes.length }), o),
      );
      const size = bytes.length;
      // the chunks joined into a buffer of its own (parts.ts): S3 has it, so its memory goes now
      release(bytes);
      return { size };
    }

    const created = await this.send(`write ${key}`, (o) => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target }), o));
    const uploadId = created.UploadId;
    if (uploadId === undefined) throw unavailable(new Error('no UploadId in the answer'), `write ${key}`, this.bucket);
    const completed: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    let size = 0;
    let number = 0;
    const upload = async ({ bytes, pooled }: Part) => {
      await this.partSlots.take();
      const partNumber = ++number;
      size += bytes.length;
      const sent = this.send(`write ${key} (part ${partNumber})`, (o) =>
        this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, PartNumber: partNumber, Body: bytes, ContentLength: bytes.length }),
          o,
        ),
      ).then(
        (r) => void (completed[partNumber - 1] = { PartNumber: partNumber, ETag: r.ETag }),
        (err: unknown) => void (failure ??= { err }),
      );
      const tracked = sent.finally(() => {
        // S3 has the part, or never will: the SDK is done with its bytes
        if (pooled) this.partBuffers.give(pooled);
        this.partSlots.give();
        inFlight.delete(tracked);
      });
      inFlight.add(tracked);
    };
    try {
      await upload(first.value);
      for await (const part of parts) {
        if (failure) break;
        await upload(part);
        while (inFlight.size >= this.partConcurrency) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      if (failure) throw failure.err;
      await options.beforeCommit?.(size);
      await this.send(`write ${key}`, (o) =>
        this.client.send(
          new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, MultipartUpload: { Parts: completed } }),
          o,
        ),
      );
      return { size };
    } catch (err) {
      await Promise.allSettled(inFlight);
      await this.abortUpload(target, uploadId);
      throw err;
    }
  }

  /**
   * Best effort: an upload that cannot be aborted now (S3 unreachable, or a server without
   * AbortMultipartUpload) stays invisible, and is aborted by the next open or a lifecycle rule.
   */
  private async abortUpload(objectKey: string, uploadId: string): Promise<boolean> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }), {
        abortSignal: AbortSignal.timeout(Math.min(this.deadlineMs, 30_000)),
      });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Aborts the multipart uploads under the prefix started longer ago than the expiry: what
   * crashed writes left (invisible, but billed). Younger ones may be other servers' writes.
   * Answers how many were aborted, or 'unsupported' for a server without ListMultipartUploads.
   */
  async abortAbandonedUploads(now = Date.now()): Promise<number | 'unsupported'> {
    const cutoff = now - this.abandonedAfterMs;
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
          { abortSignal: AbortSignal.timeout(this.deadlineMs) },
        );
      } catch (err) {
        const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
        if (e.name === 'NotImplemented' || e.$metadata?.httpStatusCode === 501) return 'unsupported';
        throw unavailable(err, 'listing abandoned multipart uploads', this.bucket);
      }
      for (const u of page.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined || u.Initiated === undefined) continue;
        if (u.Initiated.getTime() >= cutoff) continue;
        if (await this.abortUpload(u.Key, u.UploadId)) aborted++;
      }
      if (page.IsTruncated !== true) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async move(from: string, to: string): Promise<void> {
    const source = this.objectKey(from);
    const target = this.objectKey(to);
    const head = await this.send(`move ${from}`, (o) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: source }), o), from);
    const size = head.ContentLength ?? 0;
    const copySource = `${this.bucket}/${source}`;
    if (size <= this.maxSingleCopy) {
      await this.send(`move ${from}`, (o) => this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource: copySource }), o), from);
    } else {
      await this.multipartCopy(copySource, target, size, from);
    }
    await this.delete(from);
  }

  /** A copy of an object over S3's 5 GiB CopyObject limit: UploadPartCopy in ranges, visible on completion. */
  private async multipartCopy(copySource: string, target: string, size: number, from: string): Promise<void> {
    const what = `move ${from}`;
    const created = await this.send(what, (o) => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target }), o));
    const uploadId = created.UploadId;
    if (uploadId === undefined) throw unavailable(new Error('no UploadId in the answer'), what, this.bucket);
    const step = Math.max(this.partBuffers.size, Math.ceil(size / 10_000), Math.min(this.maxSingleCopy, GiB));
    try {
      const parts: CompletedPart[] = [];
      for (let start = 0, n = 1; start < size; start += step, n++) {
        const end = Math.min(size, start + step) - 1;
        const r = await this.send(
          what,
          (o) =>
            this.client.send(
              new UploadPartCopyCommand({
                Bucket: this.bucket,
                Key: target,
                UploadId: uploadId,
                PartNumber: n,
                CopySource: copySource,
                CopySourceRange: `bytes=${start}-${end}`,
              }),
              o,
            ),
          from,
        );
        parts.push({ PartNumber: n, ETag: r.CopyPartResult?.ETag });
      }
      await this.send(what, (o) =>
        this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId: uploadId, MultipartUpload: { Parts: parts } }), o),
      );
    } catch (err) {
      await this.abortUpload(target, uploadId);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.send(`delete ${key}`, (o) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), o));
  }

  /**
   * DeleteObjects, up to 1000 keys a request (S3's limit), two requests at a time. S3 answers 200
   * even when some keys could not be deleted, listing them as errors: a key already gone
   * (NoSuchKey, as some S3-compatible servers answer) is fine, any other error fails the call.
   */
  async deleteMany(keys: string[]): Promise<void> {
    const objectKeys = keys.map((k) => this.objectKey(k));
    const batches: string[][] = [];
    for (let i = 0; i < objectKeys.length; i += this.deleteBatch) batches.push(objectKeys.slice(i, i + this.deleteBatch));
    let next = 0;
    const worker = async () => {
      while (next < batches.length) await this.deleteBatchOf(batches[next++] as string[]);
    };
    await Promise.all(Array.from({ length: Math.min(2, batches.length) }, worker));
  }

  private async deleteBatchOf(objectKeys: string[]): Promise<void> {
    const what = `delete ${objectKeys.length} objects`;
    const answer = await this.send(what, (o) =>
      this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: objectKeys.map((Key) => ({ Key })), Quiet: true } }), o),
    );
    const failed = (answer.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
    if (failed.length === 0) return;
    const first = failed[0]!;
    const keys = failed
      .slice(0, 3)
      .map((e) => (e.Key ?? '?').slice(this.prefix.length))
      .join(', ');
    throw new StorageUnavailableError(
      `${what}: S3 did not delete ${failed.length} of them (${first.Code ?? 'Error'}: ${first.Message ?? ''}; ${keys}${failed.length > 3 ? ', …' : ''})`,
      { retryAfterSeconds: first.Code === 'SlowDown' ? 2 : 5 },
    );
  }

  /** A presigned GetObject: signed here with the store's credentials, no request to S3. */
  async readUrl(key: string, expiresInSeconds: number): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), { expiresIn: expiresInSeconds });
  }

  async *list(prefix: string): AsyncIterable<string> {
    const full = this.prefix + prefix;
    let token: string | undefined;
    do {
      const page = await this.send(`list ${prefix}`, (o) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ContinuationToken: token }), o),
      );
      for (const o of page.Contents ?? []) if (o.Key?.startsWith(full) === true) yield o.Key.slice(this.prefix.length);
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: AbortSignal.timeout(this.deadlineMs) });
    } catch (err) {
      // HeadBucket has no body, so a missing bucket is a bare 404.
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      throw unavailable(status === 404 ? Object.assign(new Error('no such bucket'), { name: 'NoSuchBucket' }) : err, 'ping', this.bucket);
    }
  }
}

async function* reportingStreamed(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    yield chunk;
    streamed(chunk.byteLength);
  }
}
