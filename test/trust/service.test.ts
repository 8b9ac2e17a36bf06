/** The trust worker on its own: paging through more pending work than one poll reads. */
import path from 'node:path';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { openMetaStore } from '../../src/meta/open.ts';
import { MemoryBlobStore } from '../../src/storage/memory/index.ts';
import { TrustResolver } from '../../src/trust/config.ts';
import { TrustService } from '../../src/trust/service.ts';
import { tempDir } from '../helpers/server.ts';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

it('judges every pending artifact, page after page, without waiting for the poll timer', async () => {
  const meta = await openMetaStore(path.join(await tempDir(), 'custody.db'));
  for (let i = 0; i < 250; i++) await meta.trust.recordArtifact({ repo: 'ns/app', digest: d(1000 + i), subject: d(1), kind: 'signature', format: 'cosign', via: 'referrer' });
  const service = new TrustService({ meta, blobs: new MemoryBlobStore(), resolver: new TrustResolver(meta.trust, { namespaces: new Map() }), log: pino({ level: 'silent' }), workers: 2, pollMs: 3_600_000 });
  const started = Date.now();
  await service.start();
  await service.idle();
  expect(await meta.trust.pending(1000)).toEqual([]);
  expect(Date.now() - started).toBeLessThan(30_000);
  // each was judged: the manifests are gone, and the verdict says so
  expect(await meta.trust.getArtifact('ns/app', d(1249))).toMatchObject({ status: 'done', verified: false, reason: `manifest ${d(1249)} is no longer in ns/app` });
  await service.stop();
  await meta.close();
});
