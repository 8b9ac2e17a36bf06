/** The CostStore suite: storage ticks and their integral, usage, network egress, budgets, leases; run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import { dayMs, hourMs, type UsageEvent } from '../../src/meta/insight.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';
import { usageEvent } from '../helpers/events.ts';

/** November 2025: 30 days. */
const nov = Date.UTC(2025, 10, 1);
const dec = Date.UTC(2025, 11, 1);
const novMs = dec - nov;
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const manifestType = 'application/vnd.oci.image.manifest.v1+json';

const event = (at: number, extra: Partial<UsageEvent> = {}): UsageEvent => usageEvent(at, { digest: digest(1), source: '10.0.0.1', ...extra });

export function costStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`CostStore: ${name}`, () => {
    it('integrates ticks as a step function, carrying the last figures across a gap, month by month', async () => {
      const meta = await open();
      const cost = meta.cost;
      expect(await cost.lastSampleAt()).toBeUndefined();
      expect(await cost.recordSample(nov, [{ namespace: 'team', repository: 'team/app', bytes: 1e9 }])).toBe(true);
      expect(await cost.recordSample(nov + hourMs, [{ namespace: 'team', repository: 'team/app', bytes: 2e9 }])).toBe(true);
      // a gap of ten days (every replica down): the 2e9 stand across it
      const after = nov + 10 * dayMs;
      expect(
        await cost.recordSample(after, [
          { namespace: 'team', repository: 'team/app', bytes: 3e9 },
          { namespace: 'other', repository: 'other/x', bytes: 1e9 },
          { namespace: 'other', repository: 'other/empty', bytes: 0 },
        ]),
      ).toBe(true);
      // another replica sampling at or before the last tick writes nothing
      expect(await cost.recordSample(after, [{ namespace: 'team', repository: 'team/app', bytes: 9e9 }])).toBe(false);
      expect(await cost.recordSample(after - 1, [{ namespace: 'team', repository: 'team/app', bytes: 9e9 }])).toBe(false);
      expect(await cost.lastSampleAt()).toBe(after);

      const month = { since: nov, until: dec, now: dec + dayMs };
      const usage = await cost.usage(month);
      const team = usage.find((u) => u.repository === 'team/app')!;
      const expected = (1e9 * hourMs + 2e9 * (after - nov - hourMs) + 3e9 * (dec - after)) / (1e9 * novMs);
      expect(team.storageGbMonths).toBeCloseTo(expected, 12);
      expect(usage.find((u) => u.repository === 'other/x')!.storageGbMonths).toBeCloseTo((dec - after) / novMs, 12);
      expect(usage.map((u) => u.repository)).toEqual(['other/x', 'team/app']); // nothing for a repository of 0 bytes

      // the last tick stands until now: counted no later than now
      const midway = await cost.usage({ since: nov, until: dec, now: after + dayMs });
      expect(midway.find((u) => u.repository === 'other/x')!.storageGbMonths).toBeCloseTo(dayMs / novMs, 12);
      // a window across two months counts each part by its own month's length (December: 31 days)
      const across = await cost.usage({ since: dec - dayMs, until: dec + dayMs, now: dec + dayMs }, { namespaces: ['other'] });
      expect(across).toHaveLength(1);
      expect(across[0]!.storageGbMonths).toBeCloseTo(dayMs / novMs + dayMs / (31 * dayMs), 12);
      // before the first tick nothing was stored; an empty filter matches nothing; a reversed window is empty
      expect(await cost.usage({ since: nov - dayMs, until: nov, now: dec })).toEqual([]);
      expect(await cost.usage(month, { namespaces: [] })).toEqual([]);
      expect(await cost.usage({ since: dec, until: nov, now: dec })).toEqual([]);
      await meta.close();
    });

    it('prunes the ticks that ended before a time, with their samples, and keeps the last', async () => {
      const meta = await open();
      const cost = meta.cost;
      for (let i = 0; i < 4; i++) await cost.recordSample(nov + i * dayMs, [{ namespace: 'team', repository: 'team/app', bytes: 1e9 }]);
      // ticks 0 and 1 ended at day 1 and 2: before day 2 only the first
      expect(await cost.pruneSamples(nov + 2 * dayMs)).toBe(1);
      expect(await cost.pruneSamples(nov + 100 * dayMs)).toBe(2); // the last has not ended
      expect(await cost.lastSampleAt()).toBe(nov + 3 * dayMs);
      const [u] = await cost.usage({ since: nov, until: dec, now: nov + 4 * dayMs });
      expect(u!.storageGbMonths).toBeCloseTo(dayMs / novMs, 12);
      await meta.close();
    });

    it('counts each repository’s linked blobs in full and its manifests', async () => {
      const meta = await open();
      await meta.linkBlob('alpha/app', digest(1), 300);
      await meta.linkBlob('alpha/app', digest(2), 50);
      await meta.linkBlob('beta/app', digest(1), 300);
      const content = new TextEncoder().encode('{"schemaVersion":2}');
      expect((await meta.putManifest({ repo: 'beta/app', digest: digest(9), mediaType: manifestType, content, blobs: [digest(1)], manifests: [] })).ok).toBe(
        true,
      );
      expect(await meta.cost.repositoryBytes()).toEqual([
        { repository: 'alpha/app', blobBytes: 350, manifestBytes: 0 },
        { repository: 'beta/app', blobBytes: 300, manifestBytes: content.byteLength },
      ]);
      await meta.close();
    });

    it('sums pulls, pushes and egress of the hours that start in the window, from hour and day rollups', async () => {
      const meta = await open();
      const at = (d: number, h: number) => nov + d * dayMs + h * hourMs + 60_000;
      await meta.insight.recordEvents([
        event(at(0, 23)), // the hour before the window's first: left out
        event(at(1, 0)),
        event(at(1, 5), { bytes: 500 }),
        event(at(2, 12), { bytes: 7 }),
        event(at(3, 1), { type: 'push', bytes: 123 }),
        event(at(3, 2), { type: 'pull', result: 'denied', bytes: 0 }),
        event(at(4, 3)), // the hour the window ends in starts before until: counted
        event(at(4, 4)), // after: left out
        event(at(2, 2), { namespace: 'other', repository: 'other/x', bytes: 1 }),
        event(at(2, 2), { type: 'login', bytes: 0, repository: '', object: '' }),
      ]);
      const window = { since: nov + dayMs, until: nov + 4 * dayMs + 3 * hourMs + 1, now: dec };
      const usage = await meta.cost.usage(window);
      const team = usage.find((u) => u.repository === 'team/app')!;
      // denied pulls are recorded events too (a request was served); they sent no bytes
      expect(team).toMatchObject({ namespace: 'team', pulls: 5, pushes: 1, egressBytes: 1000 + 500 + 7 + 0 + 1000, egressByNetwork: {} });
      expect(usage.find((u) => u.repository === 'other/x')).toMatchObject({ pulls: 1, egressBytes: 1 });
      expect(await meta.cost.usage(window, { namespaces: ['other'] })).toHaveLength(1);
      await meta.close();
    });

    it('adds network egress under a cursor, once: a stale cursor adds nothing', async () => {
      const meta = await open();
      const cost = meta.cost;
      expect(await cost.egressCursor()).toBeUndefined();
      const row = { start: nov, namespace: 'team', repository: 'team/app', network: 'office', bytes: 100 };
      const c1 = { at: nov + 10, id: 'a' };
      expect(await cost.addNetworkEgress([row], undefined, c1)).toBe(true);
      // a second replica that read from the start too
      expect(await cost.addNetworkEgress([row], undefined, c1)).toBe(false);
      const c2 = { at: nov + 20, id: 'b' };
      expect(
        await cost.addNetworkEgress(
          [
            { ...row, bytes: 50 },
            { ...row, network: 'vpn', bytes: 5 },
          ],
          c1,
          c2,
        ),
      ).toBe(true);
      expect(await cost.addNetworkEgress([row], c1, { at: nov + 30, id: 'c' })).toBe(false);
      expect(await cost.egressCursor()).toEqual(c2);
      await meta.insight.recordEvents([event(nov + 10, { bytes: 1000 })]);
      const [u] = await cost.usage({ since: nov, until: nov + hourMs, now: nov + hourMs });
      expect(u!.egressByNetwork).toEqual({ office: 150, vpn: 5 });
      expect(u!.egressBytes).toBe(1000);
      await meta.close();
    });

    it('keeps budgets, and marks a threshold announced once per month', async () => {
      const meta = await open();
      const cost = meta.cost;
      const budget = { scope: 'namespace' as const, name: 'team', monthly: 100, soft: 80, updatedBy: 'admin', updatedAt: nov };
      await cost.setBudget(budget);
      await cost.setBudget({ ...budget, scope: 'team', name: 'payments', soft: null, monthly: 12.5 });
      expect(await cost.getBudget('namespace', 'team')).toEqual(budget);
      expect(await cost.getBudget('namespace', 'nobody')).toBeUndefined();
      expect((await cost.listBudgets()).map((b) => [b.scope, b.name, b.monthly, b.soft])).toEqual([
        ['namespace', 'team', 100, 80],
        ['team', 'payments', 12.5, null],
      ]);
      expect(await cost.markBudgetNotified('namespace', 'team', 'soft', '2025-11')).toBe(true);
      expect(await cost.markBudgetNotified('namespace', 'team', 'soft', '2025-11')).toBe(false);
      expect(await cost.markBudgetNotified('namespace', 'team', 'hard', '2025-11')).toBe(true);
      expect(await cost.markBudgetNotified('namespace', 'team', 'soft', '2025-12')).toBe(true);
      expect(await cost.markBudgetNotified('namespace', 'nobody', 'soft', '2025-12')).toBe(false);
      // a budget set again counts as not yet announced
      await cost.setBudget({ ...budget, monthly: 200 });
      expect((await cost.getBudget('namespace', 'team'))!.monthly).toBe(200);
      expect(await cost.markBudgetNotified('namespace', 'team', 'soft', '2025-12')).toBe(true);
      expect(await cost.deleteBudget('namespace', 'team')).toBe(true);
      expect(await cost.deleteBudget('namespace', 'team')).toBe(false);
      expect(await cost.listBudgets()).toHaveLength(1);
      await meta.close();
    });

    it('gives a lease to one holder until it expires or is released', async () => {
      const meta = await open();
      const cost = meta.cost;
      expect(await cost.acquireLease('cost', 'a', 1000, 100)).toBe(true);
      expect(await cost.acquireLease('cost', 'b', 1050, 100)).toBe(false);
      expect(await cost.acquireLease('cost', 'a', 1050, 100)).toBe(true); // renewed to 1150
      expect(await cost.acquireLease('cost', 'b', 1120, 100)).toBe(false);
      expect(await cost.acquireLease('cost', 'b', 1151, 100)).toBe(true); // a's expired
      await cost.releaseLease('cost', 'a'); // not a's any more: nothing
      expect(await cost.acquireLease('cost', 'a', 1160, 100)).toBe(false);
      await cost.releaseLease('cost', 'b');
      expect(await cost.acquireLease('cost', 'a', 1160, 100)).toBe(true);
      expect(await cost.acquireLease('other', 'b', 1160, 100)).toBe(true);
      await meta.close();
    });
  });
}
