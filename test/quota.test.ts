/**
 * The quota arithmetic, the push path's bound and the soft quota's log: fair shares add up to the
 * blob's size for every size and number of namespaces; pushes are judged by a bound that only errs
 * strict and refused by the exact figure; a crossing of the soft quota is logged once, also when
 * two replicas (two Quotas on one database, SQLite, and two connection pools on PostgreSQL) see
 * it, and again after the usage was seen back under.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fairShare, Quotas, type QuotaVerdict } from '../src/lifecycle/quota.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';

const havePostgres = await postgresAvailable();

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

/** Tells the quota an admitted push was stored. */
async function stored(verdict: QuotaVerdict | undefined): Promise<void> {
  if (!verdict || verdict.refusal) throw new Error(`expected an admitted push, got ${JSON.stringify(verdict)}`);
  await verdict.stored();
}

/** A logger that keeps what it is told. */
function recorder() {
  const lines: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
  const at = (level: string) => (obj: unknown, msg?: unknown) => void lines.push({ level, obj: obj as Record<string, unknown>, msg: String(msg) });
  return { lines, log: { warn: at('warn'), info: at('info') } as unknown as ConstructorParameters<typeof Quotas>[1] };
}

describe('fairShare', () => {
  it('splits every size among every number of namespaces into whole bytes that add up to it', () => {
    for (let size = 0; size <= 60; size++) {
      for (let k = 1; k <= 9; k++) {
        const shares = Array.from({ length: k }, (_, i) => fairShare(size, k, i));
        expect(shares.reduce((a, b) => a + b, 0)).toBe(size);
        expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(1);
        expect(shares).toEqual([...shares].sort((a, b) => b - a)); // the extra bytes go to the first
      }
    }
    expect(fairShare(300, 3, 2)).toBe(100);
    expect(fairShare(2 ** 40 + 1, 2, 0)).toBe(2 ** 39 + 1);
  });

  it('refuses what is no share', () => {
    expect(() => fairShare(10, 0, 0)).toThrow(RangeError);
    expect(() => fairShare(10, 2, 2)).toThrow(RangeError);
    expect(() => fairShare(-1, 2, 0)).toThrow(RangeError);
    expect(() => fairShare(1.5, 2, 0)).toThrow(RangeError);
  });
});

