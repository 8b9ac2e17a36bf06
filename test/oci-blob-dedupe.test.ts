/**
 * A blob the registry holds already is not written again when it is pushed again (to the same
 * repository or another), on every upload path: its file keeps its inode. The body is still
 * read and hashed, so a wrong body is refused and the stored bytes stay as they were; and bytes
 * that went missing under a row that says they were stored are written again.
 */
import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pushBlob, request, sha256 } from './helpers/http.ts';
import { startInProcess } from './helpers/server.ts';

const server = await startInProcess();
afterAll(() => server.stop());
const base = server.url;
const octets = { 'content-type': 'application/octet-stream' };

const fileOf = (digest: string) => {
  const hex = digest.slice('sha256:'.length);
  return path.join(server.dataDir, 'blobs', 'blobs', 'sha256', hex.slice(0, 2), hex);
};
const inodeOf = async (digest: string) => (await stat(fileOf(digest))).ino;

async function startUpload(repo: string): Promise<string> {
  const r = await request(base, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(r.status).toBe(202);
  return r.headers.location as string;
}

/** Each way a client can push a blob; the status of the request that finishes it. */
const paths: Record<string, (repo: string, data: Buffer, digest: string) => Promise<number>> = {
  'POST ?digest=': async (repo, data, digest) =>
    (await request(base, `/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data, headers: octets })).status,
  'POST, PUT with the body': async (repo, data, digest) =>
    (await request(base, `${await startUpload(repo)}?digest=${digest}`, { method: 'PUT', body: data, headers: octets })).status,
  'one PATCH, PUT': async (repo, data, digest) => {
    const loc = await startUpload(repo);
    expect((await request(base, loc, { method: 'PATCH', body: data, headers: octets })).status).toBe(202);
    return (await request(base, `${loc}?digest=${digest}`, { method: 'PUT' })).status;
  },
  'two PATCHes, PUT': async (repo, data, digest) => {
    const loc = await startUpload(repo);
    const cut = Math.floor(data.length / 2);
    for (const [from, to] of [
      [0, cut],
      [cut, data.length],
    ] as const) {
      const r = await request(base, loc, { method: 'PATCH', body: data.subarray(from, to), headers: { ...octets, 'content-range': `${from}-${to - 1}` } });
      expect(r.status).toBe(202);
    }
    return (await request(base, `${loc}?digest=${digest}`, { method: 'PUT' })).status;
  },
};

describe('a blob pushed again', () => {
  for (const [name, push] of Object.entries(paths)) {
    it(`is not written again (${name}), and is served to each repository`, async () => {
      const data = randomBytes(70_000);
      const digest = await pushBlob(base, 'dedupe/first', data);
      const inode = await inodeOf(digest);
      // looked at after each push: a file written twice can get the first inode back (freed by the first rename)
      for (const repo of ['dedupe/first', 'dedupe/second']) {
        expect(await push(repo, data, digest)).toBe(201);
        expect(await inodeOf(digest)).toBe(inode);
      }
      for (const repo of ['dedupe/first', 'dedupe/second']) {
        const r = await request(base, `/v2/${repo}/blobs/${digest}`);
        expect(r.status).toBe(200);
        expect(sha256(r.body)).toBe(digest);
      }
    });

    it(`with a body that is not the blob is refused (${name}), and the stored bytes stay`, async () => {
      const data = randomBytes(50_000);
      const digest = await pushBlob(base, 'dedupe/wrong', data);
      const inode = await inodeOf(digest);
      const other = Buffer.from(data);
      other.writeUInt8(other.readUInt8(100) ^ 1, 100);
      expect(await push('dedupe/wrong-too', other, digest)).toBe(400);
      expect(await inodeOf(digest)).toBe(inode);
      expect((await request(base, `/v2/dedupe/wrong-too/blobs/${digest}`)).status).toBe(404);
      const r = await request(base, `/v2/dedupe/wrong/blobs/${digest}`);
      expect(sha256(r.body)).toBe(digest);
    });
  }

  it('is written again when its bytes went missing under a row that says they were stored', async () => {
    const data = randomBytes(30_000);
    const digest = await pushBlob(base, 'dedupe/lost', data);
    await rm(fileOf(digest));
    expect((await request(base, `/v2/dedupe/lost/blobs/${digest}`)).status).toBe(404);
    expect(await pushBlob(base, 'dedupe/lost', data)).toBe(digest);
    const r = await request(base, `/v2/dedupe/lost/blobs/${digest}`);
    expect(r.status).toBe(200);
    expect(sha256(r.body)).toBe(digest);
  });
});
