/**
 * The S3 BlobStore against s3rver started here on a loopback port: the shared suite unchanged
 * (once with one-part writes, once with parts small enough that the suite's objects go through
 * multipart uploads), then its faults: S3 gone mid-upload, a missing bucket, wrong credentials,
 * throttling, and the URL's errors; and that the s3rver the tests run on replaces objects atomically,
 * as S3 does (helpers/s3.ts wraps it).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageUnavailableError } from '../src/storage/blobstore.ts';
import { openBlobStore } from '../src/storage/open.ts';
import { S3BlobStore, type S3BlobStoreOptions } from '../src/storage/s3/index.ts';
import { parseS3Url } from '../src/storage/s3/url.ts';
import { s3Credentials, startFaultProxy, startS3, type FaultProxy, type RunningS3 } from './helpers/s3.ts';
import { blobStoreSuite } from './suites/storage.ts';

let s3: RunningS3;
const stores: S3BlobStore[] = [];
let n = 0;

beforeAll(async () => {
  s3 = await startS3(['custody']);
});
afterAll(async () => {
  for (const s of stores) s.close();
  await s3?.stop();
});

async function open(options: Partial<S3BlobStoreOptions> = {}, endpoint = s3.endpoint): Promise<S3BlobStore> {
  const store = await S3BlobStore.open({
    location: { bucket: 'custody', prefix: `t${++n}/`, endpoint, forcePathStyle: true, region: 'us-east-1' },
    credentials: s3Credentials,
    ...options,
  });
  stores.push(store);
  return store;
}

blobStoreSuite('s3 (s3rver)', () => open());
blobStoreSuite('s3 (s3rver, 256 KiB parts)', () => open({ partSize: 256 * 1024 }));

async function keysUnder(store: S3BlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of store.list(prefix)) keys.push(k);
  return keys;
}

describe('S3 BlobStore faults', () => {
  it('writes a multi-part object without holding it: the bytes come back whole, and a range of them', async () => {
    const store = await open({ partSize: 256 * 1024, partConcurrency: 2 });
    const data = randomBytes(3 * 256 * 1024 + 17);
    let seen = -1;
    const chunks = Array.from({ length: Math.ceil(data.length / 10_000) }, (_, i) => data.subarray(i * 10_000, (i + 1) * 10_000));
    await store.write('blobs/multi', Readable.from(chunks), { beforeCommit: (size) => void (seen = size) });
    expect(seen).toBe(data.length);
    expect((await buffer(await store.read('blobs/multi'))).equals(data)).toBe(true);
    expect(
      (await buffer(await store.read('blobs/multi', { start: 256 * 1024 - 1, end: 512 * 1024 }))).equals(data.subarray(256 * 1024 - 1, 512 * 1024 + 1)),
    ).toBe(true);
  });

  it('uploads at most partsInFlight parts at once across all its writes, so concurrent large pushes hold a bounded number of parts', async () => {
    const proxy = await startFaultProxy(s3.endpoint);
    let uploading = 0;
    let most = 0;
    proxy.decide = (req) => {
      if (req.method === 'PUT' && req.url?.includes('partNumber=')) {
        most = Math.max(most, ++uploading);
        req.once('close', () => uploading--);
      }
      return 'pass';
    };
    try {
      const store = await open({ partSize: 256 * 1024, partConcurrency: 4, partsInFlight: 2 }, proxy.endpoint);
      const blobs = [1, 2, 3, 4].map(() => randomBytes(8 * 256 * 1024 + 5));
      await Promise.all(blobs.map((data, i) => store.write(`blobs/concurrent-${i}`, Readable.from([data]))));
      for (const [i, data] of blobs.entries()) expect((await buffer(await store.read(`blobs/concurrent-${i}`))).equals(data)).toBe(true);
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(2);
    } finally {
      await proxy.stop();
    }
  });

  it('gives a failed part upload its slot back: with one part in flight, a write after a failed one still goes through', async () => {
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const store = await open({ partSize: 256 * 1024, partsInFlight: 1, maxAttempts: 1 }, proxy.endpoint);
      proxy.decide = (req) =>
        req.method === 'PUT' && req.url?.includes('partNumber=') ? { status: 400, body: '<Error><Code>InvalidPart</Code></Error>' } : 'pass';
      await expect(store.write('blobs/refused', Readable.from([randomBytes(3 * 256 * 1024)]))).rejects.toThrow();
      proxy.decide = () => 'pass';
      const data = randomBytes(3 * 256 * 1024 + 1);
      await store.write('blobs/after', Readable.from([data]));
      expect((await buffer(await store.read('blobs/after'))).equals(data)).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it('keeps a multipart object invisible until beforeCommit passes', async () => {
    const store = await open({ partSize: 64 * 1024 });
    let visibleAtCommit: unknown = 'not called';
    await expect(
      store.write('k/late', Readable.from([randomBytes(300 * 1024)]), {
        beforeCommit: async () => {
          visibleAtCommit = await store.stat('k/late');
          throw new Error('digest mismatch');
        },
      }),
    ).rejects.toThrow('digest mismatch');
    expect(visibleAtCommit).toBeUndefined();
    expect(await store.stat('k/late')).toBeUndefined();
  });

  it('answers a StorageUnavailableError, not a hang, when S3 goes away mid-upload, and leaves nothing visible', async () => {
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const store = await open({ partSize: 64 * 1024, maxAttempts: 2, requestTimeoutMs: 2000, deadlineMs: 5000 }, proxy.endpoint);
      let parts = 0;
      // The first two parts reach S3; from the third on, every connection is cut.
      proxy.decide = (req) => (req.url?.includes('partNumber=') === true && ++parts > 2 ? 'cut' : 'pass');
      const started = Date.now();
      const err = await store.write('k/cut', Readable.from([randomBytes(64 * 1024 * 5)])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect((err as StorageUnavailableError).retryAfterSeconds).toBeGreaterThan(0);
      expect(Date.now() - started).toBeLessThan(15_000);
      proxy.decide = () => 'pass';
      expect(await store.stat('k/cut')).toBeUndefined();
      // The upload was abandoned with an abort (which s3rver answers 405: it has no AbortMultipartUpload).
      expect(proxy.seen.some((r) => r.startsWith('DELETE ') && r.includes('uploadId='))).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it('aborts the multipart upload when the source breaks off after some parts, and leaves nothing visible', async () => {
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const store = await open({ partSize: 64 * 1024 }, proxy.endpoint);
      async function* broken() {
        yield randomBytes(64 * 1024 * 3);
        throw new Error('client went away');
      }
      await expect(store.write('k/broken-multi', broken())).rejects.toThrow('client went away');
      expect(proxy.seen.filter((r) => r.startsWith('PUT ') && r.includes('partNumber=')).length).toBeGreaterThanOrEqual(2);
      expect(proxy.seen.some((r) => r.startsWith('DELETE ') && r.includes('uploadId='))).toBe(true);
      expect(proxy.seen.some((r) => r.startsWith('POST ') && r.includes('uploadId='))).toBe(false); // never completed
      expect(await store.stat('k/broken-multi')).toBeUndefined();
    } finally {
      await proxy.stop();
    }
  });

  it('answers a StorageUnavailableError within the deadline when S3 accepts connections but never answers', async () => {
    // A server that accepts and says nothing: a bare TCP listener.
    const net = await import('node:net');
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as { port: number }).port;
      const store = new S3BlobStore({
        location: { bucket: 'custody', prefix: 'silent/', endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, region: 'us-east-1' },
        credentials: s3Credentials,
        maxAttempts: 2,
        requestTimeoutMs: 500,
        deadlineMs: 3000,
      });
      stores.push(store);
      const started = Date.now();
      await expect(store.stat('k/x')).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(store.write('k/x', Readable.from([Buffer.from('bytes')]))).rejects.toBeInstanceOf(StorageUnavailableError);
      expect(Date.now() - started).toBeLessThan(8000);
    } finally {
      silent.close();
    }
  });

  it('retries S3 throttling (503 SlowDown) and succeeds when it passes; answers StorageUnavailableError when it does not', async () => {
    const proxy: FaultProxy = await startFaultProxy(s3.endpoint);
    try {
      const store = await open({ maxAttempts: 4 }, proxy.endpoint);
      let throttled = 0;
      proxy.decide = (req) => (req.method === 'PUT' && throttled++ < 2 ? 'slowdown' : 'pass');
      await store.write('k/throttled', Readable.from([Buffer.from('after two SlowDowns')]));
      expect(throttled).toBeGreaterThanOrEqual(3);
      expect((await buffer(await store.read('k/throttled'))).toString()).toBe('after two SlowDowns');

      proxy.decide = (req) => (req.method === 'PUT' ? 'slowdown' : 'pass');
      const err = await store.write('k/always', Readable.from([Buffer.from('never')])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect((err as Error).message).toMatch(/throttling/);
      proxy.decide = () => 'pass';
      expect(await store.stat('k/always')).toBeUndefined();
    } finally {
      await proxy.stop();
    }
  });

  it('deletes many keys in DeleteObjects requests of at most deleteBatch keys, not one request per key', async () => {
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const store = await open({ deleteBatch: 2 }, proxy.endpoint);
      const keys = Array.from({ length: 5 }, (_, i) => `many/k${i}`);
      for (const key of keys) await store.write(key, Readable.from([Buffer.from(key)]));
      proxy.seen.length = 0;
      await store.deleteMany(keys);
      expect(proxy.seen.filter((r) => r.startsWith('POST ') && /[?&]delete(=|&|$)/.test(r))).toHaveLength(3);
      expect(proxy.seen.filter((r) => r.startsWith('DELETE '))).toEqual([]);
      expect(await keysUnder(store, 'many/')).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });

  it('fails deleteMany on a per-key error in the DeleteObjects answer, but not on NoSuchKey', async () => {
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const store = await open({ maxAttempts: 1 }, proxy.endpoint);
      const prefix = `t${n}/`;
      const result = (errors: { key: string; code: string }[]) => ({
        status: 200,
        body:
          '<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
          errors.map((e) => `<Error><Key>${prefix}${e.key}</Key><Code>${e.code}</Code><Message>${e.code} here</Message></Error>`).join('') +
          '</DeleteResult>',
      });
      proxy.decide = (req) => (req.method === 'POST' ? result([{ key: 'gone/a', code: 'NoSuchKey' }]) : 'pass');
      await expect(store.deleteMany(['gone/a', 'gone/b'])).resolves.toBeUndefined();

      proxy.decide = (req) =>
        req.method === 'POST'
          ? result([
              { key: 'gone/a', code: 'NoSuchKey' },
              { key: 'kept/b', code: 'AccessDenied' },
            ])
          : 'pass';
      const err = await store.deleteMany(['gone/a', 'kept/b']).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect((err as Error).message).toMatch(/did not delete 1 of them \(AccessDenied: AccessDenied here; kept\/b\)/);
    } finally {
      await proxy.stop();
    }
  });

  it('refuses to open on a missing bucket, and names it', async () => {
    const err = await S3BlobStore.open({
      location: { bucket: 'no-such-bucket', prefix: '', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' },
      credentials: s3Credentials,
      maxAttempts: 1,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageUnavailableError);
    expect((err as Error).message).toMatch(/bucket no-such-bucket does not exist/);
  });

  it('answers StorageUnavailableError for an access key S3 does not know, and for a wrong secret', async () => {
    const store = await open();
    const unknown = new S3BlobStore({
      location: { bucket: 'custody', prefix: 'wrong/', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' },
      credentials: { accessKeyId: 'nobody', secretAccessKey: 'S3RVER' },
      maxAttempts: 1,
    });
    stores.push(unknown);
    await expect(unknown.write('k/denied', Readable.from([Buffer.from('x')]))).rejects.toThrow(/refused the credentials \(InvalidAccessKeyId\)/);
    await expect(unknown.ping()).rejects.toBeInstanceOf(StorageUnavailableError);
    expect(await keysUnder(store, '')).toEqual([]);

    // s3rver does not check V4 signatures (it takes any secret), so S3's answer to a wrong
    // secret comes from the proxy here.
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const wrong = await open({ maxAttempts: 1 }, proxy.endpoint);
      proxy.decide = () => ({
        status: 403,
        body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>',
      });
      const err = await wrong.write('k/denied', Readable.from([Buffer.from('x')])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageUnavailableError);
      expect((err as Error).message).toMatch(/refused the credentials \(SignatureDoesNotMatch\)/);
    } finally {
      await proxy.stop();
    }
  });

  it('reports a server without ListMultipartUploads (s3rver) as unsupported instead of failing to open', async () => {
    const store = await open();
    expect(await store.abortAbandonedUploads()).toBe('unsupported');
  });

  it('aborts multipart uploads older than the expiry, and only those (ListMultipartUploads answered by the proxy)', async () => {
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const store = await open({ abandonedUploadAfterMs: 3600_000 }, proxy.endpoint);
      const now = Date.now();
      const iso = (ms: number) => new Date(ms).toISOString();
      proxy.decide = (req) => {
        if (req.method === 'GET' && req.url?.includes('uploads') === true) {
          return {
            status: 200,
            body:
              '<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>custody</Bucket><IsTruncated>false</IsTruncated>' +
              `<Upload><Key>t/old</Key><UploadId>old-1</UploadId><Initiated>${iso(now - 2 * 3600_000)}</Initiated></Upload>` +
              `<Upload><Key>t/young</Key><UploadId>young-1</UploadId><Initiated>${iso(now - 60_000)}</Initiated></Upload>` +
              '</ListMultipartUploadsResult>',
          };
        }
        if (req.method === 'DELETE' && req.url?.includes('uploadId=') === true) return { status: 204, body: '' };
        return 'pass';
      };
      expect(await store.abortAbandonedUploads(now)).toBe(1);
      const aborts = proxy.seen.filter((r) => r.startsWith('DELETE '));
      expect(aborts).toHaveLength(1);
      expect(aborts[0]).toMatch(/t\/old\?.*uploadId=old-1/);
    } finally {
      await proxy.stop();
    }
  });
});

describe('the S3 the tests run on', () => {
  it('replaces an object atomically, as S3 does: readers racing overwrites and copies of it see it whole, never missing', async () => {
    const store = await open();
    const data = randomBytes(200_000);
    await store.write('blobs/same', Readable.from([data]));
    await store.write('parts/same', Readable.from([data]));
    const seen: string[] = [];
    let writing = true;
    const writes = (async () => {
      for (let i = 0; i < 20; i++) {
        await store.write('blobs/same', Readable.from([data]));
        await store.write('parts/copy', Readable.from([data]));
        await store.move('parts/copy', 'blobs/same');
      }
      writing = false;
    })();
    const reads = Array.from({ length: 4 }, async () => {
      while (writing) {
        const got = await store
          .read('blobs/same')
          .then(buffer)
          .catch((err: unknown) => Buffer.from(String(err)));
        if (!got.equals(data)) seen.push(got.length === data.length ? 'other bytes' : got.subarray(0, 80).toString());
      }
    });
    await Promise.all([writes, ...reads]);
    expect(seen).toEqual([]);
  });
});

describe('s3:// URLs', () => {
  it('parses bucket, prefix, region, endpoint and forcePathStyle', () => {
    expect(parseS3Url('s3://my-bucket/reg/one?region=eu-west-1&endpoint=http://127.0.0.1:9000&forcePathStyle=true')).toEqual({
      bucket: 'my-bucket',
      prefix: 'reg/one/',
      region: 'eu-west-1',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
    });
    expect(parseS3Url('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '', forcePathStyle: false });
    expect(parseS3Url('s3://my-bucket?partSizeMiB=16&partsInFlight=8')).toEqual({
      bucket: 'my-bucket',
      prefix: '',
      forcePathStyle: false,
      partSize: 16 * 1024 * 1024,
      partsInFlight: 8,
    });
  });

  it('refuses bad URLs with the reason', async () => {
    const bad: [string, RegExp][] = [
      ['s3:///prefix', /bucket is missing/],
      ['s3://Bad_Bucket/x', /not a valid bucket name/],
      ['s3://bucket/x?regoin=eu-west-1', /unknown query parameter "regoin"/],
      ['s3://bucket?forcePathStyle=yes', /forcePathStyle must be true or false/],
      ['s3://bucket?endpoint=ftp://host', /endpoint must be http/],
      ['s3://bucket?endpoint=nope', /endpoint "nope" is not a URL/],
      ['s3://key:secret@bucket', /credentials do not belong in the URL/],
      ['s3://bucket/a%20b', /prefix may hold only/],
      ['s3://bucket?region=a&region=b', /more than once/],
      ['s3://bucket?partSizeMiB=4', /partSizeMiB must be a whole number from 5 to 5120/],
      ['s3://bucket?partSizeMiB=8.5', /partSizeMiB must be a whole number/],
      ['s3://bucket?partsInFlight=0', /partsInFlight must be a whole number from 1 to 64/],
      ['s3://bucket?partsInFlight=65', /partsInFlight must be/],
    ];
    for (const [url, message] of bad) expect(() => parseS3Url(url), url).toThrow(message);
    await expect(openBlobStore('s3://bucket?nope=1', { fsync: true })).rejects.toThrow(/unknown query parameter/);
  });
});
