/**
 * The GcStore suite (src/meta/gc.ts), run on SQLite and PostgreSQL by test/meta.test.ts: what is
 * garbage, the plan that says so before a sweep, the grace period, and one run at a time.
 */
import { describe, expect, it } from 'vitest';
import type { MetaStore, NewManifest } from '../../src/meta/metastore.ts';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const bytes = (s: string) => new TextEncoder().encode(s);
/** a cutoff after everything written so far: nothing is within the grace period */
const later = () => Date.now() + 60_000;

function manifest(repo: string, digest: string, extra: Partial<NewManifest> = {}): NewManifest {
  return { repo, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', content: bytes(`{"m":"${digest}"}`), blobs: [], manifests: [], ...extra };
}

/** Sweeps as a run does: manifests until none go, then links, then blobs; returns what went. */
async function sweepAll(meta: MetaStore, cutoff: number, removed: string[] = []) {
  let manifests = 0;
  for (let n = await meta.gc.sweepManifests(cutoff, 2); n > 0; n = await meta.gc.sweepManifests(cutoff, 2)) manifests += n;
  let links = 0;
  let after: string | undefined;
  do {
    const r = await meta.gc.sweepLinks(cutoff, 2, after);
    links += r.count;
    after = r.next;
  } while (after !== undefined);
  let blobs = 0;
  let freed = 0;
  after = undefined;
  do {
    const r = await meta.gc.sweepBlobs(cutoff, 2, async (b) => void removed.push(...b.map((x) => x.digest)), after);
    blobs += r.count;
    freed += r.bytes;
    after = r.next;
  } while (after !== undefined);
  return { manifests, links, blobs, bytes: freed };
}

export function gcStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`GcStore: ${name}`, () => {
    it('sweeps unreferenced links and then unlinked blobs, and keeps what a manifest references', async () => {
      const meta = await open();
      for (const [repo, n, size] of [
        ['a/app', 1, 10],
        ['a/app', 2, 20],
        ['a/app', 3, 30],
        ['b/other', 3, 30],
      ] as const)
        await meta.linkBlob(repo, d(n), size);
      await meta.touchBlob(d(4)); // an upload that never finished
      expect(await meta.putManifest(manifest('a/app', d(100), { blobs: [d(1)], tag: 'v1' }))).toEqual({ ok: true });
      expect(await meta.putManifest(manifest('b/other', d(101), { blobs: [d(3)] }))).toEqual({ ok: true });

      const cutoff = later();
      // a/app's links to d(2) and d(3) go; d(2) then has no link left, d(3) is still b/other's; d(4) was never linked
      const expected = { manifests: 0, links: 2, blobs: 2, bytes: 20 };
      expect(await meta.gc.plan(cutoff)).toEqual(expected);
      const removed: string[] = [];
      expect(await sweepAll(meta, cutoff, removed)).toEqual(expected);
      expect(removed.sort()).toEqual([d(2), d(4)]);
      expect(await meta.blobInRepo('a/app', d(1))).toBe(10);
      expect(await meta.blobInRepo('a/app', d(3))).toBeUndefined();
      expect(await meta.blobInRepo('b/other', d(3))).toBe(30);
      expect(await meta.gc.plan(cutoff)).toEqual({ manifests: 0, links: 0, blobs: 0, bytes: 0 });
      await meta.close();
    });

    it('leaves everything touched within the grace period', async () => {
      const meta = await open();
      const before = Date.now() - 1;
      await meta.linkBlob('a/app', d(1), 10);
      await meta.touchBlob(d(2));
      expect(await meta.gc.plan(before)).toEqual({ manifests: 0, links: 0, blobs: 0, bytes: 0 });
      expect(await sweepAll(meta, before)).toEqual({ manifests: 0, links: 0, blobs: 0, bytes: 0 });
      expect(await meta.blobInRepo('a/app', d(1))).toBe(10);
      await meta.close();
    });

    it('collects untagged manifests only where the namespace says so, following indexes and subjects', async () => {
      const meta = await open();
      for (const ns of ['keep', 'tidy']) {
        await meta.accounts.upsertNamespace(ns, { collectUntagged: ns === 'tidy' });
        const repo = `${ns}/app`;
        await meta.linkBlob(repo, d(1), 100);
        await meta.linkBlob(repo, d(2), 200);
        // tagged image, its signature (a referrer), an untagged index with a child, the child's referrer
        expect(await meta.putManifest(manifest(repo, d(10), { blobs: [d(1)], tag: 'v1' }))).toEqual({ ok: true });
        expect(await meta.putManifest(manifest(repo, d(11), { subject: d(10), blobs: [d(1)] }))).toEqual({ ok: true });
        expect(await meta.putManifest(manifest(repo, d(20), { blobs: [d(2)] }))).toEqual({ ok: true });
        expect(await meta.putManifest(manifest(repo, d(21), { manifests: [d(20)], mediaType: 'application/vnd.oci.image.index.v1+json' }))).toEqual({
          ok: true,
        });
        expect(await meta.putManifest(manifest(repo, d(22), { subject: d(20) }))).toEqual({ ok: true });
      }
      const cutoff = later();
      // in tidy: the index d(21), then its child d(20), then d(20)'s referrer d(22), then the link
      // to d(2); the blob stays, since keep/app (which keeps untagged manifests) still links it
      const expected = { manifests: 3, links: 1, blobs: 0, bytes: 0 };
      expect(await meta.gc.plan(cutoff)).toEqual(expected);
      expect(await sweepAll(meta, cutoff)).toEqual(expected);
      expect((await meta.getManifest('tidy/app', d(10)))?.digest).toBe(d(10));
      expect((await meta.getManifest('tidy/app', d(11)))?.digest).toBe(d(11));
      for (const gone of [d(20), d(21), d(22)]) expect(await meta.getManifest('tidy/app', gone)).toBeUndefined();
      for (const kept of [d(20), d(21), d(22)]) expect((await meta.getManifest('keep/app', kept))?.digest).toBe(kept);
      expect(await meta.blobInRepo('tidy/app', d(2))).toBeUndefined();
      expect(await meta.blobInRepo('keep/app', d(2))).toBe(200);
      await meta.close();
    });

    it('fails a manifest that needs a blob swept before it arrived, and a mount of a swept blob', async () => {
      const meta = await open();
      await meta.linkBlob('a/app', d(1), 10);
      await sweepAll(meta, later());
      expect(await meta.putManifest(manifest('a/app', d(100), { blobs: [d(1)] }))).toEqual({ ok: false, missing: d(1) });
      expect(await meta.linkExistingBlob('a/copy', 'a/app', d(1))).toBeUndefined();
      // a write that outlasted the grace period finds its row swept, and says so
      await meta.touchBlob(d(2));
      await sweepAll(meta, later());
      expect(await meta.linkBlob('a/app', d(2), 20)).toEqual({ collected: true });
      expect(await meta.linkBlob('a/app', d(2), 20)).toEqual({ collected: false });
      expect(await meta.linkExistingBlob('a/copy', 'a/app', d(2))).toBe(20);
      await meta.close();
    });

    it('runs one collection at a time, and lets another process take over one whose owner stopped', async () => {
      const meta = await open();
      const now = Date.now();
      const first = await meta.gc.claimRun({ id: 'r1', owner: 'p1', dryRun: false, graceMs: 1000, now, staleMs: 30_000 });
      expect(first).toMatchObject({ id: 'r1', state: 'running', phase: 'plan', owner: 'p1', resumed: 0 });
      expect(await meta.gc.claimRun({ id: 'r2', owner: 'p2', dryRun: true, graceMs: 1000, now: now + 1000, staleMs: 30_000 })).toBeUndefined();
      const taken = await meta.gc.claimRun({ id: 'r3', owner: 'p2', dryRun: false, graceMs: 1000, now: now + 60_000, staleMs: 30_000 });
      expect(taken).toMatchObject({ id: 'r1', owner: 'p2', resumed: 1 });
      // the old owner's progress is no longer recorded
      expect(await meta.gc.updateRun('r1', 'p1', { heartbeatAt: now + 61_000, phase: 'links' })).toBe(false);
      const done = { manifests: 1, links: 2, blobs: 3, bytes: 4 };
      expect(await meta.gc.updateRun('r1', 'p2', { heartbeatAt: now + 62_000, state: 'done', phase: 'done', done, finishedAt: now + 62_000 })).toBe(true);
      expect(await meta.gc.getRun('r1')).toMatchObject({ state: 'done', done, finishedAt: now + 62_000 });
      const next = await meta.gc.claimRun({ id: 'r4', owner: 'p1', dryRun: true, graceMs: 5, now: now + 63_000, staleMs: 30_000 });
      expect(next).toMatchObject({ id: 'r4', dryRun: true, graceMs: 5 });
      expect((await meta.gc.listRuns({ limit: 10 })).map((r) => r.id)).toEqual(['r4', 'r1']);
      expect((await meta.gc.listRuns({ limit: 10, before: 'r4' })).map((r) => r.id)).toEqual(['r1']);
      await meta.close();
    });
  });
}
