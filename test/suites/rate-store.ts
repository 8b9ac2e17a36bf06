/** The RateStore suite: replicas' request counts and claims per identity and window, run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import type { MetaStore } from '../../src/meta/metastore.ts';
import type { RateCount, RateTotals } from '../../src/meta/rates.ts';

const w = 2000;
const current = 1_000_000 * w;
const previous = current - w;
const byKey = (totals: RateTotals[]) =>
  Object.fromEntries(totals.map((t) => [t.key, { peers: t.peers, claimed: t.claimed, unseen: t.unseen, ahead: t.ahead }]));
const row = (key: string, windowStart: number, count: number, claim = count): RateCount => ({ key, windowStart, count, claim });

export function rateStoreSuite(name: string, open: () => Promise<MetaStore>, shared: boolean): void {
  describe(`RateStore: ${name}`, () => {
    it(`says whether other processes share the counts (${shared})`, async () => {
      const meta = await open();
      expect(meta.rates.shared).toBe(shared);
      await meta.close();
    });

    it("adds up the other replicas' claims of the current window, finds the peers in two windows, and says which sort first", async () => {
      const meta = await open();
      const ask = (replica: string, counts: RateCount[], keys: string[]) => meta.rates.exchange({ replica, counts, keys, current, previous });
      expect(await ask('a', [row('user:1', current, 3, 5)], ['user:1'])).toEqual([]);
      // b's own row is left out; a's claim counts, not its count
      expect(byKey(await ask('b', [row('user:1', current, 2)], ['user:1', 'user:2']))).toEqual({ 'user:1': { peers: 1, claimed: 5, unseen: 0, ahead: 1 } });
      // c counted user:1 in the previous window only: a peer that has not written this window yet
      await ask('c', [row('user:1', previous, 9)], []);
      expect(byKey(await ask('a', [], ['user:1']))).toEqual({ 'user:1': { peers: 2, claimed: 2, unseen: 1, ahead: 0 } });
      expect(byKey(await ask('c', [], ['user:1', 'user:2']))).toEqual({ 'user:1': { peers: 2, claimed: 7, unseen: 0, ahead: 2 } });
      // a count above the claim (a claim never written) counts as the count
      await ask('b', [row('user:1', current, 6, 2)], []);
      expect(byKey(await ask('c', [], ['user:1']))).toEqual({ 'user:1': { peers: 2, claimed: 11, unseen: 0, ahead: 2 } });
      // windows before the previous one are neither claimed nor peers
      await ask('d', [row('user:1', previous - w, 50)], []);
      expect(byKey(await ask('a', [], ['user:1']))).toEqual({ 'user:1': { peers: 2, claimed: 6, unseen: 1, ahead: 0 } });
      await meta.close();
    });

    it('keeps the larger count and claim of a row: a retried or late write never lowers them, nor adds to them', async () => {
      const meta = await open();
      const key = 'source:192.0.2.1';
      const write = (count: number, claim: number) =>
        meta.rates.exchange({ replica: 'a', counts: [row(key, current, count, claim)], keys: [], current, previous });
      const read = async () => byKey(await meta.rates.exchange({ replica: 'b', counts: [], keys: [key], current, previous }))[key]?.claimed;
      await write(4, 4);
      await write(4, 4);
      expect(await read()).toBe(4);
      await write(2, 3); // an exchange that timed out, arriving after a later one
      expect(await read()).toBe(4);
      await write(4, 7);
      expect(await read()).toBe(7);
      // the same row twice in one exchange: the larger of each wins, and the statement does not fail
      await meta.rates.exchange({ replica: 'a', counts: [row(key, current, 9, 9), row(key, current, 8, 12)], keys: [], current, previous });
      expect(await read()).toBe(12);
      await meta.close();
    });

    it('exchanges thousands of keys at once', async () => {
      const meta = await open();
      const keys = Array.from({ length: 3000 }, (_, i) => `robot:${i}`);
      await meta.rates.exchange({ replica: 'a', counts: keys.map((key, i) => row(key, current, i + 1)), keys: [], current, previous });
      const totals = byKey(await meta.rates.exchange({ replica: 'b', counts: [], keys, current, previous }));
      expect(Object.keys(totals)).toHaveLength(3000);
      expect(totals['robot:2999']).toEqual({ peers: 1, claimed: 3000, unseen: 0, ahead: 1 });
      await meta.close();
    });

    it("prunes every replica's windows that began before a time", async () => {
      const meta = await open();
      for (const [replica, windowStart] of [
        ['a', previous - w],
        ['b', previous - w],
        ['a', previous],
        ['b', current],
      ] as const)
        await meta.rates.exchange({ replica, counts: [row('user:1', windowStart, 1)], keys: [], current, previous });
      expect(await meta.rates.prune(previous)).toBe(2);
      expect(await meta.rates.prune(previous)).toBe(0);
      expect(byKey(await meta.rates.exchange({ replica: 'c', counts: [], keys: ['user:1'], current, previous }))).toEqual({
        'user:1': { peers: 2, claimed: 1, unseen: 1, ahead: 2 },
      });
      await meta.close();
    });
  });
}
