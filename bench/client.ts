/**
 * The registry operations the benchmark performs, spoken over plain HTTP like any OCI client:
 * pushes as docker and podman do them (POST, one PATCH with the whole blob, PUT ?digest=), pulls
 * with GET, and every digest verified.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Pool } from 'undici';

export interface Blob {
  data: Buffer;
  digest: string;
}

export const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export function makeBlobs(count: number, size: number, random: (n: number) => Buffer): Blob[] {
  return Array.from({ length: count }, () => {
    const data = random(size);
    return { data, digest: sha256(data) };
  });
}

async function expectStatus(res: { statusCode: number; body: { text(): Promise<string> } }, status: number, what: string): Promise<void> {
  const text = await res.body.text();
  if (res.statusCode !== status) throw new Error(`${what}: expected ${status}, got ${res.statusCode}: ${text.slice(0, 300)}`);
}

/** The path and query of a Location header, absolute (distribution) or relative (Custody). */
function locationPath(base: string, location: string | string[] | undefined, extra?: Record<string, string>): string {
  const url = new URL(String(location), base);
  for (const [k, v] of Object.entries(extra ?? {})) url.searchParams.set(k, v);
  return url.pathname + url.search;
}

/** Request headers every call carries: an Authorization header, or nothing. */
export type Auth = Record<string, string>;

export async function pushBlob(pool: Pool, base: string, repo: string, blob: Blob, auth: Auth = {}): Promise<void> {
  const start = await pool.request({ method: 'POST', path: `/v2/${repo}/blobs/uploads/`, headers: auth });
  await expectStatus(start, 202, 'POST upload');
  const patch = await pool.request({
    method: 'PATCH',
    path: locationPath(base, start.headers.location),
    body: blob.data,
    headers: { ...auth, 'content-type': 'application/octet-stream' },
  });
  await expectStatus(patch, 202, 'PATCH upload');
  const put = await pool.request({ method: 'PUT', path: locationPath(base, patch.headers.location, { digest: blob.digest }), headers: auth });
  await expectStatus(put, 201, 'PUT upload');
}

/**
 * GETs a blob and hashes it as it arrives (undici's stream() costs less than request() bodies);
 * `streamed` hears the bytes of each chunk once it is hashed (the worker's buffer pacer).
 */
export async function pullBlob(pool: Pool, repo: string, blob: Blob, auth: Auth = {}, streamed?: (bytes: number) => void): Promise<void> {
  const hash = createHash('sha256');
  let status = 0;
  await pool.stream({ method: 'GET', path: `/v2/${repo}/blobs/${blob.digest}`, headers: auth }, ({ statusCode }) => {
    status = statusCode;
    return new Writable({
      write(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        streamed?.(chunk.byteLength);
        done();
      },
    });
  });
  if (status !== 200) throw new Error(`GET blob ${blob.digest}: ${status}`);
  if (`sha256:${hash.digest('hex')}` !== blob.digest) throw new Error(`GET blob ${blob.digest}: digest mismatch`);
}

export const manifestType = 'application/vnd.oci.image.manifest.v1+json';

/** Pushes one small image tagged `bench`; returns its manifest's digest. */
export async function pushImage(pool: Pool, base: string, repo: string, random: (n: number) => Buffer, auth: Auth = {}): Promise<string> {
  const configData = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const config = { data: configData, digest: sha256(configData) };
  const [layer] = makeBlobs(1, 4096, random) as [Blob];
  await pushBlob(pool, base, repo, config, auth);
  await pushBlob(pool, base, repo, layer, auth);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: manifestType,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.data.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.data.length }],
  });
  const put = await pool.request({ method: 'PUT', path: `/v2/${repo}/manifests/bench`, body, headers: { ...auth, 'content-type': manifestType } });
  await expectStatus(put, 201, 'PUT manifest');
  return sha256(body);
}

export async function getManifest(pool: Pool, repo: string, digest: string, auth: Auth = {}): Promise<void> {
  const res = await pool.request({ method: 'GET', path: `/v2/${repo}/manifests/bench`, headers: { ...auth, accept: manifestType } });
  const got = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200 || sha256(got) !== digest) throw new Error(`GET manifest: ${res.statusCode}, digest ${sha256(got)}`);
}

export const basicAuth = (user: string, password: string): Auth => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

/** A Bearer token from the registry's /token for these scopes, as docker gets one. */
export async function bearerAuth(pool: Pool, credentials: Auth, scopes: string[]): Promise<Auth> {
  const query = new URLSearchParams({ service: 'custody' });
  for (const s of scopes) query.append('scope', s);
  const res = await pool.request({ method: 'GET', path: `/token?${query}`, headers: credentials });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET /token: ${res.statusCode}: ${text.slice(0, 300)}`);
  return { authorization: `Bearer ${(JSON.parse(text) as { token: string }).token}` };
}

/** GETs a token from /token; used to measure the token endpoint itself. */
export async function getToken(pool: Pool, path: string, credentials: Auth): Promise<void> {
  const res = await pool.request({ method: 'GET', path, headers: credentials });
  const text = await res.body.text();
  if (res.statusCode !== 200 || !text.includes('"token"')) throw new Error(`GET /token: ${res.statusCode}: ${text.slice(0, 300)}`);
}
