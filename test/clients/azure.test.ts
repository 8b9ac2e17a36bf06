/**
 * @azure/container-registry, a widely used npm client, against Custody: chunked blob upload,
 * manifests set and got by tag and digest, an artifact with a subject, blob and manifest delete.
 * It escapes the '/' of repository names (`team%2Fapp`) and follows relative Location headers.
 * Its credential speaks Azure's own token exchange, which Custody does not; a pipeline policy
 * sends Basic credentials instead, which /v2 accepts directly. Its pipeline refuses credentials
 * over plain HTTP whatever `allowInsecureConnection` says, so Custody serves HTTPS here, with a
 * certificate made by openssl that the client is told to trust.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { ContainerRegistryContentClient, KnownManifestMediaType, type OciImageManifest } from '@azure/container-registry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import https from 'node:https';
import { basic, testAdmin } from '../helpers/http.ts';
import { startInProcess, tempDir, type InProcessServer } from '../helpers/server.ts';

let server: InProcessServer;
let endpoint: string;
let ca: Buffer;
beforeAll(async () => {
  const dir = await tempDir('custody-azure-tls-');
  const [cert, key, ext] = ['server.crt', 'server.key', 'san.ext'].map((f) => path.join(dir, f)) as [string, string, string];
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1\n');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  ca = await readFile(cert);
  server = await startInProcess({ config: { tls: { certificate: cert, key } } });
  endpoint = server.url.replace(/^http:/, 'https:');
});
afterAll(() => server?.stop());

/** A request over HTTPS as the test admin, trusting the test's certificate. */
function httpsRequest(pathname: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const url = new URL(pathname, endpoint);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: url.hostname, port: url.port, path: url.pathname, method, ca, headers: { authorization: basic(testAdmin.username, testAdmin.password) } },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function client(repository: string): ContainerRegistryContentClient {
  const noAzureAd = { getToken: () => Promise.reject(new Error('this registry takes Basic credentials, not Azure AD')) };
  return new ContainerRegistryContentClient(endpoint, repository, noAzureAd, {
    additionalPolicies: [
      {
        position: 'perRetry',
        policy: {
          name: 'custody-basic',
          sendRequest: (req, next) => {
            req.headers.set('authorization', basic(testAdmin.username, testAdmin.password));
            req.tlsSettings = { ca };
            return next(req);
          },
        },
      },
    ],
  });
}

describe('@azure/container-registry', () => {
  it('uploads a blob in chunks, sets and gets manifests, attaches a referrer, and deletes', async () => {
    const repo = client('team/app');
    // Over the client's 4 MiB chunk, so the upload takes several PATCHes.
    const layer = Buffer.alloc(9 * 1024 * 1024 + 17, 7);
    const uploaded = await repo.uploadBlob(Readable.from([layer]));
    expect(uploaded.digest).toBe(sha256(layer));
    expect(uploaded.sizeInBytes).toBe(layer.length);
    const config = Buffer.from('{}');
    const configDigest = (await repo.uploadBlob(config)).digest;

    const manifest: OciImageManifest = {
      schemaVersion: 2,
      mediaType: KnownManifestMediaType.OciImageManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: uploaded.digest, size: layer.length }],
    };
    const set = await repo.setManifest(manifest, { tag: 'v1' });
    for (const ref of ['v1', set.digest]) {
      const got = await repo.getManifest(ref);
      expect(got.digest, ref).toBe(set.digest);
      expect(got.mediaType).toBe(KnownManifestMediaType.OciImageManifest);
    }
    const downloaded = await repo.downloadBlob(uploaded.digest);
    const chunks: Buffer[] = [];
    for await (const c of downloaded.content) chunks.push(Buffer.from(c as Buffer));
    expect(sha256(Buffer.concat(chunks))).toBe(uploaded.digest);

    // An artifact that refers to the image: the referrers API lists it.
    const empty = Buffer.from('{}');
    const emptyDigest = (await repo.uploadBlob(empty)).digest;
    const note = Buffer.from('signed off');
    const noteDigest = (await repo.uploadBlob(note)).digest;
    const artifact = {
      schemaVersion: 2,
      mediaType: KnownManifestMediaType.OciImageManifest,
      artifactType: 'application/vnd.example.note',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: empty.length },
      layers: [{ mediaType: 'text/plain', digest: noteDigest, size: note.length }],
      subject: { mediaType: KnownManifestMediaType.OciImageManifest, digest: set.digest, size: (await repo.getManifest(set.digest)).content.length },
    };
    const attached = await repo.setManifest(artifact);
    const referrers = await httpsRequest(`/v2/team/app/referrers/${set.digest}`);
    expect((JSON.parse(referrers.body) as { manifests: { digest: string; artifactType: string }[] }).manifests).toEqual([
      expect.objectContaining({ digest: attached.digest, artifactType: 'application/vnd.example.note' }),
    ]);

    await repo.deleteManifest(attached.digest);
    await repo.deleteManifest(set.digest);
    await expect(repo.getManifest(set.digest)).rejects.toMatchObject({ statusCode: 404 });
    await repo.deleteBlob(noteDigest);
    expect((await httpsRequest(`/v2/team/app/blobs/${noteDigest}`, 'HEAD')).status).toBe(404);
  });
});
