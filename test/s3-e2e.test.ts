/**
 * The registry on S3: the real server (listening on a loopback port) with CUSTODY's storage URL
 * pointed at s3rver, as an operator would configure it, credentials from the AWS_* environment
 * variables. Pushes (monolithic and chunked), pulls with a digest check, a ranged GET; a refused
 * digest leaves nothing in the bucket; S3 throttling reaches the client as 503 with Retry-After.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../src/storage/s3/index.ts';
import { basic, request, sha256, testAdmin } from './helpers/http.ts';
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
    const data = randomBytes(9 * 1024 * 1024 + 5); // more than one 5 MiB part: a multipart upload
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

describe('registry on S3 with storage.redirect', () => {
  let redirecting: InProcessServer;
  beforeAll(async () => {
    const url = `s3://registry/redirect?region=us-east-1&endpoint=${encodeURIComponent(s3.endpoint)}&forcePathStyle=true`;
    redirecting = await startInProcess({ config: { storage: { url, fsync: false, redirect: true }, log: { level: 'error' } } });
  });
  afterAll(async () => {
    await redirecting?.stop();
  });

  it('answers a blob GET with 307 to a presigned URL of the bucket that serves the bytes; HEAD and ranges stay with Custody', async () => {
    const data = randomBytes(300 * 1024 + 7);
    const digest = sha256(data);
    const push = await request(redirecting.url, `/v2/e2e/redirect/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: data,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(push.status, push.body.toString()).toBe(201);

    const pull = await request(redirecting.url, `/v2/e2e/redirect/blobs/${digest}`);
    expect(pull.status).toBe(307);
    expect(pull.body.length).toBe(0);
    expect(pull.headers['cache-control']).toBe('no-store');
    const location = String(pull.headers.location);
    expect(location.startsWith(`${s3.endpoint}/registry/redirect/blobs/sha256/`)).toBe(true);
    expect(new URL(location).searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);

    // a client following the redirect, as fetch does, gets the blob's bytes from S3
    const followed = await fetch(`${redirecting.url}/v2/e2e/redirect/blobs/${digest}`, {
      headers: { authorization: basic(testAdmin.username, testAdmin.password) },
    });
    expect(followed.status).toBe(200);
    expect(followed.url.startsWith(`${s3.endpoint}/registry/redirect/blobs/sha256/`)).toBe(true);
    const bytes = Buffer.from(await followed.arrayBuffer());
    expect(sha256(bytes)).toBe(digest);
    // signed with the store's credentials, for 20 minutes (s3rver checks neither V4 signatures nor
    // that a GET is signed at all, so what it answers says nothing of the signature)
    expect(new URL(location).searchParams.get('X-Amz-Credential')).toMatch(/^S3RVER\//);
    expect(new URL(location).searchParams.get('X-Amz-Expires')).toBe('1200');

    const head = await request(redirecting.url, `/v2/e2e/redirect/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers['content-length'])).toBe(data.length);
    const ranged = await request(redirecting.url, `/v2/e2e/redirect/blobs/${digest}`, { headers: { range: 'bytes=100-199' } });
    expect(ranged.status).toBe(206);
    expect(ranged.body.equals(data.subarray(100, 200))).toBe(true);

    // the redirected pull is an event that sent 0 bytes; the ranged one counts its 100
    let pulls: { status: number; bytes: number }[] = [];
    for (let i = 0; i < 200 && !(pulls.some((e) => e.status === 307) && pulls.some((e) => e.status === 206)); i++) {
      await new Promise((r) => setTimeout(r, 50));
      const r = await request(redirecting.url, `/api/v1/events?repository=e2e/redirect&type=pull&limit=50`);
      pulls = r.json<{ events: { status: number; bytes: number }[] }>().events;
    }
    expect(pulls.filter((e) => e.status === 307).map((e) => e.bytes)).toEqual([0, 0]);
    expect(pulls.find((e) => e.status === 206)?.bytes).toBe(100);
  });
});
