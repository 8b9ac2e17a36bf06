/** The PolicyStore suite (and the namespace settings and usage policies read), run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import type { MetaStore } from '../../src/meta/metastore.ts';
import type { DecisionRecord } from '../../src/meta/policy.ts';

const decision = (at: number, extra: Partial<DecisionRecord> = {}): DecisionRecord => ({
  at,
  policy: 'p',
  version: 1,
  mode: 'enforce',
  action: 'push',
  repository: 'team/app',
  reference: 'v1',
  result: 'deny',
  message: 'no',
  latencyMicros: 12.6,
  actor: 'alice',
  source: '127.0.0.1',
  enforced: true,
  ...extra,
});

export function policyStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`PolicyStore: ${name}`, () => {
    it('keeps every version, lists the latest, and deletes with a version of its own', async () => {
      const meta = await open();
      const store = meta.policy;
      const r0 = await store.policyRevision();
      const v1 = await store.putPolicy({ name: 'p', namespace: null, document: { deny: 'true' }, source: 'deny: "true"', createdBy: 'admin' });
      expect(v1).toMatchObject({ name: 'p', version: 1, namespace: null, document: { deny: 'true' }, deleted: false });
      const v2 = await store.putPolicy({ name: 'p', namespace: null, document: { deny: 'false' }, source: 'deny: "false"', createdBy: 'admin' });
      expect(v2.version).toBe(2);
      await store.putPolicy({ name: 'q', namespace: 'team', document: {}, source: '{}', createdBy: 'bob' });
      expect(await store.policyRevision()).not.toBe(r0);
      expect((await store.getPolicy('p'))?.document).toEqual({ deny: 'false' });
      expect((await store.getPolicy('p', 1))?.document).toEqual({ deny: 'true' });
      expect((await store.listPolicies()).map((p) => [p.name, p.version, p.namespace])).toEqual([
        ['p', 2, null],
        ['q', 1, 'team'],
      ]);
      const r1 = await store.policyRevision();
      expect(await store.deletePolicy('p', 'carol')).toBe(true);
      expect(await store.deletePolicy('p', 'carol')).toBe(false);
      expect(await store.policyRevision()).not.toBe(r1);
      expect(await store.getPolicy('p')).toBeUndefined();
      expect((await store.policyVersions('p')).map((p) => [p.version, p.deleted, p.createdBy])).toEqual([
        [3, true, 'carol'],
        [2, false, 'admin'],
        [1, false, 'admin'],
      ]);
      expect((await store.listPolicies()).map((p) => p.name)).toEqual(['q']);
      expect((await store.putPolicy({ name: 'p', namespace: null, document: {}, source: '', createdBy: 'admin' })).version).toBe(4);
      await meta.close();
    });

    it('logs decisions, filters and pages them newest first, and prunes them', async () => {
      const meta = await open();
      const store = meta.policy;
      await store.recordDecisions([
        decision(1000),
        decision(2000, { result: 'allow', mode: 'dry-run', enforced: false }),
        decision(3000, { repository: 'team/other', action: 'pull' }),
        decision(3000, { repository: 'teammate/app' }),
        decision(4000, { policy: 'other' }),
      ]);
      const all = await store.queryDecisions({}, { limit: 2 });
      expect(all.decisions.map((d) => d.at)).toEqual([4000, 3000]);
      expect(all.decisions[0]).toMatchObject({ policy: 'other', latencyMicros: 13, enforced: true });
      const rest = await store.queryDecisions({}, { limit: 10, ...(all.next ? { before: all.next } : {}) });
      expect(rest.decisions.map((d) => d.at)).toEqual([3000, 2000, 1000]);
      expect(rest.next).toBeUndefined();
      expect((await store.queryDecisions({ namespace: 'team' }, { limit: 10 })).decisions.map((d) => d.repository).sort()).toEqual([
        'team/app',
        'team/app',
        'team/app',
        'team/other',
      ]);
      expect((await store.queryDecisions({ result: 'allow' }, { limit: 10 })).decisions.map((d) => d.mode)).toEqual(['dry-run']);
      expect((await store.queryDecisions({ policy: 'p', action: 'pull' }, { limit: 10 })).decisions.map((d) => d.repository)).toEqual(['team/other']);
      expect((await store.queryDecisions({ since: 2000, until: 4000 }, { limit: 10 })).decisions.length).toBe(3);
      expect(await store.pruneDecisions(3000)).toBe(2);
      expect((await store.queryDecisions({}, { limit: 10 })).decisions.length).toBe(3);
      await meta.close();
    });

    it('records an input once per key and hour, and pages through them oldest first', async () => {
      const meta = await open();
      const store = meta.policy;
      const input = (key: string, hour: number, at: number) => ({ key, hour, at, action: 'pull', repository: 'team/app', input: { n: at } });
      await store.recordInputs([input('a', 1, 3_600_000), input('b', 1, 3_600_001)]);
      await store.recordInputs([input('a', 1, 3_600_500), input('a', 2, 7_200_000)]);
      const first = await store.recordedInputs(0, { limit: 2 });
      expect(first.inputs.map((i) => [i.key, i.hour, i.input])).toEqual([
        ['a', 1, { n: 3_600_000 }],
        ['b', 1, { n: 3_600_001 }],
      ]);
      const rest = await store.recordedInputs(0, { limit: 2, ...(first.next ? { after: first.next } : {}) });
      expect(rest.inputs.map((i) => [i.key, i.hour])).toEqual([['a', 2]]);
      expect((await store.recordedInputs(7_000_000, { limit: 10 })).inputs.length).toBe(1);
      await meta.close();
    });

    it('keeps a namespace quota and labels, and counts the bytes stored in it once each', async () => {
      const meta = await open();
      await meta.accounts.upsertNamespace('team', { anonymousRead: true });
      expect(await meta.accounts.upsertNamespace('team', { quotaBytes: 1000, labels: { 'cost-center': 'cc-1' } })).toMatchObject({
        anonymousRead: true,
        quotaBytes: 1000,
      });
      expect(await meta.accounts.getNamespace('team')).toMatchObject({ anonymousRead: true, quotaBytes: 1000, labels: { 'cost-center': 'cc-1' } });
      const blob = `sha256:${'1'.repeat(64)}`;
      await meta.linkBlob('team/a', blob, 100);
      await meta.linkBlob('team/b', blob, 100); // the same blob in two repositories counts once
      await meta.linkBlob('team/b', `sha256:${'2'.repeat(64)}`, 50);
      await meta.linkBlob('teammate/x', `sha256:${'3'.repeat(64)}`, 7000);
      const content = new TextEncoder().encode('{"schemaVersion":2}');
      expect(
        (
          await meta.putManifest({
            repo: 'team/a',
            digest: `sha256:${'4'.repeat(64)}`,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            content,
            blobs: [blob],
            manifests: [],
          })
        ).ok,
      ).toBe(true);
      expect(await meta.storedBytes('team')).toBe(150 + content.byteLength);
      expect(await meta.storedBytes('nothing')).toBe(0);
      await meta.close();
    });
  });
}
