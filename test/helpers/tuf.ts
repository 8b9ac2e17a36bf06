/**
 * TUF tests: a server whose signed tags the test decides (a fake source over the MetaStore),
 * a clock the test can move, images pushed over HTTP, and tuf-js clients pinned to a root.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BaseFetcher, Updater } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import type { MetaStore } from '../../src/meta/metastore.ts';
import { openMetaStore } from '../../src/meta/open.ts';
import type { SignedTag, SignedTagSource } from '../../src/trust/tuf/index.ts';
import { basic, fetchFrom, imageManifest, putManifest, request, testAdmin } from './http.ts';
import { startInProcess, tempDir, type InProcessServer } from './server.ts';

/** Signed tags as the test says: the tags it marked, resolved to their current manifests. */
export class TestSignedTags implements SignedTagSource {
  private readonly meta: MetaStore;
  private readonly signed = new Set<string>();

  constructor(meta: MetaStore) {
    this.meta = meta;
  }

  sign(repository: string, tag: string): void {
    this.signed.add(`${repository}:${tag}`);
  }

  unsign(repository: string, tag: string): void {
    this.signed.delete(`${repository}:${tag}`);
  }

  async signedTags(namespace: string): Promise<SignedTag[]> {
    const out: SignedTag[] = [];
    for (const entry of this.signed) {
      const [repository = '', tag = ''] = entry.split(':');
      if (repository !== namespace && !repository.startsWith(`${namespace}/`)) continue;
      const m = await this.meta.getTaggedManifest(repository, tag);
      if (m) out.push({ repository, tag, digest: m.digest, size: m.content.byteLength, mediaType: m.mediaType });
    }
    return out;
  }
}

export interface TufServer extends InProcessServer {
  meta: MetaStore;
  signed: TestSignedTags;
  /** moves the server's clock (ms added to the real time) */
  clock: { offset: number };
}

/** `listen: false`: answered by inject(), on no port (see startInjected); tuf-js reaches it through fetchFrom. */
export async function startTufServer(config: Record<string, unknown> = {}, options: { listen?: boolean } = {}): Promise<TufServer> {
  const dataDir = await tempDir();
  const meta = await openMetaStore(path.join(dataDir, 'custody.db'));
  const signed = new TestSignedTags(meta);
  const clock = { offset: 0 };
  const server = await startInProcess({ dataDir, config, parts: { meta, signedTags: signed, now: () => Date.now() + clock.offset }, ...options });
  return { ...server, meta, signed, clock };
}

/** Pushes an image by tag over HTTP (as the admin); returns the manifest's digest and bytes. */
export async function pushImage(base: string, repo: string, tag: string, layer: string): Promise<{ digest: string; body: string }> {
  const m = await imageManifest(base, repo, [layer]);
  const r = await putManifest(base, repo, tag, m.body);
  if (r.status !== 201) throw new Error(`push ${repo}:${tag}: ${r.status} ${r.body.toString()}`);
  return m;
}

/** tuf-js's fetcher, with an Authorization header on every request; through inject() for an injected server. */
export class AuthFetcher extends BaseFetcher {
  private readonly authorization: string | undefined;

  constructor(authorization?: string) {
    super();
    this.authorization = authorization;
  }

  async fetch(url: string): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    const response = await fetchFrom(url, { headers: this.authorization ? { authorization: this.authorization } : {} });
    if (!response.ok || !response.body) throw new DownloadHTTPError(`GET ${url}: ${response.status}`, response.status);
    return response.body;
  }
}

export const adminAuth = basic(testAdmin.username, testAdmin.password);

export interface Client {
  metadataDir: string;
  targetDir: string;
  /** a fresh Updater over the same cache, as a client process would start anew */
  updater(): Updater;
}

/** A client whose trusted root is `root` (default: the namespace's current root.json, fetched as the admin). */
export async function tufClient(server: { url: string }, namespace: string, options: { root?: string; authorization?: string | false } = {}): Promise<Client> {
  const dir = await tempDir('custody-tuf-client-');
  const metadataDir = path.join(dir, 'metadata');
  const targetDir = path.join(dir, 'targets');
  await mkdir(metadataDir);
  await mkdir(targetDir);
  let root = options.root;
  if (root === undefined) {
    const r = await request(server.url, `/tuf/${namespace}/root.json`);
    if (r.status !== 200) throw new Error(`root.json: ${r.status} ${r.body.toString()}`);
    root = r.body.toString();
  }
  await writeFile(path.join(metadataDir, 'root.json'), root);
  const authorization = options.authorization === false ? undefined : (options.authorization ?? adminAuth);
  return {
    metadataDir,
    targetDir,
    updater: () =>
      new Updater({
        metadataDir,
        targetDir,
        metadataBaseUrl: `${server.url}/tuf/${namespace}`,
        targetBaseUrl: `${server.url}/tuf/${namespace}/targets`,
        fetcher: new AuthFetcher(authorization),
      }),
  };
}
