/**
 * Verdicts across restarts: pending work a crashed replica left in the shared store is finished
 * by the next one, and trust changed in the config file between two starts re-judges exactly
 * the artifacts judged against the old trust.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openMetaStore } from '../src/meta/open.ts';
import { descriptorOf, imageManifest, putManifest, types } from './helpers/http.ts';
import { startInjected, tempDir } from './helpers/server.ts';
import { newKey, pushCosignSignature, settledArtifact } from './helpers/signing.ts';

const fileTrust = (pemFile: string) => ({ trust: { namespaces: { ops: { sigstore: { publicKeys: [{ name: 'release', pem: pemFile }] } } } } });

describe('trust across restarts', () => {
  it('finishes pending work another replica left behind', async () => {
    const dataDir = await tempDir();
    const key = newKey();
    const pemFile = path.join(dataDir, 'release.pem');
    await writeFile(pemFile, key.pem);
    // a replica that stored the push but died before verifying: here, one with trust off
    const first = await startInjected({ dataDir, config: { trust: { enabled: false } } });
    const { body } = await imageManifest(first.url, 'ops/app', ['ops layer']);
    expect((await putManifest(first.url, 'ops/app', 'v1', body)).status).toBe(201);
    const image = descriptorOf(body, types.manifest);
    const sig = await pushCosignSignature(first.url, 'ops/app', image, key);
    await first.app.close();
    const meta = await openMetaStore(path.join(dataDir, 'custody.db'));
    await meta.trust.recordArtifact({ repo: 'ops/app', digest: sig.digest, subject: image.digest, kind: 'signature', format: 'cosign', via: 'referrer' });
    await meta.close();

    const second = await startInjected({ dataDir, config: fileTrust(pemFile) });
    try {
      const view = await settledArtifact(second.url, 'ops/app', image.digest);
      expect(view.referrers[0]).toMatchObject({ digest: sig.digest, status: 'done', verified: true, signer: 'key:release' });
    } finally {
      await second.stop();
    }
  });

  it('re-judges what the config file trust changed between two starts', async () => {
    const dataDir = await tempDir();
    const [oldKey, newKeyPair] = [newKey(), newKey()];
    const pemFile = path.join(dataDir, 'release.pem');
    await writeFile(pemFile, oldKey.pem);
    const first = await startInjected({ dataDir, config: fileTrust(pemFile) });
    const { body } = await imageManifest(first.url, 'ops/web', ['web layer']);
    expect((await putManifest(first.url, 'ops/web', 'v1', body)).status).toBe(201);
    const image = descriptorOf(body, types.manifest);
    await pushCosignSignature(first.url, 'ops/web', image, newKeyPair);
    expect((await settledArtifact(first.url, 'ops/web', image.digest)).referrers[0]).toMatchObject({ verified: false });
    await first.app.close();

    await writeFile(pemFile, newKeyPair.pem);
    const second = await startInjected({ dataDir, config: fileTrust(pemFile) });
    try {
      const view = await settledArtifact(second.url, 'ops/web', image.digest);
      expect(view.referrers[0]).toMatchObject({ verified: true, signer: 'key:release' });
    } finally {
      await second.stop();
    }
  });
});
