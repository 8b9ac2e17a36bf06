/** The trust worker on its own: paging through backlogs, and judging with current trust. */
import { sign } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { openMetaStore } from '../../src/meta/open.ts';
import { blobKey, parseDigest } from '../../src/oci/digest.ts';
import { MemoryBlobStore } from '../../src/storage/memory/index.ts';
import { TrustResolver } from '../../src/trust/config.ts';
import { TrustService } from '../../src/trust/service.ts';
import { sha256 } from '../helpers/http.ts';
import { tempDir } from '../helpers/server.ts';
import { newKey, simpleSigningPayload } from '../helpers/signing.ts';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

it('judges every pending artifact, page after page, without waiting for the poll timer', async () => {
  const meta = await openMetaStore(path.join(await tempDir(), 'custody.db'));
  for (let i = 0; i < 250; i++)
    await meta.trust.recordArtifact({ repo: 'ns/app', digest: d(1000 + i), subject: d(1), kind: 'signature', format: 'cosign', via: 'referrer' });
  const service = new TrustService({
    meta,
    blobs: new MemoryBlobStore(),
    resolver: new TrustResolver(meta.trust, { namespaces: new Map() }),
    log: pino({ level: 'silent' }),
    workers: 2,
    pollMs: 3_600_000,
  });
  // The poll timer is an hour away: only paging on its own gets through the backlog.
  await service.start();
  await service.idle();
  expect(await meta.trust.pending(1000)).toEqual([]);
  // each was judged: the manifests are gone, and the verdict says so
  expect(await meta.trust.getArtifact('ns/app', d(1249))).toMatchObject({
    status: 'done',
    verified: false,
    code: 'artifact_missing',
    reason: `manifest ${d(1249)} is no longer in ns/app`,
  });
  await service.stop();
  await meta.close();
});

it('judges with the trust in the store now, not with what a replica cached a moment ago', async () => {
  const meta = await openMetaStore(path.join(await tempDir(), 'custody.db'));
  const blobs = new MemoryBlobStore();
  const key = newKey();
  const subject = d(7);
  const payload = Buffer.from(simpleSigningPayload(subject));
  const payloadDigest = sha256(payload);
  await blobs.write(blobKey(parseDigest(payloadDigest)), Readable.from([payload]));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 },
      layers: [
        {
          mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
          digest: payloadDigest,
          size: payload.length,
          annotations: { 'dev.cosignproject.cosign/signature': sign('sha256', payload, key.privateKey).toString('base64') },
        },
      ],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 10 },
    }),
  );
  const digest = sha256(manifest);
  expect(
    await meta.putManifest({
      repo: 'ns/app',
      digest,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      content: manifest,
      blobs: [],
      manifests: [],
      subject,
    }),
  ).toEqual({ ok: true });
  // this replica's resolver caches "no trust" for an hour
  const resolver = new TrustResolver(meta.trust, { namespaces: new Map() }, 3_600_000);
  expect((await resolver.resolve('ns')).source).toBe('none');
  // another replica sets the trust and marks the namespace pending
  await meta.trust.putNamespaceTrust('ns', { sigstore: { publicKeys: [{ name: 'k', pem: key.pem }] } });
  await meta.trust.recordArtifact({ repo: 'ns/app', digest, subject, kind: 'signature', format: 'cosign', via: 'referrer' });
  const service = new TrustService({ meta, blobs, resolver, log: pino({ level: 'silent' }), workers: 1, pollMs: 3_600_000 });
  await service.start();
  await service.idle();
  expect(await meta.trust.getArtifact('ns/app', digest)).toMatchObject({ status: 'done', verified: true, signer: 'key:k', code: 'verified' });
  await service.stop();
  await meta.close();
});

it('verifies each pending artifact once when two replicas poll one store, and takes over a dead replica’s claim when it expires', async () => {
  const meta = await openMetaStore(path.join(await tempDir(), 'custody.db'));
  for (let i = 0; i < 60; i++)
    await meta.trust.recordArtifact({ repo: 'ns/app', digest: d(2000 + i), subject: d(1), kind: 'signature', format: 'cosign', via: 'referrer' });
  const verdicts: string[] = [];
  const log = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        const entry = JSON.parse(line) as { msg?: string; digest?: string };
        if (entry.msg === 'trust verdict' && entry.digest) verdicts.push(entry.digest);
      },
    },
  );
  const replica = (pollMs: number) =>
    new TrustService({ meta, blobs: new MemoryBlobStore(), resolver: new TrustResolver(meta.trust, { namespaces: new Map() }), log, workers: 2, pollMs });
  const [a, b] = [replica(3_600_000), replica(3_600_000)];
  // both read the same page of 60 at once
  await Promise.all([a.start(), b.start()]);
  await Promise.all([a.idle(), b.idle()]);
  expect(await meta.trust.pending(1000)).toEqual([]);
  expect(verdicts).toHaveLength(60);
  expect(new Set(verdicts).size).toBe(60);
  await Promise.all([a.stop(), b.stop()]);

  // a replica claimed this one and died: nobody verifies it until the claim expires, then one does
  await meta.trust.recordArtifact({ repo: 'ns/app', digest: d(3000), subject: d(1), kind: 'signature', format: 'cosign', via: 'referrer' });
  const claimedAt = Date.now();
  expect(await meta.trust.claim('ns/app', d(3000), 'dead', claimedAt, claimedAt + 1500)).toBe(true);
  const c = replica(100);
  await c.start();
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(await meta.trust.getArtifact('ns/app', d(3000))).toMatchObject({ status: 'pending' });
  await expect.poll(async () => (await meta.trust.getArtifact('ns/app', d(3000)))?.status, { timeout: 5000 }).toBe('done');
  expect(Date.now()).toBeGreaterThanOrEqual(claimedAt + 1500);
  expect(verdicts.filter((v) => v === d(3000))).toHaveLength(1);
  await c.stop();
  await meta.close();
});
