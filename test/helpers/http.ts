/**
 * A small HTTP client for registry tests: raw paths are sent as written (no `..` folding), and
 * helpers push blobs and manifests the way OCI clients do. A base URL is either a server listening
 * on a port, or one that fastify's inject() answers in this process with no socket at all
 * (`startInjected` in server.ts): every helper here takes either, so a test body does not say which.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { FastifyInstance } from 'fastify';

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

/**
 * Apps answered by inject(), by the origin of the base URL each was given. The host is under
 * `.invalid`, a name that never resolves (RFC 6761): a request that misses this map and goes to
 * the network fails at once instead of reaching something else.
 */
const injected = new Map<string, FastifyInstance>();
let injectedCount = 0;

/** A base URL whose requests `app.inject()` answers; `forgetInjected` with it when the app closes. */
export function injectedBase(app: FastifyInstance): string {
  const base = `http://custody-${++injectedCount}.inject.invalid`;
  injected.set(base, app);
  return base;
}

export function forgetInjected(base: string): void {
  injected.delete(base);
}

export function request(base: string, path: string, options: RequestOptions = {}): Promise<Reply> {
  const url = new URL(base);
  const headers = { ...options.headers };
  if (options.auth !== false && !Object.keys(headers).some((h) => h.toLowerCase() === 'authorization'))
    headers.authorization = basic(testAdmin.username, testAdmin.password);
  const app = injected.get(url.origin);
  if (app) return injectRequest(app, url, path, headers, options);
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

/** Methods Node's HTTP client sends a Content-Length with even when there is no body (0). */
const lengthAlways = new Set(['POST', 'PUT', 'PATCH']);

/**
 * The same request through inject(), answered as the socket would have answered it: the Host
 * header the client would send, a Content-Length where Node's client sends one, and response
 * header values as strings. A body written for HEAD comes back (a socket would drop it), so a
 * HEAD test here sees what the handler wrote.
 */
async function injectRequest(app: FastifyInstance, url: URL, path: string, headers: Record<string, string | number>, options: RequestOptions): Promise<Reply> {
  // inject() reads the path through the WHATWG URL parser, which folds `..` and `%2e`, turns `\`
  // into `/` and escapes what it will: a test about raw paths would test another path. Refuse it.
  const parsed = new URL(path, 'http://localhost');
  if (parsed.pathname + parsed.search !== path)
    throw new Error(`inject() would send ${parsed.pathname + parsed.search} for ${path}: test raw paths on a listening server (startInProcess)`);
  const method = options.method ?? 'GET';
  const names = new Set(Object.keys(headers).map((h) => h.toLowerCase()));
  const sent: Record<string, string | number> = { ...headers };
  if (!names.has('host')) sent.host = url.host;
  if (lengthAlways.has(method) && !names.has('content-length') && !names.has('transfer-encoding'))
    sent['content-length'] = options.body === undefined ? 0 : Buffer.byteLength(options.body);
  const res = await app.inject({
    method: method as 'GET',
    url: path,
    headers: sent,
    ...(options.body === undefined ? {} : { payload: options.body }),
    ...(options.from ? { remoteAddress: options.from } : {}),
  });
  const replyHeaders: http.IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    replyHeaders[name] = Array.isArray(value) ? (name === 'set-cookie' ? value.map(String) : value.join(', ')) : String(value);
  }
  const body = res.rawPayload;
  return { status: res.statusCode, headers: replyHeaders, body, json: <T>() => JSON.parse(body.toString()) as T };
}

/**
 * fetch() for a base URL from either kind of server: global fetch for a listening one, inject()
 * for an injected one (GET and HEAD without a body are all the callers need).
 */
export async function fetchFrom(input: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  const url = new URL(input);
  const app = injected.get(url.origin);
  if (!app) return fetch(input, init);
  const r = await request(url.origin, url.pathname + url.search, { method: init.method ?? 'GET', headers: init.headers ?? {}, auth: false });
  const headers = new Headers();
  for (const [name, value] of Object.entries(r.headers)) for (const v of [value ?? []].flat()) headers.append(name, v);
  // a Response may not carry a body with 204 or 304
  const empty = r.status === 204 || r.status === 304 || r.body.length === 0;
  return new Response(empty ? null : new Uint8Array(r.body), { status: r.status, headers });
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
