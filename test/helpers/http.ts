/**
 * A small HTTP client for registry tests: raw paths are sent as written (no `..` folding), and
 * helpers push blobs and manifests the way OCI clients do.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = unknown>(): T;
}

/** The admin every test server starts with (see helpers/server.ts). */
export const testAdmin = { username: 'admin', password: 'test-admin-password' };
export const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  body?: Buffer | string;
  /** false: send no credentials. By default requests go as the test admin, with Basic. */
  auth?: false;
  /** the loopback address to send from (127.0.0.2, …), to be another client address */
  from?: string;
}

export function request(base: string, path: string, options: RequestOptions = {}): Promise<Reply> {
  const url = new URL(base);
  const headers = { ...options.headers };
  if (options.auth !== false && !Object.keys(headers).some((h) => h.toLowerCase() === 'authorization'))
    headers.authorization = basic(testAdmin.username, testAdmin.password);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path, method: options.method ?? 'GET', headers, ...(options.from ? { localAddress: options.from } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body.toString()) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Pushes a blob with a single POST ?digest=. */
export async function pushBlob(base: string, repo: string, data: Buffer | string): Promise<string> {
  const digest = sha256(data);
  const r = await request(base, `/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
  });
  if (r.status !== 201) throw new Error(`push blob: ${r.status} ${r.body.toString()}`);
  return digest;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  [key: string]: unknown;
}

export const types = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  empty: 'application/vnd.oci.empty.v1+json',
};

/** Pushes a config and layers, and returns an image manifest (not yet pushed) naming them. */
export async function imageManifest(
  base: string,
  repo: string,
  layers: string[] = ['layer'],
  extra: Record<string, unknown> = {},
): Promise<{ body: string; digest: string }> {
  const config = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
  const configDigest = await pushBlob(base, repo, config);
  const layerDescs: Descriptor[] = [];
  for (const l of layers) layerDescs.push({ mediaType: types.layer, digest: await pushBlob(base, repo, l), size: Buffer.byteLength(l) });
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: types.config, digest: configDigest, size: config.length },
    layers: layerDescs,
    ...extra,
  });
  return { body, digest: sha256(body) };
}

export async function putManifest(base: string, repo: string, ref: string, body: string, mediaType = types.manifest): Promise<Reply> {
  return request(base, `/v2/${repo}/manifests/${ref}`, { method: 'PUT', body, headers: { 'content-type': mediaType } });
}

export function descriptorOf(body: string, mediaType: string, extra: Record<string, unknown> = {}): Descriptor {
  return { mediaType, digest: sha256(body), size: Buffer.byteLength(body), ...extra };
}
