/**
 * Blob pull and push over HTTP, as the OCI Distribution Spec describes them. The handlers' answers
 * come through inject(); what happens on a socket (a connection cut mid-blob, a client that leaves
 * mid-pull or mid-push) is asked of a listening server.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readlink, rm, truncate } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, pushBlob, request, sha256, testAdmin } from './helpers/http.ts';
import { expireUploads } from '../src/oci/expiry.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { openBlobStore } from '../src/storage/open.ts';
import { startInjected, startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

/** The files in a directory; none when it is gone (the fs store removes an upload's directory with its last part). */
async function filesIn(dir: string): Promise<string[]> {
  return readdir(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
}

const server = await startInjected();
afterAll(() => server.stop());
const base = server.url;
const adminAuth = basic(testAdmin.username, testAdmin.password);

/** Polls `check` until it holds, for what the server does after a client has gone (no reply tells when). */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const leftoversOf = (s: InProcessServer) => readdir(path.join(s.dataDir, 'blobs', '_tmp'));

async function startUpload(repo: string): Promise<string> {
  const r = await request(base, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(r.status).toBe(202);
  expect(r.headers.location).toMatch(new RegExp(`^/v2/${repo}/blobs/uploads/[0-9a-f-]{36}$`));
  expect(r.headers['docker-upload-uuid']).toBeTruthy();
  return r.headers.location as string;
}

describe('pull', () => {
  it('serves a blob of several MiB whole and in ranges', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 17);
    const digest = await pushBlob(base, 'pull/big', data);
    const whole = await request(base, `/v2/pull/big/blobs/${digest}`);
    expect(whole.status).toBe(200);
    expect(sha256(whole.body)).toBe(digest);
    const part = await request(base, `/v2/pull/big/blobs/${digest}`, { headers: { range: 'bytes=1048570-3145739' } });
    expect(part.status).toBe(206);
    expect(part.body.equals(data.subarray(1048570, 3145740))).toBe(true);
  });

  it('serves GET and HEAD with digest, length and etag', async () => {
    const digest = await pushBlob(base, 'pull/a', 'hello world');
    const get = await request(base, `/v2/pull/a/blobs/${digest}`);
    expect(get.status).toBe(200);
    expect(get.body.toString()).toBe('hello world');
    expect(get.headers['docker-content-digest']).toBe(digest);
    expect(get.headers['content-length']).toBe('11');
    expect(get.headers.etag).toBe(`"${digest}"`);
    const head = await request(base, `/v2/pull/a/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('11');
    expect(head.body.length).toBe(0);
  });

  it('serves ranges with 206 and refuses unsatisfiable ones with 416', async () => {
    const digest = await pushBlob(base, 'pull/range', '0123456789');
    const part = await request(base, `/v2/pull/range/blobs/${digest}`, { headers: { range: 'bytes=2-5' } });
    expect(part.status).toBe(206);
    expect(part.body.toString()).toBe('2345');
    expect(part.headers['content-range']).toBe('bytes 2-5/10');
    expect((await request(base, `/v2/pull/range/blobs/${digest}`, { headers: { range: 'bytes=7-' } })).body.toString()).toBe('789');
    expect((await request(base, `/v2/pull/range/blobs/${digest}`, { headers: { range: 'bytes=-3' } })).body.toString()).toBe('789');
    const bad = await request(base, `/v2/pull/range/blobs/${digest}`, { headers: { range: 'bytes=10-20' } });
    expect(bad.status).toBe(416);
    expect(bad.headers['content-range']).toBe('bytes */10');
  });

  it('answers BLOB_UNKNOWN for a blob of another repository or none', async () => {
    const digest = await pushBlob(base, 'pull/mine', 'private bytes');
    const other = await request(base, `/v2/pull/theirs/blobs/${digest}`);
    expect(other.status).toBe(404);
    expect(other.json()).toMatchObject({ errors: [{ code: 'BLOB_UNKNOWN' }] });
    expect((await request(base, `/v2/pull/mine/blobs/${sha256('nothing')}`)).status).toBe(404);
  });

  it('deletes a blob from a repository', async () => {
    const digest = await pushBlob(base, 'pull/del', 'delete me');
    expect((await request(base, `/v2/pull/del/blobs/${digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await request(base, `/v2/pull/del/blobs/${digest}`)).status).toBe(404);
    expect((await request(base, `/v2/pull/del/blobs/${digest}`, { method: 'DELETE' })).status).toBe(404);
  });
});

