/**
 * The scheduler of the periodic jobs (src/lifecycle/schedule.ts): two schedulers on one database
 * stand for two replicas. A job runs once per interval between them, a long run is never
 * overlapped, a dead holder's job is taken over once its lease expires, and the timers keep the
 * pace on their own.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Scheduler } from '../../src/lifecycle/schedule.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';
import { openMetaStore } from '../../src/meta/open.ts';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const stores: MetaStore[] = [];

async function store(): Promise<MetaStore> {
  const meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-schedule-')), 'custody.db'));
  stores.push(meta);
  return meta;
}

afterEach(async () => {
  for (const meta of stores.splice(0)) await meta.close();
});

describe('Scheduler', () => {
  it('runs a job once per interval across two replicas, whichever looks first', async () => {
    const meta = await store();
    const interval = 60_000;
    let clock = 1_000 * interval + 5;
    const replica = () => new Scheduler({ leases: meta.leases, log, leaseMs: 10_000, now: () => clock });
    const [a, b] = [replica(), replica()];
    let runs = 0;
    for (const s of [a, b]) s.schedule('prune', interval, async () => void runs++);
    for (let i = 0; i < 10; i++) {
      // both look at once: one runs it
      const ran = await Promise.all([a.tick('prune'), b.tick('prune')]);
      expect(ran.filter(Boolean)).toHaveLength(1);
      expect(runs).toBe(i + 1);
      // and again, once it is done
      expect(await Promise.all([a.tick('prune'), b.tick('prune')])).toEqual([false, false]);
      // later in the same interval: nobody
      clock += interval / 2;
      expect(await Promise.all([a.tick('prune'), b.tick('prune')])).toEqual([false, false]);
      clock += interval / 2;
    }
    const total = (s: Scheduler) => s.runs().find((j) => j.job === 'prune')?.runs ?? 0;
    expect(total(a) + total(b)).toBe(10);
  });

  it('keeps a long run’s lease until it ends, then holds the job to the end of that interval', async () => {
    const meta = await store();
    const interval = 1000;
    let clock = 50 * interval;
    const leaseMs = 90;
    const replica = () => new Scheduler({ leases: meta.leases, log, leaseMs, now: () => clock });
    const [a, b] = [replica(), replica()];
    let finish = () => {};
    let running = 0;
    let overlapped = false;
    const job = () =>
      new Promise<void>((resolve) => {
        running++;
        if (running > 1) overlapped = true;
        finish = () => {
          running--;
          resolve();
        };
      });
    a.schedule('gc', interval, job);
    b.schedule('gc', interval, job);
    const long = a.tick('gc');
    await expect.poll(() => running).toBe(1);
    // three intervals pass while it runs; the lease is renewed every 30 ms (real time)
    for (let i = 0; i < 60; i++) {
      clock += 50;
      await sleep(40);
      expect(await b.tick('gc')).toBe(false);
    }
    finish();
    expect(await long).toBe(true);
    // it ended in this interval: nobody runs it again before the next
    expect(await b.tick('gc')).toBe(false);
    clock = (Math.floor(clock / interval) + 1) * interval;
    const next = b.tick('gc');
    await expect.poll(() => running).toBe(1);
    finish();
    expect(await next).toBe(true);
    expect(overlapped).toBe(false);
  });

  it('takes over the job of a replica that died holding its lease, once the lease expires', async () => {
    const meta = await store();
    let clock = 7_000_000;
    const s = new Scheduler({ leases: meta.leases, log, leaseMs: 5000, now: () => clock });
    let runs = 0;
    s.schedule('tuf-refresh', 60_000, async () => void runs++);
    // a replica took it at 7 000 000 and died mid-run: its lease lasts until 7 005 000
    expect((await meta.leases.acquire('tuf-refresh', 'dead', clock, clock + 5000)).taken).toBe(true);
    clock += 4999;
    expect(await s.tick('tuf-refresh')).toBe(false);
    clock += 1;
    expect(await s.tick('tuf-refresh')).toBe(true);
    expect(runs).toBe(1);
    expect(await meta.leases.get('tuf-refresh')).toEqual({ name: 'tuf-refresh', holder: s.holder, expiresAt: 7_020_000 });
  });

  it('with startNextInterval, runs a job never run before from the next interval on, not in this one', async () => {
    const meta = await store();
    const interval = 3_600_000;
    let clock = 100 * interval + 60_000;
    const replica = () => new Scheduler({ leases: meta.leases, log, leaseMs: 5000, now: () => clock });
    let runs = 0;
    const [a, b] = [replica(), replica()];
    for (const s of [a, b]) s.schedule('gc', interval, async () => void runs++, { startNextInterval: true });
    expect(await Promise.all([a.tick('gc'), b.tick('gc')])).toEqual([false, false]);
    clock = 101 * interval;
    expect((await Promise.all([a.tick('gc'), b.tick('gc')])).filter(Boolean)).toHaveLength(1);
    expect(runs).toBe(1);
    // a replica started later, in a cluster where it ran: from its first look on, as usual
    clock = 102 * interval + 1;
    const c = replica();
    c.schedule('gc', interval, async () => void runs++, { startNextInterval: true });
    expect(await c.tick('gc')).toBe(true);
    expect(runs).toBe(2);
  });

  it('keeps the pace with its own timers: N intervals, N runs between three replicas', async () => {
    const meta = await store();
    const interval = 100;
    const replicas = [0, 1, 2].map(() => new Scheduler({ leases: meta.leases, log, leaseMs: 1000 }));
    let runs = 0;
    for (const s of replicas) s.schedule('upload-expiry', interval, async () => void runs++);
    const first = Math.floor(Date.now() / interval);
    for (const s of replicas) s.start();
    await sleep(1500);
    await Promise.all(replicas.map((s) => s.stop()));
    const intervals = Math.floor(Date.now() / interval) - first + 1;
    expect(Math.abs(runs - intervals)).toBeLessThanOrEqual(1);
    // no job scheduled with interval 0 (configured off)
    replicas[0]?.schedule('gc', 0, async () => {});
    expect(replicas[0]?.runs().map((j) => j.job)).toEqual(['upload-expiry']);
  });
});
