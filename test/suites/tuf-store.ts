/**
 * The TufStore test suite, run on every engine beside the MetaStore suite (see test/meta.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { MetaStore } from '../../src/meta/metastore.ts';
import type { TufKeyRecord, TufMetadataRecord, TufRole } from '../../src/meta/tuf.ts';

const record = (namespace: string, role: TufRole, version: number, extra: Partial<TufMetadataRecord> = {}): TufMetadataRecord => ({
  namespace,
  role,
  version,
  json: JSON.stringify({ signed: { _type: role, version } }),
  expiresAt: 2_000_000_000_000 + version,
  createdAt: 1_000_000_000_000 + version,
  ...extra,
});

const key = (namespace: string, keyId: string, role: TufRole): TufKeyRecord => ({
  namespace,
  keyId,
  role,
  publicKey: `pub-${keyId}`,
  privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${keyId}\n-----END PRIVATE KEY-----\n`,
  createdAt: 1_000_000_000_000,
});

export function tufStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`TufStore: ${name}`, () => {
    it('publishes versions with their keys and reads them back', async () => {
      const meta = await open();
      const tuf = meta.tuf;
      expect(await tuf.latestVersions('ns')).toEqual({});
      const first = [record('ns', 'root', 1), record('ns', 'targets', 1), record('ns', 'snapshot', 1), record('ns', 'timestamp', 1)];
      expect(await tuf.publish(first, [key('ns', 'k1', 'root'), key('ns', 'k2', 'targets')])).toBe(true);
      expect(await tuf.latestVersions('ns')).toEqual({ root: 1, targets: 1, snapshot: 1, timestamp: 1 });
      expect(await tuf.namespaces()).toEqual(['ns']);
      expect(await tuf.getVersion('ns', 'targets', 1)).toEqual(first[1]);
      expect(await tuf.getVersion('ns', 'targets', 2)).toBeUndefined();
      expect(await tuf.getVersion('other', 'targets', 1)).toBeUndefined();
      const keys = await tuf.keys('ns', ['k1', 'k2', 'k3']);
      expect(keys.sort((a, b) => a.keyId.localeCompare(b.keyId))).toEqual([key('ns', 'k1', 'root'), key('ns', 'k2', 'targets')]);
      expect(await tuf.keys('other', ['k1'])).toEqual([]);
      expect(await tuf.keys('ns', [])).toEqual([]);

      expect(await tuf.publish([record('ns', 'timestamp', 2), record('ns', 'timestamp', 3)], [])).toBe(true);
      expect(await tuf.latestVersions('ns')).toEqual({ root: 1, targets: 1, snapshot: 1, timestamp: 3 });
      await meta.close();
    });

    it('stores nothing of a batch when one of its versions exists', async () => {
      const meta = await open();
      const tuf = meta.tuf;
      expect(await tuf.publish([record('race', 'root', 1), record('race', 'timestamp', 1)], [key('race', 'a', 'root')])).toBe(true);
      const loser = [record('race', 'timestamp', 2), record('race', 'root', 1, { json: '{"loser":true}' })];
      expect(await tuf.publish(loser, [key('race', 'b', 'root')])).toBe(false);
      expect(await tuf.latestVersions('race')).toEqual({ root: 1, timestamp: 1 });
      expect((await tuf.getVersion('race', 'root', 1))?.json).not.toContain('loser');
      expect(await tuf.keys('race', ['b'])).toEqual([]);
      await meta.close();
    });

    it('lets exactly one of racing publishers of a version win', async () => {
      const meta = await open();
      const results = await Promise.all([0, 1, 2, 3].map((i) => meta.tuf.publish([record('many', 'timestamp', 7, { json: `{"writer":${i}}` })], [])));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect((await meta.tuf.getVersion('many', 'timestamp', 7))?.json).toBe(`{"writer":${winner}}`);
      await meta.close();
    });

    it('prunes old versions of one role in one namespace', async () => {
      const meta = await open();
      const tuf = meta.tuf;
      await tuf.publish(
        [1, 2, 3, 4].map((v) => record('p', 'snapshot', v)),
        [],
      );
      await tuf.publish(
        [1, 2].map((v) => record('p', 'targets', v)),
        [],
      );
      await tuf.publish(
        [1, 2].map((v) => record('q', 'snapshot', v)),
        [],
      );
      expect(await tuf.prune('p', 'snapshot', 3)).toBe(2);
      expect(await tuf.getVersion('p', 'snapshot', 2)).toBeUndefined();
      expect(await tuf.getVersion('p', 'snapshot', 3)).toBeDefined();
      expect(await tuf.getVersion('p', 'targets', 1)).toBeDefined();
      expect(await tuf.getVersion('q', 'snapshot', 1)).toBeDefined();
      expect(await tuf.latestVersions('p')).toEqual({ snapshot: 4, targets: 2 });
      await meta.close();
    });

    it('keeps large metadata and times exact', async () => {
      const meta = await open();
      const json = JSON.stringify({ signed: { targets: 'x'.repeat(2_000_000) } });
      await meta.tuf.publish([record('big', 'targets', 1, { json, expiresAt: 4_102_444_800_000 })], []);
      const got = await meta.tuf.getVersion('big', 'targets', 1);
      expect(got?.json.length).toBe(json.length);
      expect(got?.expiresAt).toBe(4_102_444_800_000);
      await meta.close();
    });
  });
}
