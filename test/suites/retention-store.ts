/** The RetentionStore suite: rules, pull counts, what a run plans from and deletes, runs and the lease; run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import type { MetaStore, NewManifest } from '../../src/meta/metastore.ts';
import type { RetentionRun } from '../../src/meta/retention.ts';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const bytes = (s: string) => new TextEncoder().encode(s);

function manifest(repo: string, digest: string, extra: Partial<NewManifest> = {}): NewManifest {
  return { repo, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', content: bytes(`{"m":"${digest}"}`), blobs: [], manifests: [], ...extra };
}

const counts = { repositories: 0, tagsDeleted: 0, manifestsDeleted: 0, vetoed: 0, errors: 0, bytes: 0, blobs: 0, manifestBytes: 0 };
const run = (id: string, startedAt: number, extra: Partial<RetentionRun> = {}): RetentionRun => ({
  id,
  trigger: 'api',
  actor: 'admin',
  scope: { kind: 'namespace', name: 'team' },
  namespace: 'team',
  dryRun: true,
  status: 'running',
  startedAt,
  updatedAt: startedAt,
  phase: 'starting',
  done: 0,
  total: 0,
  counts,
  ...extra,
});

export function retentionStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`RetentionStore: ${name}`, () => {
    it('sets, replaces, lists and deletes rule sets per namespace and repository', async () => {
      const meta = await open();
      const store = meta.retention;
      const rules = (kind: 'namespace' | 'repository', n: string, updatedAt: number) => ({
        kind,
        name: n,
        document: { keep: { newest: updatedAt } },
        source: `keep: { newest: ${updatedAt} }`,
        updatedBy: 'alice',
        updatedAt,
      });
      expect(await store.putRules(rules('namespace', 'team', 1))).toEqual({ created: true });
      expect(await store.putRules(rules('namespace', 'team', 2))).toEqual({ created: false });
      expect(await store.putRules(rules('repository', 'team/app', 3))).toEqual({ created: true });
      await store.putRules(rules('namespace', 'team-b', 4));
      await store.putRules(rules('repository', 'teamx/app', 5));
      expect(await store.getRules('namespace', 'team')).toEqual(rules('namespace', 'team', 2));
      expect(await store.getRules('repository', 'team')).toBeUndefined();
      expect((await store.listRules()).map((r) => [r.kind, r.name])).toEqual([
        ['namespace', 'team'],
        ['namespace', 'team-b'],
        ['repository', 'team/app'],
        ['repository', 'teamx/app'],
      ]);
      expect((await store.listRules('team')).map((r) => r.name)).toEqual(['team', 'team/app']);
      expect(await store.deleteRules('namespace', 'team')).toBe(true);
      expect(await store.deleteRules('namespace', 'team')).toBe(false);
      expect(await store.getRules('namespace', 'team')).toBeUndefined();
      await meta.close();
    });

    it('adds pull counts and keeps the latest pull, however the batches arrive', async () => {
      const meta = await open();
      const store = meta.retention;
      await store.recordPulls([
        { repo: 'team/app', digest: d(1), lastPulledAt: 1000, count: 3 },
        // the same artifact twice in one batch is merged
        { repo: 'team/app', digest: d(1), lastPulledAt: 900, count: 2 },
        { repo: 'team/app', digest: d(2), lastPulledAt: 500, count: 1 },
      ]);
      // another replica's batch: an older last pull does not move the time back
      await store.recordPulls([{ repo: 'team/app', digest: d(1), lastPulledAt: 800, count: 10 }]);
      await store.recordPulls([{ repo: 'team/app', digest: d(2), lastPulledAt: 2000, count: 1 }]);
      await store.recordPulls([]);
      expect(await store.pullsOf('team/app')).toEqual([
        { repo: 'team/app', digest: d(1), lastPulledAt: 1000, count: 15 },
        { repo: 'team/app', digest: d(2), lastPulledAt: 2000, count: 2 },
      ]);
      await store.forgetPulls('team/app', [d(1)]);
      expect((await store.pullsOf('team/app')).map((p) => p.digest)).toEqual([d(2)]);
      await meta.close();
    });

    it("reads a repository's tags, manifests, children and pulls, and its namespace's repositories", async () => {
      const meta = await open();
      const store = meta.retention;
      for (const repo of ['team', 'team/app', 'team/app/api', 'team-b/app', 'teamx']) await meta.linkBlob(repo, d(100), 10);
      await meta.putManifest(manifest('team/app', d(1), { blobs: [d(100)], tag: 'v1' }));
      await meta.putManifest(manifest('team/app', d(2), { subject: d(1), artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' }));
      await meta.putManifest(manifest('team/app', d(3), { mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [d(1)], tag: 'multi' }));
      await store.recordPulls([{ repo: 'team/app', digest: d(1), lastPulledAt: 5, count: 1 }]);
      expect(await store.repositoriesIn('team')).toEqual(['team', 'team/app', 'team/app/api']);
      const c = await store.contents('team/app');
      expect(c.tags.map((t) => [t.name, t.digest])).toEqual([
        ['multi', d(3)],
        ['v1', d(1)],
      ]);
      expect(c.tags.every((t) => typeof t.updatedAt === 'number' && t.updatedAt > 0)).toBe(true);
      expect(c.manifests.map((m) => [m.digest, m.subject, m.mediaType])).toEqual([
        [d(1), undefined, 'application/vnd.oci.image.manifest.v1+json'],
        [d(2), d(1), 'application/vnd.oci.image.manifest.v1+json'],
        [d(3), undefined, 'application/vnd.oci.image.index.v1+json'],
      ]);
      expect(c.manifests[0]?.size).toBe(bytes(`{"m":"${d(1)}"}`).byteLength);
      expect(c.children).toEqual([{ parent: d(3), child: d(1) }]);
      expect(c.pulls).toEqual([{ digest: d(1), lastPulledAt: 5, count: 1 }]);
      expect(await store.contents('nothing/here')).toEqual({ tags: [], manifests: [], children: [], pulls: [] });
      await meta.close();
    });

    it('counts the manifests in the whole registry that reference each blob', async () => {
      const meta = await open();
      const store = meta.retention;
      await meta.linkBlob('a/one', d(100), 1000);
      await meta.linkBlob('a/one', d(101), 2000);
      await meta.linkBlob('b/two', d(100), 1000);
      await meta.putManifest(manifest('a/one', d(1), { blobs: [d(100), d(101)] }));
      await meta.putManifest(manifest('a/one', d(2), { blobs: [d(100)] }));
      await meta.putManifest(manifest('b/two', d(3), { blobs: [d(100)] }));
      expect((await store.blobsOf('a/one', [d(1), d(2)])).sort((x, y) => (x.digest + x.blob < y.digest + y.blob ? -1 : 1))).toEqual([
        { digest: d(1), blob: d(100) },
        { digest: d(1), blob: d(101) },
        { digest: d(2), blob: d(100) },
      ]);
      const refs = (await store.blobReferences([d(100), d(101), d(102)])).sort((x, y) => (x.blob < y.blob ? -1 : 1));
      expect(refs).toEqual([
        { blob: d(100), size: 1000, references: 3 },
        { blob: d(101), size: 2000, references: 1 },
      ]);
      await meta.close();
    });

    it('deletes a tag only as planned, and a manifest only while nothing tags or lists it', async () => {
      const meta = await open();
      const store = meta.retention;
      await meta.putManifest(manifest('team/app', d(1), { tag: 'v1' }));
      await meta.putManifest(manifest('team/app', d(2), { tag: 'v2' }));
      await meta.putManifest(manifest('team/app', d(3), { mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [d(2)] }));
      const v1 = (await store.contents('team/app')).tags.find((t) => t.name === 'v1');
      if (!v1) throw new Error('no tag');
      expect(await store.deleteTagIf('team/app', 'v1', d(2), v1.updatedAt)).toBe(false); // points elsewhere
      expect(await store.deleteTagIf('team/app', 'v1', d(1), v1.updatedAt - 1)).toBe(false); // pushed again since
      expect(await store.deleteManifestIfUnused('team/app', d(1))).toBe(false); // still tagged
      expect(await store.deleteTagIf('team/app', 'v1', d(1), v1.updatedAt)).toBe(true);
      expect(await meta.resolveTag('team/app', 'v1')).toBeUndefined();
      expect(await store.deleteManifestIfUnused('team/app', d(1))).toBe(true);
      expect(await meta.getManifest('team/app', d(1))).toBeUndefined();
      expect(await store.deleteManifestIfUnused('team/app', d(1))).toBe(false); // gone already
      await meta.deleteTag('team/app', 'v2');
      expect(await store.deleteManifestIfUnused('team/app', d(2))).toBe(false); // the index lists it
      expect(await store.deleteManifestIfUnused('team/app', d(3))).toBe(true);
      expect((await store.contents('team/app')).children).toEqual([]); // its references went with it
      expect(await store.deleteManifestIfUnused('team/app', d(2))).toBe(true);
      await meta.close();
    });

    it('logs runs, pages and filters them newest first, and fails and prunes stale ones', async () => {
      const meta = await open();
      const store = meta.retention;
      await store.createRun(run('00000000-0000-4000-8000-000000000001', 1000));
      await store.createRun(
        run('00000000-0000-4000-8000-000000000002', 2000, { scope: { kind: 'all' }, namespace: undefined, trigger: 'schedule', dryRun: false }),
      );
      await store.createRun(run('00000000-0000-4000-8000-000000000003', 3000, { scope: { kind: 'repository', name: 'team/app' } }));
      await store.createRun(run('00000000-0000-4000-8000-000000000004', 4000, { namespace: 'other', scope: { kind: 'namespace', name: 'other' } }));
      await store.updateRun('00000000-0000-4000-8000-000000000001', {
        status: 'done',
        phase: 'done',
        done: 3,
        total: 3,
        counts: { ...counts, tagsDeleted: 2 },
        result: { deletions: [{ tag: 'v1' }] },
        finishedAt: 1500,
        updatedAt: 1500,
      });
      const first = await store.getRun('00000000-0000-4000-8000-000000000001');
      expect(first).toMatchObject({ status: 'done', done: 3, total: 3, finishedAt: 1500, dryRun: true, scope: { kind: 'namespace', name: 'team' } });
      expect(first?.counts.tagsDeleted).toBe(2);
      expect(first?.result).toEqual({ deletions: [{ tag: 'v1' }] });
      expect(await store.getRun('00000000-0000-4000-8000-000000000009')).toBeUndefined();

      const page1 = await store.listRuns({}, { limit: 3 });
      expect(page1.runs.map((r) => r.startedAt)).toEqual([4000, 3000, 2000]);
      expect(page1.runs[0]?.result).toBeUndefined(); // lists leave results out
      const page2 = await store.listRuns({}, { limit: 3, before: page1.next });
      expect(page2.runs.map((r) => r.startedAt)).toEqual([1000]);
      expect(page2.next).toBeUndefined();
      expect((await store.listRuns({ namespace: 'team' }, { limit: 10 })).runs.map((r) => r.startedAt)).toEqual([3000, 1000]);
      expect((await store.listRuns({ registryWide: true }, { limit: 10 })).runs.map((r) => r.scope)).toEqual([{ kind: 'all' }]);
      expect(await store.lastScheduledStart()).toBe(2000);

      // still running, no heartbeat since 3000 or 4000: the first is stale at 3500
      expect(await store.failStaleRuns(3500, 9000)).toBe(2);
      expect(await store.getRun('00000000-0000-4000-8000-000000000002')).toMatchObject({
        status: 'failed',
        finishedAt: 9000,
        error: expect.stringMatching(/interrupted/),
      });
      expect((await store.getRun('00000000-0000-4000-8000-000000000004'))?.status).toBe('running');
      expect(await store.pruneRuns(5000)).toBe(1); // only the first finished before 5000
      expect((await store.listRuns({}, { limit: 10 })).runs).toHaveLength(3);
      await meta.close();
    });

    it('gives the lease to one holder at a time until it expires or is released', async () => {
      const meta = await open();
      const store = meta.retention;
      expect(await store.acquireLease('retention', 'a', 1000, 100)).toBe(true);
      expect(await store.acquireLease('retention', 'b', 1050, 100)).toBe(false);
      expect(await store.acquireLease('retention', 'a', 1090, 100)).toBe(true); // renewed until 1190
      expect(await store.acquireLease('retention', 'b', 1150, 100)).toBe(false);
      expect(await store.acquireLease('retention', 'b', 1200, 100)).toBe(true); // a's expired
      await store.releaseLease('retention', 'a'); // not a's any more: nothing happens
      expect(await store.acquireLease('retention', 'a', 1210, 100)).toBe(false);
      await store.releaseLease('retention', 'b');
      // ten at once: exactly one wins
      const won = await Promise.all(Array.from({ length: 10 }, (_, i) => store.acquireLease('retention', `r${i}`, 2000, 1000)));
      expect(won.filter(Boolean)).toHaveLength(1);
      await meta.close();
    });
  });
}