describe('push', () => {
  it('accepts a single POST with ?digest=', async () => {
    const digest = sha256('mono');
    const r = await request(base, `/v2/push/mono/blobs/uploads/?digest=${digest}`, { method: 'POST', body: 'mono' });
    expect(r.status).toBe(201);
    expect(r.headers.location).toBe(`/v2/push/mono/blobs/${digest}`);
    expect(r.headers['docker-content-digest']).toBe(digest);
  });

  it('accepts POST then PUT with the body', async () => {
    const loc = await startUpload('push/two');
    const digest = sha256('two steps');
    const r = await request(base, `${loc}?digest=${digest}`, { method: 'PUT', body: 'two steps' });
    expect(r.status).toBe(201);
    expect((await request(base, `/v2/push/two/blobs/${digest}`)).body.toString()).toBe('two steps');
  });

  it('accepts chunks with Content-Range, reports progress, and joins them', async () => {
    const loc = await startUpload('push/chunks');
    const data = Buffer.from('abcdefghijklmnopqrstuvwxyz');
    let r = await request(base, loc, {
      method: 'PATCH',
      body: data.subarray(0, 10),
      headers: { 'content-range': '0-9', 'content-type': 'application/octet-stream' },
    });
    expect(r.status).toBe(202);
    expect(r.headers.range).toBe('0-9');
    const status = await request(base, loc);
    expect(status.status).toBe(204);
    expect(status.headers.range).toBe('0-9');
    expect(status.headers.location).toBe(loc);
    r = await request(base, loc, { method: 'PATCH', body: data.subarray(10, 20), headers: { 'content-range': '10-19' } });
    expect(r.headers.range).toBe('0-19');
    const digest = sha256(data);
    r = await request(base, `${loc}?digest=${digest}`, { method: 'PUT', body: data.subarray(20), headers: { 'content-range': '20-25' } });
    expect(r.status).toBe(201);
    expect((await request(base, `/v2/push/chunks/blobs/${digest}`)).body).toEqual(data);
  });

  it('refuses a chunk that does not start at the current offset with 416', async () => {
    const loc = await startUpload('push/overlap');
    await request(base, loc, { method: 'PATCH', body: '0123456789', headers: { 'content-range': '0-9' } });
    const overlap = await request(base, loc, { method: 'PATCH', body: '56789abcde', headers: { 'content-range': '5-14' } });
    expect(overlap.status).toBe(416);
    expect(overlap.json()).toMatchObject({ errors: [{ code: 'RANGE_INVALID' }] });
    expect(overlap.headers.range).toBe('0-9');
    const gap = await request(base, loc, { method: 'PATCH', body: 'xyz', headers: { 'content-range': '20-22' } });
    expect(gap.status).toBe(416);
    expect((await request(base, loc)).headers.range).toBe('0-9');
  });

  it('refuses a chunk whose length differs from its Content-Range', async () => {
    const loc = await startUpload('push/short');
    const r = await request(base, loc, { method: 'PATCH', body: 'abc', headers: { 'content-range': '0-9' } });
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ errors: [{ code: 'SIZE_INVALID' }] });
    expect((await request(base, loc)).headers.range).toBe('0-0');
  });

  it('ends the upload it finishes on each path (its record goes with the link, or after its parts): the location answers 404', async () => {
    const data = Buffer.from('ended uploads');
    const digest = sha256(data);
    const finishes: Record<string, (loc: string) => Promise<number>> = {
      'PUT with the body': async (loc) => (await request(base, `${loc}?digest=${digest}`, { method: 'PUT', body: data })).status,
      'one PATCH, PUT': async (loc) => {
        await request(base, loc, { method: 'PATCH', body: data });
        return (await request(base, `${loc}?digest=${digest}`, { method: 'PUT' })).status;
      },
      'two PATCHes, PUT': async (loc) => {
        await request(base, loc, { method: 'PATCH', body: data.subarray(0, 5), headers: { 'content-range': '0-4' } });
        await request(base, loc, { method: 'PATCH', body: data.subarray(5), headers: { 'content-range': `5-${data.length - 1}` } });
        return (await request(base, `${loc}?digest=${digest}`, { method: 'PUT' })).status;
      },
    };
    for (const [how, finish] of Object.entries(finishes)) {
      const loc = await startUpload('push/ended');
      expect(await finish(loc), how).toBe(201);
      expect((await request(base, loc)).status, how).toBe(404);
    }
    expect((await request(base, `/v2/push/ended/blobs/${digest}`)).body).toEqual(data);
  });

  it('moves a single streamed PATCH into place (the docker/podman way)', async () => {
    const loc = await startUpload('push/stream');
    const data = Buffer.alloc(3 * 1024 * 1024, 7);
    expect((await request(base, loc, { method: 'PATCH', body: data })).status).toBe(202);
    const digest = sha256(data);
    expect((await request(base, `${loc}?digest=${digest}`, { method: 'PUT' })).status).toBe(201);
    const got = await request(base, `/v2/push/stream/blobs/${digest}`);
    expect(sha256(got.body)).toBe(digest);
  });

  it('accepts sha512 digests', async () => {
    const data = 'sha512 content';
    const digest = `sha512:${createHash('sha512').update(data).digest('hex')}`;
    const loc = await startUpload('push/sha512');
    await request(base, loc, { method: 'PATCH', body: data });
    expect((await request(base, `${loc}?digest=${digest}`, { method: 'PUT' })).status).toBe(201);
    expect((await request(base, `/v2/push/sha512/blobs/${digest}`)).body.toString()).toBe(data);
    const mono = await request(base, `/v2/push/sha512/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
    expect(mono.status).toBe(201);
  });

  it('pushes an empty blob', async () => {
    const digest = sha256('');
    const loc = await startUpload('push/empty');
    expect((await request(base, `${loc}?digest=${digest}`, { method: 'PUT' })).status).toBe(201);
    const got = await request(base, `/v2/push/empty/blobs/${digest}`);
    expect(got.status).toBe(200);
    expect(got.headers['content-length']).toBe('0');
  });

  it('cancels an upload', async () => {
    const loc = await startUpload('push/cancel');
    await request(base, loc, { method: 'PATCH', body: 'some bytes' });
    expect((await request(base, loc, { method: 'DELETE' })).status).toBe(204);
    expect((await request(base, loc)).status).toBe(404);
    expect((await request(base, loc, { method: 'DELETE' })).json()).toMatchObject({ errors: [{ code: 'BLOB_UPLOAD_UNKNOWN' }] });
  });

  it('does not let one repository continue an upload of another', async () => {
    const loc = await startUpload('push/owner');
    const id = loc.split('/').pop();
    expect((await request(base, `/v2/push/thief/blobs/uploads/${id}`)).status).toBe(404);
  });
});

describe('cross-repository mount', () => {
  it('mounts a blob the source repository has (201)', async () => {
    const digest = await pushBlob(base, 'mount/src', 'shared layer');
    const r = await request(base, `/v2/mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`, { method: 'POST' });
    expect(r.status).toBe(201);
    expect(r.headers.location).toBe(`/v2/mount/dst/blobs/${digest}`);
    expect((await request(base, `/v2/mount/dst/blobs/${digest}`)).body.toString()).toBe('shared layer');
  });

  it('starts a normal upload when the source lacks the blob (202)', async () => {
    const r = await request(base, `/v2/mount/dst/blobs/uploads/?mount=${sha256('absent')}&from=mount/src`, { method: 'POST' });
    expect(r.status).toBe(202);
    expect(r.headers.location).toMatch(/^\/v2\/mount\/dst\/blobs\/uploads\//);
  });
});

describe('bad uploads leave nothing behind', () => {
  it('refuses a body that does not match its digest, on every path', async () => {
    const claimed = sha256('what I said');
    const mono = await request(base, `/v2/bad/digest/blobs/uploads/?digest=${claimed}`, { method: 'POST', body: 'what I sent' });
    expect(mono.status).toBe(400);
    expect(mono.json()).toMatchObject({ errors: [{ code: 'DIGEST_INVALID' }] });
    let loc = await startUpload('bad/digest');
    expect((await request(base, `${loc}?digest=${claimed}`, { method: 'PUT', body: 'what I sent' })).status).toBe(400);
    loc = await startUpload('bad/digest');
    await request(base, loc, { method: 'PATCH', body: 'what I sent' });
    expect((await request(base, `${loc}?digest=${claimed}`, { method: 'PUT' })).status).toBe(400);
    expect((await request(base, loc)).status).toBe(404);
    expect((await request(base, `/v2/bad/digest/blobs/${claimed}`)).status).toBe(404);
    expect(await leftoversOf(server)).toEqual([]);
  });

  it('refuses malformed and unsupported digests', async () => {
    for (const digest of ['sha256:abc', 'md5:d41d8cd98f00b204e9800998ecf8427e', 'sha256:' + 'A'.repeat(64), 'nonsense', 'sha256:' + 'g'.repeat(64)]) {
      const r = await request(base, `/v2/bad/digest/blobs/uploads/?digest=${encodeURIComponent(digest)}`, { method: 'POST', body: 'x' });
      expect(r.status, digest).toBe(400);
      expect(r.json(), digest).toMatchObject({ errors: [{ code: 'DIGEST_INVALID' }] });
      expect((await request(base, `/v2/bad/digest/blobs/${encodeURIComponent(digest)}`)).status).toBe(400);
    }
  });

  it('requires a digest to finish an upload', async () => {
    const loc = await startUpload('bad/nodigest');
    const r = await request(base, loc, { method: 'PUT', body: 'x' });
    expect(r.status).toBe(400);
    expect(r.json()).toMatchObject({ errors: [{ code: 'DIGEST_INVALID' }] });
  });
});

describe('over a socket', () => {
  // A listening server: these are about connections, which inject() does not have.
  let listening: InProcessServer;
  let base: string;
  beforeAll(async () => {
    listening = await startInProcess();
    base = listening.url;
  });
  afterAll(() => listening?.stop());

  it('cuts the connection when a stored blob turns out shorter than recorded, and keeps serving', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const digest = await pushBlob(base, 'pull/damaged', data);
    const file = path.join(listening.dataDir, 'blobs', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
    await truncate(file, 1024 * 1024 + 5);
    const http = await import('node:http');
    const received = await new Promise<{ bytes: number; complete: boolean }>((resolve) => {
      let bytes = 0;
      const req = http.get(`${base}/v2/pull/damaged/blobs/${digest}`, { headers: { authorization: adminAuth } }, (res) => {
        expect(res.headers['content-length']).toBe(String(data.length));
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ bytes, complete: res.complete }));
        res.on('error', () => resolve({ bytes, complete: false }));
      });
      req.on('error', () => resolve({ bytes, complete: false }));
    });
    expect(received.complete).toBe(false);
    expect(received.bytes).toBeLessThan(data.length);
    expect((await request(base, '/v2/')).status).toBe(200);
  });

  it('survives a client that leaves midway through a pull, and closes the blob', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 17);
    const digest = await pushBlob(base, 'pull/big', data);
    const openBlobs = async () =>
      (await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')))).filter((f) =>
        f.includes(digest.slice(7)),
      ).length;
    const http = await import('node:http');
    let seenOpen = 0;
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${base}/v2/pull/big/blobs/${digest}`, { headers: { authorization: adminAuth } }, (res) => {
        expect(res.statusCode).toBe(200);
        res.once('data', () => {
          // the server is sending: it holds the blob open now
          void openBlobs().then((n) => {
            seenOpen = n;
            req.destroy();
            resolve();
          }, reject);
        });
      });
      req.on('error', (err) => (req.destroyed ? resolve() : reject(err)));
    });
    expect(seenOpen).toBeGreaterThan(0);
    await eventually('the server closes the blob the client left', async () => (await openBlobs()) === 0);
    const again = await request(base, `/v2/pull/big/blobs/${digest}`);
    expect(sha256(again.body)).toBe(digest);
  });

  it('keeps nothing from a client that disconnects mid-upload', async () => {
    const http = await import('node:http');
    const url = new URL(base);
    const digest = sha256('never finished');
    await new Promise<void>((resolve, reject) => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: `/v2/bad/cut/blobs/uploads/?digest=${digest}`,
        headers: { 'content-length': 1_000_000, authorization: adminAuth },
      });
      req.on('response', (res) => expect(res.statusCode).not.toBe(401));
      req.on('error', () => undefined);
      req.write(Buffer.alloc(100_000));
      // cut once the server is writing what it got, so there is something to clean up
      eventually('the server starts writing the upload', async () => (await leftoversOf(listening)).length > 0).then(() => {
        req.destroy();
        resolve();
      }, reject);
    });
    await eventually('the server removes the half-written upload', async () => (await leftoversOf(listening)).length === 0);
    expect((await request(base, `/v2/bad/cut/blobs/${digest}`)).status).toBe(404);
    expect((await request(base, '/v2/')).status).toBe(200);
  });
});