describe('Quotas', () => {
  it('logs a crossing of the soft quota once across replicas, and the next crossing again', async () => {
    const meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-quota-')), 'custody.db'));
    try {
      const one = recorder();
      const two = recorder();
      let clock = 1_000;
      const replicas = [new Quotas(meta, one.log, () => clock), new Quotas(meta, two.log, () => clock)];
      await meta.accounts.upsertNamespace('team', { softQuotaBytes: 100 });
      const warnings = () => [...one.lines, ...two.lines].filter((l) => l.level === 'warn');
      // both replicas admit a push that crosses (the same blob, pushed twice at once); nothing is
      // noted before it is stored, and once stored, one of them logs it
      const verdicts = await Promise.all(replicas.map((q) => q.checkBlob('team/app', digest(1), 150)));
      expect(warnings()).toHaveLength(0);
      await meta.linkBlob('team/app', digest(1), 150);
      for (const v of verdicts) await stored(v);
      expect(warnings()).toHaveLength(1);
      expect(warnings()[0]).toMatchObject({
        obj: { namespace: 'team', usedBytes: 150, softQuotaBytes: 100, pushBytes: 150, push: 'blob' },
        msg: 'namespace team crossed its soft quota: it uses 150 of 100 bytes',
      });
      // later pushes, while it stays over, log nothing more
      clock = 2_000;
      for (const q of replicas) await stored(await q.checkBlob('team/app', digest(2), 10));
      expect(warnings()).toHaveLength(1);
      expect((await replicas[0]?.usage('team'))?.softExceededAt).toBe(1_000);

      // the usage goes back under (GC took the blob), is seen so, and crosses again
      await meta.unlinkBlob('team/app', digest(1));
      expect(await replicas[1]?.usage('team')).toMatchObject({ usedBytes: 0, overSoftQuota: false, softExceededAt: null });
      expect(two.lines.filter((l) => l.level === 'info').map((l) => l.msg)).toEqual(['namespace is back under its soft quota']);
      clock = 3_000;
      const third = await replicas[0]?.checkBlob('team/app', digest(3), 101);
      await meta.linkBlob('team/app', digest(3), 101);
      await stored(third);
      expect(warnings()).toHaveLength(2);
      expect((await meta.quota.settings('team'))?.softExceededAt).toBe(3_000);
    } finally {
      await meta.close();
    }
  });

  it('judges pushes by an upper bound that only errs high, and reads the exact usage before it refuses', async () => {
    const meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-quota-')), 'custody.db'));
    try {
      const asked: ('exact' | 'bound')[] = [];
      const quota = {
        ...meta.quota,
        settings: meta.quota.settings.bind(meta.quota),
        pushFigures: (ns: string, question: Parameters<typeof meta.quota.pushFigures>[1]) => {
          asked.push(question.addedSince === undefined ? 'exact' : 'bound');
          return meta.quota.pushFigures(ns, question);
        },
      };
      let shift = 0;
      const q = new Quotas({ quota, accounts: meta.accounts, blobInRepo: meta.blobInRepo.bind(meta) }, recorder().log, Date.now, () => Date.now() + shift);
      await meta.accounts.upsertNamespace('b', { quotaBytes: 1000 });
      await stored(await q.checkBlob('b/app', digest(1), 100)); // the first look is exact
      await meta.linkBlob('b/app', digest(1), 100);
      await meta.linkBlob('b/other', digest(2), 400); // another replica's push, which this one never judged
      expect(asked).toEqual(['exact']);
      // the bound (0 read exactly + 500 linked since) would refuse 600: the exact usage is read, and refuses
      expect((await q.checkBlob('b/app', digest(3), 600)).refusal).toMatchObject({ usedBytes: 500, pushBytes: 600 });
      expect(asked).toEqual(['exact', 'bound', 'exact']);
      // the bound errs high: a shared blob counts in full, links in two repositories twice, removals not at all
      await meta.linkBlob('b/app', digest(4), 200);
      await meta.linkBlob('o/app', digest(4), 200);
      await meta.linkBlob('b/other', digest(4), 200);
      await meta.unlinkBlob('b/other', digest(2));
      expect((await meta.quota.usage('b')).fairBlobBytes).toBe(200);
      // bound: 500 read + 100 + 200 + 200 linked since = 1000, and 50 more would not fit; exactly it is 200
      await stored(await q.checkBlob('b/app', digest(5), 50));
      expect(asked.slice(3)).toEqual(['bound', 'exact']);
      // 200 read + 500 linked since, and 10 more, fits by the bound: no exact reading
      await stored(await q.checkBlob('b/app', digest(6), 10));
      expect(asked.slice(5)).toEqual(['bound']);
      // an exact reading serves for a minute, then is read again
      shift = 61_000;
      await stored(await q.checkBlob('b/app', digest(6), 10));
      expect(asked.slice(6)).toEqual(['exact']);
    } finally {
      await meta.close();
    }
  });

  it('asks nothing more of a namespace without quotas, and refuses with the figures over a hard one', async () => {
    const meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-quota-')), 'custody.db'));
    try {
      const q = new Quotas(meta, recorder().log);
      await meta.linkBlob('free/app', digest(1), 10_000);
      expect((await q.checkBlob('free/app', digest(2), 10 ** 12)).refusal).toBeUndefined();
      await meta.accounts.upsertNamespace('capped', { quotaBytes: 100 });
      await meta.linkBlob('free/app', digest(3), 150);
      // 150 bytes shared with one other namespace cost 75; the next byte over 100 is refused
      expect((await q.checkBlob('capped/app', digest(3), 150)).refusal).toBeUndefined();
      await meta.linkBlob('capped/app', digest(3), 150);
      expect((await q.checkBlob('capped/app', digest(4), 25)).refusal).toBeUndefined();
      expect((await q.checkBlob('capped/app', digest(4), 26)).refusal).toMatchObject({ namespace: 'capped', usedBytes: 75, pushBytes: 26, quotaBytes: 100 });
      expect((await q.checkMount('capped/app', 'free/app', digest(1))).refusal).toMatchObject({ usedBytes: 75, pushBytes: 5000 });
      expect((await q.checkMount('capped/app', 'free/app', digest(9))).refusal).toBeUndefined(); // nothing to mount: an upload starts
      expect((await q.checkManifest('capped/app', digest(5), 26)).refusal).toMatchObject({ pushBytes: 26 });
    } finally {
      await meta.close();
    }
  });
});

describe.runIf(havePostgres)('Quotas: two replicas on one PostgreSQL database', () => {
  afterAll(dropDatabases);

  it("counts the other replica's pushes at once, refuses by the exact figure, and logs a soft crossing once", async () => {
    const url = await freshDatabase();
    const [a, b] = [await openMetaStore(url), await openMetaStore(url)];
    try {
      const logs = [recorder(), recorder()];
      const [qa, qb] = [new Quotas(a, (logs[0] ?? recorder()).log), new Quotas(b, (logs[1] ?? recorder()).log)];
      await a.accounts.upsertNamespace('team', { quotaBytes: 1000, softQuotaBytes: 500 });
      await stored(await qa.checkBlob('team/app', digest(1), 400)); // replica a reads the usage exactly: 0
      await a.linkBlob('team/app', digest(1), 400);
      // replica b pushes 500 more, which a never judged
      const pushed = await qb.checkBlob('team/app', digest(2), 500);
      await b.linkBlob('team/app', digest(2), 500);
      await stored(pushed);
      // a's bound counts b's link: 101 more does not fit, and the refusal gives the exact figure
      expect((await qa.checkBlob('team/app', digest(3), 101)).refusal).toMatchObject({ usedBytes: 900, pushBytes: 101, quotaBytes: 1000 });
      expect((await qa.checkBlob('team/app', digest(3), 100)).refusal).toBeUndefined();
      // the crossing (to 900 over 500) was logged once, by b, whose push crossed
      const warned = logs.map((l) => l.lines.filter((x) => x.level === 'warn').length);
      expect(warned).toEqual([0, 1]);
      await stored(await qa.checkBlob('team/app', digest(4), 10));
      expect(logs.map((l) => l.lines.filter((x) => x.level === 'warn').length)).toEqual([0, 1]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
