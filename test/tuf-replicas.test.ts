/**
 * Replicas share one metadata store: publishers racing on the same namespace end with one
 * version of everything, signed by the same keys, whichever replica a client asks. On
 * PostgreSQL each replica has its own connection pool; on SQLite the publishers share one
 * connection (node:sqlite is synchronous: two connections in one process would wait on each
 * other's locks with the event loop blocked), which still interleaves their reads and writes.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MetaStore } from '../src/meta/metastore.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { createTufPublisher, type SignedTag, type TufPublisher } from '../src/trust/tuf/index.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { tempDir } from './helpers/server.ts';

const settings = { rootExpirySeconds: 365 * 86_400, targetsExpirySeconds: 90 * 86_400, snapshotExpirySeconds: 7 * 86_400, timestampExpirySeconds: 86_400 };
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

/** Replicas opened one after the other (the first one migrates the database). */
async function replicas(url: string, count: number, tags: SignedTag[], shared: boolean): Promise<{ meta: MetaStore; tuf: TufPublisher }[]> {
  const nodes: { meta: MetaStore; tuf: TufPublisher }[] = [];
  for (let i = 0; i < count; i++) {
    const meta = shared && nodes[0] ? nodes[0].meta : await openMetaStore(url);
    await meta.accounts.upsertNamespace('team', {});
    nodes.push({ meta, tuf: createTufPublisher(meta, { source: { signedTags: async () => [...tags] }, settings, now: Date.now }) });
  }
  return nodes;
}

function suite(name: string, url: () => Promise<string>, shared: boolean): void {
  it(`${name}: racing replicas publish each version once and agree`, async () => {
    const tags: SignedTag[] = [{ repository: 'team/app', tag: '1.0', digest: digest(1), size: 10, mediaType: 'application/vnd.oci.image.manifest.v1+json' }];
    const nodes = await replicas(await url(), 3, tags, shared);
    try {
      // First use on every replica at once: one set of keys wins.
      const first = await Promise.all(nodes.map((n) => n.tuf.current('team', 'now')));
      const roots = new Set(first.map((s) => s?.root.record.json));
      expect(roots.size).toBe(1);
      expect(first.every((s) => s?.timestamp.record.version === 1)).toBe(true);

      // A change seen by all replicas at once: targets 2, snapshot 2, timestamp 2, once.
      tags.push({ repository: 'team/app', tag: '2.0', digest: digest(2), size: 20, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
      const second = await Promise.all(nodes.flatMap((n) => [n.tuf.current('team', 'now'), n.tuf.current('team', 'now')]));
      expect(new Set(second.map((s) => s?.timestamp.record.json)).size).toBe(1);
      expect(second[0]?.targets.record.version).toBe(2);
      expect(await nodes[0]!.meta.tuf.latestVersions('team')).toEqual({ root: 1, targets: 2, snapshot: 2, timestamp: 2 });

      // Rotations on two replicas at once: both happen, one after the other.
      const rotated = await Promise.all([nodes[0]!.tuf.rotate('team', 'timestamp'), nodes[1]!.tuf.rotate('team', 'timestamp')]);
      expect(rotated.map((s) => s?.root.record.version).sort()).toEqual([2, 3]);
      const latest = await nodes[2]!.tuf.current('team', 'now');
      expect(latest?.root.record.version).toBe(3);
      expect(Object.keys(latest!.timestamp.metadata.signatures)).toEqual(latest!.root.metadata.signed.roles.timestamp!.keyIDs);
    } finally {
      await Promise.all([...new Set(nodes.map((n) => n.meta))].map((m) => m.close()));
    }
  });
}

suite('sqlite', async () => path.join(await tempDir(), 'custody.db'), true);

const havePostgres = await postgresAvailable();
describe.runIf(havePostgres)('postgres', () => {
  afterAll(dropDatabases);
  suite('postgres', freshDatabase, false);
});
