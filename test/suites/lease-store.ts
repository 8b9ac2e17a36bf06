/** The LeaseStore suite (meta.leases, the periodic jobs' leases); run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import type { MetaStore } from '../../src/meta/metastore.ts';

export function leaseStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`LeaseStore: ${name}`, () => {
    it('gives a job to one holder until its lease expires, then to whoever asks first', async () => {
      const meta = await open();
      try {
        const leases = meta.leases;
        expect(await leases.get('gc')).toBeUndefined();
        expect(await leases.acquire('gc', 'a', 1000, 1100)).toEqual({ taken: true, lease: { name: 'gc', holder: 'a', expiresAt: 1100 } });
        // held: the answer says by whom and until when
        expect(await leases.acquire('gc', 'b', 1050, 1150)).toEqual({ taken: false, lease: { name: 'gc', holder: 'a', expiresAt: 1100 } });
        // not even its holder takes it again before it expires: the interval's run is done
        expect((await leases.acquire('gc', 'a', 1099, 1199)).taken).toBe(false);
        // other jobs are other rows
        expect((await leases.acquire('tuf-refresh', 'b', 1050, 1150)).taken).toBe(true);
        // free at its expiry
        expect(await leases.acquire('gc', 'b', 1100, 1200)).toEqual({ taken: true, lease: { name: 'gc', holder: 'b', expiresAt: 1200 } });
        expect(await leases.get('gc')).toEqual({ name: 'gc', holder: 'b', expiresAt: 1200 });
      } finally {
        await meta.close();
      }
    });

    it('renews only its holder’s lease, including one that expired unclaimed, and releases only its own', async () => {
      const meta = await open();
      try {
        const leases = meta.leases;
        expect((await leases.acquire('gc', 'a', 1000, 1100)).taken).toBe(true);
        expect(await leases.renew('gc', 'b', 5000)).toBe(false);
        expect(await leases.renew('gc', 'a', 1300)).toBe(true);
        expect((await leases.acquire('gc', 'b', 1200, 1300)).taken).toBe(false);
        // a's expired and nobody took it: a stalled, and may still carry on
        expect(await leases.renew('gc', 'a', 1500)).toBe(true);
        expect((await leases.acquire('gc', 'b', 1600, 1700)).taken).toBe(true);
        // taken over: a's renewals fail from now on
        expect(await leases.renew('gc', 'a', 1900)).toBe(false);
        await leases.release('gc', 'a');
        expect(await leases.get('gc')).toMatchObject({ holder: 'b', expiresAt: 1700 });
        await leases.release('gc', 'b');
        expect(await leases.get('gc')).toBeUndefined();
        expect((await leases.acquire('gc', 'a', 1650, 1750)).taken).toBe(true);
      } finally {
        await meta.close();
      }
    });

    it('lets exactly one of many replicas asking at once take a lease', async () => {
      const meta = await open();
      try {
        for (const round of [0, 1, 2]) {
          const now = 10_000 * (round + 1);
          const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => meta.leases.acquire('events-prune', `r${i}`, now, now + 5000)));
          const winners = answers.filter((a) => a.taken);
          expect(winners).toHaveLength(1);
          // the losers all name the winner
          for (const a of answers) expect(a.lease).toEqual({ name: 'events-prune', holder: winners[0]?.lease.holder, expiresAt: now + 5000 });
        }
      } finally {
        await meta.close();
      }
    });
  });
}
