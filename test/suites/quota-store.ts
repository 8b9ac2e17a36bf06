/** The QuotaStore suite: fair shares of blobs across namespaces, run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import { fairShare } from '../../src/lifecycle/quota.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const manifestType = 'application/vnd.oci.image.manifest.v1+json';

/** The registry-wide figures, with the checks that they add up. */
async function registry(meta: MetaStore): Promise<Map<string, number>> {
  const usage = await meta.quota.registryUsage();
  const fair = new Map(usage.namespaces.map((n) => [n.namespace, n.fairBlobBytes]));
  expect([...fair.values()].reduce((a, b) => a + b, 0)).toBe(usage.physicalBlobBytes);
  // each namespace's own query gives the figure the registry-wide one gives
  for (const n of usage.namespaces) expect(await meta.quota.usage(n.namespace)).toEqual(n);
  return fair;
}

export function quotaStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`QuotaStore: ${name}`, () => {
    it('splits a shared blob between the namespaces that link it, once per namespace', async () => {
      const meta = await open();
      const shared = digest(1);
      await meta.linkBlob('alpha/app', shared, 300);
      await meta.linkBlob('alpha/other', shared, 300); // a second repository of alpha: still one share
      await meta.linkBlob('beta/app', shared, 300);
      await meta.linkBlob('gamma', shared, 300); // a repository named like its namespace
      await meta.linkBlob('gammaray/x', digest(2), 50); // a namespace whose name starts with another's
      expect(await registry(meta)).toEqual(
        new Map([
          ['alpha', 100],
          ['beta', 100],
          ['gamma', 100],
          ['gammaray', 50],
        ]),
      );
      expect(await meta.quota.usage('alpha')).toEqual({
        namespace: 'alpha',
        fairBlobBytes: 100,
        physicalBlobBytes: 300,
        manifestBytes: 0,
        blobs: 1,
        sharedBlobs: 1,
        manifests: 0,
      });
      expect((await meta.quota.registryUsage()).physicalBlobBytes).toBe(350);

      // beta lets go: the other two share it
      expect(await meta.unlinkBlob('beta/app', shared)).toBe(true);
      expect(await registry(meta)).toEqual(
        new Map([
          ['alpha', 150],
          ['gamma', 150],
          ['gammaray', 50],
        ]),
      );
      expect((await meta.quota.usage('beta')).fairBlobBytes).toBe(0);
      // one of alpha's two links goes: alpha still links it
      await meta.unlinkBlob('alpha/app', shared);
      expect((await meta.quota.usage('alpha')).fairBlobBytes).toBe(150);
      await meta.unlinkBlob('alpha/other', shared);
      expect(await registry(meta)).toEqual(
        new Map([
          ['gamma', 300],
          ['gammaray', 50],
        ]),
      );
      expect(await meta.quota.usage('gamma')).toMatchObject({ fairBlobBytes: 300, sharedBlobs: 0 });
      await meta.close();
    });

    it('hands the bytes left over to the first namespaces in byte order, so shares add up exactly', async () => {
      const meta = await open();
      // byte order: 'a-c' < 'a_d' < 'ab' (a locale that ignores punctuation would sort 'ab' first)
      for (const ns of ['ab', 'a_d', 'a-c']) await meta.linkBlob(`${ns}/r`, digest(3), 101);
      expect(await registry(meta)).toEqual(
        new Map([
          ['a-c', 34],
          ['a_d', 34],
          ['ab', 33],
        ]),
      );
      // 7 namespaces, 10 bytes: three get 2, four get 1
      for (let i = 0; i < 7; i++) await meta.linkBlob(`n${i}/r`, digest(4), 10);
      const fair = await registry(meta);
      expect([0, 1, 2, 3, 4, 5, 6].map((i) => fair.get(`n${i}`))).toEqual([2, 2, 2, 1, 1, 1, 1]);
      await meta.close();
    });

    it('gives the same figures as the arithmetic for random links, and they add up', async () => {
      const meta = await open();
      let seed = 7;
      const random = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const namespaces = ['a', 'b', 'c', 'd', 'e'];
      const sizes = new Map<string, number>();
      const links = new Set<string>();
      for (let i = 0; i < 120; i++) {
        const d = digest(100 + random(25));
        const size = sizes.get(d) ?? 1 + random(1000);
        sizes.set(d, size);
        const repo = `${namespaces[random(5)]}/r${random(3)}`;
        await meta.linkBlob(repo, d, size);
        links.add(`${repo} ${d}`);
      }
      for (const link of [...links].filter(() => random(4) === 0)) {
        const [repo, d] = link.split(' ') as [string, string];
        await meta.unlinkBlob(repo, d);
        links.delete(link);
      }
      // the expected shares, from the links as this test kept them
      const holders = new Map<string, Set<string>>();
      for (const link of links) {
        const [repo, d] = link.split(' ') as [string, string];
        const set = holders.get(d) ?? new Set<string>();
        set.add(repo.split('/')[0] as string);
        holders.set(d, set);
      }
      const expected = new Map<string, number>();
      for (const [d, set] of holders) {
        const sorted = [...set].sort();
        sorted.forEach((ns, i) => expected.set(ns, (expected.get(ns) ?? 0) + fairShare(sizes.get(d) ?? 0, sorted.length, i)));
      }
      expect(await registry(meta)).toEqual(expected);
      await meta.close();
    });

    it('counts manifests in full to their namespace, and storedBytes is the fair figure', async () => {
      const meta = await open();
      const layer = digest(5);
      await meta.linkBlob('team/app', layer, 1000);
      await meta.linkBlob('other/app', layer, 1000);
      const content = new TextEncoder().encode('{"schemaVersion":2,"mediaType":"x"}');
      const put = (repo: string) => meta.putManifest({ repo, digest: digest(6), mediaType: manifestType, content, blobs: [layer], manifests: [] });
      expect((await put('team/app')).ok).toBe(true);
      await meta.linkBlob('team/copy', layer, 1000);
      expect((await put('team/copy')).ok).toBe(true); // one row per repository: counted twice
      expect(await meta.quota.usage('team')).toMatchObject({ fairBlobBytes: 500, manifestBytes: 2 * content.byteLength, manifests: 2 });
      expect(await meta.storedBytes('team')).toBe(500 + 2 * content.byteLength);
      expect(await meta.storedBytes('other')).toBe(500);
      const all = await meta.quota.registryUsage();
      expect(all.manifestBytes).toBe(2 * content.byteLength);
      expect(all.namespaces.find((n) => n.namespace === 'team')).toMatchObject({ manifestBytes: 2 * content.byteLength, manifests: 2 });
      await meta.close();
    });

    it("answers a push's figures in one query: the usage, and how the blob or manifest stands", async () => {
      const meta = await open();
      const content = new TextEncoder().encode('{}');
      await meta.linkBlob('b/app', digest(7), 90);
      await meta.linkBlob('d/app', digest(7), 90);
      await meta.linkBlob('c/app', digest(8), 40);
      expect((await meta.putManifest({ repo: 'c/app', digest: digest(9), mediaType: manifestType, content, blobs: [digest(8)], manifests: [] })).ok).toBe(true);
      expect(await meta.quota.pushFigures('c', { blob: digest(7) })).toEqual({
        usedBytes: 40 + content.byteLength,
        blob: { linkedHere: false, otherNamespaces: 2, namespacesBefore: 1 },
      });
      expect(await meta.quota.pushFigures('c', { blob: digest(8) })).toMatchObject({ blob: { linkedHere: true, otherNamespaces: 0, namespacesBefore: 0 } });
      expect(await meta.quota.pushFigures('a', { blob: digest(1) })).toEqual({
        usedBytes: 0,
        blob: { linkedHere: false, otherNamespaces: 0, namespacesBefore: 0 },
      });
      expect(await meta.quota.pushFigures('c', { manifest: { repo: 'c/app', digest: digest(9) } })).toEqual({
        usedBytes: 40 + content.byteLength,
        manifestStored: true,
      });
      expect((await meta.quota.pushFigures('c', { manifest: { repo: 'c/other', digest: digest(9) } })).manifestStored).toBe(false);
      // what was added since a time: each link in full, and the manifests, without the usage
      await meta.linkBlob('c/other', digest(7), 90);
      await meta.linkBlob('c/more', digest(7), 90);
      expect(await meta.quota.pushFigures('c', { blob: digest(7), addedSince: 0 })).toEqual({
        addedBytes: 40 + 90 + 90 + content.byteLength,
        blob: { linkedHere: true, otherNamespaces: 2, namespacesBefore: 1 },
      });
      expect(await meta.quota.pushFigures('c', { addedSince: Date.now() + 60_000 })).toEqual({ addedBytes: 0 });
      expect((await meta.quota.pushFigures('b', { addedSince: 0 })).addedBytes).toBe(90);
      await meta.close();
    });

    it('keeps hard and soft quotas, and a soft-quota mark that only one caller sets or clears', async () => {
      const meta = await open();
      expect(await meta.quota.settings('team')).toBeUndefined();
      await meta.accounts.upsertNamespace('team', { quotaBytes: 1000, softQuotaBytes: 800 });
      expect(await meta.accounts.getNamespace('team')).toMatchObject({ quotaBytes: 1000, softQuotaBytes: 800, collectUntagged: false });
      expect(await meta.quota.settings('team')).toEqual({ hardBytes: 1000, softBytes: 800, softExceededAt: null });
      expect(await meta.quota.markSoftExceeded('team', 5000)).toBe(true);
      expect(await meta.quota.markSoftExceeded('team', 6000)).toBe(false);
      expect((await meta.quota.settings('team'))?.softExceededAt).toBe(5000);
      // other settings leave the mark; a new soft quota clears it, to be judged afresh
      await meta.accounts.upsertNamespace('team', { anonymousRead: true, softQuotaBytes: 800 });
      expect((await meta.quota.settings('team'))?.softExceededAt).toBe(5000);
      expect(await meta.quota.markSoftExceeded('team', null)).toBe(true);
      expect(await meta.quota.markSoftExceeded('team', null)).toBe(false);
      expect(await meta.quota.markSoftExceeded('team', 7000)).toBe(true);
      expect(await meta.accounts.upsertNamespace('team', { softQuotaBytes: 900, collectUntagged: true })).toMatchObject({
        quotaBytes: 1000,
        softQuotaBytes: 900,
        collectUntagged: true,
        anonymousRead: true,
      });
      expect((await meta.quota.settings('team'))?.softExceededAt).toBeNull();
      expect(await meta.quota.markSoftExceeded('nobody', 1)).toBe(false);
      await meta.close();
    });
  });
}
