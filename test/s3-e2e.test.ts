/**
 * The registry on S3: the real server (listening on a loopback port) with CUSTODY's storage URL
 * pointed at s3rver, as an operator would configure it, credentials from the AWS_* environment
 * variables. Pushes (monolithic and chunked), pulls with a digest check, a ranged GET; a refused
 * digest leaves nothing in the bucket; S3 throttling reaches the client as 503 with Retry-After.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../src/storage/s3/index.ts';
import { request, sha256 } from './helpers/http.ts';
import { s3Credentials, startFaultProxy, startS3, type FaultProxy, type RunningS3 } from './helpers/s3.ts';
import { startInProcess, type InProcessServer } from './helpers/server.ts';

let s3: RunningS3;
let proxy: FaultProxy;
let server: InProcessServer;
let bucket: S3BlobStore;

beforeAll(async () => {
  s3 = await startS3(['registry']);
  // Through the proxy, which passes everything on until a test tells it otherwise.
  proxy = await startFaultProxy(s3.endpoint);
  process.env.AWS_ACCESS_KEY_ID = s3Credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3Credentials.secretAccessKey;
  const url = `s3://registry/custody?region=us-east-1&endpoint=${encodeURIComponent(proxy.endpoint)}&forcePathStyle=true`;
  server = await startInProcess({ config: { storage: { url, fsync: false }, log: { level: 'error' } } });
  bucket = new S3BlobStore({
    location: { bucket: 'registry', prefix: 'custody/', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' },
    credentials: s3Credentials,
  });
});
afterAll(async () => {
  await server?.stop();
  bucket?.close();
  await proxy?.stop();
  await s3?.stop();
});

const codeOf = (body: Buffer) => (JSON.parse(body.toString()) as { errors: { code: string }[] }).errors[0]?.code;

async function keys(prefix: string): Promise<string[]> {
  const all: string[] = [];
  for await (const k of bucket.list(prefix)) all.push(k);
  return all.sort();
}

describe('registry on S3 (s3rver)', () => {
  it('pushes a blob in one POST, pulls it with its digest, and serves a range', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 5); // more than one 8 MiB part: a multipart upload
    const digest = sha256(data);
    const push = await request(server.url, `/v2/e2e/mono/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: data,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(push.status, push.body.toString()).toBe(201);
    const hex = digest.slice('sha256:'.length);
    expect(await keys('blobs/')).toContain(`blobs/sha256/${hex.slice(0, 2)}/${hex}`);

    const pull = await request(server.url, `/v2/e2e/mono/blobs/${digest}`);
    expect(pull.status).toBe(200);
    expect(sha256(pull.body)).toBe(digest);
    const ranged = await request(server.url, `/v2/e2e/mono/blobs/${digest}`, { headers: { range: 'bytes=8388600-8388700' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-range']).toBe(`bytes 8388600-8388700/${data.length}`);
    expect(ranged.body.equals(data.subarray(8388600, 8388701))).toBe(true);
  });

  it('pushes a blob in chunks (POST, PATCH, PATCH, PUT) and pulls it whole', async () => {
    const data = randomBytes(300 * 1024 + 3);
    const digest = sha256(data);
    const start = await request(server.url, '/v2/e2e/chunked/blobs/uploads/', { method: 'POST' });
    expect(start.status).toBe(202);
    let location = start.headers.location as string;
    const cut = 200 * 1024;
    for (const [from, to] of [
      [0, cut],
      [cut, data.length],
    ] as const) {
      const patch = await request(server.url, location, {
        method: 'PATCH',
        body: data.subarray(from, to),
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}` },
      });
      expect(patch.status, patch.body.toString()).toBe(202);
      location = patch.headers.location as string;
    }
    const put = await request(server.url, `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT' });
    expect(put.status, put.body.toString()).toBe(201);
    const pull = await request(server.url, `/v2/e2e/chunked/blobs/${digest}`);
    expect(pull.status).toBe(200);
    expect(sha256(pull.body)).toBe(digest);
    expect(pull.body.length).toBe(data.length);
  });

  it('refuses a wrong digest with 400 and leaves no object in the bucket for it', async () => {
    const data = randomBytes(1000);
    const claimed = sha256('something else');
    const before = await keys('blobs/');
    const push = await request(server.url, `/v2/e2e/bad/blobs/uploads/?digest=${claimed}`, {
      method: 'POST',
      body: data,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(push.status).toBe(400);
    expect(codeOf(push.body)).toBe('DIGEST_INVALID');
    expect(await keys('blobs/')).toEqual(before);
  });

  it('answers 503 with Retry-After when S3 keeps throttling, and serves again once it stops', async () => {
    const data = randomBytes(2048);
    const digest = sha256(data);
    const push = await request(server.url, `/v2/e2e/throttled/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: data,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(push.status).toBe(201);
    proxy.decide = () => 'slowdown';
    try {
      const pull = await request(server.url, `/v2/e2e/throttled/blobs/${digest}`);
      expect(pull.status).toBe(503);
      expect(Number(pull.headers['retry-after'])).toBeGreaterThan(0);
      expect(codeOf(pull.body)).toBe('UNAVAILABLE');
      const other = randomBytes(100);
      const refused = await request(server.url, `/v2/e2e/throttled/blobs/uploads/?digest=${sha256(other)}`, {
        method: 'POST',
        body: other,
        headers: { 'content-type': 'application/octet-stream' },
      });
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBeDefined();
    } finally {
      proxy.decide = () => 'pass';
    }
    const again = await request(server.url, `/v2/e2e/throttled/blobs/${digest}`);
    expect(again.status).toBe(200);
    expect(sha256(again.body)).toBe(digest);
  });
});