describe('upload expiry', () => {
  it('removes an upload nobody touched for uploads.expireAfterSeconds, with its parts', async () => {
    const dataDir = await tempDir();
    const parts = { meta: await openMetaStore(path.join(dataDir, 'custody.db')), blobs: await openBlobStore(path.join(dataDir, 'blobs'), { fsync: false }) };
    const short = await startInjected({ dataDir, parts, config: { uploads: { expireAfterSeconds: 60 } } });
    try {
      const start = await request(short.url, '/v2/expire/me/blobs/uploads/', { method: 'POST' });
      const loc = start.headers.location as string;
      await request(short.url, loc, { method: 'PATCH', body: 'abandoned bytes' });
      const empty = await request(short.url, '/v2/expire/me/blobs/uploads/', { method: 'POST' });
      const uploadDir = path.join(dataDir, 'blobs', 'uploads', loc.split('/').pop() as string);
      expect(await filesIn(uploadDir)).toHaveLength(1);
      // What the server's timer runs, judged a minute and a second later instead of waiting for it.
      const ctx = { ...parts, limits: { manifestBytes: 4 * 1024 * 1024 }, log: short.app.log };
      expect(await expireUploads(ctx, 60_000, Date.now() - 30_000)).toBe(0);
      expect(await expireUploads(ctx, 60_000, Date.now() + 61_000)).toBe(2);
      expect((await request(short.url, loc)).status).toBe(404);
      expect((await request(short.url, empty.headers.location as string)).status).toBe(404);
      expect(await filesIn(uploadDir)).toEqual([]);
    } finally {
      await short.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a part no upload records', () => {
  it('is removed when its upload finishes, and when it expires', async () => {
    const dataDir = await tempDir();
    const parts = { meta: await openMetaStore(path.join(dataDir, 'custody.db')), blobs: await openBlobStore(path.join(dataDir, 'blobs'), { fsync: false }) };
    const server = await startInjected({ dataDir, parts, config: { uploads: { expireAfterSeconds: 60 } } });
    // What a PATCH leaves when its process dies after writing its part and before recording it.
    const orphan = (loc: string) =>
      parts.blobs.write(`uploads/${loc.split('/').pop() as string}/0-0badc0ffee00`, Readable.from([Buffer.from('killed mid-PATCH')]));
    const partsOf = (loc: string) => filesIn(path.join(dataDir, 'blobs', 'uploads', loc.split('/').pop() as string));
    try {
      const finished = (await request(server.url, '/v2/orphan/app/blobs/uploads/', { method: 'POST' })).headers.location as string;
      await orphan(finished);
      // the client, told nothing, sends the chunk again (to another replica, in a deployment)
      expect((await request(server.url, finished, { method: 'PATCH', body: 'the chunk', headers: { 'content-range': '0-8' } })).status).toBe(202);
      expect(await partsOf(finished)).toHaveLength(2);
      expect((await request(server.url, `${finished}?digest=${sha256('the chunk')}`, { method: 'PUT' })).status).toBe(201);
      expect(await partsOf(finished)).toEqual([]);

      const abandoned = (await request(server.url, '/v2/orphan/app/blobs/uploads/', { method: 'POST' })).headers.location as string;
      await orphan(abandoned);
      const ctx = { ...parts, limits: { manifestBytes: 4 * 1024 * 1024 }, log: server.app.log };
      expect(await expireUploads(ctx, 60_000, Date.now() + 61_000)).toBe(1);
      expect(await partsOf(abandoned)).toEqual([]);
      // and the uploads' own directories went with their last parts
      for (const loc of [finished, abandoned]) expect(existsSync(path.join(dataDir, 'blobs', 'uploads', loc.split('/').pop() as string))).toBe(false);
    } finally {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('is left to the next expiry when removing the parts broke off: the upload is discarded only once they are gone', async () => {
    const dataDir = await tempDir();
    const fsStore = await openBlobStore(path.join(dataDir, 'blobs'), { fsync: false });
    // deletes that fail while `broken` (the storage gone, or the process killed, mid-removal)
    let broken = false;
    const blobs = new Proxy(fsStore, {
      get(target, prop) {
        if (broken && (prop === 'delete' || prop === 'deleteMany')) return () => Promise.reject(new Error('storage went away'));
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const parts = { meta: await openMetaStore(path.join(dataDir, 'custody.db')), blobs };
    const server = await startInjected({ dataDir, parts, config: { uploads: { expireAfterSeconds: 60 } } });
    try {
      const loc = (await request(server.url, '/v2/orphan/app/blobs/uploads/', { method: 'POST' })).headers.location as string;
      expect((await request(server.url, loc, { method: 'PATCH', body: 'abandoned bytes' })).status).toBe(202);
      const uploadDir = path.join(dataDir, 'blobs', 'uploads', loc.split('/').pop() as string);
      const ctx = { ...parts, limits: { manifestBytes: 4 * 1024 * 1024 }, log: server.app.log };
      broken = true;
      await expect(expireUploads(ctx, 60_000, Date.now() + 61_000)).rejects.toThrow('storage went away');
      expect(await filesIn(uploadDir)).toHaveLength(1);
      broken = false;
      expect(await expireUploads(ctx, 60_000, Date.now() + 61_000)).toBe(1);
      expect(await filesIn(uploadDir)).toEqual([]);
    } finally {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('racing finishes', () => {
  it('lets one of two concurrent PUTs of the same upload win, and the other get a 4xx', async () => {
    const loc = await startUpload('race/finish');
    const data = Buffer.alloc(256 * 1024, 3);
    await request(base, loc, { method: 'PATCH', body: data });
    const digest = sha256(data);
    const results = await Promise.all([0, 1, 2].map(() => request(base, `${loc}?digest=${digest}`, { method: 'PUT' })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toContain(201);
    for (const s of statuses) expect(s === 201 || s === 404).toBe(true);
    expect(sha256((await request(base, `/v2/race/finish/blobs/${digest}`)).body)).toBe(digest);
  });
});

describe('storage.redirect on a store without URLs of its own', () => {
  it('is ignored by the fs store: the GET is answered with the bytes', async () => {
    const fs = await startInjected({ config: { storage: { fsync: false, redirect: true } } });
    try {
      const data = randomBytes(4096);
      const digest = await pushBlob(fs.url, 'redirect/fs', data);
      const pull = await request(fs.url, `/v2/redirect/fs/blobs/${digest}`);
      expect(pull.status).toBe(200);
      expect(pull.headers.location).toBeUndefined();
      expect(pull.body.equals(data)).toBe(true);
    } finally {
      await fs.stop();
    }
  });
});
