/** Pull tracking: counted in memory on the request path, written once a minute per artifact, adding up across replicas. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PullRecorder } from '../../src/lifecycle/pulls.ts';
import { openMetaStore } from '../../src/meta/open.ts';
import type { PullCount, PullCounts } from '../../src/meta/retention.ts';

const log = pino({ level: 'silent' });
const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

/** A store that keeps every write it is given. */
function counting(): PullCounts & { writes: PullCount[][]; fail: boolean } {
  return {
    writes: [],
    fail: false,
    async recordPulls(pulls) {
      if (this.fail) throw new Error('database down');
      this.writes.push(pulls.map((p) => ({ ...p })));
    },
    async pullsOf() {
      return [];
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('the pull recorder', () => {
  it('writes N pulls of an artifact within a minute as one row, once, when the minute is up', async () => {
    vi.useFakeTimers();
    let clock = 1_000_000;
    const store = counting();
    const recorder = new PullRecorder(store, log, { now: () => clock });
    recorder.start();
    for (let i = 0; i < 250; i++) {
      clock += 200; // 250 pulls over 50 s
      recorder.record('team/app', d(1));
      if (i % 2 === 0) recorder.record('team/app', d(2));
    }
    await vi.advanceTimersByTimeAsync(59_000);
    expect(store.writes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(store.writes).toHaveLength(1);
    expect(store.writes[0]).toEqual([
      { repo: 'team/app', digest: d(1), lastPulledAt: 1_050_000, count: 250 },
      { repo: 'team/app', digest: d(2), lastPulledAt: 1_049_800, count: 125 },
    ]);
    // nothing pulled in the next minute: nothing written
    await vi.advanceTimersByTimeAsync(60_000);
    expect(store.writes).toHaveLength(1);
    recorder.record('team/app', d(1));
    await recorder.stop(); // a clean stop writes what is left
    expect(store.writes).toHaveLength(2);
    expect(store.writes[1]).toEqual([{ repo: 'team/app', digest: d(1), lastPulledAt: 1_050_000, count: 1 }]);
  });

  it('keeps the counts of a write that failed for the next one', async () => {
    const store = counting();
    const recorder = new PullRecorder(store, log, { now: () => 5 });
    recorder.record('a', d(1));
    recorder.record('a', d(1));
    store.fail = true;
    await expect(recorder.flush()).rejects.toThrow('database down');
    recorder.record('a', d(1));
    store.fail = false;
    await recorder.flush();
    expect(store.writes).toEqual([[{ repo: 'a', digest: d(1), lastPulledAt: 5, count: 3 }]]);
  });

  it('holds at most maxPending artifacts between writes and counts the pulls it dropped', async () => {
    const store = counting();
    const recorder = new PullRecorder(store, log, { maxPending: 2 });
    for (const n of [1, 2, 3, 1, 4]) recorder.record('a', d(n));
    expect(recorder.dropped).toBe(2);
    await recorder.flush();
    expect(store.writes[0]?.map((p) => [p.digest, p.count])).toEqual([
      [d(1), 2],
      [d(2), 1],
    ]);
  });

  it('costs the pull path a map update: a million pulls of 10 000 artifacts in well under a second', () => {
    const recorder = new PullRecorder(counting(), log);
    const digests = Array.from({ length: 10_000 }, (_, i) => d(i));
    const started = performance.now();
    for (let i = 0; i < 1_000_000; i++) recorder.record('team/app', digests[i % 10_000] as string);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('adds up the pulls two replicas counted, keeping the later time', async () => {
    const meta = await openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-pulls-')), 'custody.db'));
    try {
      const a = new PullRecorder(meta.retention, log, { now: () => 1000 });
      const b = new PullRecorder(meta.retention, log, { now: () => 2000 });
      for (let i = 0; i < 7; i++) a.record('team/app', d(1));
      for (let i = 0; i < 5; i++) b.record('team/app', d(1));
      await Promise.all([a.flush(), b.flush()]);
      a.record('team/app', d(1));
      await a.flush();
      expect(await meta.retention.pullsOf('team/app')).toEqual([{ repo: 'team/app', digest: d(1), lastPulledAt: 2000, count: 13 }]);
    } finally {
      await meta.close();
    }
  });
});
